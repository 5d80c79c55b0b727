"""The seed sweep: does every hidden test give the same work the same grade under every draw?

For each assignment, the reference solution, the other correct solutions of
``tests/variants/`` and the stub are graded under DRAWS draws of the hidden tests' randomness
(the seed the harness binds and the global generators a student's own initialisation draws
from; see tests/sweep.py), and every mutant of ``tests/mutants/`` under the same draws, on
the questions it breaks. Each notebook runs once, in this process's workers, and the tests
are called on the objects it made: the same comparisons as in the sandbox. Only the
project's own notebooks are run, never a student's.

Prints, per assignment: each correct solution's draws with full marks (must be all), the
stub's draws with zero points (must be all), and per mutant the share of draws under which
it keeps the points it should lose ("lucky") and the share under which it scores other than
its usual score ("other score": wrong work graded by the luck of the draw); a share above 0
needs a ``luck`` sentence in its mutant entry saying why that is acceptable. Exits 1 when
any of these does not hold.

    python bench/seed_sweep.py [--draws 1000] [--mutant-draws N] [--assignments 01_...,02_...]
                               [--jobs 2] [--chunk 250]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from autograder.authoring.mutants import Mutant, apply_mutant, load_mutants  # noqa: E402
from autograder.authoring.variants import apply_variant, load_variants  # noqa: E402
from autograder.core.assignments import discover  # noqa: E402


@dataclass(frozen=True)
class Unit:
    """One notebook of one assignment under a slice of the draws."""

    assignment: str
    kind: str  # "reference", "variant", "stub", "mutant"
    label: str
    start: int
    count: int
    only: tuple[str, ...] | None = None


@dataclass
class Tally:
    """A notebook's results over all its slices: per question, the score under each draw."""

    unit: Unit
    max_points: dict[str, float]
    scores: dict[str, list[float]]
    failures: list[str]  # "question/case: n of m draws, first: seed ... message"
    cell_errors: list[str]
    seconds: float


def _notebook(unit: Unit):
    from local_run import built

    reference = built(unit.assignment).reference_notebook
    if unit.kind == "reference":
        return reference
    if unit.kind == "stub":
        return built(unit.assignment).student_notebook
    if unit.kind == "variant":
        variant = next(v for v in load_variants(unit.assignment) if v.id == unit.label)
        return apply_variant(reference, variant)
    mutant = next(m for m in load_mutants(unit.assignment) if m.id == unit.label)
    return apply_mutant(reference, mutant)


def run_unit(unit: Unit) -> Tally:
    """Sweep one slice (runs in a worker process with one torch thread)."""
    import torch
    from sweep import sweep_notebook, sweep_seeds

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        result = sweep_notebook(unit.assignment, unit.label, _notebook(unit),
                                sweep_seeds(unit.count, unit.start), Path(workdir), unit.only)
    failures = [
        f"{t.question}/{t.name}: {t.runs - t.passes} of {t.runs} draws, first: seed "
        f"{t.first_failure[0]}: {t.first_failure[1]}"
        for t in result.failing_cases()
    ]
    return Tally(unit, result.max_points, result.scores, failures, result.cell_errors,
                 result.seconds)


def plan(assignments: list[str], draws: int, mutant_draws: int, chunk: int) -> list[Unit]:
    """Every notebook to sweep, cut into slices of at most ``chunk`` draws."""
    units = []
    for name in assignments:
        subjects = [("reference", "reference", None, draws), ("stub", "stub", None, draws)]
        subjects += [("variant", v.id, None, draws) for v in load_variants(name)]
        subjects += [("mutant", m.id, m.breaks, mutant_draws)
                     for m in load_mutants(name) if m.caught_by == "tests"]
        for kind, label, only, count in subjects:
            for start in range(0, count, chunk):
                units.append(Unit(name, kind, label, start, min(chunk, count - start), only))
    return units


def merge(tallies: list[Tally]) -> dict[tuple[str, str, str], Tally]:
    """Slices of one notebook joined, in draw order."""
    merged: dict[tuple[str, str, str], Tally] = {}
    for tally in sorted(tallies, key=lambda t: t.unit.start):
        key = (tally.unit.assignment, tally.unit.kind, tally.unit.label)
        if key not in merged:
            merged[key] = Tally(tally.unit, tally.max_points, defaultdict(list), [], [], 0.0)
        whole = merged[key]
        for question, scores in tally.scores.items():
            whole.scores[question].extend(scores)
        whole.failures += tally.failures
        whole.cell_errors += [e for e in tally.cell_errors if e not in whole.cell_errors]
        whole.seconds += tally.seconds
    return merged


def full_draws(tally: Tally) -> int:
    """Draws under which every question earned every point."""
    rows = zip(*(tally.scores[q] for q in tally.max_points), strict=True)
    return sum(all(s >= tally.max_points[q] - 1e-9
                   for q, s in zip(tally.max_points, row, strict=True)) for row in rows)


def zero_draws(tally: Tally) -> int:
    rows = zip(*(tally.scores[q] for q in tally.max_points), strict=True)
    return sum(all(s <= 1e-9 for s in row) for row in rows)


def lucky_draws(tally: Tally, mutant: Mutant) -> int:
    """Draws under which the mutant kept the points it should lose: a broken question with
    full marks, or any point on a degenerate answer's question."""
    rows = zip(*(tally.scores[q] for q in mutant.breaks), strict=True)
    if mutant.scores_zero:
        return sum(any(s > 1e-9 for s in row) for row in rows)
    return sum(any(s >= tally.max_points[q] - 1e-9 for q, s in zip(mutant.breaks, row, strict=True))
               for row in rows)


def varying_draws(tally: Tally, questions: tuple[str, ...]) -> int:
    """Draws whose score on ``questions`` differs from the most common one: the same work
    graded differently by the luck of the draw."""
    totals = [round(sum(row), 6) for row in zip(*(tally.scores[q] for q in questions), strict=True)]
    most_common = max(set(totals), key=totals.count)
    return sum(total != most_common for total in totals)


def report(name: str, merged: dict, problems: list[str]) -> None:
    rows = [t for (a, _, _), t in merged.items() if a == name]
    if not rows:
        return
    print(f"\n## {name}")
    for tally in rows:
        draws = len(next(iter(tally.scores.values())))
        unit = tally.unit
        if unit.kind in ("reference", "variant"):
            full = full_draws(tally)
            print(f"  {unit.kind:9} {unit.label:42} full marks {full:5}/{draws}"
                  f"  ({tally.seconds:6.1f} s)")
            if full < draws or tally.cell_errors:
                problems.append(f"{name} {unit.label}: full marks under {full}/{draws} draws")
                for line in tally.failures[:5] + tally.cell_errors[:3]:
                    print(f"      {line}")
        elif unit.kind == "stub":
            zero = zero_draws(tally)
            print(f"  stub      {'':42} zero points {zero:5}/{draws}  ({tally.seconds:6.1f} s)")
            if zero < draws:
                problems.append(f"{name} stub: points under {draws - zero}/{draws} draws")
    mutants = {m.id: m for m in load_mutants(name)}
    for mutant in mutants.values():
        tally = merged.get((name, "mutant", mutant.id))
        if tally is None:
            print(f"  mutant    {mutant.id:42} caught by {mutant.caught_by}, not by a draw")
            continue
        draws = len(tally.scores[mutant.breaks[0]])
        lucky = lucky_draws(tally, mutant)
        varies = varying_draws(tally, mutant.breaks)
        note = f"  ({mutant.luck})" if (lucky or varies) and mutant.luck else ""
        print(f"  mutant    {mutant.id:42} lucky {lucky:5}/{draws} = {lucky / draws:6.1%}"
              f"  other score {varies:5}/{draws}{note}")
        if (lucky or varies) and not mutant.luck:
            problems.append(f"{name} mutant {mutant.id}: keeps its points under {lucky}/{draws} "
                            f"draws, another score than usual under {varies}/{draws}")
            for line in tally.failures[:3]:
                print(f"      {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--mutant-draws", type=int, default=None,
                        help="draws per mutant (default: --draws)")
    parser.add_argument("--assignments", default=",".join(discover()))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=250, help="draws per work unit")
    args = parser.parse_args()
    assignments = args.assignments.split(",")
    units = plan(assignments, args.draws, args.mutant_draws or args.draws, args.chunk)
    print(f"# seed sweep: {args.draws} draws per correct solution and stub, "
          f"{args.mutant_draws or args.draws} per mutant; {len(units)} units on {args.jobs} "
          f"processes", flush=True)
    started = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        tallies = []
        for done, tally in enumerate(pool.map(run_unit, units), 1):
            tallies.append(tally)
            if done % 10 == 0 or done == len(units):
                print(f"# {done}/{len(units)} units, {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)
    merged = merge(tallies)
    problems: list[str] = []
    for name in assignments:
        report(name, merged, problems)
    print(f"\nseed sweep: {time.monotonic() - started:.0f} s wall on {args.jobs} processes; "
          f"{len(problems)} problem(s)")
    for line in problems:
        print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

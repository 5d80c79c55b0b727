"""The hostile catalogue at every isolation level this machine has: contained or not.

Every scenario of tests/catalogue/ (bad input, hostile code, bypasses of the library rule,
student-style work) plus the escapes seen from outside (tests/catalogue/escapes.py: a hidden
test read, a TCP connection to the loopback, signals to processes outside the sandbox, the
grader killed) is graded, one batch per assignment and level, through the real CLI. A
scenario is *contained* when it is graded as the catalogue expects and nothing it did is
seen outside (see ``catalogue.levels.containment``); a batch-wide row says whether the batch
finished at once, left nothing running and changed nothing outside.

At the process level the grader is started as a throwaway uid when this runs as root (a
notebook there can kill every process of the grader's user; as root that is the machine),
and it is run again after a submission kills it, as an instructor would.

    python bench/isolation_matrix.py [--levels bwrap,uid,process] [--assignments 01_...]

Prints one line per scenario and level, then ``contained: bwrap A/N, uid B/N, process C/N``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from catalogue.escapes import ESCAPE_SCENARIOS  # noqa: E402
from catalogue.layers import LAYER_SCENARIOS  # noqa: E402
from catalogue.levels import (  # noqa: E402
    batch_containment,
    containment,
    grade_catalogue,
    grader_uid,
    stop_leftovers,
)
from catalogue.memorisation import MEMORISATION_SCENARIOS  # noqa: E402
from catalogue.scenarios import SCENARIOS, Scenario  # noqa: E402
from catalogue.students import STUDENT_SCENARIOS  # noqa: E402
from catalogue.trusted import TRUSTED_SCENARIOS  # noqa: E402
from local_run import built  # noqa: E402

from autograder.sandbox import SandboxLevel, launcher  # noqa: E402
from autograder.sandbox import uid as uid_level  # noqa: E402

EVERY = (SCENARIOS + LAYER_SCENARIOS + STUDENT_SCENARIOS + ESCAPE_SCENARIOS + TRUSTED_SCENARIOS
         + MEMORISATION_SCENARIOS)


def available_levels(asked: list[str]) -> tuple[list[str], dict[str, str]]:
    """The asked levels that can run here, and why each other one cannot."""
    runnable, skipped = [], {}
    for level in asked:
        problem = launcher.level_problem(SandboxLevel(level))
        if problem is None:
            runnable.append(level)
        else:
            skipped[level] = problem
    return runnable, skipped


def synthetic_data(work: Path) -> Path:
    """The synthetic set (03's models), readable by a throwaway grader uid."""
    root = work / "data"
    subprocess.run([sys.executable, str(ROOT / "grader.py"), "data", "synthetic", "--root",
                    str(root)], check=True, capture_output=True)
    for folder, _, files in os.walk(work):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return root


def measure(level: str, assignment: str, scenarios: list[Scenario], work: Path,
            data: Path) -> tuple[dict[str, tuple[bool, str]], tuple[bool, str], list[int]]:
    """One batch: each scenario's containment, the batch's, and the grader's exits."""
    base = work / f"{level}-{assignment}"
    run = grade_catalogue(assignment, scenarios, level, base, ROOT,
                          built(assignment).reference_notebook,
                          built(assignment).student_notebook, data)
    stop_leftovers(base)
    verdicts = {s.id: containment(run, s) for s in scenarios}
    return verdicts, batch_containment(run), run.exits


def main() -> int:
    """Grade the catalogue at each level and print the table and the one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="bwrap,uid,process")
    parser.add_argument("--assignments", default="",
                        help="comma-separated (default: every assignment in the catalogue)")
    args = parser.parse_args()
    levels, skipped = available_levels(args.levels.split(","))
    names = sorted({s.assignment for s in EVERY})
    if args.assignments:
        names = [n for n in names if n in args.assignments.split(",")]
    scenarios = [s for s in EVERY if s.assignment in names]
    print(f"# isolation matrix, {datetime.date.today()}, {platform.node()}: "
          f"{os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"{'root' if os.geteuid() == 0 else 'not root'}, Landlock ABI "
          f"{uid_level.landlock_abi() if 'uid' in levels else 'not probed'}")
    for level, why in skipped.items():
        print(f"# {level}: not measured here ({why})")
    if "process" in levels and grader_uid("process") is not None:
        print(f"# process: the grader runs as uid {grader_uid('process')}, not root")
    verdicts: dict[str, dict[str, tuple[bool, str]]] = {level: {} for level in levels}
    batches: dict[str, list[str]] = {level: [] for level in levels}
    work = Path(tempfile.mkdtemp(prefix="isolation-matrix-"))
    os.chmod(work, 0o755)
    try:
        data = synthetic_data(work)
        for level in levels:
            for name in names:
                mine = [s for s in scenarios if s.assignment == name]
                found, (whole, why), exits = measure(level, name, mine, work, data)
                verdicts[level].update(found)
                if not whole:
                    batches[level].append(f"{name}: {why}")
                print(f"# {level} {name}: {len(mine)} scenarios, grader exits {exits}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print_table(scenarios, levels, verdicts, batches)
    return 0


def _print_table(scenarios: list[Scenario], levels: list[str],
                 verdicts: dict[str, dict[str, tuple[bool, str]]],
                 batches: dict[str, list[str]]) -> None:
    width = max(len(s.id) for s in scenarios) + 2
    print(f"\n{'scenario':<{width}}" + "".join(f"{level:<14}" for level in levels))
    for scenario in scenarios:
        cells = ["contained" if verdicts[level][scenario.id][0] else "NOT" for level in levels]
        print(f"{scenario.id:<{width}}" + "".join(f"{cell:<14}" for cell in cells))
    print(f"{'(whole batches)':<{width}}"
          + "".join(f"{'contained' if not batches[lv] else 'NOT':<14}" for lv in levels))
    print("\nnot contained:")
    for level in levels:
        for scenario in scenarios:
            ok, why = verdicts[level][scenario.id]
            if not ok:
                print(f"  {level} {scenario.id}: {why}")
        for line in batches[level]:
            print(f"  {level} (batch) {line}")
    total = len(scenarios)
    summary = ", ".join(
        f"{level} {sum(ok for ok, _ in verdicts[level].values())}/{total}" for level in levels)
    print(f"\ncontained: {summary}")


if __name__ == "__main__":
    sys.exit(main())

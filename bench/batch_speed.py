"""A class of generated 01_convolution_pooling submissions through `grader.py grade`, with
--jobs 1 and --jobs 2 side by side in one run, against the plain-script floor.

The class (default 200): correct notebooks (the reference, each copy with its own comment so
no two are the same bytes), buggy ones (every classic-bug mutant of tests/mutants/, in turn)
and hostile ones (the 01 scenarios of the hostile catalogue, tests/catalogue/, in turn), in a
fixed shuffled order. Each way runs the real CLI in a fresh process into its own --out.

Prints, for each --jobs: wall time, start-up (process start to the first submission's
start), throughput; the ratio jobs 2 / jobs 1 (issue 8's target: at least 1.7x on 2 cores);
and the per-submission time of correct and buggy notebooks inside the --jobs 1 batch against
the floor, the same notebooks run as plain Python scripts with the same test calls, one fresh
process each (target: at most 1.5x the floor), and the machine's own ceiling for two at a
time (the floor scripts run two at a time against one at a time). Then --jobs 2 again,
SIGKILLed when half the class is finished, and the same command once more: how many results
were lost or graded twice, and whether the gradebook equals the uninterrupted run's.

    python bench/batch_speed.py [--count 200] [--hostile 0.1] [--floor-sample 30]
                                [--executor local|ray]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from catalogue.scenarios import SCENARIOS, Context  # noqa: E402
from grade_speed import time_floor, time_floor_warm  # noqa: E402

from autograder.authoring import assign as authoring  # noqa: E402
from autograder.authoring.mutants import apply_mutant, load_mutants  # noqa: E402
from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.outputs.records import RECORD  # noqa: E402

NAME = "01_convolution_pooling"


def _correct(built: authoring.BuiltAssignment, index: int) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(built.reference_notebook)
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # a deep copy
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = f"# student {index}\n{cell.source}"
            break
    return nb


def make_class(count: int, hostile_share: float, work: Path) -> dict[str, list[Path]]:
    """``count`` submissions in ``work/class``, by kind: correct, buggy, hostile."""
    built = authoring.build(load_assignment(NAME))
    folder = work / "class"
    folder.mkdir()
    mutants = load_mutants(NAME)
    scenarios = [s for s in SCENARIOS if s.assignment == NAME]
    context = Context(built.reference_notebook, built.student_notebook, work / "canary",
                      work / "canary-out", ROOT)
    context.canary_dir.mkdir()
    (work / "build").mkdir()
    n_hostile = round(count * hostile_share)
    n_buggy = (count - n_hostile) * 2 // 5
    kinds: dict[str, list[Path]] = {"correct": [], "buggy": [], "hostile": []}
    # Ids sort in grading order: a fixed shuffle mixes the kinds as a real class is mixed.
    order = iter(random.Random(0).sample(range(count), count))
    for i in range(n_hostile):
        scenario = scenarios[i % len(scenarios)]
        made = scenario.build(context, work / "build")  # writes into work/build
        target = folder / f"s{next(order):03d}-hostile-{scenario.id}{made.suffix}"
        kinds["hostile"].append(_move(made, target))
    for i in range(n_buggy):
        mutant = mutants[i % len(mutants)]
        path = folder / f"s{next(order):03d}-buggy-{mutant.id}.ipynb"
        nbformat.write(apply_mutant(built.reference_notebook, mutant), path)
        kinds["buggy"].append(path)
    for i in range(count - n_hostile - n_buggy):
        path = folder / f"s{next(order):03d}-correct.ipynb"
        nbformat.write(_correct(built, i), path)
        kinds["correct"].append(path)
    return kinds


def _move(made: Path, target: Path) -> Path:
    made.rename(target)
    return target


def _start(folder: Path, jobs: int, out: Path, executor: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "grader.py"), "grade", "--assignment", NAME, str(folder),
         "--out", str(out), "--jobs", str(jobs), "--seed", "1", "--executor", executor],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def grade_class(folder: Path, jobs: int, out: Path, executor: str = "local"
                ) -> tuple[float, float, dict[str, float]]:
    """Wall seconds, start-up seconds, and each submission's finishing time (seconds after
    start), from the CLI's plain progress lines."""
    started = time.perf_counter()
    proc = _start(folder, jobs, out, executor)
    finished: dict[str, float] = {}
    first_line = None
    for line in proc.stdout:  # "[i/N] id: score ..." as each finishes (not a terminal)
        now = time.perf_counter() - started
        if first_line is None and line.startswith("found "):
            first_line = now
        if line.startswith("[") and "]" in line and ":" in line:
            finished[line.split("] ", 1)[1].split(":", 1)[0]] = now
    if proc.wait() != 0:
        raise SystemExit(f"grading with --jobs {jobs} failed (exit {proc.returncode})")
    return time.perf_counter() - started, first_line or 0.0, finished


def _records(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns
            for p in out.glob(f"submissions/*/{RECORD}")}


def kill_and_resume(folder: Path, out: Path, reference: Path, count: int) -> str:
    """--jobs 2 SIGKILLed once half the class is finished, then the same command again: what
    was lost, what was graded twice, and whether the gradebook equals an uninterrupted run's."""
    proc = _start(folder, 2, out, "local")
    while len(_records(out)) < count // 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _records(out)
    again = _start(folder, 2, out, "local")
    output, _ = again.communicate()
    after = _records(out)
    regraded = sum(1 for i, mtime in before.items() if after.get(i) != mtime)
    same = (out / "gradebook.csv").read_text() == (reference / "gradebook.csv").read_text()
    summary = next((line for line in output.splitlines() if line.startswith(f"{NAME}: ")),
                   "?")
    return (f"killed (SIGKILL) with {len(before)}/{count} finished; the rerun: {summary.strip()}"
            f"\n  finished before and graded again: {regraded}; results now: {len(after)}/"
            f"{count}; gradebook identical to the uninterrupted --jobs 2 run: "
            f"{'yes' if same else 'NO'}")


def floor_two_at_a_time(paths: list[Path], work: Path) -> float:
    """Wall seconds of the floor scripts (written by ``time_floor``) run two at a time: what
    two independent processes get from this machine, the ceiling for --jobs 2."""
    scripts = [work / f"floor-{path.stem}.py" for path in paths]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda script: subprocess.run([sys.executable, str(script)], cwd=work,
                                                    capture_output=True, check=False), scripts))
    return time.perf_counter() - started


def per_submission(finished: dict[str, float], startup: float) -> dict[str, float]:
    """With --jobs 1: each submission's own time, from consecutive finishing times."""
    order = sorted(finished.items(), key=lambda item: item[1])
    times, previous = {}, startup
    for submission_id, at in order:
        times[submission_id] = at - previous
        previous = at
    return times


def main() -> int:
    """Grade the class both ways and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="submissions (default 200)")
    parser.add_argument("--hostile", type=float, default=0.1,
                        help="share of hostile submissions (default 0.1)")
    parser.add_argument("--floor-sample", type=int, default=30,
                        help="correct and buggy notebooks timed as plain scripts (default 30)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="ray: a local Ray instance with 1, then 2 workers (default local)")
    args = parser.parse_args()
    built = authoring.build(load_assignment(NAME))
    with tempfile.TemporaryDirectory(prefix="batch-speed-") as tmp:
        work = Path(tmp)
        kinds = make_class(args.count, args.hostile, work)
        runs = {jobs: grade_class(work / "class", jobs, work / f"out-{jobs}", args.executor)
                for jobs in (1, 2)}
        resumed = kill_and_resume(work / "class", work / "out-resume", work / "out-2",
                                  args.count) if args.executor == "local" else ""
        honest = kinds["correct"] + kinds["buggy"]
        sample = random.Random(0).sample(honest, min(args.floor_sample, len(honest)))
        floor = time_floor(sample, built.all_tests, work)
        warm = time_floor_warm(sample, built.all_tests, work)
        ceiling = sum(floor) / floor_two_at_a_time(sample, work)
    print(f"{args.count} submissions of {NAME} ({args.executor} executor): "
          f"{len(kinds['correct'])} correct, "
          f"{len(kinds['buggy'])} buggy, {len(kinds['hostile'])} hostile")
    print(f"{'--jobs':<8}{'wall s':>9}{'start-up s':>12}{'subs/min':>10}")
    for jobs, (wall, startup, finished) in runs.items():
        print(f"{jobs:<8}{wall:9.1f}{startup:12.2f}{60 * len(finished) / wall:10.1f}")
    ratio = runs[1][0] / runs[2][0]
    print(f"throughput --jobs 2 / --jobs 1: {ratio:.2f}x (target >= 1.7x on 2 cores; "
          f"{os.cpu_count()} cores here)")
    print(f"  this machine's ceiling: the floor scripts two at a time vs one at a time "
          f"{ceiling:.2f}x; --jobs 2 reaches {ratio / ceiling:.0%} of it")
    own = per_submission(runs[1][2], runs[1][1])
    honest_ids = {p.stem for p in honest}
    ours = [seconds for sid, seconds in own.items() if sid in honest_ids]
    print(f"per submission, correct and buggy, --jobs 1: median {statistics.median(ours):.2f} s "
          f"(mean {statistics.mean(ours):.2f}); plain-script floor ({len(floor)} of them): "
          f"median {statistics.median(floor):.2f} s")
    print(f"this grader / floor: {statistics.median(ours) / statistics.median(floor):.2f}x "
          "(target <= 1.5x)")
    print(f"informational: the floor in one warm process (imports paid once): median "
          f"{statistics.median(warm):.3f} s; this grader / warm floor "
          f"{statistics.median(ours) / statistics.median(warm):.1f}x")
    if resumed:
        print("resume: " + resumed)
    hostile = [seconds for sid, seconds in own.items() if sid not in honest_ids]
    if hostile:
        print(f"hostile submissions, --jobs 1: median {statistics.median(hostile):.2f} s, "
              f"max {max(hostile):.1f} s (cell budgets and sandbox deadlines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

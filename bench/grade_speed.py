"""Grade the same 01_convolution_pooling submissions three ways, side by side, in one run.

1. this grader (sandboxed worker + trusted harness, one batch, jobs=1);
2. ``otter run`` with the autograder zip that ``otter assign`` generates from our master;
3. the floor: the notebook's code as a plain Python script with the same test calls.

Prints per-submission medians and the ratios this grader / otter and this grader / floor.
Targets (issue 3): at most 0.5x otter and at most 5x the floor. With ``--baseline REV`` the
grader as it was at git revision REV (a temporary worktree) grades the same submissions in
the same run, alternating with this one, and the ratio this / baseline is printed (issue 6:
at most 1.1x); ``--levels bwrap,uid`` times this checkout at more isolation levels beside.

    python bench/grade_speed.py [--count N] [--baseline REV [--levels L1,L2]] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.authoring import assign as authoring  # noqa: E402
from autograder.authoring.mutants import apply_mutant, load_mutants  # noqa: E402
from autograder.batch.runner import grade_batch  # noqa: E402
from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.grading.pipeline import GradeOptions  # noqa: E402
from autograder.grading.submission import gradable_cells  # noqa: E402
from autograder.sandbox import choose_isolation  # noqa: E402

NAME = "01_convolution_pooling"


def make_submissions(built: authoring.BuiltAssignment, folder: Path, count: int,
                     name: str = NAME) -> list[Path]:
    """The reference, the stub and classic-bug mutants, as .ipynb files."""
    notebooks = [("reference", built.reference_notebook), ("stub", built.student_notebook)]
    for mutant in load_mutants(name)[: max(0, count - 2)]:
        notebooks.append((mutant.id, apply_mutant(built.reference_notebook, mutant)))
    paths = []
    for stem, nb in notebooks[:count]:
        path = folder / f"{stem}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def time_this_grader(paths: list[Path], out: Path) -> list[float]:
    """Per-submission seconds inside one batch (sequential, so deltas are per submission)."""
    assignment = load_assignment(NAME)
    options = GradeOptions(isolation=choose_isolation("auto"), seed=secrets.randbelow(2**31))
    stamps = [time.perf_counter()]
    grade_batch(
        paths,
        assignment,
        options,
        out,
        jobs=1,
        on_done=lambda r: stamps.append(time.perf_counter()),
    )
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


# Grades the given submissions with the autograder found at argv[1] (a checkout) and prints the
# seconds each submission took inside the batch, as JSON.
_DRIVER = """
import dataclasses, json, secrets, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    from autograder.batch.runner import grade_batch
    from autograder.core.assignments import load_assignment
    from autograder.grading.pipeline import GradeOptions
except ImportError:  # a baseline from before the stage packages (issue 15)
    from autograder.assignments import load_assignment
    from autograder.batch import grade_batch
    from autograder.grading import GradeOptions
import autograder.sandbox as sandbox
paths = [Path(p) for p in sys.argv[5:]]
seed = secrets.randbelow(2**31)
if "level" in {field.name for field in dataclasses.fields(GradeOptions)}:  # before issue 21
    options = GradeOptions(level=sandbox.choose_level(sys.argv[4]), seed=seed)
else:
    options = GradeOptions(isolation=sandbox.choose_isolation(sys.argv[4]), seed=seed)
stamps = [time.perf_counter()]
grade_batch(paths, load_assignment(sys.argv[2]), options, Path(sys.argv[3]), jobs=1,
            on_done=lambda r: stamps.append(time.perf_counter()))
print(json.dumps([b - a for a, b in zip(stamps, stamps[1:])]))
"""


def time_checkout(root: Path, paths: list[Path], out: Path, name: str, level: str = "auto"
                  ) -> list[float]:
    """Per-submission seconds of the grader in checkout ``root`` at ``level`` (a fresh
    process)."""
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(root), name, str(out), level, *map(str, paths)],
        capture_output=True, text=True, check=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_checkout(revision: str, work: Path) -> Path:
    """A worktree of this repository at ``revision`` (removed with ``work``)."""
    target = work / f"baseline-{revision.replace('/', '_')}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(target),
                    revision], check=True, capture_output=True)
    return target


def side_by_side(paths: list[Path], work: Path, revision: str, rounds: int, name: str,
                 levels: list[str]) -> tuple[dict[str, list[float]], list[float]]:
    """This checkout at each of ``levels`` and the baseline at the first, alternating,
    ``rounds`` times each."""
    baseline = baseline_checkout(revision, work)
    ours: dict[str, list[float]] = {level: [] for level in levels}
    theirs: list[float] = []
    try:
        for i in range(rounds):
            theirs += time_checkout(baseline, paths, work / f"base-out-{i}", name, levels[0])
            for level in levels:
                ours[level] += time_checkout(ROOT, paths, work / f"ours-{level}-{i}", name,
                                             level)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(baseline)], check=False, capture_output=True)
    return ours, theirs


def otter_autograder_zip(work: Path) -> Path:
    """Run otter assign with `generate: true` on a copy of the master; return the zip."""
    master = json.loads((ROOT / "solutions" / NAME / f"{NAME}.ipynb").read_text())
    config = "".join(master["cells"][0]["source"]).replace("generate: false", "generate: true")
    master["cells"][0]["source"] = config
    copy_path = work / f"{NAME}.ipynb"
    copy_path.write_text(json.dumps(master))
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "otter", "assign", "--no-run-tests", str(copy_path), str(dist)],
        check=True,
        capture_output=True,
    )
    return next((dist / "autograder").glob("*.zip"))


def time_otter(paths: list[Path], zip_path: Path, work: Path) -> list[float]:
    """Seconds of `otter run` per submission."""
    seconds = []
    for path in paths:
        out = work / f"otter-{path.stem}"
        out.mkdir()
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(out), str(path)],
            capture_output=True,
            check=False,
        )
        seconds.append(time.perf_counter() - started)
    return seconds


def floor_script(path: Path, tests: dict[str, str]) -> str:
    """The notebook's code followed by every test case called on its globals."""
    nb = nbformat.read(path, 4)
    parts = ["import os\nos.environ.setdefault('MPLBACKEND', 'Agg')\n"]
    for cell in gradable_cells(nb):
        code = f"exec(compile({cell.source!r}, 'cell', 'exec'))"
        parts.append(f"try:\n    {code}\nexcept BaseException:\n    pass\n")
    parts.append("from otter.test_files import ExceptionTestFile\n")
    parts.append("_env = dict(globals())\n_env['seed'] = 1234\n")
    for question, source in tests.items():
        parts.append(
            f"for _tc in ExceptionTestFile.from_string({source!r}, path={question!r}).test_cases:\n"
            "    try:\n        _tc.body.call_func(_env)\n    except Exception:\n        pass\n"
        )
    return "\n".join(parts)


def time_floor(paths: list[Path], tests: dict[str, str], work: Path) -> list[float]:
    """Seconds of the plain-script floor per submission."""
    seconds = []
    for path in paths:
        script = work / f"floor-{path.stem}.py"
        script.write_text(floor_script(path, tests))
        started = time.perf_counter()
        subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True, check=False)
        seconds.append(time.perf_counter() - started)
    return seconds


def time_floor_warm(paths: list[Path], tests: dict[str, str], work: Path) -> list[float]:
    """The floor inside one warm process: imports paid once, each script in fresh globals."""
    scripts = []
    for path in paths:
        script = work / f"floor-{path.stem}.py"
        script.write_text(floor_script(path, tests))
        scripts.append(str(script))
    driver = work / "floor_driver.py"
    driver.write_text(
        "import json, sys, time\nimport numpy, torch, matplotlib.pyplot, otter.test_files\n"
        "times = []\nfor s in sys.argv[1:]:\n    t = time.perf_counter()\n"
        "    exec(compile(open(s).read(), s, 'exec'), {'__name__': '__main__'})\n"
        "    times.append(time.perf_counter() - t)\nprint(json.dumps(times))\n"
    )
    done = subprocess.run(
        [sys.executable, str(driver), *scripts],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run the three ways and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6, help="submissions (default 6)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time the grader at this git revision, side by side")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternations with --baseline (default 2)")
    parser.add_argument("--assignment", default=NAME,
                        help=f"with --baseline: the assignment to grade (default {NAME})")
    parser.add_argument("--levels", default="bwrap",
                        help="with --baseline: isolation levels of this checkout, the first "
                        "compared with the baseline, the others timed beside (e.g. bwrap,uid)")
    args = parser.parse_args()
    if args.assignment != NAME and not args.baseline:
        parser.error("--assignment needs --baseline (otter and the floor are set up for 01)")
    built = authoring.build(load_assignment(args.assignment))
    with tempfile.TemporaryDirectory(prefix="grade-speed-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o711)  # uid-level workers of the baseline worktree must enter it
        paths = make_submissions(built, work, args.count, args.assignment)
        if args.baseline:
            levels = args.levels.split(",")
            ours, theirs = side_by_side(paths, work, args.baseline, args.rounds, args.assignment,
                                        levels)
            base = statistics.median(theirs)
            print(f"{len(paths)} submissions of {args.assignment} x {args.rounds} rounds; "
                  f"median seconds per submission: {args.baseline} at {levels[0]} {base:.3f}")
            for level in levels:
                mine = statistics.median(ours[level])
                print(f"  this checkout at {level}: {mine:.3f} ({mine / base:.2f}x"
                      + (", target <= 1.1x)" if level == levels[0] else ")"))
            return 0
        ours = time_this_grader(paths, work / "out")
        otter = time_otter(paths, otter_autograder_zip(work), work)
        floor = time_floor(paths, built.all_tests, work)
        warm = time_floor_warm(paths, built.all_tests, work)
    rows = [
        ("this grader", ours),
        ("otter run", otter),
        ("floor (plain script)", floor),
        ("floor, warm process", warm),
    ]
    print(f"{len(paths)} submissions of {NAME}; seconds per submission")
    print(f"{'way':<22}{'median':>8}{'mean':>8}{'min':>8}{'max':>8}")
    for label, values in rows:
        print(
            f"{label:<22}{statistics.median(values):8.2f}{statistics.mean(values):8.2f}"
            f"{min(values):8.2f}{max(values):8.2f}"
        )
    ratio_otter = statistics.median(ours) / statistics.median(otter)
    ratio_floor = statistics.median(ours) / statistics.median(floor)
    print(f"this grader / otter run: {ratio_otter:.2f}x (target <= 0.5x)")
    ratio_warm = statistics.median(ours) / statistics.median(warm)
    print(f"this grader / floor:     {ratio_floor:.2f}x (target <= 5x)")
    print(f"this grader / warm floor: {ratio_warm:.2f}x (imports paid once; informational)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

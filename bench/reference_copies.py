"""COUNT copies of each assignment's reference solution in one `grader.py grade` batch: does
every copy get full marks?

The same correct work must get the same grade: each copy is graded by its own sandboxed
worker, whose global generators (the student's own initialisation) start differently, so a
hidden test that depends on them fails a share of the copies. Each copy carries its own
comment so no two are the same bytes (no grading key is shared). Where the assignment grades
saved models (03), each copy is a folder: the reference notebook beside the weights files of
the committed `good` example (examples/submissions/<name>/good), graded on the synthetic set.

    python bench/reference_copies.py [--count 200] [--jobs 2] [--assignments 01_...,02_...]
                                     [--sandbox auto]

Prints per assignment: copies with full marks / copies, the batch's seed and wall time, and
every copy that lost points with the question and message. Exits 1 if any copy lost points.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from local_run import built  # noqa: E402

from autograder.core.assignments import discover  # noqa: E402


def write_copies(name: str, count: int, folder: Path) -> None:
    """COUNT copies of the reference, each with a comment of its own in the first code cell:
    notebooks, or folders with the good example's weights files where there is one."""
    reference = built(name).reference_notebook
    weights = sorted((ROOT / "examples" / "submissions" / name / "good").glob("*.pt"))
    folder.mkdir(parents=True)
    for index in range(count):
        nb = copy.deepcopy(reference)
        first = next(c for c in nb.cells if c.cell_type == "code")
        first.source = f"# copy {index}\n{first.source}"
        if not weights:
            nbformat.write(nb, folder / f"copy{index:04d}.ipynb")
            continue
        own = folder / f"copy{index:04d}"
        own.mkdir()
        nbformat.write(nb, own / f"{name}.ipynb")
        for file in weights:
            shutil.copyfile(file, own / file.name)


def grade(name: str, folder: Path, out: Path, jobs: int, sandbox: str, data: Path) -> float:
    started = time.monotonic()
    command = [sys.executable, str(ROOT / "grader.py"), "grade", "--assignment", name,
               str(folder), "--out", str(out), "--jobs", str(jobs), "--sandbox", sandbox,
               "--data-dir", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
    return time.monotonic() - started


def judge(out: Path) -> tuple[int, list[str]]:
    """(copies with full marks, one line per copy that lost points)."""
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fixed = {"submission", "score", "max_score", "status", "message"}
    full, lost = 0, []
    for row in rows:
        if row["status"] == "graded" and float(row["score"]) >= float(row["max_score"]):
            full += 1
            continue
        feedback = out / "submissions" / row["submission"] / "feedback.md"
        said = feedback.read_text(encoding="utf-8")[:600] if feedback.is_file() else ""
        short = [q for q in row if q not in fixed and row[q] not in ("", None)]
        lost.append(f"{row['submission']}: {row['score']}/{row['max_score']} ({row['status']}) "
                    f"{[(q, row[q]) for q in short]} {said!r}")
    return full, lost + [f"(only {len(rows)} rows)"] * (len(rows) == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assignments", default=",".join(discover()))
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="reference-copies-") as tmp:
        work = Path(tmp)
        data = work / "data"
        subprocess.run([sys.executable, str(ROOT / "grader.py"), "data", "synthetic", "--root",
                        str(data)], check=True, capture_output=True)
        for name in args.assignments.split(","):
            folder, out = work / name / "copies", work / name / "out"
            write_copies(name, args.count, folder)
            seconds = grade(name, folder, out, args.jobs, args.sandbox, data)
            full, lost = judge(out)
            state = json.loads((out / ".grader" / "batch.json").read_text(encoding="utf-8"))
            print(f"{name}: full marks {full}/{args.count} in one batch, --jobs {args.jobs}, "
                  f"{seconds:.0f} s (seed {state['seed']})", flush=True)
            for line in lost[:20]:
                print(f"  {line}")
            failed |= full != args.count
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

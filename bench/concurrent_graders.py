"""Several graders on one machine at once: every grade must be what the same batch gets alone.

Two instructors grading at the same time, a test suite running beside them, the course
server's workers: each is its own ``grader.py grade`` process, and they share the machine's
worker uids. Slot leases are machine-wide, so none may borrow, kill or inherit another's
worker; this script checks it from the outside:

1. each batch (the reference, the stub and every mutant of an assignment, plus the hostile
   escapes of tests/catalogue/escapes.py, which try to outlive their grading and reach
   listeners) is graded alone, with a fixed seed;
2. the same batches are graded again all at once, each its own grader process, while an
   optional extra command runs beside them (``--with "make test"``);
3. every gradebook row of step 2 must equal step 1's (status and every score), and no
   process of a worker uid may be left behind.

    python bench/concurrent_graders.py [--assignments 01_convolution_pooling,02_pytorch_modules]
        [--copies 2] [--sandbox auto] [--with "COMMAND"]

Prints one line per batch (rows equal / different) and exits 1 if any grade differs.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from catalogue.escapes import ESCAPE_SCENARIOS  # noqa: E402
from catalogue.levels import Witness, sandbox_processes  # noqa: E402
from catalogue.scenarios import Context  # noqa: E402
from local_run import built  # noqa: E402

from autograder.authoring.mutants import apply_mutant, load_mutants  # noqa: E402

SEED = 777
ESCAPES_OF = "01_convolution_pooling"  # the escapes are written against this assignment


def submissions(name: str, folder: Path, witness: Witness) -> list[Path]:
    """Reference, stub and every mutant of ``name`` (and the escapes, for 01) as notebooks."""
    folder.mkdir(parents=True)
    notebooks = [("reference", built(name).reference_notebook),
                 ("stub", built(name).student_notebook)]
    notebooks += [(m.id, apply_mutant(built(name).reference_notebook, m))
                  for m in load_mutants(name)]
    paths = []
    for stem, nb in notebooks:
        paths.append(folder / f"{stem}.ipynb")
        nbformat.write(nb, paths[-1])
    if name == ESCAPES_OF:
        ctx = Context(reference=built(name).reference_notebook,
                      stub=built(name).student_notebook, canary_dir=folder,
                      out_dir=folder / "out", project_root=ROOT, assignment=name,
                      port=witness.port, victims=witness.victims, udp_port=witness.udp_port,
                      unix_socket=witness.unix_socket, shm_key=witness.shm_key)
        for scenario in ESCAPE_SCENARIOS:
            if "kill" in scenario.id:  # they end their own worker; graded right alone too
                continue
            where = folder / scenario.id
            where.mkdir()
            paths.append(scenario.build(ctx, where))
    return paths


def grader(name: str, paths: list[Path], out: Path, data: Path, sandbox: str
           ) -> subprocess.Popen:
    """One ``grader.py grade`` process for a batch."""
    command = [sys.executable, str(ROOT / "grader.py"), "grade", "--assignment", name,
               *map(str, paths), "--out", str(out), "--jobs", "2", "--seed", str(SEED),
               "--sandbox", sandbox, "--data-dir", str(data), "--timeout-cell", "20"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def rows(out: Path) -> dict[str, dict[str, str]]:
    """The gradebook's rows by submission, without the free-text message."""
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        return {row["submission"]: {k: v for k, v in row.items() if k != "message"}
                for row in csv.DictReader(handle)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignments", default="01_convolution_pooling,02_pytorch_modules")
    parser.add_argument("--copies", type=int, default=2, help="concurrent batches of each")
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--with", dest="beside", default=None,
                        help="a shell command run beside the concurrent batches")
    args = parser.parse_args()
    names = args.assignments.split(",")
    work = Path(tempfile.mkdtemp(prefix="concurrent-"))
    data = work / "data"
    subprocess.run([sys.executable, str(ROOT / "grader.py"), "data", "synthetic", "--root",
                    str(data)], check=True, capture_output=True)
    witness = Witness(None)
    try:
        batches = {name: submissions(name, work / "in" / name, witness) for name in names}
        alone = {}
        for name, paths in batches.items():
            started = time.monotonic()
            done = grader(name, paths, work / "alone" / name, data, args.sandbox)
            output = done.communicate()[0]
            if done.returncode != 0:
                print(output[-3000:])
                return 2
            alone[name] = rows(work / "alone" / name)
            print(f"alone: {name}: {len(alone[name])} rows, "
                  f"{time.monotonic() - started:.0f} s", flush=True)
        beside = (subprocess.Popen(args.beside, shell=True, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
                  if args.beside else None)
        started = time.monotonic()
        running = {(name, copy): grader(name, paths, work / "together" / f"{name}-{copy}",
                                        data, args.sandbox)
                   for name, paths in batches.items() for copy in range(args.copies)}
        different = 0
        for (name, copy), process in running.items():
            output = process.communicate()[0]
            got = rows(work / "together" / f"{name}-{copy}") if process.returncode == 0 else {}
            changed = sorted(sub for sub in alone[name] if got.get(sub) != alone[name][sub])
            different += len(changed) or (process.returncode != 0)
            verdict = "every row equal" if not changed and process.returncode == 0 else (
                f"exit {process.returncode}; rows that differ: {changed}")
            print(f"together: {name} #{copy}: {verdict}", flush=True)
            for sub in changed[:5]:
                print(f"    {sub}: alone {alone[name][sub]}\n    {' ' * len(sub)}  "
                      f"together {got.get(sub)}")
            if process.returncode != 0:
                print(output[-2000:])
        print(f"together: {len(running)} batches in {time.monotonic() - started:.0f} s")
        if beside is not None:
            output = beside.communicate()[0]
            print(f"beside: `{args.beside}` exited {beside.returncode}: "
                  f"{output.strip().splitlines()[-1] if output.strip() else ''}")
            different += beside.returncode != 0
        left = sandbox_processes(work)
        print(f"left running: {left or 'nothing'}")
        print(f"listeners reached: {witness.seen or 'none'}")
        return 1 if different or left or witness.seen else 0
    finally:
        witness.close()


if __name__ == "__main__":
    sys.exit(main())

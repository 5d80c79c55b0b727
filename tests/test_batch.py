"""A whole class through `python grader.py grade`: a run killed half-way resumes without losing
or regrading anything, a changed upload is regraded, Ctrl-C stops at once and leaves no
sandbox behind, and Ray grades exactly as the local pool does (01, and 02 with torch at every
isolation level the machine has).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from local_run import built

from autograder.authoring.mutants import apply_mutant, load_mutants
from autograder.core.assignments import PROJECT_ROOT
from autograder.outputs.records import RECORD
from autograder.sandbox import launcher
from autograder.sandbox import uid as uid_level

NAME = "01_convolution_pooling"
GRADER = [sys.executable, str(PROJECT_ROOT / "grader.py"), "grade", "--assignment", NAME]


def _env(tmp: Path) -> dict[str, str]:
    """The grader's temporary folders (and so every sandbox's scratch) under ``tmp``."""
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TMPDIR": str(tmp)}


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*GRADER, *args], capture_output=True, text=True, timeout=900,
                          env=_env(tmp), check=False)


def _start(args: list[str], tmp: Path) -> subprocess.Popen:
    return subprocess.Popen([*GRADER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(tmp), start_new_session=True)


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    """Eight 01 submissions: the reference, the stub and six classic bugs, one of them in a
    per-student folder."""
    folder = tmp_path_factory.mktemp("class") / "submissions"
    folder.mkdir()
    reference = built(NAME).reference_notebook
    nbformat.write(reference, folder / "reference.ipynb")
    nbformat.write(built(NAME).student_notebook, folder / "stub.ipynb")
    for mutant in load_mutants(NAME)[:5]:
        nbformat.write(apply_mutant(reference, mutant), folder / f"bug-{mutant.id}.ipynb")
    mutant = load_mutants(NAME)[5]  # a per-student folder: the notebook and a file beside it
    (folder / "student-folder").mkdir()
    nbformat.write(apply_mutant(reference, mutant), folder / "student-folder" / f"{NAME}.ipynb")
    (folder / "student-folder" / "notes.txt").write_text("my notes\n")
    return folder


def _ids(folder: Path) -> set[str]:
    return {p.stem if p.is_file() else p.name for p in folder.iterdir()}


def _records(out: Path) -> dict[str, int]:
    """Finished submissions and their record's modification time."""
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"submissions/*/{RECORD}")}


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _sandboxes_under(tmp: Path) -> list[str]:
    """Processes still running whose command line or folder is under ``tmp``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(tmp) in text:
            found.append(f"{proc.pid}: {text[:200]}")
    return found


@pytest.fixture(scope="module")
def fresh(class_folder, tmp_path_factory) -> Path:
    """The whole class graded in one uninterrupted run (seed 7)."""
    base = tmp_path_factory.mktemp("fresh")
    done = _run([str(class_folder), "--out", str(base / "out"), "--jobs", "2", "--seed", "7"],
                base / "tmp")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "graded 8, failed to run 0" in done.stdout
    return base / "out"


def test_a_killed_run_resumes_losing_nothing_and_regrading_nothing(class_folder, fresh,
                                                                   tmp_path):
    out = tmp_path / "out"
    args = [str(class_folder), "--out", str(out), "--jobs", "2", "--seed", "7"]
    run = _start(args, tmp_path / "tmp")
    _wait_for(lambda: len(_records(out)) >= 3, 300, "three finished submissions")
    os.killpg(run.pid, signal.SIGKILL)  # power loss: no handler runs
    run.wait(timeout=30)
    before = _records(out)
    assert 3 <= len(before) < 8, "the run should have been killed half-way"
    _wait_for(lambda: not _sandboxes_under(tmp_path / "tmp"), 10, "the sandboxes to die")

    again = _run([str(class_folder), "--out", str(out), "--jobs", "2"], tmp_path / "tmp")

    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(before)} reused" in again.stdout
    assert "seed: 7" in again.stdout  # the stored seed: the same hidden-test inputs
    after = _records(out)
    assert set(after) == _ids(class_folder)
    assert {i: after[i] for i in before} == before  # nothing finished was graded again
    assert (out / "gradebook.csv").read_text() == (fresh / "gradebook.csv").read_text()


def test_records_of_an_older_grader_resume_as_they_are(class_folder, fresh, tmp_path):
    """Records whose details an older grader wrote (the isolation as the level's name, no
    package list) are still read: a resumed batch reuses every one."""
    out = tmp_path / "out"
    subprocess.run(["cp", "-a", str(fresh), str(out)], check=True)
    for path in out.glob(f"submissions/*/{RECORD}"):
        record = json.loads(path.read_text(encoding="utf-8"))
        details = record["result"]["details"]
        details["isolation"] = details["isolation"]["level"]
        del details["packages"]
        path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")

    again = _run([str(class_folder), "--out", str(out), "--jobs", "2"], tmp_path / "tmp")

    assert again.returncode == 0, again.stderr[-3000:]
    assert "8 reused" in again.stdout and "graded 8," in again.stdout
    assert (out / "gradebook.csv").read_text() == (fresh / "gradebook.csv").read_text()
    assert "Not finished" not in (out / "report.html").read_text(encoding="utf-8")


def test_a_changed_upload_is_regraded_and_regrade_grades_all(class_folder, fresh, tmp_path):
    folder = tmp_path / "submissions"
    shutil.copytree(class_folder, folder)
    out = tmp_path / "out"
    out.mkdir()
    for entry in fresh.iterdir():  # the fresh run's results, as if graded here before
        target = out / entry.name
        if entry.is_dir():
            subprocess.run(["cp", "-a", str(entry), str(target)], check=True)
        else:
            target.write_bytes(entry.read_bytes())
    stub_before = (out / "submissions" / "stub" / RECORD).read_text()
    (folder / "stub.ipynb").write_bytes((class_folder / "reference.ipynb").read_bytes())

    again = _run([str(folder), "--out", str(out), "--jobs", "2"], tmp_path / "tmp")

    assert again.returncode == 0, again.stderr[-3000:]
    assert "7 reused" in again.stdout
    assert (out / "submissions" / "stub" / RECORD).read_text() != stub_before
    rows = (out / "gradebook.csv").read_text().splitlines()
    stub_row = next(r for r in rows if r.startswith("stub,"))
    reference_row = next(r for r in rows if r.startswith("reference,"))
    assert stub_row.split(",")[1:] == reference_row.split(",")[1:]

    forced = _run([str(folder), "--out", str(out), "--jobs", "2", "--regrade", "--seed", "7"],
                  tmp_path / "tmp")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "reused" not in forced.stdout and "graded 8," in forced.stdout


def test_ctrl_c_stops_at_once_keeps_what_finished_and_leaves_no_sandbox(class_folder,
                                                                        tmp_path):
    out = tmp_path / "out"
    homes = Path(f"/tmp/autograder-sandbox-homes-{os.geteuid()}")  # the uid level's areas
    before = set(homes.glob("w-*"))
    # A submission that is still running when Ctrl-C comes, however fast the rest grades.
    slow = built(NAME).reference_notebook.copy()
    slow.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(120)"), *slow.cells]
    nbformat.write(slow, tmp_path / "slow.ipynb")
    run = _start([str(class_folder), str(tmp_path / "slow.ipynb"), "--out", str(out), "--jobs",
                  "2", "--seed", "7"], tmp_path / "tmp")
    _wait_for(lambda: len(_records(out)) >= 1, 300, "a finished submission")
    os.killpg(run.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    sent = time.monotonic()
    try:
        _, stderr = run.communicate(timeout=20)
    except subprocess.TimeoutExpired:  # say where it hung: the grader itself, or its pipes
        alive = run.poll() is None
        run.kill()
        _, stderr = run.communicate()
        pytest.fail(f"no exit within 20 s of SIGINT (grader still running: {alive}; left "
                    f"under tmp: {_sandboxes_under(tmp_path / 'tmp')}); stderr: {stderr[-3000:]}")
    print(f"exited {time.monotonic() - sent:.1f} s after SIGINT")
    assert run.returncode == 130, stderr[-3000:]
    assert "interrupted:" in stderr and "Run the same command again" in stderr
    _wait_for(lambda: not _sandboxes_under(tmp_path / "tmp"), 10, "no sandbox left running")
    left = set(homes.glob("w-*")) - before  # (assumes no other grading meanwhile, as in CI)
    assert not left, f"uid-level private areas left behind: {left}"
    finished = _records(out)
    assert finished and all((out / "submissions" / i / "results.json").is_file() for i in finished)
    assert "slow" not in finished


@pytest.mark.timeout(900)
def test_ray_gives_the_local_pools_gradebook(class_folder, fresh, tmp_path):
    pytest.importorskip("ray", reason="Ray is in the dev extras: pip install -e '.[dev]'")
    out = tmp_path / "out"
    short_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths: <108 B
    try:
        done = _run([str(class_folder), "--out", str(out), "--jobs", "2", "--seed", "7",
                     "--executor", "ray"], short_tmp)
    finally:
        shutil.rmtree(short_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "gradebook.csv").read_text() == (fresh / "gradebook.csv").read_text()
    for submission in fresh.glob(f"submissions/*/{RECORD}"):
        mine = out / "submissions" / submission.parent.name / "results.json"
        assert _untimed(mine) == _untimed(submission.parent / "results.json")


def _untimed(results: Path) -> object:
    """A results.json without its timings (wall-clock seconds differ from run to run)."""

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("seconds", "execution_time")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(results.read_text()))


TORCH_NAME = "02_pytorch_modules"
LEVEL_PROBLEMS = {"bwrap": launcher.bwrap_problem(), "uid": uid_level.uid_problem(),
                  "process": None}


@pytest.fixture(scope="module")
def torch_class(tmp_path_factory) -> tuple[Path, Path]:
    """Four 02 submissions (reference, stub, two classic bugs), and their gradebook from the
    local pool at the strongest level here."""
    base = tmp_path_factory.mktemp("torch-class")
    folder = base / "submissions"
    folder.mkdir()
    reference = built(TORCH_NAME).reference_notebook
    nbformat.write(reference, folder / "reference.ipynb")
    nbformat.write(built(TORCH_NAME).student_notebook, folder / "stub.ipynb")
    for mutant in load_mutants(TORCH_NAME)[:2]:
        nbformat.write(apply_mutant(reference, mutant), folder / f"bug-{mutant.id}.ipynb")
    out = base / "local"
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "grader.py"), "grade",
                           "--assignment", TORCH_NAME, str(folder), "--out", str(out),
                           "--jobs", "2", "--seed", "7"], capture_output=True, text=True,
                          timeout=900, env=_env(base / "tmp"), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("level", [pytest.param(level, marks=pytest.mark.skipif(
    problem is not None, reason=f"{level} level: {problem}"))
    for level, problem in LEVEL_PROBLEMS.items()])
def test_ray_grades_a_torch_assignment_like_the_local_pool_at_every_level(level, torch_class,
                                                                         tmp_path):
    pytest.importorskip("ray", reason="Ray is in the dev extras: pip install -e '.[dev]'")
    folder, local = torch_class
    out = tmp_path / "out"
    short_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths: <108 B
    try:
        done = subprocess.run([sys.executable, str(PROJECT_ROOT / "grader.py"), "grade",
                               "--assignment", TORCH_NAME, str(folder), "--out", str(out),
                               "--jobs", "2", "--seed", "7", "--executor", "ray",
                               "--sandbox", level], capture_output=True, text=True,
                              timeout=900, env=_env(short_tmp), check=False)
    finally:
        shutil.rmtree(short_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "gradebook.csv").read_text() == (local / "gradebook.csv").read_text()
    for results in out.glob("submissions/*/results.json"):
        assert json.loads(results.read_text())["extra_data"]["isolation"]["level"] == level

"""Grading a catalogue batch at one isolation level, and judging each scenario contained.

Shared by tests/test_catalogue.py (every scenario at bubblewrap), tests/test_isolation.py
(the escapes at every level) and bench/isolation_matrix.py (everything at every level).

A batch goes through the real CLI with its two controls (reference, stub). At the process
level the worker runs as the grader's own user, so a hostile notebook can kill the grader or
every process of that user: when this runs as root, the grader is started as a throwaway uid
(:data:`GRADER_UID`) in its own session, and never as root (``os.kill(-1, SIGKILL)`` as root
would stop the machine). A grader that dies is run again with the same command, as an
instructor would, until the batch finishes (the rerun fails the submission that killed it).
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.sandbox import slots

from .escapes import SECRET_MARK, SURVIVOR_NAME
from .scenarios import ALL, Context, Scenario

SANDBOX_UIDS = range(61000, 62000)  # autograder.sandbox.launcher: UID_BASE + slot
GRADER_UID = 60990  # the process level's grader when this runs as root
VICTIM_UID = 60991  # owns a process no submission may signal
MAX_RUNS = 20  # a grader killed by a submission is run again, as an instructor would (each
# of the 01 batch's four grader killers costs one or two deaths, more under load)


class Witness:
    """Listeners and victims outside the sandbox, watched from there: a TCP listener (plain
    TCP and MPTCP reach it), a UDP socket and a world-writable named Unix socket on this
    machine, a SysV shared-memory segment holding a secret, and processes that must outlive
    the batch (one of them carries a secret token on its command line)."""

    def __init__(self, grader_uid: int | None):
        self.seen: list[bytes] = []  # what reached a listener (its first bytes)
        self._stop = threading.Event()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        self.udp_port = self._udp.getsockname()[1]
        self._folder = tempfile.mkdtemp(prefix="witness-", dir="/tmp")
        os.chmod(self._folder, 0o755)
        self.unix_socket = os.path.join(self._folder, "listener.sock")
        self._unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._unix.bind(self.unix_socket)
        os.chmod(self.unix_socket, 0o777)
        self._unix.listen(16)
        self.shm_key, self._shm_id = _secret_segment()
        for listener in (self._server, self._udp, self._unix):
            listener.settimeout(0.2)
        self._threads = [threading.Thread(target=self._accept, args=(server,), daemon=True)
                         for server in (self._server, self._unix)]
        self._threads.append(threading.Thread(target=self._receive, daemon=True))
        for thread in self._threads:
            thread.start()
        owners = [grader_uid] + ([VICTIM_UID] if os.geteuid() == 0 else [])
        self._victims = [_sleeper(uid) for uid in owners] + [_token_holder()]

    @property
    def victims(self) -> tuple[int, ...]:
        """Pids of the processes submissions try to signal."""
        return tuple(p.pid for p in self._victims)

    def victims_alive(self) -> bool:
        """Whether every victim is still running."""
        return all(p.poll() is None for p in self._victims)

    def _accept(self, server: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.seen.append(connection.recv(100) or b"(connected)")
                except OSError:
                    self.seen.append(b"(connected)")

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen.append(self._udp.recv(100) or b"(empty datagram)")
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        """Stop listening, end the victims, remove the segment."""
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for listener in (self._server, self._udp, self._unix):
            listener.close()
        shutil.rmtree(self._folder, ignore_errors=True)
        _remove_segment(self._shm_id)
        for victim in self._victims:
            if victim.poll() is None:
                victim.kill()
            victim.wait(5)


_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.shmat.restype = ctypes.c_void_p
SHM_SECRET = b"SHM-SECRET-4242"


def _secret_segment() -> tuple[int, int]:
    """A SysV shared-memory segment any user may read (mode 0666) with a secret in it."""
    for key in range(0x4A470000 + os.getpid() % 1000, 0x4A480000):
        shm_id = _LIBC.shmget(key, 4096, 0o1000 | 0o2000 | 0o666)  # IPC_CREAT | IPC_EXCL
        if shm_id >= 0:
            address = _LIBC.shmat(shm_id, None, 0)
            ctypes.memmove(address, SHM_SECRET, len(SHM_SECRET))
            _LIBC.shmdt(ctypes.c_void_p(address))
            return key, shm_id
    raise OSError("no free SysV key for the witness segment")


def _remove_segment(shm_id: int) -> None:
    _LIBC.shmctl(shm_id, 0, None)  # IPC_RMID


def _token_holder() -> subprocess.Popen:
    """A process outside the sandbox whose command line carries a secret (as a Ray node's
    carries its GCS address)."""
    token = f"{SECRET_MARK}{os.getpid()}"
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", token],
                            start_new_session=True)


def _sleeper(uid: int | None) -> subprocess.Popen:
    argv = ["sleep", "3600"]
    if uid is not None and uid != os.geteuid():
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    return subprocess.Popen(argv, start_new_session=True)


@dataclass
class LevelRun:
    """A catalogue batch graded at one level, and the evidence gathered around it."""

    assignment: str
    level: str
    exits: list[int]  # the grader's exit status, each run (more than one: it was killed)
    output: str
    rows: dict[str, dict[str, str]]
    out_dir: Path
    canary_dir: Path
    tree_before: dict[str, str]
    tree_after: dict[str, str]
    leftover: list[str]
    connections: list[bytes] = field(default_factory=list)  # what reached a listener
    victims_alive: bool = True
    ipc_left: list[str] = field(default_factory=list)  # SysV objects of sandbox uids after it

    @property
    def returncode(self) -> int:
        """The first run's exit status (0: no submission stopped the grader)."""
        return self.exits[0]

    def died_for(self) -> set[str]:
        """Submissions failed on a rerun because the grader died grading them."""
        return {sub for sub in self.rows if _grader_died(submission_file(self.out_dir, sub,
                                                                           "results.json"))}


def submission_file(out_dir: Path, submission: str, name: str) -> Path:
    """A file the grader wrote for one submission (``OUT/submissions/<id>/<name>``)."""
    return out_dir / "submissions" / submission / name


def fake_gradebooks(out_dir: Path) -> tuple[Path, ...]:
    """Where the ``fake_results`` scenario tries to leave a gradebook in the output folder."""
    return (out_dir / "fake_results" / "gradebook.csv",
            submission_file(out_dir, "fake_results", "gradebook.csv"))


# What a terminal obeys rather than shows (tabs and newlines aside): C0 and C1 controls, DEL,
# bidi marks, embeddings, overrides and isolates.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def raw_control(output: str) -> str | None:
    """Where ``output`` holds a character a terminal would obey (None: nowhere)."""
    found = RAW_CONTROL.search(output)
    return None if found is None else repr(output[max(0, found.start() - 60):found.end() + 20])


def _grader_died(results: Path) -> bool:
    try:
        return json.loads(results.read_text(encoding="utf-8"))["extra_data"].get(
            "grader_died") is True
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (caches aside)."""
    digest = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def sandbox_processes(base: Path) -> list[str]:
    """Sandbox processes still alive: a live task of a sandbox uid whose slot no grader holds
    now (a zombie leader with running threads counts; another grader's workers, in slots it
    holds, do not), or a process naming this run's folders on its command line."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        uid = _real_uid(entry)
        cmdline = _read(f"/proc/{entry}/cmdline").replace("\0", " ")
        ours = uid in SANDBOX_UIDS and not slots.is_leased(uid)
        if (ours or str(base) in cmdline) and slots.still_runs(int(entry)):
            name = _read(f"/proc/{entry}/comm").strip()
            found.append(f"{entry} (uid {uid}, {name}): {cmdline[:120]}")
    return found


def sysv_objects_left() -> list[str]:
    """SysV shared memory, queues and semaphores created by a sandbox uid that no grader holds
    now (left behind by a submission)."""
    left = []
    for kind in ("shm", "msg", "sem"):
        lines = _read(f"/proc/sysvipc/{kind}").splitlines()
        header = lines[0].split() if lines else []
        for line in lines[1:]:
            row = dict(zip(header, line.split(), strict=False))
            cuid = int(row.get("cuid", -1))
            if cuid in SANDBOX_UIDS and not slots.is_leased(cuid):
                left.append(f"SysV {kind} created by uid {cuid}")
    return left


def _real_uid(pid: str) -> int | None:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def grader_uid(level: str) -> int | None:
    """The uid the grader itself runs as at ``level`` (None: this process's own)."""
    return GRADER_UID if level == "process" and os.geteuid() == 0 else None


def grade_catalogue(assignment: str, scenarios: list[Scenario], level: str, base: Path,
                    project_root: Path, reference: nbformat.NotebookNode,
                    stub: nbformat.NotebookNode, data_dir: Path, *, seed: int = 4242,
                    jobs: int = 2) -> LevelRun:
    """Every scenario with its two controls, in one batch through the CLI at ``level``."""
    run_as = grader_uid(level)
    if run_as is not None:  # somewhere the throwaway grader can reach (pytest's is 0700)
        base = Path(tempfile.mkdtemp(prefix=f"catalogue-{level}-", dir="/tmp"))
        os.chmod(base, 0o711)
    base.mkdir(parents=True, exist_ok=True)
    canary = base / "canary"
    canary.mkdir()
    (canary / "canary.txt").write_text("untouched")
    out = base / "out"
    witness = Witness(run_as)
    try:
        ctx = Context(reference=reference, stub=stub, canary_dir=canary, out_dir=out,
                      project_root=project_root, assignment=assignment, port=witness.port,
                      victims=witness.victims, udp_port=witness.udp_port,
                      unix_socket=witness.unix_socket, shm_key=witness.shm_key)
        paths = _build(ctx, scenarios, base / "submissions")
        scratch_root = base / "tmp"
        scratch_root.mkdir()
        if run_as is not None:  # the throwaway grader owns what it writes
            out.mkdir()
            for folder in (base, out, scratch_root, canary):
                os.chown(folder, run_as, run_as)
        watched = (project_root / "solutions", project_root / "assignments", canary)
        before = tree_digest(*watched)
        command = [sys.executable, str(project_root / "grader.py"), "grade", "--assignment",
                   assignment, *map(str, paths), "--out", str(out), "--jobs", str(jobs),
                   "--sandbox", level, "--timeout-cell", "5", "--timeout-call", "4",
                   "--seed", str(seed), "--data-dir", str(data_dir)]
        exits, output = _run_until_finished(command, base, project_root, scratch_root, run_as)
        time.sleep(0.2)  # a signal sent by the last submission has landed
        rows = {}
        gradebook = out / "gradebook.csv"
        if gradebook.is_file():
            with gradebook.open(encoding="utf-8") as handle:
                rows = {row["submission"]: row for row in csv.DictReader(handle)}
        return LevelRun(assignment, level, exits, output, rows, out, canary, before,
                        tree_digest(*watched), sandbox_processes(base), list(witness.seen),
                        witness.victims_alive(), sysv_objects_left())
    finally:
        witness.close()


def _build(ctx: Context, scenarios: list[Scenario], submissions: Path) -> list[Path]:
    paths = []
    for scenario in scenarios:
        folder = submissions / scenario.id
        folder.mkdir(parents=True)
        paths.append(scenario.build(ctx, folder))
    for control, nb in (("control_reference", ctx.reference), ("control_stub", ctx.stub)):
        folder = submissions / control
        folder.mkdir()
        paths.append(folder)
        nbformat.write(nb, folder / f"{ctx.assignment}.ipynb")
    return paths


def _run_until_finished(command: list[str], cwd: Path, project_root: Path, tmp: Path,
                        run_as: int | None) -> tuple[list[int], str]:
    """Run the grader; while it dies of a submission, run the same command again."""
    env = {**os.environ, "PYTHONPATH": str(project_root), "TMPDIR": str(tmp)}
    if run_as is not None:
        env["HOME"] = str(tmp)
        command = ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--clear-groups", "--",
                   *command]
    exits, output = [], ""
    for _ in range(MAX_RUNS):
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=cwd,
                              env=env, check=False, start_new_session=True)
        exits.append(done.returncode)
        output += done.stdout + done.stderr
        if done.returncode >= 0 and done.returncode != 137:
            break
    return exits, output


# ----------------------------------------------------------------------------- judging


def questions_of(row: dict[str, str], reference: dict[str, str]) -> list[str]:
    """The scored questions (those not scored yet stay empty in every row)."""
    fixed = {"submission", "score", "max_score", "status", "message"}
    return [column for column in row if column not in fixed and reference[column] != ""]


def flagged_questions(run: LevelRun, scenario_id: str) -> set[str]:
    """Questions of a submission that carry a needs-review flag."""
    results = json.loads(submission_file(run.out_dir, scenario_id, "results.json").read_text(
        encoding="utf-8"))
    return {flag["question"] for flag in results["extra_data"]["needs_review"]}


def check_scores(run: LevelRun, scenario: Scenario, row: dict[str, str]) -> None:
    """The scenario's score expectations against the controls of the same batch."""
    missing = [c for c in ("control_reference", "control_stub") if c not in run.rows]
    assert not missing, f"no row for the controls {missing}: the batch did not finish them"
    reference, stub = run.rows["control_reference"], run.rows["control_stub"]
    questions = questions_of(row, reference)
    full = set(questions if ALL in scenario.full_marks else scenario.full_marks)
    if scenario.lost:
        full |= set(questions) - set(scenario.lost)
        for question in scenario.lost:
            assert float(row[question]) < float(reference[question]), (question, row)
    for question in full:
        assert float(row[question]) == float(reference[question]), (question, row)
    targets = questions if ALL in scenario.no_better_than_stub else scenario.no_better_than_stub
    for question in (*targets, *scenario.caught):
        assert float(row[question]) <= float(stub[question]), (question, row)
    for question in scenario.caught:
        assert float(stub[question]) == 0, (question, stub)
    for question in scenario.partial:
        assert 0 < float(row[question]) < float(reference[question]), (question, row)


def check_feedback(run: LevelRun, scenario: Scenario) -> None:
    """What the scenario's feedback must and must not say, and its review flags."""
    feedback = submission_file(run.out_dir, scenario.id, "feedback.md").read_text(encoding="utf-8")
    for text in scenario.feedback:
        said = any(alternative in feedback for alternative in text.split("|"))
        assert said, f"feedback of {scenario.id} should say {text!r}:\n{feedback[:1500]}"
    for text in scenario.feedback_absent:
        assert text not in feedback, f"feedback of {scenario.id} says {text!r}:\n{feedback[:1500]}"
    flagged = flagged_questions(run, scenario.id)
    assert set(scenario.flagged) <= flagged, (scenario.flagged, flagged)
    for question in scenario.caught:  # a bypass is zeroed, and the feedback says why
        said = "Вопрос оценён в 0" in feedback or question in flagged
        assert said, f"{scenario.id}: nothing explains the 0 on {question}:\n{feedback[:2000]}"


def check_scenario(run: LevelRun, scenario: Scenario) -> None:
    """Everything the catalogue expects of one scenario (AssertionError saying what not)."""
    assert scenario.id in run.rows, f"{scenario.id}: no row (the grader stopped before it?)"
    row = run.rows[scenario.id]
    assert row["status"] == scenario.status, row
    assert submission_file(run.out_dir, scenario.id, "results.json").is_file()
    check_scores(run, scenario, row)
    check_feedback(run, scenario)
    if scenario.extra.get("terminal") == "clean":  # what the grader printed, all of it
        raw = raw_control(run.output)
        assert raw is None, f"{scenario.id}: the grader printed a raw control character: {raw}"
    for name in scenario.extra.get("grader_files", ()):  # the grader's own, still its own
        assert (run.out_dir / name).is_file(), f"{scenario.id}: no file {name} in the output"


def escaped(run: LevelRun, scenario: Scenario) -> str | None:
    """What a scenario did outside the sandbox, seen from outside (None: nothing)."""
    if scenario.id in run.died_for():
        return "killed the grader (failed on the rerun)"
    if any(seen.startswith(scenario.id.encode()) for seen in run.connections):
        return "reached a listener outside its sandbox (TCP, MPTCP, UDP or a Unix socket)"
    if scenario.id == "escape_survivor" and any(SURVIVOR_NAME in p for p in run.leftover):
        return "left a process running after its grading"
    if scenario.id == "escape_sysv_ipc" and run.ipc_left:
        return f"left {len(run.ipc_left)} SysV IPC objects behind"
    if scenario.id == "escape_signal_others" and not run.victims_alive:
        return "killed a process outside the sandbox"
    wrote = {"fake_results": (*fake_gradebooks(run.out_dir), run.canary_dir / "results.json"),
             "malicious_pickle": (run.canary_dir / "pickle_pwned.txt",)}.get(scenario.id, ())
    if any(path.exists() for path in wrote):
        return "wrote files outside its sandbox (the output folder or the canary folder)"
    return None


def containment(run: LevelRun, scenario: Scenario) -> tuple[bool, str]:
    """Whether the level contained ``scenario``: graded as the catalogue expects and nothing
    seen outside; with the reason when not."""
    outside = escaped(run, scenario)
    if outside is not None:
        return False, outside
    try:
        check_scenario(run, scenario)
    except AssertionError as exc:
        return False, f"graded wrong: {str(exc).splitlines()[0][:160]}"
    return True, ""


def batch_containment(run: LevelRun) -> tuple[bool, str]:
    """The whole batch: it finished, nothing outside changed, nothing was left running."""
    problems = []
    if run.returncode != 0:
        problems.append(f"the grader exited {run.exits} before finishing")
    if run.tree_after != run.tree_before:
        problems.append("files outside the sandbox changed")
    if sorted(p.name for p in run.canary_dir.iterdir()) != ["canary.txt"]:
        problems.append("the canary folder changed")
    if any(path.exists() for path in fake_gradebooks(run.out_dir)):
        problems.append("a fake gradebook was written into the output folder")
    if run.leftover:
        problems.append(f"{len(run.leftover)} sandbox processes left running")
    if run.ipc_left:
        problems.append(f"{len(run.ipc_left)} SysV IPC objects left behind")
    if run.connections:
        problems.append(f"listeners outside were reached: {run.connections[:3]}")
    return not problems, "; ".join(problems)


def remove(base: Path) -> None:
    """Delete a batch's folder (files a throwaway grader made included)."""
    shutil.rmtree(base, ignore_errors=True)


def stop_leftovers(base: Path) -> None:
    """SIGKILL whatever a batch left running (so a measurement does not poison the next)."""
    for entry in sandbox_processes(base):
        try:
            os.kill(int(entry.split()[0]), signal.SIGKILL)
        except (OSError, ValueError):
            pass

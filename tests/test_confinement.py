"""What confines a worker beyond its level's files and namespaces, and that it never silently
goes away: the system-call filter, slot uids leased machine-wide and emptied between
submissions, probes on their own leased uid, a worker less confined than promised never run,
and the folder modes a grader changes given back.

The escapes these stop are graded through the CLI in tests/test_isolation.py; here each
mechanism is tested on its own, with real workers, at every confining level the machine has.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from autograder.batch import executors
from autograder.grading.pipeline import GradedSubmission
from autograder.sandbox import (
    ConfinementFailed,
    SandboxLevel,
    WorkerSession,
    WorkerSpec,
    launcher,
    seccomp,
    slots,
)
from autograder.sandbox import uid as uid_level

IS_ROOT = os.geteuid() == 0
BWRAP_PROBLEM = launcher.bwrap_problem()
UID_PROBLEM = uid_level.uid_problem()
CONFINED = [
    pytest.param(SandboxLevel.BWRAP, marks=pytest.mark.skipif(
        BWRAP_PROBLEM is not None, reason=f"bwrap level: {BWRAP_PROBLEM}")),
    pytest.param(SandboxLevel.UID, marks=pytest.mark.skipif(
        UID_PROBLEM is not None, reason=f"uid level: {UID_PROBLEM}")),
]
needs_root = pytest.mark.skipif(not IS_ROOT, reason="slot uids exist only for a root grader")
FREE_SLOT = 555  # far from the slots the suite's batches use

SOCKETS = """
import socket
refused = []
for family, kind, proto in [(socket.AF_INET, socket.SOCK_STREAM, 0),
                            (socket.AF_INET, socket.SOCK_STREAM, 262),  # MPTCP
                            (socket.AF_INET, socket.SOCK_DGRAM, 0),
                            (socket.AF_INET6, socket.SOCK_DGRAM, 0),
                            (socket.AF_UNIX, socket.SOCK_STREAM, 0),
                            (socket.AF_UNIX, socket.SOCK_DGRAM, 0),
                            (socket.AF_NETLINK, socket.SOCK_RAW, 0)]:
    try:
        socket.socket(family, kind, proto).close()
    except PermissionError:
        refused.append(f"{family.name}/{proto}")
a, b = socket.socketpair()
a.sendall(b"pair")
print(len(refused), b.recv(4).decode())
"""
KERNEL = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
print(errno_of(libc.shmget(0, 4096, 0o1600)), errno_of(libc.msgget(0, 0o1600)),
      errno_of(libc.semget(0, 1, 0o1600)), errno_of(libc.syscall(425, 8, None)),
      errno_of(libc.unshare(0x10000000)), errno_of(libc.syscall(250, 0, -3, 0)))
"""


def session(tmp_path: Path, level: SandboxLevel, **spec) -> WorkerSession:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return WorkerSession(WorkerSpec(scratch_dir=scratch, probes_file=None, level=level,
                                    **spec))


def cell(worker: WorkerSession, source: str) -> str:
    outcome = worker.run_cell(0, textwrap.dedent(source), 20)
    assert outcome.status.value == "ok", outcome
    return outcome.stdout_tail.strip()


# ----------------------------------------------------------------------------- the filter


def test_the_filter_is_built_by_libseccomp_and_names_what_it_refuses():
    program = seccomp.program()
    assert len(program) % 8 == 0 and len(program) // 8 > 50  # BPF instructions
    assert {"socket", "shmget", "msgget", "semget", "ptrace", "io_uring_setup", "keyctl",
            "bpf", "perf_event_open", "userfaultfd", "unshare", "setns", "mount"} <= set(
        seccomp.DENIED)


@pytest.mark.parametrize("level", CONFINED)
def test_a_confined_worker_opens_no_socket_but_a_unix_pair(tmp_path, level):
    with session(tmp_path, level) as worker:
        assert cell(worker, SOCKETS) == "7 pair"


@pytest.mark.parametrize("level", CONFINED)
def test_a_confined_worker_reaches_no_ipc_io_uring_namespace_or_keyring(tmp_path, level):
    with session(tmp_path, level) as worker:
        assert cell(worker, KERNEL).split() == ["1"] * 6  # EPERM each


@pytest.mark.parametrize("level", CONFINED)
def test_the_filter_is_seen_from_outside_and_inherited(tmp_path, level):
    with session(tmp_path, level) as worker:
        pid = worker._worker.worker_pid
        assert seccomp.filter_mode_of(pid) == 2
        shown = cell(worker, """
            import subprocess
            print(subprocess.run(["grep", "^Seccomp:", "/proc/self/status"],
                                 capture_output=True, text=True).stdout.split()[-1:])
            import torch  # the libraries a notebook uses still work under it
            print(torch.nn.Conv2d(1, 1, 3)(torch.ones(1, 1, 5, 5)).shape[-1])
            """)
        assert shown.splitlines()[-1] == "3"
        # a child inherits the filter (bwrap); at the uid level it cannot even read its own
        # /proc entry (Landlock opens the worker's own only)
        assert shown.splitlines()[0] == ("['2']" if level is SandboxLevel.BWRAP else "[]")


def test_a_process_level_worker_is_not_filtered(tmp_path):
    with session(tmp_path, SandboxLevel.PROCESS) as worker:
        assert seccomp.filter_mode_of(worker._worker.worker_pid) == 0
        assert launcher.promised_confinement(SandboxLevel.PROCESS) == (0, False)


# ----------------------------------------------------------------------------- never weaker


@pytest.mark.parametrize("level", CONFINED)
def test_a_worker_without_its_filter_runs_no_student_code(tmp_path, level, monkeypatch):
    monkeypatch.setattr(launcher, "_filter_fd", lambda level: None)  # the filter goes missing
    with pytest.raises(ConfinementFailed, match="did not load the system-call filter"):
        session(tmp_path, level)


@pytest.mark.skipif(UID_PROBLEM is not None, reason=f"uid level: {UID_PROBLEM}")
def test_a_uid_worker_with_less_landlock_than_promised_runs_no_student_code(tmp_path,
                                                                            monkeypatch):
    promised = launcher.promised_confinement(SandboxLevel.UID)
    monkeypatch.setattr(launcher, "promised_confinement",
                        lambda level: (promised[0] + 1, promised[1]))
    with pytest.raises(ConfinementFailed, match="Landlock ABI"):
        session(tmp_path, SandboxLevel.UID)


def test_a_submission_is_retried_once_then_the_batch_stops(monkeypatch, tmp_path):
    calls = []

    def falls_short(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1 or kwargs.get("always"):
            raise ConfinementFailed("the bwrap worker started less confined")
        return GradedSubmission("graded on the second try", ())  # type: ignore[arg-type]

    monkeypatch.setattr(executors, "tests_for", lambda *a: ())
    monkeypatch.setattr(executors, "grade_submission", falls_short)
    job = executors.Found(tmp_path / "ann.ipynb", "ann", "file")
    options = SimpleNamespace(public_only=False)
    context = executors.BatchContext(None, options, tmp_path)  # type: ignore[arg-type]
    assert executors.grade_job(job, context, 0).result == "graded on the second try"
    assert len(calls) == 2

    monkeypatch.setattr(executors, "grade_submission",
                        lambda *a, **k: falls_short(always=True))
    with pytest.raises(executors.BatchStopped, match="grading stopped at ann.*run the same "
                                                     "command again"):
        executors.grade_job(job, context, 0)


# ----------------------------------------------------------------------------- slot uids


@needs_root
def test_probes_never_run_as_a_uid_another_grader_holds():
    held = slots.SlotLease.acquire(slots.PROBE_SLOT)
    try:
        assert held.slot == slots.PROBE_SLOT
        with slots.probe_uid() as uid:
            assert uid != held.uid and slots.is_slot_uid(uid) and slots.is_leased(uid)
    finally:
        held.release()


SURVIVOR = """
import ctypes, os, threading, time
if os.fork() == 0:
    os.setsid()
    for _ in range(3):
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    ctypes.CDLL(None).pthread_exit(None)  # the leader exits alone: a zombie with live threads
"""


def _start_survivor(uid: int) -> None:
    subprocess.run([sys.executable, "-c", SURVIVOR], user=uid, group=uid, extra_groups=[],
                   check=True, timeout=30)
    deadline = time.monotonic() + 10
    while not slots.tasks_of_uid(uid) and time.monotonic() < deadline:
        time.sleep(0.05)


@needs_root
def test_a_zombie_led_survivor_is_found_and_killed_as_its_uid():
    uid = slots.slot_uid(FREE_SLOT)
    _start_survivor(uid)
    survivors = slots.tasks_of_uid(uid)
    assert len(survivors) == 1
    leader = survivors[0]
    assert Path(f"/proc/{leader}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert slots.clear_uid(uid)
    assert slots.tasks_of_uid(uid) == [] and not slots.still_runs(leader)


@needs_root
def test_a_slot_is_handed_out_only_once_its_uid_holds_nothing():
    uid = slots.slot_uid(FREE_SLOT)
    _start_survivor(uid)
    lease = slots.SlotLease.acquire(FREE_SLOT)
    try:
        assert lease.uid == uid and slots.tasks_of_uid(uid) == []
    finally:
        lease.release()


@needs_root
def test_sysv_objects_of_a_slot_uid_are_removed():
    uid = slots.slot_uid(FREE_SLOT)
    make = ("import ctypes; libc = ctypes.CDLL(None)\n"
            "assert libc.shmget(0, 1 << 20, 0o1600) >= 0 and libc.msgget(0, 0o1600) >= 0 "
            "and libc.semget(0, 1, 0o1600) >= 0")
    subprocess.run([sys.executable, "-c", make], user=uid, group=uid, extra_groups=[],
                   check=True, timeout=30)
    removed = slots.remove_ipc_of(uid)
    assert sorted(item.split()[1] for item in removed) == ["msg", "sem", "shm"]
    assert slots.remove_ipc_of(uid) == []


@needs_root
def test_slot_locks_live_where_every_grader_on_the_machine_looks(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert slots.lock_dir().parent == Path("/run")


# ----------------------------------------------------------------------------- folder modes


def test_folders_made_private_are_given_back(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(uid_level, "landlock_abi", lambda: 0)  # no Landlock: modes guard
    folder = tmp_path / "assignment"
    folder.mkdir()
    os.chmod(folder, 0o755)
    caplog.set_level(logging.INFO, logger="autograder")
    with uid_level.private_while_grading([folder]):
        assert folder.stat().st_mode & 0o777 == 0o750
    assert folder.stat().st_mode & 0o777 == 0o755
    said = caplog.text  # both changes are logged (stderr, from the command line)
    assert f"{folder} (was 755)" in said and f"restored the mode of {folder}: 755" in said


def test_with_landlock_no_folder_mode_is_touched(tmp_path, monkeypatch):
    monkeypatch.setattr(uid_level, "landlock_abi", lambda: 7)
    folder = tmp_path / "assignment"
    folder.mkdir()
    os.chmod(folder, 0o755)
    with uid_level.private_while_grading([folder]):
        assert folder.stat().st_mode & 0o777 == 0o755


@needs_root
def test_a_slot_an_older_grader_holds_in_tmp_is_not_handed_out():
    """Graders before the /run folder locked their slots in /tmp; one of them running on the
    same machine must not share a uid with this one (its clean-up would kill our worker)."""
    import fcntl

    legacy = slots.LEGACY_LOCK_ROOT / f"autograder-sandbox-slots-{os.geteuid()}"
    legacy.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(legacy / f"slot-{FREE_SLOT}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert slots.is_leased(slots.slot_uid(FREE_SLOT))
        lease = slots.SlotLease.acquire(FREE_SLOT)
        try:
            assert lease.slot != FREE_SLOT
        finally:
            lease.release()
    finally:
        os.close(fd)
    assert not slots.is_leased(slots.slot_uid(FREE_SLOT))

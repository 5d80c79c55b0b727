"""Worker uids: leased machine-wide, and emptied of everything a submission left before the
next one gets them.

The worker of slot ``n`` runs as uid/gid ``UID_BASE + n`` (bwrap and uid levels, as root).
A slot is held with ``flock`` on a file in one folder for the whole machine, so two graders
(two instructors, a test suite, the course server) never share a uid: a shared uid would
share RLIMIT_NPROC, and one grader's clean-up would kill the other's workers. Probes that run
something as a slot uid (the interpreter check, the Landlock self-check) lease a slot too.

A submission's processes can outlive its worker: a child that calls ``setsid`` and lets its
thread-group leader exit leaves a zombie leader whose other threads run on (``/proc`` shows
it as a zombie). So :func:`clear_uid` signals *as the slot uid*: ``kill(-1)`` run by that uid
reaches every process it owns, whatever its state, and is repeated until no task of the uid
is left. SysV IPC objects and POSIX shared memory or message queues the uid owns are removed
too. A lease is handed out only for a slot whose uid holds nothing (:meth:`SlotLease.acquire`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .procfs import status_number
from .wire import SandboxError

UID_BASE = 61000  # the worker of slot n runs as uid/gid UID_BASE + n
MAX_SLOTS = 1000
PROBE_SLOT = MAX_SLOTS - 1  # probes look for a free slot from the top, workers from 0 up
LOCK_ROOTS = (Path("/run"), Path("/tmp"))  # machine-wide, whatever TMPDIR says
LEGACY_LOCK_ROOT = Path("/tmp")  # where graders before issue 19 locked their slots
CLEAR_TIMEOUT_S = 5.0
SHELL = "/bin/sh"
_IPC_RMID = 0


def slot_uid(slot: int) -> int:
    """The uid (and gid) the worker of ``slot`` runs as."""
    if type(slot) is not int or not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"slot must be an int in [0, {MAX_SLOTS}), got {slot!r}")
    return UID_BASE + slot


def is_slot_uid(uid: int) -> bool:
    """True for the uids this module hands out."""
    return UID_BASE <= uid < UID_BASE + MAX_SLOTS


# ----------------------------------------------------------------------------- leases


class SlotLease:
    """An exclusive claim on a worker uid, held with ``flock`` so that it holds across
    processes; the uid holds no process and no IPC object when the lease is handed out."""

    def __init__(self, slot: int, fds: tuple[int, ...]):
        self.slot, self._fds = slot, fds

    @property
    def uid(self) -> int:
        """The uid (and gid) of this slot."""
        return slot_uid(self.slot)

    @classmethod
    def acquire(cls, preferred: int, *, step: int = 1) -> SlotLease:
        """The first free, empty slot from ``preferred`` on (``step`` -1: downwards),
        wrapping around. A free slot whose uid still runs something that cannot be killed
        is passed over."""
        slot_uid(preferred)  # validates
        directories = lock_dirs()
        for offset in range(MAX_SLOTS):
            slot = (preferred + step * offset) % MAX_SLOTS
            fds = _lock_all(directories, slot)
            if fds is None:
                continue
            if clear_uid(slot_uid(slot)):
                return cls(slot, fds)
            _close(fds)  # something of that uid survives SIGKILL (stuck in the kernel)
        raise SandboxError(f"all {MAX_SLOTS} sandbox slots are in use; run fewer workers")

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        _close(self._fds)
        self._fds = ()


def _lock_all(directories: list[Path], slot: int) -> tuple[int, ...] | None:
    """Every lock of ``slot`` (one per lock folder), or None if any is held elsewhere."""
    fds: list[int] = []
    for directory in directories:
        fd = os.open(directory / f"slot-{slot}.lock",
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        fds.append(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _close(tuple(fds))
            return None
    return tuple(fds)


def _close(fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def probe_uid() -> Iterator[int]:
    """A leased slot uid for a probe, emptied again afterwards."""
    lease = SlotLease.acquire(PROBE_SLOT, step=-1)
    try:
        yield lease.uid
    finally:
        clear_uid(lease.uid)
        lease.release()


def is_leased(uid: int) -> bool:
    """Whether some grader on this machine holds the lease of slot uid ``uid`` now."""
    fds = _lock_all(lock_dirs(), uid - UID_BASE)
    if fds is None:
        return True
    _close(fds)
    return False


def lock_dir() -> Path:
    """A folder only we can write, for the slot locks: the same for every grader on the
    machine (``/run`` where we may write there: a service's private /tmp is not shared)."""
    for root in (*LOCK_ROOTS, Path(tempfile.gettempdir())):
        if root.is_dir() and os.access(root, os.W_OK | os.X_OK):
            break
    return own_folder(root / f"autograder-sandbox-slots-{os.geteuid()}", 0o700)


def lock_dirs() -> list[Path]:
    """Where a lease is taken: :func:`lock_dir`, and ``/tmp``'s folder too, where graders
    before this one locked their slots (a grader of an older checkout, running on the same
    machine, must not get the same uid either)."""
    folders = [lock_dir()]
    legacy = LEGACY_LOCK_ROOT / f"autograder-sandbox-slots-{os.geteuid()}"
    if LEGACY_LOCK_ROOT.is_dir() and legacy != folders[0]:
        folders.append(own_folder(legacy, 0o700))
    return folders


def own_folder(directory: Path, mode: int) -> Path:
    """``directory``, made if missing and checked to be a real folder of ours that grants
    others nothing beyond ``mode``, then given ``mode`` (mkdir's is cut by the umask)."""
    directory.mkdir(mode=mode, exist_ok=True)
    st = os.lstat(directory)
    if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid()
            or st.st_mode & 0o077 & ~mode):
        raise SandboxError(f"{directory} must be a folder owned by us with mode {mode:04o}")
    os.chmod(directory, mode)
    return directory


# ----------------------------------------------------------------------------- clean-up


def clear_uid(uid: int) -> bool:
    """Kill every process of ``uid`` and remove its IPC objects; True once nothing of it is
    left (False: a task survived SIGKILL for ``CLEAR_TIMEOUT_S``, e.g. stuck in the kernel).
    Only for a uid we hold the lease of (or are about to)."""
    return clear_uids([uid])


def clear_uids(uids: list[int]) -> bool:
    """:func:`clear_uid` for several uids at once, under one deadline (an interrupted batch
    waits for all its workers' uids together, not one after another)."""
    if os.geteuid() != 0:
        return True  # not ours to clear: without root there are no slot uids
    ours = [uid for uid in uids if is_slot_uid(uid)]
    deadline = time.monotonic() + CLEAR_TIMEOUT_S
    while running := [uid for uid in ours if tasks_of_uid(uid)]:
        if time.monotonic() > deadline:
            return False
        for uid in running:
            _kill_all_as(uid)
        time.sleep(0.01)
    for uid in ours:
        remove_ipc_of(uid)
    return True


def _kill_all_as(uid: int) -> None:
    """``kill(-1, SIGKILL)`` as ``uid``: every process it may signal, zombie-led groups too."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([SHELL, "-c", "kill -s KILL -- -1"], user=uid, group=uid, extra_groups=[],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=5, cwd="/", env={})


def tasks_of_uid(uid: int) -> list[int]:
    """Pids of processes of real uid ``uid`` with a live task: zombies whose threads are all
    gone do not count, a zombie leader whose other threads still run does."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and status_number(entry, "Uid") == uid and _has_live_task(entry):
            found.append(int(entry))
    return found


def still_runs(pid: int) -> bool:
    """Whether process ``pid`` has a task that is not a zombie."""
    return _has_live_task(str(pid))


def _has_live_task(pid: str) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def remove_ipc_of(uid: int) -> list[str]:
    """Remove the SysV shared memory, message queues and semaphores owned or created by
    ``uid``, and its files in /dev/shm and /dev/mqueue; returns what was removed."""
    removed = []
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, remove in (("shm", libc.shmctl), ("msg", libc.msgctl), ("sem", libc.semctl)):
        for ipc_id in _sysv_ids_of(kind, uid):
            args = (ipc_id, 0, _IPC_RMID) if kind == "sem" else (ipc_id, _IPC_RMID, None)
            if remove(*args) == 0:
                removed.append(f"SysV {kind} {ipc_id}")
    for folder in ("/dev/shm", "/dev/mqueue"):
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid == uid:
                        os.unlink(entry.path)
                        removed.append(entry.path)
    return removed


def _sysv_ids_of(kind: str, uid: int) -> list[int]:
    """Ids of the SysV objects of ``kind`` whose owner or creator is ``uid``."""
    try:
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
    except OSError:
        return []
    if not lines:
        return []
    header = lines[0].split()
    id_column = {"shm": "shmid", "msg": "msqid", "sem": "semid"}[kind]
    ids = []
    for line in lines[1:]:
        row = dict(zip(header, line.split(), strict=False))
        with contextlib.suppress(KeyError, ValueError):
            if str(uid) in (row["uid"], row["cuid"]):
                ids.append(int(row[id_column]))
    return ids

"""Starting a worker: the isolation level, resource limits, the command line, the process.

Two levels. BWRAP: a bubblewrap sandbox that sees only /usr, the interpreter, the venv, this
``sandbox`` package, the probes file (read-only) and the scratch folder (read-write, its
working directory); no network, its own pid/ipc/uts namespaces; the worker runs as an
unprivileged uid chosen per slot (a process started as root is not held by RLIMIT_NPROC).
PROCESS: the same worker in a plain subprocess with the same rlimits; weaker isolation.

A :class:`WorkerProcess` is one started worker: its pipes, its output drain and the means to
signal and kill it. It knows nothing about messages; :mod:`.session` does.
"""

from __future__ import annotations

import fcntl
import functools
import os
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .messages import output_marker
from .wire import HEADER, FrameBuffer, SandboxError

__all__ = [
    "CapturedOutput",
    "DeadlinePassed",
    "Limits",
    "OutputDrain",
    "ProcessEnded",
    "SandboxLevel",
    "SandboxUnavailable",
    "SlotLease",
    "WorkerProcess",
    "bwrap_problem",
    "choose_level",
    "plan_launch",
    "prepare_scratch",
    "processes_of_uid",
    "slot_uid",
    "start_worker",
]

GIB, MIB = 1 << 30, 1 << 20
BWRAP, SETPRIV, PRLIMIT = "/usr/bin/bwrap", "/usr/bin/setpriv", "/usr/bin/prlimit"
UID_BASE = 61000  # the worker of slot n runs as uid/gid UID_BASE + n
MAX_SLOTS = 1000
SANDBOX_HOME = "/home/student"  # the scratch folder, seen from inside the sandbox
SANDBOX_PROBES = "/opt/autograder/probes.py"
PACKAGE_DIR = Path(__file__).resolve().parent  # .../autograder/sandbox
IMPORT_ROOT = PACKAGE_DIR.parent.parent  # the folder that holds autograder/
HOST_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "fonts")
READ_CHUNK = 1 << 20


class SandboxLevel(StrEnum):
    """How strongly the worker is isolated."""

    BWRAP = "bwrap"
    PROCESS = "process"


class SandboxUnavailable(SandboxError):
    """The requested isolation level cannot run on this machine."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one worker (rlimits; output and /tmp caps)."""

    address_space_bytes: int = 8 * GIB  # torch needs about 4 GiB just to import
    cpu_seconds: int = 3600  # for the worker's whole life (it restarts after a kill)
    max_processes: int = 64  # processes and threads of the worker's uid
    max_open_files: int = 256
    max_file_bytes: int = 512 * MIB
    max_output_bytes: int = 1 * MIB  # stdout+stderr kept per request (the tail)
    tmp_bytes: int = 256 * MIB  # size of the sandbox's private /tmp (bwrap only)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


# ----------------------------------------------------------------------------- levels


def choose_level(requested: str) -> SandboxLevel:
    """``"auto"`` picks bwrap when it works here; ``"bwrap"`` insists; ``"process"`` falls back."""
    if requested == "process":
        return SandboxLevel.PROCESS
    if requested not in ("auto", "bwrap"):
        raise ValueError(f"sandbox level must be 'auto', 'bwrap' or 'process', not {requested!r}")
    problem = bwrap_problem()
    if problem is None:
        return SandboxLevel.BWRAP
    if requested == "auto":
        return SandboxLevel.PROCESS
    raise SandboxUnavailable(
        f"bubblewrap sandboxing was requested but does not work here: {problem}. "
        "Install it (apt-get install bubblewrap util-linux) and allow mount/pid namespaces, "
        "or choose the 'process' level and accept weaker isolation."
    )


@functools.cache
def bwrap_problem() -> str | None:
    """Why the bwrap level cannot run here (probed once by running ``true`` inside), or None."""
    needed = [BWRAP, PRLIMIT] + ([SETPRIV] if os.geteuid() == 0 else [])
    missing = [tool for tool in needed if not os.access(tool, os.X_OK)]
    if missing:
        return f"missing {', '.join(missing)}"
    argv = [*_bwrap_system_args(), "--perms", "1777", "--size", str(MIB), "--tmpfs", "/tmp",
            "--proc", "/proc", "--dev", "/dev", *_NAMESPACE_ARGS, "--clearenv",
            *_drop_privileges(UID_BASE), PRLIMIT, "--nproc=64", "--", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{BWRAP} could not run ({exc})"
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")[:500]
        return f"{BWRAP} exited with {done.returncode}: {stderr}"
    return None


# ----------------------------------------------------------------------------- commands

_NAMESPACE_ARGS = ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                   "--unshare-cgroup-try", "--hostname", "sandbox",
                   "--die-with-parent", "--new-session")


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start one worker process."""

    argv: list[str]
    env: dict[str, str] | None  # None: bwrap sets the environment itself
    cwd: Path | None
    uid: int | None  # the worker's uid when it is dropped to one


def slot_uid(slot: int) -> int:
    """The uid (and gid) the worker of ``slot`` runs as under bwrap."""
    if type(slot) is not int or not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"slot must be an int in [0, {MAX_SLOTS}), got {slot!r}")
    return UID_BASE + slot


class SlotLease:
    """An exclusive claim on a worker uid, held with ``flock`` so that it holds across
    processes: two sessions never share a uid (they would share RLIMIT_NPROC, and the
    clean-up of one would kill the other's worker)."""

    def __init__(self, slot: int, fd: int):
        self.slot, self._fd = slot, fd

    @property
    def uid(self) -> int:
        """The uid (and gid) of this slot."""
        return slot_uid(self.slot)

    @classmethod
    def acquire(cls, preferred: int) -> SlotLease:
        """The first free slot from ``preferred`` on (wrapping around)."""
        slot_uid(preferred)  # validates
        directory = _lock_dir()
        for offset in range(MAX_SLOTS):
            slot = (preferred + offset) % MAX_SLOTS
            fd = os.open(directory / f"slot-{slot}.lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(slot, fd)
        raise SandboxError(f"all {MAX_SLOTS} sandbox slots are in use; run fewer workers")

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _lock_dir() -> Path:
    """A folder only we can write, for the slot locks."""
    directory = Path(tempfile.gettempdir()) / f"autograder-sandbox-slots-{os.geteuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxError(f"{directory} must be a folder owned by us with mode 0700")
    return directory


def plan_launch(level: SandboxLevel, *, scratch: Path, probes: Path | None, limits: Limits,
                slot: int, extra_env: Mapping[str, str], worker_args: list[str],
                private_dir: Path) -> LaunchPlan:
    """The command line for a worker at ``level``; ``private_dir`` is ours to write in."""
    if level is SandboxLevel.PROCESS:
        env = _worker_env(str(scratch), str(private_dir / "tmp"), extra_env)
        (private_dir / "tmp").mkdir(exist_ok=True)
        probes_arg = [f"--probes={probes}"] if probes else []
        argv = [SETPRIV, "--pdeathsig", "KILL", "--", *_prlimit_args(limits),
                *_python_args(), *worker_args, *probes_arg]
        return LaunchPlan(argv, env, scratch, None)
    as_root = os.geteuid() == 0
    uid = slot_uid(slot) if as_root else None
    env = _worker_env(SANDBOX_HOME, "/tmp", extra_env)
    argv = [*_bwrap_system_args(), *_bwrap_etc_args(private_dir, uid)]
    # The private /tmp comes before the binds: a project or venv that lives under /tmp (a CI
    # clone, say) must be bound on top of it, not hidden by it.
    argv += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    for path in _interpreter_paths():
        argv += _bind_with_parents(path, path, argv)
    argv += _bind_with_parents(PACKAGE_DIR, PACKAGE_DIR, argv)
    probes_arg: list[str] = []
    if probes is not None:
        argv += _bind_with_parents(probes.resolve(), Path(SANDBOX_PROBES), argv)
        probes_arg = [f"--probes={SANDBOX_PROBES}"]
    argv += _bind_with_parents(scratch.resolve(), Path(SANDBOX_HOME), argv, writable=True)
    argv += ["--chdir", SANDBOX_HOME, "--proc", "/proc", "--dev", "/dev", *_NAMESPACE_ARGS,
             "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += [*_drop_privileges(uid), *_prlimit_args(limits), *_python_args(),
             *worker_args, *probes_arg]
    return LaunchPlan(argv, None, None, uid)


def _bwrap_system_args() -> list[str]:
    args = [BWRAP, "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    return args


def _bwrap_etc_args(private_dir: Path, uid: int | None) -> list[str]:
    """A minimal /etc: loader and font config from the host, our own passwd and group."""
    args = ["--perms", "0755", "--dir", "/etc"]
    for name in HOST_ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    if uid is not None:
        etc = private_dir / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "passwd").write_text(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"student:x:{uid}:{uid}:student:{SANDBOX_HOME}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nstudent:x:{uid}:\nnogroup:x:65534:\n")
        args += ["--ro-bind", str(etc / "passwd"), "/etc/passwd",
                 "--ro-bind", str(etc / "group"), "/etc/group"]
    return args


def _interpreter_paths() -> list[Path]:
    """Folders the interpreter needs: its real prefix and the venv (outside /usr)."""
    paths: list[Path] = []
    for prefix in (sys.base_prefix, sys.prefix):
        path = Path(prefix).resolve()
        if path.is_relative_to("/usr") or path in paths:
            continue
        paths.append(path)
    return paths


def _bind_with_parents(source: Path, dest: Path, so_far: list[str], *,
                       writable: bool = False) -> list[str]:
    """Bind ``source`` at ``dest``, first creating missing parents as mode-0755 folders.

    (bwrap would create them mode 0700, and the unprivileged worker could not pass.)
    """
    made = {so_far[i + 1] for i, arg in enumerate(so_far[:-1]) if arg in ("--dir", "--tmpfs")}
    made |= {so_far[i + 2] for i, arg in enumerate(so_far[:-2])
             if arg in ("--ro-bind", "--bind", "--symlink")}
    args: list[str] = []
    for parent in reversed(dest.parents):
        if str(parent) not in ("/", "/usr") and str(parent) not in made:
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(str(parent))
    return [*args, "--bind" if writable else "--ro-bind", str(source), str(dest)]


def _drop_privileges(uid: int | None) -> list[str]:
    if uid is None:
        return []
    return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--nnp",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


def _prlimit_args(limits: Limits) -> list[str]:
    return [
        PRLIMIT,
        f"--as={limits.address_space_bytes}",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",  # SIGXCPU, then SIGKILL
        f"--nproc={limits.max_processes}",
        f"--nofile={limits.max_open_files}",
        f"--fsize={limits.max_file_bytes}",
        "--core=0",
        "--",
    ]


def _python_args() -> list[str]:
    # -I: no user site, no PYTHON* variables, no script folder on sys.path; -B: no .pyc.
    bootstrap = (
        f"import sys; sys.path.insert(0, {str(IMPORT_ROOT)!r}); "
        "from autograder.sandbox.worker import main; sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-I", "-B", "-X", "utf8", "-X", "faulthandler", "-c", bootstrap]


def _worker_env(home: str, tmp: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        "XDG_CACHE_HOME": f"{tmp}/cache",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def prepare_scratch(scratch: Path, uid: int | None) -> None:
    """Give the worker's uid the scratch folder and everything in it (links not followed)."""
    if not scratch.is_dir():
        raise FileNotFoundError(f"scratch folder {scratch} does not exist; create it first")
    if uid is None:
        return
    os.chown(scratch, uid, uid)
    for root, dirs, files in os.walk(scratch):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


# ----------------------------------------------------------------------------- processes


class DeadlinePassed(Exception):
    """Internal: the deadline passed while waiting on the worker."""


class ProcessEnded(Exception):
    """Internal: the worker process ended (or closed its reply pipe)."""


@dataclass(frozen=True)
class CapturedOutput:
    """What a request printed (stdout and stderr together), cut to the last bytes."""

    text: str
    truncated: bool
    total_bytes: int


class OutputDrain:
    """Reads the worker's stdout/stderr pipe all the time, keeping a tail per request.

    The worker writes ``output_marker(token, id)`` after each request; output up to that marker
    belongs to that request. At most ``keep`` bytes are kept; the rest is only counted.
    """

    def __init__(self, fd: int, marker_prefix: bytes, keep: int):
        self._fd, self._prefix, self._keep = fd, marker_prefix, keep
        self._cond = threading.Condition()
        self._current = bytearray()
        self._current_total = 0
        self._done: dict[int, CapturedOutput] = {}
        self._carry = b""
        self._eof = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="sandbox-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop:
            if not poller.poll(200):
                continue
            try:
                chunk = os.read(self._fd, READ_CHUNK)
            except OSError:
                chunk = b""
            with self._cond:
                if chunk:
                    self._feed(chunk)
                else:
                    self._append(self._carry)
                    self._carry, self._eof = b"", True
                self._cond.notify_all()
            if not chunk:
                return

    def _feed(self, chunk: bytes) -> None:
        buf, pos, prefix = self._carry + chunk, 0, self._prefix
        while (i := buf.find(prefix, pos)) >= 0:
            j = buf.find(b"\x00", i + len(prefix))
            if j < 0 and len(buf) - i <= len(prefix) + 24:
                self._append(buf[pos:i])
                self._carry = buf[i:]  # a marker cut in two by the pipe
                return
            digits = buf[i + len(prefix):j] if j >= 0 else b""
            if digits.isdigit() and len(digits) < 20:
                self._append(buf[pos:i])
                self._finish(int(digits))
                pos = j + 1
            else:  # looked like a marker but is not one: plain output
                self._append(buf[pos:i + 1])
                pos = i + 1
        tail_start = max(pos, len(buf) - len(prefix) + 1)
        k = buf.find(b"\x00", tail_start)  # a marker may start in the last bytes
        self._append(buf[pos:k] if k >= 0 else buf[pos:])
        self._carry = buf[k:] if k >= 0 else b""

    def _append(self, data: bytes) -> None:
        self._current_total += len(data)
        self._current += data
        if len(self._current) > 2 * self._keep:
            del self._current[: len(self._current) - self._keep]

    def _cut(self) -> CapturedOutput:
        data = bytes(self._current[-self._keep:])
        out = CapturedOutput(data.decode("utf-8", errors="replace"),
                             self._current_total > self._keep, self._current_total)
        self._current, self._current_total = bytearray(), 0
        return out

    def _finish(self, request_id: int) -> None:
        self._done[request_id] = self._cut()
        for old in [k for k in self._done if k < request_id - 2]:  # never taken: calls
            del self._done[old]

    def take(self, request_id: int, wait_s: float) -> CapturedOutput:
        """The output of ``request_id``, waiting up to ``wait_s`` for its marker."""
        with self._cond:
            self._cond.wait_for(lambda: request_id in self._done or self._eof, timeout=wait_s)
            found = self._done.pop(request_id, None)
            return found if found is not None else self._cut()

    def tail(self, chars: int = 3000) -> str:
        """The end of the output not yet taken (for crash reports)."""
        with self._cond:
            return bytes(self._current[-chars:]).decode("utf-8", errors="replace")

    def stop(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the end of the output, then stop reading."""
        self._thread.join(wait_s)
        self._stop = True
        self._thread.join(1.0)


class WorkerProcess:
    """One started worker: framed, deadline-bound I/O on its pipes; signals; kill."""

    def __init__(self, popen: subprocess.Popen[bytes], request_fd: int, reply_fd: int,
                 drain: OutputDrain, level: SandboxLevel, uid: int | None, max_bytes: int,
                 stack: ExitStack):
        self.popen, self.level, self.uid = popen, level, uid
        self.drain = drain
        self.started_at = time.monotonic()
        self._request_fd, self._reply_fd = request_fd, reply_fd
        self._frames = FrameBuffer(max_bytes)
        self._stack = stack
        self._worker_pid: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(popen.pid)
            stack.callback(os.close, self._pidfd)
        except (AttributeError, OSError):
            self._pidfd = None  # old kernel: fall back to polling popen

    # --------------------------------------------------------------------- I/O

    def send(self, payload: bytes, deadline: float) -> None:
        """Write one frame before ``deadline``."""
        for part in (HEADER.pack(len(payload)), payload):
            view = memoryview(part)
            while view:
                if self._wait(self._request_fd, select.POLLOUT, deadline):
                    raise ProcessEnded("the worker process ended")
                try:
                    view = view[os.write(self._request_fd, view[:READ_CHUNK]):]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    raise ProcessEnded("the worker closed its request pipe") from None

    def receive(self, deadline: float) -> bytes:
        """Read one frame before ``deadline`` (WireError if its header is oversized)."""
        while (frame := self._frames.pop()) is None:
            exited = self._wait(self._reply_fd, select.POLLIN, deadline)
            try:
                data = os.read(self._reply_fd, READ_CHUNK)
            except BlockingIOError:
                data = None
            if data == b"":
                raise ProcessEnded("the worker closed its reply pipe")
            if data:
                self._frames.feed(data)
            elif exited:
                raise ProcessEnded("the worker process ended")
        return frame

    def _wait(self, fd: int, event: int, deadline: float) -> bool:
        """Wait until ``fd`` is ready or the process exits; True if it has exited."""
        poller = select.poll()
        poller.register(fd, event)
        if self._pidfd is not None:
            poller.register(self._pidfd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlinePassed
            step = remaining if self._pidfd is not None else min(remaining, 0.05)
            ready = poller.poll(max(1, int(step * 1000)))
            exited = any(r_fd == self._pidfd for r_fd, _ in ready) or (
                self._pidfd is None and self.popen.poll() is not None)
            if exited or any(r_fd == fd for r_fd, _ in ready):
                return exited

    # --------------------------------------------------------------------- signals

    @property
    def worker_pid(self) -> int | None:
        """Host pid of the worker's Python (inside bwrap it is the namespace's pid 2)."""
        if self._worker_pid is None and self.popen.poll() is None:
            if self.level is SandboxLevel.PROCESS:
                self._worker_pid = self.popen.pid
            else:  # outer bwrap -> bwrap's init (pid 1 inside) -> the worker
                inits = _children(self.popen.pid)
                workers = _children(inits[0]) if inits else []
                self._worker_pid = workers[0] if workers else None
        return self._worker_pid

    def signal_worker(self, sig: int) -> bool:
        """Send ``sig`` to the worker's Python; False if it is gone."""
        pid = self.worker_pid
        if pid is None or self.popen.poll() is not None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout_s: float) -> int | None:
        """The exit status, waiting up to ``timeout_s``; None if still running."""
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, term_grace_s: float) -> None:
        """SIGTERM the worker, wait ``term_grace_s``, then SIGKILL the whole sandbox."""
        if self.popen.poll() is None:
            # A worker that already ended leaves bwrap a moment to exit with its status.
            self.signal_worker(signal.SIGTERM)
            self.wait(max(term_grace_s, 0.2))
        if self.popen.poll() is None:
            # bwrap --die-with-parent: killing the outer bwrap kills its pid namespace.
            _kill_group(self.popen.pid)
            self.wait(5.0)
        if self.level is SandboxLevel.PROCESS:
            _kill_group(self.popen.pid)  # what the worker started in its session
        if self.uid is not None:
            _kill_uid(self.uid)

    def close(self) -> None:
        """Stop everything and release pipes and files (idempotent)."""
        self.stop(0.0)
        self.drain.stop(1.0)
        self._stack.close()

    @property
    def returncode(self) -> int | None:
        """The exit status of the launched process (bwrap's mirrors the worker's)."""
        return self.popen.poll()


def start_worker(level: SandboxLevel, *, scratch: Path, probes: Path | None, limits: Limits,
                 slot: int, extra_env: Mapping[str, str], generation: int, marker: str,
                 max_bytes: int) -> WorkerProcess:
    """Start a worker process; it will send a ``ready`` message when it is up."""
    _precompile_package()
    stack = ExitStack()
    try:
        private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-")))
        req_r, req_w = _pipe()
        stack.callback(os.close, req_w)
        rep_r, rep_w = _pipe()
        stack.callback(os.close, rep_r)
        try:  # the child's ends: closed here once the child has its copies, never twice
            worker_args = [f"--request-fd={req_r}", f"--reply-fd={rep_w}",
                           f"--generation={generation}", f"--marker={marker}",
                           f"--max-bytes={max_bytes}"]
            plan = plan_launch(level, scratch=scratch, probes=probes, limits=limits,
                               slot=slot, extra_env=extra_env, worker_args=worker_args,
                               private_dir=private)
            popen = subprocess.Popen(
                plan.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, pass_fds=(req_r, rep_w), cwd=plan.cwd,
                env=plan.env, start_new_session=True,
            )
        finally:
            os.close(req_r)
            os.close(rep_w)
        stack.callback(_reap, popen)
        assert popen.stdout is not None
        stack.callback(popen.stdout.close)
        _grow_pipe(popen.stdout.fileno())
        os.set_blocking(req_w, False)
        os.set_blocking(rep_r, False)
        drain = OutputDrain(popen.stdout.fileno(), output_marker(marker.encode()),
                            limits.max_output_bytes)
        return WorkerProcess(popen, req_w, rep_r, drain, level, plan.uid, max_bytes, stack)
    except BaseException:
        stack.close()
        raise


@functools.cache
def _precompile_package() -> None:
    """Write this package's .pyc files (once per process) so each worker start skips
    compiling them: inside the sandbox the package is read-only."""
    import compileall

    try:
        compileall.compile_dir(str(PACKAGE_DIR), quiet=2, maxlevels=0)
    except OSError:
        pass  # a read-only install: the worker compiles in memory, a little slower


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    _grow_pipe(w)
    return r, w


def _grow_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ_CHUNK)  # fewer wake-ups for big output
    except OSError:
        pass


def _reap(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        _kill_group(popen.pid)
        popen.wait(5.0)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        text = " ".join(str(p) for p in _scan_proc(lambda stat: stat[1] == pid))
    return [int(p) for p in text.split()]


def _scan_proc(match: Callable[[tuple[int, int, int]], bool]) -> list[int]:
    """Pids whose (pid, ppid, uid) match, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            stat = (int(entry), int(fields["PPid"]), int(fields["Uid"].split()[0]))
        except (KeyError, ValueError, IndexError):
            continue
        if match(stat):
            found.append(stat[0])
    return found


def processes_of_uid(uid: int) -> list[int]:
    """Pids of live processes whose real uid is ``uid`` (zombies excluded)."""
    return [pid for pid in _scan_proc(lambda stat: stat[2] == uid) if not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def _kill_uid(uid: int) -> None:
    """SIGKILL any process left with the slot's uid (it belongs to this sandbox only)."""
    deadline = time.monotonic() + 2.0
    while (pids := processes_of_uid(uid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)



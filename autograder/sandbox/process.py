"""A started worker process: its pipes, its output drain, signals and clean-up.

It knows nothing about messages (:mod:`.session` does) nor about how the command line was
built (:mod:`.launcher` does); it owns the OS-level plumbing of one running worker.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from . import slots
from .wire import HEADER, FrameBuffer

READ_CHUNK = 1 << 20


class SandboxLevel(StrEnum):
    """How strongly the worker is isolated, strongest first."""

    BWRAP = "bwrap"  # namespaces: sees only what is bound in, as a slot uid when root
    UID = "uid"  # no namespaces: a slot uid, Landlock where the kernel has it (root only)
    PROCESS = "process"  # the grader's own user: limits and deadlines only


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


_LIVE: set[WorkerProcess] = set()  # started and not yet closed, for kill_all_workers
_LIVE_LOCK = threading.Lock()
_STOPPED = threading.Event()  # set by kill_all_workers: a worker started later dies at once


def _forget(worker: WorkerProcess) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(worker)


def kill_all_workers() -> int:
    """SIGKILL every worker this process started and has not closed (an interrupted batch
    ends at once; the threads that own them are abandoned). Returns how many were live."""
    with _LIVE_LOCK:
        _STOPPED.set()  # a grading thread restarting its killed worker gets a dead one
        live = list(_LIVE)
    for worker in live:
        _kill_group(worker.popen.pid)
    slots.clear_uids([worker.uid for worker in live if worker.uid is not None])
    return len(live)


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
        with _LIVE_LOCK:
            _LIVE.add(self)
            stopped = _STOPPED.is_set()
        stack.callback(_forget, self)
        if stopped:  # the batch is being interrupted: this worker runs nothing
            _kill_group(popen.pid)
            if uid is not None:
                _kill_uid(uid)
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
            if self.level is not SandboxLevel.BWRAP:  # setpriv and prlimit exec into it
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
        if self.popen.poll() is None and term_grace_s > 0:
            # A worker that already ended leaves bwrap a moment to exit with its status.
            self.signal_worker(signal.SIGTERM)
            self.wait(max(term_grace_s, 0.2))
        if self.popen.poll() is None:
            # bwrap --die-with-parent: killing the outer bwrap kills its pid namespace.
            _kill_group(self.popen.pid)
            self.wait(5.0)
        if self.level is not SandboxLevel.BWRAP:
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


def make_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    grow_pipe(w)
    return r, w


def grow_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ_CHUNK)  # fewer wake-ups for big output
    except OSError:
        pass


def reap(popen: subprocess.Popen[bytes]) -> None:
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
    """Pids of processes of ``uid`` that still run something (zombie-led groups included)."""
    return slots.tasks_of_uid(uid)


def _kill_uid(uid: int) -> None:
    """Kill everything left with the slot's uid (it belongs to this sandbox only) and remove
    its IPC objects."""
    slots.clear_uid(uid)

"""The trusted side of the sandbox: one :class:`WorkerSession` per submission.

It owns the worker's lifecycle and the clock. Every request gets a fresh id and a deadline
on ``time.monotonic()``; a reply must carry the same id. When a deadline passes the worker
is interrupted (cells only), then terminated, then killed with its whole sandbox, and its
stream is never read again. A dead worker is replaced on the next request by a fresh one
that first re-runs the cells that completed OK (never those that timed out or died).

Not thread-safe: use one session from one thread (a thread that outlives the session: the
sandbox is tied to the lifetime of the thread that started it).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.catalogue import _
from . import launcher, seccomp
from . import uid as uid_level
from .launcher import WorkerLimits
from .messages import (
    REPLIES,
    Call,
    CellDone,
    CellStatus,
    Describe,
    Described,
    Get,
    GetAttr,
    Message,
    NameKind,
    Probe,
    ProtocolError,
    Raised,
    Ready,
    RunCell,
    Value,
    decode_message,
    encode_message,
)
from .process import (
    CapturedOutput,
    DeadlinePassed,
    ProcessEnded,
    SandboxLevel,
    WorkerProcess,
)
from .wire import Caps, Handle, SandboxError, WireError

__all__ = [
    "CallRecord",
    "CallTimeout",
    "CellOutcome",
    "ConfinementFailed",
    "NameInfo",
    "StudentCodeError",
    "StudentFault",
    "WorkerDied",
    "WorkerSession",
    "WorkerSpec",
    "WorkerStartError",
]


# ----------------------------------------------------------------------------- errors


class WorkerStartError(SandboxError):
    """The worker did not come up (a grader or machine problem, not the student's)."""


class ConfinementFailed(WorkerStartError):
    """A worker started less confined than its level promises; it ran no student code."""


class StudentFault(SandboxError):
    """Base of failures caused by the student's code; their messages are student-facing."""


class StudentCodeError(StudentFault):
    """The student's code raised. ``traceback`` shows only the student's frames."""

    def __init__(self, error_type: str, message: str, traceback: str):
        super().__init__(f"{error_type}: {message}")
        self.error_type, self.message, self.traceback = error_type, message, traceback


class CallTimeout(StudentFault, TimeoutError):
    """A call ran past its deadline; the worker was killed and will restart (with replay)."""


class WorkerDied(StudentFault):
    """The worker process ended mid-request (a crash, os._exit, a limit); it will restart."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class WorkerSpec:
    """What to start: where, how isolated, with which limits.

    ``slot`` is the preferred uid slot under bwrap; a session leases the first free slot
    from there (across processes), so concurrent sessions never share a uid.
    """

    scratch_dir: Path  # prepared by the caller (submission files copied in)
    probes_file: Path | None
    level: SandboxLevel
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    slot: int = 0
    fixtures_file: Path | None = None
    watch: frozenset[str] = frozenset()  # recorders the worker installs: "numpy", "torch"
    packages: tuple[str, ...] | None = None  # importable beyond the stdlib (None: all)
    gpu: bool = False  # bind the NVIDIA device nodes in (models run with --device cuda)
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 30.0
    interrupt_grace_s: float = 2.0  # after SIGINT, wait this long for the cell's reply
    term_grace_s: float = 0.5  # after SIGTERM, before SIGKILL
    output_sync_s: float = 1.0  # after a reply, wait this long for the output marker
    max_message_bytes: int = Caps().max_bytes


@dataclass(frozen=True)
class CellOutcome:
    """How one cell ended, with the tail of what it printed."""

    index: int
    status: CellStatus
    error_type: str
    error_message: str
    traceback: str
    stdout_tail: str
    output_truncated: bool
    seconds: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NameInfo:
    """What a notebook name refers to (from ``describe``)."""

    kind: NameKind
    type_name: str
    signature: str | None
    source: str | None


@dataclass(frozen=True)
class CallRecord:
    """What the worker says one request ran (evidence from a process that ran student code)."""

    routines: tuple[str, ...] = ()  # "numpy.convolve", "aten.convolution", ...
    modules: tuple[str, ...] = ()  # nearest torch.nn class of every module that ran
    tampered: tuple[str, ...] = ()  # signs that the recorder itself was disturbed

    @classmethod
    def from_wire(cls, raw: Any) -> CallRecord:
        """Validate the worker's record: a dict of lists of strings, nothing else."""
        if raw in (None, {}):
            return cls()
        if type(raw) is not dict or set(raw) - {"routines", "modules", "tampered"}:
            raise ProtocolError("a call record must be a dict of routines/modules/tampered")
        values = {}
        for key in ("routines", "modules", "tampered"):
            items = raw.get(key, [])
            if type(items) is not list or not all(type(v) is str for v in items):
                raise ProtocolError(f"call record field {key!r} must be a list of strings")
            values[key] = tuple(v[:200] for v in items[:500])
        return cls(**values)


@dataclass(frozen=True)
class _CellRecord:
    index: int
    source: str
    timeout_s: float


@dataclass(frozen=True)
class _Result:
    """One request's end: a reply, or a timeout (maybe with a late reply), or a death."""

    reply: Message | None
    seconds: float
    timed_out: bool = False
    died: str | None = None  # what happened to the process
    output: CapturedOutput | None = None


# ----------------------------------------------------------------------------- session


class WorkerSession:
    """A sandboxed worker for one notebook: run cells, call into it, describe names."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.generation = 0  # start count; handles carry it
        self.restarts = 0
        self.startup_seconds: float | None = None  # spawn -> ready of the latest worker
        self.replay_notes: list[str] = []
        self.last_record = CallRecord()  # what the latest call/getattr/probe ran
        self._caps = Caps(max_bytes=spec.max_message_bytes)
        self._worker: WorkerProcess | None = None
        self._completed: list[_CellRecord] = []
        self._next_id = 1
        self._stack = ExitStack()
        self._slot: int = spec.slot
        self.uid: int | None = None  # the worker's uid when it is dropped to one
        self._area: uid_level.UidHome | None = None  # the uid level's private area
        try:
            if spec.level is SandboxLevel.UID or (spec.level is SandboxLevel.BWRAP
                                                  and _is_root()):
                lease = launcher.SlotLease.acquire(spec.slot)
                self._stack.callback(lease.release)  # last: after the worker is gone
                self._slot, self.uid = lease.slot, lease.uid
            if spec.level is SandboxLevel.UID:
                assert self.uid is not None
                self._area = uid_level.UidHome.create(
                    self.uid, spec.scratch_dir,
                    {"probes.py": spec.probes_file, "fixtures.py": spec.fixtures_file})
                self._stack.callback(self._area.remove)  # after the uid's processes are dead
            else:
                launcher.prepare_scratch(spec.scratch_dir, self.uid)
            self._stack.callback(self._retire_current)
            self._spawn()
        except BaseException:
            self._stack.close()
            raise

    @property
    def level(self) -> SandboxLevel:
        """The isolation level actually in use."""
        return self.spec.level

    @property
    def workdir(self) -> Path:
        """The folder the worker runs in (the uid level's private copy of the scratch folder;
        it goes when the session closes)."""
        return self._area.home if self._area is not None else self.spec.scratch_dir

    @property
    def weak_isolation(self) -> bool:
        """True below bubblewrap: no namespaces (say so in reports)."""
        return self.spec.level is not SandboxLevel.BWRAP

    def __enter__(self) -> WorkerSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --------------------------------------------------------------------- public API

    def run_cell(self, index: int, source: str, timeout_s: float) -> CellOutcome:
        """Run one notebook cell; TIMEOUT and DIED are outcomes here, not exceptions."""
        self._ensure_worker()
        outcome = self._run_cell(_CellRecord(index, source, timeout_s))
        if outcome.status is CellStatus.OK:
            self._completed.append(_CellRecord(index, source, timeout_s))
        return outcome

    def call(self, target: str | Handle, args: Sequence[Any], kwargs: Mapping[str, Any],
             timeout_s: float) -> Any:
        """Call a notebook name or a handle's object; returns decoded data or handles."""
        return self._value(lambda i: Call(i, target, list(args), dict(kwargs)), timeout_s)

    def getattr(self, target: str | Handle, name: str, timeout_s: float) -> Any:
        """An attribute of a notebook name or of a handle's object."""
        return self._value(lambda i: GetAttr(i, target, name), timeout_s)

    def get(self, name: str, timeout_s: float) -> Any:
        """The value of a top-level notebook name (data, or a handle)."""
        return self._value(lambda i: Get(i, name), timeout_s)

    def probe(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
              timeout_s: float, module: str = "probes") -> Any:
        """Call function ``name`` of a trusted file (probes, fixtures) inside the worker."""
        return self._value(lambda i: Probe(i, module, name, list(args), dict(kwargs)),
                           timeout_s)

    def describe(self, names: Sequence[str], timeout_s: float) -> dict[str, NameInfo]:
        """Kind, type, signature and source of each name."""
        reply = self._checked_reply(lambda i: Describe(i, list(names)), timeout_s)
        if not isinstance(reply, Described):
            raise self._unexpected(reply)
        return {name: self._name_info(name, reply.names.get(name)) for name in names}

    def close(self) -> None:
        """Kill the worker with its whole sandbox and release the slot.

        Nothing in the worker needs a graceful exit (the harness already has every answer),
        and an interpreter's own shutdown costs about 0.2 s per submission, so it is killed
        at once rather than asked to stop.
        """
        self._stack.close()

    # --------------------------------------------------------------------- requests

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _value(self, make: Callable[[int], Message], timeout_s: float) -> Any:
        reply = self._checked_reply(make, timeout_s)
        if isinstance(reply, Value):
            return reply.data
        raise self._unexpected(reply)

    def _take_record(self, reply: Message) -> None:
        try:
            self.last_record = CallRecord.from_wire(getattr(reply, "record", None))
        except ProtocolError:
            self._retire_current()
            raise

    def _checked_reply(self, make: Callable[[int], Message], timeout_s: float) -> Message:
        """Send the request ``make(id)``; map timeouts, deaths and raises to exceptions."""
        self._ensure_worker()
        self.last_record = CallRecord()
        result = self._exchange(make(self._new_id()), timeout_s, interrupt=False)
        if result.reply is not None:
            self._take_record(result.reply)
        if result.timed_out:
            raise CallTimeout(
                f"the call did not finish within its {timeout_s:g} s time limit; the "
                "notebook was restarted (its cells re-run), so objects from before are gone"
            )
        if result.died is not None:
            raise WorkerDied(result.died)
        assert result.reply is not None
        if isinstance(result.reply, Raised):
            r = result.reply
            raise StudentCodeError(r.error_type, r.error_message, r.traceback)
        return result.reply

    def _unexpected(self, reply: Message | None) -> ProtocolError:
        self._retire_current()
        return ProtocolError(f"unexpected reply {getattr(reply, 'kind', None)!r}; worker reset")

    def _exchange(self, request: Message, timeout_s: float, *, interrupt: bool,
                  capture: bool = False) -> _Result:
        """One request/reply on the current worker, bounded by ``timeout_s``."""
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s}")
        payload = encode_message(request, caps=self._caps)  # WireError here: nothing sent
        worker = self._worker
        assert worker is not None
        start = time.monotonic()
        try:
            worker.send(payload, start + timeout_s)
            reply = self._read_reply(worker, request.id, start + timeout_s)
        except DeadlinePassed:
            return self._escalate(worker, request, start, interrupt, capture)
        except ProcessEnded:
            output = self._retire(worker, capture, request.id)
            return _Result(None, time.monotonic() - start, died=self._death(worker, output),
                           output=output)
        except (WireError, ProtocolError):
            self._retire(worker, False, request.id)
            raise
        output = worker.drain.take(request.id, self.spec.output_sync_s) if capture else None
        return _Result(reply, time.monotonic() - start, output=output)

    def _read_reply(self, worker: WorkerProcess, request_id: int, deadline: float) -> Message:
        reply = decode_message(worker.receive(deadline), REPLIES, caps=self._caps)
        if reply.id != request_id:
            raise ProtocolError(
                f"reply {reply.kind!r} has id {reply.id}: it does not answer request {request_id}"
            )
        return reply

    def _escalate(self, worker: WorkerProcess, request: Message, start: float,
                  interrupt: bool, capture: bool) -> _Result:
        """The one place for overdue requests: SIGINT (cells), then SIGTERM, then SIGKILL."""
        if interrupt and worker.signal_worker(signal.SIGINT):
            try:
                late = self._read_reply(worker, request.id,
                                        time.monotonic() + self.spec.interrupt_grace_s)
            except (DeadlinePassed, ProcessEnded, WireError, ProtocolError):
                late = None
            if late is not None:  # interrupted cleanly: the worker lives on
                output = (worker.drain.take(request.id, self.spec.output_sync_s)
                          if capture else None)
                return _Result(late, time.monotonic() - start, timed_out=True, output=output)
        output = self._retire(worker, capture, request.id)
        return _Result(None, time.monotonic() - start, timed_out=True, output=output)

    def _retire(self, worker: WorkerProcess, capture: bool, request_id: int,
                term_grace_s: float | None = None) -> CapturedOutput | None:
        """Kill ``worker`` and its sandbox for good; return what the request printed.

        ``term_grace_s`` 0 skips SIGTERM (default: the spec's grace after a deadline)."""
        worker.stop(self.spec.term_grace_s if term_grace_s is None else term_grace_s)
        worker.drain.stop(1.0)  # the pipe reaches EOF once everything in it is dead
        output = worker.drain.take(request_id, 0.0) if capture else None
        worker.close()
        if self._worker is worker:
            self._worker = None
        return output

    def _retire_current(self) -> None:
        if self._worker is not None:
            self._retire(self._worker, False, 0, term_grace_s=0.0)

    def _death(self, worker: WorkerProcess, output: CapturedOutput | None) -> str:
        text = describe_exit(worker.returncode, worker.level)
        tail = (output.text if output is not None else worker.drain.tail())[-1500:].strip()
        return f"{text}; its last output:\n{tail}" if tail else text

    # --------------------------------------------------------------------- cells

    def _run_cell(self, record: _CellRecord) -> CellOutcome:
        """Run a cell; every student-caused failure (a malformed or forged reply included,
        after which the worker is reset) becomes an outcome, never an exception."""
        request = RunCell(self._new_id(), record.index, record.source)
        start = time.monotonic()
        try:
            result = self._exchange(request, record.timeout_s, interrupt=True, capture=True)
            reply = result.reply
            if not (result.timed_out or result.died) and not _is_worker_cell_reply(reply):
                raise self._unexpected(reply)
        except (WireError, ProtocolError) as exc:
            died = _("the process running the notebook sent a malformed reply and was "
                     "restarted ({error})").format(error=exc)
            result = _Result(None, time.monotonic() - start, died=died)
        out = result.output or CapturedOutput("", False, 0)
        base = dict(index=record.index, stdout_tail=out.text,
                    output_truncated=out.truncated, seconds=result.seconds)
        reply = result.reply
        if result.died is not None:
            return CellOutcome(status=CellStatus.DIED, error_type="WorkerDied",
                               error_message=result.died, traceback="", **base)
        if result.timed_out:
            message = f"the cell did not finish within its {record.timeout_s:g} s time limit"
            trace = reply.traceback if isinstance(reply, CellDone) else ""
            return CellOutcome(status=CellStatus.TIMEOUT, error_type="Timeout",
                               error_message=message, traceback=trace, **base)
        assert isinstance(reply, CellDone)
        return CellOutcome(status=reply.status, error_type=reply.error_type,
                           error_message=reply.error_message, traceback=reply.traceback,
                           notes=tuple(str(n) for n in reply.notes), **base)

    # --------------------------------------------------------------------- lifecycle

    def _spawn(self) -> None:
        """Start a fresh worker (next generation) and wait for its ``ready``."""
        self.generation += 1
        marker = secrets.token_hex(8)
        spec = self.spec
        scratch, probes, fixtures = spec.scratch_dir, spec.probes_file, spec.fixtures_file
        if self._area is not None:  # the uid level works on its private copies
            scratch = self._area.home
            probes = self._area.trusted_copy("probes.py", probes)
            fixtures = self._area.trusted_copy("fixtures.py", fixtures)
        worker = launcher.start_worker(
            spec.level, scratch=scratch, probes=probes, limits=spec.limits,
            slot=self._slot, extra_env=spec.env, generation=self.generation, marker=marker,
            max_bytes=spec.max_message_bytes, fixtures=fixtures, watch=spec.watch,
            packages=spec.packages, gpu=spec.gpu, area=self._area,
        )
        try:
            payload = worker.receive(worker.started_at + spec.startup_timeout_s)
            ready = decode_message(payload, {"ready": Ready}, caps=self._caps)
            if not isinstance(ready, Ready) or ready.generation != self.generation:
                raise ProtocolError(f"bad ready message {ready!r}")
        except (DeadlinePassed, ProcessEnded, WireError, ProtocolError) as exc:
            worker.stop(0.0)
            worker.drain.stop(1.0)
            tail = worker.drain.tail()
            worker.close()
            raise WorkerStartError(
                f"the {spec.level} worker did not start ({type(exc).__name__}: {exc}); "
                f"its output: {tail.strip() or '(none)'}. Check the sandbox set-up here, "
                "or compare with the 'process' level."
            ) from None
        self.startup_seconds = time.monotonic() - worker.started_at
        _pid = worker.worker_pid  # find it now, before student code can start other processes
        shortfall = _confinement_shortfall(spec.level, ready, worker.worker_pid)
        if shortfall is not None:
            worker.close()
            raise ConfinementFailed(
                f"the {spec.level} worker started less confined than this level promises "
                f"({shortfall}), so it was stopped before running any student code")
        self._worker = worker

    def _ensure_worker(self) -> None:
        """Replace a dead worker: a fresh one, then replay of the cells that completed OK."""
        if self._worker is not None:
            return
        self._spawn()
        self.restarts += 1
        self._replay()

    def _replay(self) -> None:
        """Re-run completed cells in order. A cell that now fails is dropped from the list
        (and noted); if it took the worker down, start again with the shorter list. Each
        failure removes a cell, so this ends."""
        i = 0
        while i < len(self._completed):
            record = self._completed[i]
            outcome = self._run_cell(record)
            if outcome.status is CellStatus.OK:
                i += 1
                continue
            self.replay_notes.append(
                f"cell {record.index} failed when re-run after a restart "
                f"({outcome.status}: {outcome.error_message[:200]}); later cells may miss "
                "its definitions"
            )
            del self._completed[i]
            if self._worker is None:
                self._spawn()
                self.restarts += 1
                i = 0

    def _name_info(self, name: str, raw: Any) -> NameInfo:
        if raw is None:
            return NameInfo(NameKind.MISSING, "", None, None)
        try:
            info = NameInfo(NameKind(raw["kind"]), raw["type_name"], raw["signature"],
                            raw["source"])
        except (TypeError, KeyError, ValueError):
            info = None
        optional = (str, type(None))
        if info is None or type(info.type_name) is not str or not (
                isinstance(info.signature, optional) and isinstance(info.source, optional)):
            raise ProtocolError(f"describe reply for {name!r} is malformed")
        return info


def _confinement_shortfall(level: SandboxLevel, ready: Ready, pid: int | None) -> str | None:
    """How a fresh worker falls short of its level's promise, or None. Its ``ready`` was sent
    before any student code; the filter is also read from outside, in /proc."""
    landlock_abi, filtered = launcher.promised_confinement(level)
    if ready.landlock_abi != landlock_abi:
        return f"Landlock ABI {ready.landlock_abi}, promised {landlock_abi}"
    if filtered and not ready.seccomp:
        return "it did not load the system-call filter"
    if filtered and (pid is None or seccomp.filter_mode_of(pid) != 2):
        return f"the kernel shows no system-call filter on process {pid}"
    return None


def _is_worker_cell_reply(reply: Message | None) -> bool:
    """A cell reply with a status the worker may report (TIMEOUT and DIED are ours)."""
    return isinstance(reply, CellDone) and reply.status not in (CellStatus.TIMEOUT,
                                                                 CellStatus.DIED)


def describe_exit(returncode: int | None, level: SandboxLevel) -> str:
    """A student-facing sentence (in the run's language) for how the worker ended."""
    if returncode is None:
        return _("the process running the notebook stopped responding")
    if level is SandboxLevel.BWRAP and returncode < 0:
        return _("the sandbox running the notebook was stopped from outside")
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if signum is not None and signum > 0:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        hints = {
            signal.SIGKILL: _("was killed (usually: the memory limit was exceeded, or it was "
                              "stopped)"),
            signal.SIGSEGV: _("crashed with a segmentation fault (in native code)"),
            signal.SIGXCPU: _("was stopped: its CPU time limit ran out"),
            signal.SIGXFSZ: _("was stopped: it wrote a file larger than allowed"),
            signal.SIGABRT: _("was aborted (abort)"),
        }
        hint = hints.get(signum) or _("was ended by signal {name}").format(name=name)
        return _("the process running the notebook {hint} ({name})").format(hint=hint,
                                                                            name=name)
    return _("the process running the notebook exited with code {code} (os._exit or a "
             "crash)").format(code=returncode)


def _is_root() -> bool:
    return os.geteuid() == 0

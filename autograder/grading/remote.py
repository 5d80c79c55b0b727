"""Trusted-side proxies of the student's names, and the environment tests are bound from.

A test's parameter is looked up in :class:`ProxyEnvironment`:

- a student function or class becomes a proxy whose calls run in the sandboxed worker;
- an object that cannot cross the wire stays in the worker and is seen here as a
  :class:`RemoteObject` (calls, attribute reads and method calls are forwarded);
- a plain value is fetched once and decoded as data;
- a module name (np, torch, F, ...) is this process's own import, from an allow-list;
- a fixture name (a helper the assignment's ``fixtures.py`` defines) is the grader's own
  object, made inside the worker from that trusted file, never the notebook's name;
- ``seed`` and ``probes`` are bound by the harness.

Every reply carries the worker's record of what the call ran; while a recording span is
open (:meth:`ProxyEnvironment.recording`) the records are collected for the judge.

Nothing from the worker is ever executed or unpickled here: results are decoded data only.
Every failure inside the worker surfaces as a :class:`SubmissionFailure` with a message for
the student.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..core.catalogue import _
from ..core.errors import Outcome, SubmissionFailure
from ..sandbox import (
    CallRecord,
    CallTimeout,
    Handle,
    StudentCodeError,
    WireError,
    WorkerDied,
    WorkerSession,
)
from .testfiles import ALLOWED_MODULES

STUDENT_TRACEBACK_LINES = 12


def _short_traceback(text: str) -> str:
    lines = [line for line in (text or "").rstrip().splitlines() if line.strip()]
    return "\n".join(lines[-STUDENT_TRACEBACK_LINES:])


def _failure(exc: Exception, what: str, timeout_s: float) -> SubmissionFailure:
    if isinstance(exc, StudentCodeError) and exc.error_type == "WireError":
        return SubmissionFailure(
            _("{what}: your code returned something that cannot be passed on for checking "
              "({error})").format(what=what, error=exc.message),
            Outcome.ERROR,
        )
    if isinstance(exc, StudentCodeError):
        trace = _short_traceback(exc.traceback)
        message = _("{what}: your code raised {error_type}: {error}").format(
            what=what, error_type=exc.error_type, error=exc.message)
        return SubmissionFailure(f"{message}\n{trace}" if trace else message, Outcome.ERROR)
    if isinstance(exc, CallTimeout):
        return SubmissionFailure(
            _("{what}: did not finish within {timeout_s:g} s (an endless loop or code that is "
              "too slow?); the process running your code was restarted").format(
                what=what, timeout_s=timeout_s),
            Outcome.TIMEOUT,
        )
    if isinstance(exc, WorkerDied):
        return SubmissionFailure(
            _("{what}: the Python process running your code exited during the call ({error}); "
              "it was restarted, and the remaining tests still run").format(what=what, error=exc),
            Outcome.ERROR,
        )
    if isinstance(exc, WireError):
        return SubmissionFailure(
            _("{what}: your code returned something that cannot be checked ({error})").format(
                what=what, error=exc), Outcome.ERROR
        )
    raise exc


def _map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """Apply ``leaf`` inside lists, tuples and dict values, keeping the containers' types."""
    if isinstance(value, list):
        return [_map_leaves(v, leaf) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_leaves(v, leaf) for v in value)
    if isinstance(value, dict):
        return {k: _map_leaves(v, leaf) for k, v in value.items()}
    return leaf(value)


class RemoteCaller:
    """Shared plumbing: encode arguments, forward to the session, decode and wrap results."""

    def __init__(self, session: WorkerSession, call_timeout_s: float):
        self._session = session
        self._timeout_s = call_timeout_s
        self.records: list[CallRecord] | None = None  # collecting while not None

    def _collect(self) -> None:
        record = self._session.last_record
        if self.records is not None and record != CallRecord():
            self.records.append(record)

    def to_wire(self, value: Any) -> Any:
        """Replace proxies in arguments by the handles the worker knows them by."""
        return _map_leaves(value, self._leaf_to_wire)

    def from_wire(self, value: Any) -> Any:
        """Wrap handles in results as proxies; data stays data."""
        return _map_leaves(value, self._leaf_from_wire)

    def _leaf_to_wire(self, value: Any) -> Any:
        if isinstance(value, RemoteObject):
            return value.handle
        if isinstance(value, RemoteName):
            return self._handle_of(value.name)
        return value

    def _leaf_from_wire(self, value: Any) -> Any:
        return RemoteObject(self, value) if isinstance(value, Handle) else value

    def _handle_of(self, name: str) -> Handle:
        """A handle for a top-level function or class, fetched now (valid for this worker)."""
        try:
            handle = self._session.get(name, self._timeout_s)
        except Exception as exc:
            raise _failure(exc, _("passing {name}").format(name=name), self._timeout_s) from None
        if not isinstance(handle, Handle):
            raise SubmissionFailure(
                _("{name} in the notebook is no longer a function or a class").format(name=name))
        return handle

    def call(self, target: str | Handle, what: str, args: tuple, kwargs: dict) -> Any:
        """Call ``target`` in the worker."""
        try:
            result = self._session.call(
                target, self.to_wire(list(args)), self.to_wire(dict(kwargs)), self._timeout_s
            )
        except Exception as exc:
            self._collect()
            raise _failure(exc, what, self._timeout_s) from None
        self._collect()
        return self.from_wire(result)

    def getattr(self, target: str | Handle, name: str, what: str) -> Any:
        """Read attribute ``name`` of ``target`` in the worker.

        A missing attribute raises AttributeError here too, so ``getattr(obj, name, default)``
        and ``hasattr`` in tests behave as they do in the student's notebook.
        """
        try:
            result = self._session.getattr(target, name, self._timeout_s)
        except StudentCodeError as exc:
            self._collect()
            if exc.error_type == "AttributeError":
                raise AttributeError(f"{what}: {exc.message}") from None
            raise _failure(exc, what, self._timeout_s) from None
        except Exception as exc:
            raise _failure(exc, what, self._timeout_s) from None
        self._collect()
        return self.from_wire(result)

    def probe(self, name: str, args: tuple, kwargs: dict, module: str = "probes",
              timeout_s: float | None = None) -> Any:
        """Run function ``name`` of a trusted file (``probes`` or ``fixtures``) in the worker;
        ``timeout_s`` overrides the per-call budget (training a model takes minutes)."""
        limit = self._timeout_s if timeout_s is None else timeout_s
        what = {"probes": _("the check {name}").format(name=name),
                "fixtures": _("the helper object {name}").format(name=name),
                "models": _("checking the saved model")}.get(module, name)
        try:
            result = self._session.probe(
                name, self.to_wire(list(args)), self.to_wire(dict(kwargs)), limit, module=module,
            )
        except StudentCodeError as exc:
            self._collect()
            if exc.error_type == "WeightsError":  # the model loader's own, clear message
                raise SubmissionFailure(exc.message, Outcome.ERROR) from None
            raise _failure(exc, what, self._timeout_s) from None
        except Exception as exc:
            self._collect()
            raise _failure(exc, what, self._timeout_s) from None
        self._collect()
        return self.from_wire(result)


class RemoteName:
    """A top-level function or class of the student's notebook, living in the worker."""

    def __init__(self, caller: RemoteCaller, name: str, kind: str):
        self._caller = caller
        self.name = name
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        what = _("calling {name}(...)").format(name=self.name)
        return self._caller.call(self.name, what, args, kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._caller.getattr(self.name, attr, f"{self.name}.{attr}")

    def __repr__(self) -> str:
        return f"<remote {self.kind} {self.name}>"


class RemoteObject:
    """An object that stays in the worker (a model, an optimizer, anything not data)."""

    def __init__(self, caller: RemoteCaller, handle: Handle):
        self._caller = caller
        self.handle = handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        what = _("calling an object of type {type_name}").format(
            type_name=self.handle.type_name)
        return self._caller.call(self.handle, what, args, kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in {"_caller", "handle"}:
            raise AttributeError(attr)
        return self._caller.getattr(self.handle, attr, f"{self.handle.type_name}.{attr}")

    def __repr__(self) -> str:
        return f"<remote {self.handle.type_name}>"


class RemoteProbes:
    """``probes.<name>(...)``: the assignment's probe functions, run inside the worker."""

    def __init__(self, caller: RemoteCaller):
        self._caller = caller

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._caller.probe(name, args, kwargs)


class RemoteFixture:
    """A helper of the assignment's ``fixtures.py`` (a class or function), made in the worker.

    Calling it calls the trusted definition there; what comes back is data or a proxy.
    """

    def __init__(self, caller: RemoteCaller, name: str):
        self._caller = caller
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._caller.probe(self.name, args, kwargs, module="fixtures")

    def __repr__(self) -> str:
        return f"<fixture {self.name}>"


class ProxyEnvironment(Mapping[str, Any]):
    """The global environment tests are bound from while grading (otter calls ``.get``)."""

    def __init__(self, session: WorkerSession, seed: int, call_timeout_s: float,
                 fixtures: frozenset[str] = frozenset()):
        self._session = session
        self._caller = RemoteCaller(session, call_timeout_s)
        self._timeout_s = call_timeout_s
        self._bound: dict[str, Any] = {"seed": seed, "probes": RemoteProbes(self._caller)}
        self._bound.update({name: RemoteFixture(self._caller, name) for name in fixtures})
        self._kinds: dict[str, str] = {}

    @property
    def caller(self) -> RemoteCaller:
        """The plumbing the proxies use (for the harness's own requests, e.g. model accuracy)."""
        return self._caller

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[CallRecord]]:
        """Collect the worker's call records of every request made inside the block."""
        records: list[CallRecord] = []
        previous, self._caller.records = self._caller.records, records
        try:
            yield records
        finally:
            self._caller.records = previous

    def reported_source(self, name: str) -> str | None:
        """The source the worker reports for the object ``name`` is bound to (None: none)."""
        try:
            return self._session.describe([name], self._timeout_s)[name].source
        except Exception as exc:
            raise _failure(exc, _("looking up {name}").format(name=name),
                           self._timeout_s) from None

    def kind_of(self, name: str) -> str:
        """What ``name`` is in the student's namespace: function, class, data, module, missing."""
        if name not in self._kinds:
            try:
                info = self._session.describe([name], self._timeout_s)[name]
                self._kinds[name] = info.kind
            except Exception as exc:
                raise _failure(exc, _("looking up {name}").format(name=name),
                               self._timeout_s) from None
        return self._kinds[name]

    def is_defined(self, name: str) -> bool:
        """True when the notebook defined ``name`` (harness names are always defined)."""
        if name in self._bound or name in ALLOWED_MODULES:
            return True
        try:
            return self.kind_of(name) != "missing"
        except SubmissionFailure:
            return False

    def _resolve(self, name: str) -> Any:
        if name in ALLOWED_MODULES:
            return importlib.import_module(ALLOWED_MODULES[name])
        kind = self.kind_of(name)
        if kind in {"function", "class"}:
            return RemoteName(self._caller, name, kind)
        if kind == "missing":
            return None
        try:
            value = self._session.get(name, self._timeout_s)
        except Exception as exc:
            raise _failure(exc, _("the value of {name}").format(name=name),
                           self._timeout_s) from None
        return self._caller.from_wire(value)

    def __getitem__(self, name: str) -> Any:
        if name not in self._bound:
            self._bound[name] = self._resolve(name)
        return self._bound[name]

    def get(self, name: str, default: Any = None) -> Any:
        """otter's lookup: failures to reach the worker become a failing test, not a crash."""
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bound)

    def __len__(self) -> int:
        return len(self._bound)

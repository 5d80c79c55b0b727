"""The worker: the only code that runs student notebooks. It runs inside the sandbox.

It executes cells into one namespace (a real ``__main__`` module) and answers requests from
the trusted side over two inherited pipe fds, one frame per message (see :mod:`.messages`).
fd 1 and 2 are the student's output; the parent drains them. After each request the worker
writes a sync marker to fd 1 so the parent can cut the output at the right place.

Nothing here is trusted by the parent: the student's code can patch this module. It exists
to be convenient and well-behaved for honest code; the parent's checks do the rest.
Start-up stays light: no numpy, torch, IPython or nbformat until the notebook asks.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import linecache
import os
import signal
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import definitions, tracing, wire
from .definitions import DefinedCode
from .imports import explain, install_import_guard
from .messages import (
    REQUESTS,
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
    Raised,
    Ready,
    RunCell,
    Value,
    decode_message,
    encode_message,
    output_marker,
)
from .tracing import Recorder

MAX_TEXT_CHARS = 20_000  # error messages, tracebacks, sources sent back
# Trusted code, loaded on first use: the assignment's probes and fixtures, and this package's
# model loader (weights_only loading, inference for the harness's accuracy).
TRUSTED_MODULES = ("probes", "fixtures", "models")
_HIDDEN_FILES = {__file__, tracing.__file__, definitions.__file__}  # frames never shown
# Taken before any student code runs, so that patching the class changes nothing we call.
_RECORD, _SNAPSHOT = Recorder.record, Recorder.snapshot


@dataclass(frozen=True)
class Options:
    """Start-up options, from the command line the launcher builds."""

    request_fd: int
    reply_fd: int
    generation: int
    marker: bytes  # output sync marker prefix
    probes: str | None
    max_bytes: int
    fixtures: str | None = None
    watch: frozenset[str] = frozenset()  # recorders to install: "numpy", "torch"
    packages: tuple[str, ...] | None = None  # importable beyond the stdlib (None: all)
    blocked: tuple[str, ...] = ()  # top-level names present on disk but not allowed
    landlock: str | None = None  # rules file to confine this process with (the uid level)
    seccomp_fd: int | None = None  # an fd holding the system-call filter to load (BPF)

    @classmethod
    def parse(cls, argv: list[str]) -> Options:
        """Parse ``--key=value`` arguments; unknown or missing keys are errors."""
        raw = dict(arg.removeprefix("--").split("=", 1) for arg in argv)
        known = {"request-fd", "reply-fd", "generation", "marker", "probes", "max-bytes",
                 "fixtures", "watch", "packages", "blocked", "landlock", "seccomp-fd"}
        if set(raw) - known or not {"request-fd", "reply-fd", "generation", "marker"} <= set(raw):
            raise SystemExit(f"worker: bad arguments {sorted(raw)}; expected {sorted(known)}")

        def names(key: str) -> tuple[str, ...]:
            return tuple(n for n in raw.get(key, "").split(",") if n)

        return cls(
            request_fd=int(raw["request-fd"]),
            reply_fd=int(raw["reply-fd"]),
            generation=int(raw["generation"]),
            marker=raw["marker"].encode(),
            probes=raw.get("probes") or None,
            max_bytes=int(raw.get("max-bytes", wire.DEFAULT_CAPS.max_bytes)),
            fixtures=raw.get("fixtures") or None,
            watch=frozenset(names("watch")),
            packages=names("packages") if "packages" in raw else None,
            blocked=names("blocked"),
            landlock=raw.get("landlock") or None,
            seccomp_fd=int(raw["seccomp-fd"]) if "seccomp-fd" in raw else None,
        )


class StaleHandle(LookupError):
    """A handle from an earlier worker, or one this worker never gave out."""


class Refused(Exception):
    """The cell uses syntax the grader will not run (a cell magic)."""


class ObjectTable:
    """Objects the codec cannot carry, kept here and named by :class:`wire.Handle`."""

    def __init__(self, generation: int):
        self.generation = generation
        self._objects: dict[int, object] = {}
        self._ids: dict[int, int] = {}  # id(obj) -> object id; stable: we hold the object

    def store(self, obj: object) -> wire.Handle:
        """The handle for ``obj`` (the same one each time the same object is stored)."""
        object_id = self._ids.get(id(obj))
        if object_id is None:
            object_id = len(self._objects) + 1
            self._objects[object_id] = obj
            self._ids[id(obj)] = object_id
        t = type(obj)
        return wire.Handle(self.generation, object_id, f"{t.__module__}.{t.__qualname__}")

    def resolve(self, handle: wire.Handle) -> object:
        """The object behind ``handle``; :class:`StaleHandle` if this worker lacks it."""
        if handle.worker_generation != self.generation:
            raise StaleHandle(
                f"this {handle.type_name} object belonged to an earlier run of the notebook "
                f"(worker {handle.worker_generation}, now {self.generation}): the worker was "
                "restarted after a timeout or crash, so objects made before that are gone"
            )
        try:
            return self._objects[handle.object_id]
        except KeyError:
            raise StaleHandle(f"no object with id {handle.object_id} in this worker") from None


class Worker:
    """Serves requests until the request pipe closes or a shutdown arrives."""

    def __init__(self, options: Options, confinement: Confinement | None = None):
        self.options = options
        self.confinement = confinement or Confinement()
        self.caps = wire.Caps(max_bytes=options.max_bytes)
        self.table = ObjectTable(options.generation)
        self.namespace = _make_main_module().__dict__
        self.cells: list[tuple[str, str]] = []  # (filename, source) in the order run
        self._armed = False
        self._trusted: dict[str, types.ModuleType] = {}
        self.recorder = Recorder(options.watch, check=self._tampering)
        self.definitions = DefinedCode()
        self._grader_modules: dict[str, types.ModuleType] = {}
        if options.packages is not None:
            install_import_guard(options.packages, options.blocked)
        self._requests = open(options.request_fd, "rb", buffering=0, closefd=False)
        self._replies = open(options.reply_fd, "wb", buffering=0, closefd=False)
        for fd in (options.request_fd, options.reply_fd):
            os.set_inheritable(fd, False)  # not into subprocesses the student starts
        self._handlers: dict[type, Callable[[Any], Message]] = {
            RunCell: self.run_cell,
            Call: self.call,
            GetAttr: self.get_attr,
            Get: self.get,
            Probe: self.probe,
            Describe: self.describe,
        }

    # --------------------------------------------------------------------- the loop

    def serve(self) -> int:
        """Answer requests; return the process exit status."""
        self._send(Ready(0, self.options.generation, self.confinement.landlock_abi,
                         int(self.confinement.seccomp)))
        while True:
            try:
                payload = wire.read_frame(self._requests, self.caps.max_bytes)
            except EOFError:
                return 0
            request = decode_message(payload, REQUESTS, caps=self.caps)
            reply = self._dispatch(request)
            self._armed = False
            self._sync_output(request.id)
            self._send(reply)

    def _dispatch(self, request: Message) -> Message:
        try:
            return self._handlers[type(request)](request)
        except KeyboardInterrupt:  # landed just outside the student's code
            self._armed = False
            if isinstance(request, RunCell):
                return CellDone(request.id, CellStatus.INTERRUPTED, "KeyboardInterrupt",
                                "the cell was interrupted", "", [])
            return Raised(request.id, "KeyboardInterrupt", "the call was interrupted", "",
                          _SNAPSHOT(self.recorder))

    def _send(self, reply: Message) -> None:
        try:
            data = encode_message(reply, caps=self.caps, fallback=self.table.store)
        except Exception as exc:  # noqa: BLE001 - anything the result's objects raise
            reason = "too large or not sendable" if isinstance(exc, wire.WireError) else "failed"
            message = f"the result could not be sent back ({reason}): {_safe_str(exc)}"
            data = encode_message(Raised(reply.id, type(exc).__name__, _clip(message), ""))
        wire.write_frame(self._replies, data)

    def _sync_output(self, request_id: int) -> None:
        for stream in (sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream: nothing to flush
                pass
        try:
            os.write(1, output_marker(self.options.marker, request_id))
        except OSError:
            pass  # fd 1 closed by the student: the parent stops waiting after a while

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self._armed:
            raise KeyboardInterrupt

    def _student(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (student code) with SIGINT turned into KeyboardInterrupt."""
        signal.signal(signal.SIGINT, self._on_sigint)  # the student may have replaced it
        self._armed = True
        try:
            return fn()
        finally:
            self._armed = False

    # --------------------------------------------------------------------- cells

    def run_cell(self, req: RunCell) -> CellDone:
        """Execute one cell; report OK, ERROR, INTERRUPTED or REFUSED."""
        filename = f"<cell-{req.index}>"
        linecache.cache[filename] = (len(req.source), None, req.source.splitlines(True), filename)
        try:
            code, last, notes, tree = compile_cell(req.source, filename)
        except Refused as exc:
            return CellDone(req.id, CellStatus.REFUSED, "CellMagic", str(exc), "", [])
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
            text = "".join(traceback.format_exception_only(type(exc), exc))
            return CellDone(req.id, CellStatus.ERROR, type(exc).__name__, _safe_str(exc),
                            _clip(text), [])
        self.cells.append((filename, req.source))
        try:
            self.recorder.install()  # before the first student cell: nothing is captured yet
        except Exception:  # noqa: BLE001 - a broken library: calls are then simply unwatched
            pass
        self._hide_grader_modules()
        try:
            self._student(lambda: self._exec(code, last))
        except KeyboardInterrupt as exc:
            self.definitions.after_cell(tree, code, self.namespace, req.index + 1,
                                        complete=False)
            return self._cell_error(req, CellStatus.INTERRUPTED, exc, notes)
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: an error of this cell
            self.definitions.after_cell(tree, code, self.namespace, req.index + 1,
                                        complete=False)
            return self._cell_error(req, CellStatus.ERROR, exc, notes)
        self.definitions.after_cell(tree, code, self.namespace, req.index + 1)
        return CellDone(req.id, CellStatus.OK, "", "", "", notes)

    def _hide_grader_modules(self) -> None:
        """Take the grader's own modules out of ``sys.modules`` before student code, keeping
        them here: a cell that looks them up by name (``sys.modules["autograder..."]``) finds
        nothing. Frames and the garbage collector still lead to them; the harness's reading
        of every cell is what decides."""
        for name in [n for n in sys.modules if _is_grader_module(n)]:
            self._grader_modules[name] = sys.modules.pop(name)

    @contextlib.contextmanager
    def _grader_visible(self) -> Iterator[None]:
        """The grader's modules back in ``sys.modules`` while trusted code is imported (its
        relative imports need the package); hidden again after, new ones included."""
        sys.modules.update(self._grader_modules)
        try:
            yield
        finally:
            self._hide_grader_modules()

    def _tampering(self) -> list[str]:
        """What the notebook's definitions show at a recorded call (see DefinedCode)."""
        return sorted(self.definitions.notes) + self.definitions.changes(self.namespace)

    def _exec(self, code: types.CodeType, last: types.CodeType | None) -> None:
        exec(code, self.namespace)
        if last is not None:
            value = eval(last, self.namespace)
            if value is not None:
                print(repr(value))

    def _cell_error(self, req: RunCell, status: CellStatus, exc: BaseException,
                    notes: list[str]) -> CellDone:
        message = explain(exc, self.options.packages) or _safe_str(exc)
        if isinstance(exc, SystemExit):
            message = f"the cell called exit({exc.code!r}); the rest of the cell did not run"
        return CellDone(req.id, status, type(exc).__name__, _clip(message),
                        student_traceback(exc), notes)

    # --------------------------------------------------------------------- calls

    def call(self, req: Call) -> Message:
        """Call a notebook name or a handle's object, recording what it ran."""
        def run() -> Any:
            target = self._target(req.target)
            return target(*self._resolve(req.args), **self._resolve(req.kwargs))
        return self._value_reply(req.id, run, recorded=True)

    def get_attr(self, req: GetAttr) -> Message:
        """Read an attribute of a notebook name or a handle's object (properties recorded)."""
        return self._value_reply(req.id, lambda: getattr(self._target(req.target), req.name),
                                 recorded=True)

    def get(self, req: Get) -> Message:
        """Read a top-level notebook name."""
        return self._value_reply(req.id, lambda: self._target(req.name))

    def probe(self, req: Probe) -> Message:
        """Call a function of a trusted module (probes, fixtures) with resolved arguments."""
        def run() -> Any:
            fn = self._trusted_function(req.module, req.name)
            return fn(*self._resolve(req.args), **self._resolve(req.kwargs))
        return self._value_reply(req.id, run, recorded=True)

    def _value_reply(self, request_id: int, fn: Callable[[], Any], *,
                     recorded: bool = False) -> Message:
        record: dict[str, list[str]] = {}
        try:
            if recorded:
                value, record = self._student(lambda: _RECORD(self.recorder, fn))
            else:
                value = self._student(fn)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never fatal
            record = getattr(exc, "call_record", record)
            if not isinstance(record, dict):
                record = {}
            message = explain(exc, self.options.packages) or _safe_str(exc)
            return Raised(request_id, type(exc).__name__, _clip(message),
                          student_traceback(exc), record)
        return Value(request_id, value, record)

    def _target(self, target: str | wire.Handle) -> Any:
        if isinstance(target, wire.Handle):
            return self.table.resolve(target)
        try:
            return self.namespace[target]
        except KeyError:
            raise NameError(f"name {target!r} is not defined in the notebook") from None

    def _resolve(self, value: Any) -> Any:
        """Replace handles by their objects, inside the containers the codec makes."""
        t = type(value)
        if t is wire.Handle:
            return self.table.resolve(value)
        if t is list:
            return [self._resolve(v) for v in value]
        if t is tuple:
            return tuple(self._resolve(v) for v in value)
        if t is dict:
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    def _trusted_function(self, module_name: str, name: str) -> Callable[..., Any]:
        if module_name not in TRUSTED_MODULES:
            raise LookupError(f"no trusted module {module_name!r}")
        module = self._trusted.get(module_name)
        if module is None:
            with self._grader_visible():
                module = self._trusted[module_name] = self._load_trusted(module_name)
        fn = getattr(module, name, None)
        if name.startswith("_") or not callable(fn):
            raise AttributeError(f"the {module_name} module has no function {name!r}")
        return fn

    def _load_trusted(self, module_name: str) -> types.ModuleType:
        import importlib.util

        if module_name == "models":
            from . import models

            _HIDDEN_FILES.add(models.__file__)
            return models
        path = self.options.probes if module_name == "probes" else self.options.fixtures
        if not path:
            raise LookupError(f"no {module_name} file was given to this worker")
        qualified = f"autograder_{module_name}"
        spec = importlib.util.spec_from_file_location(qualified, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the {module_name} file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        _HIDDEN_FILES.add(path)
        spec.loader.exec_module(module)
        return module

    # --------------------------------------------------------------------- describe

    def describe(self, req: Describe) -> Message:
        """Report kind, type, signature and source of each requested name."""
        def run() -> dict[str, dict[str, Any]]:
            return {name: self._describe_one(name) for name in req.names
                    if type(name) is str}
        try:
            names = self._student(run)
        except BaseException as exc:  # noqa: BLE001
            return Raised(req.id, type(exc).__name__, _clip(_safe_str(exc)),
                          student_traceback(exc))
        return Described(req.id, names)

    def _describe_one(self, name: str) -> dict[str, Any]:
        import inspect

        if name not in self.namespace:
            return {"kind": NameKind.MISSING.value, "type_name": "", "signature": None,
                    "source": None}
        obj = self.namespace[name]
        kind = _kind_of(obj, inspect)
        signature = source = None
        if kind in (NameKind.FUNCTION, NameKind.CLASS):
            try:
                signature = str(inspect.signature(obj))
            except (TypeError, ValueError):
                signature = None
            source = self._source_of(obj, inspect)
        t = type(obj)
        return {"kind": kind.value, "type_name": f"{t.__module__}.{t.__qualname__}",
                "signature": signature, "source": source}

    def _source_of(self, obj: Any, inspect: Any) -> str | None:
        if isinstance(obj, type):  # Python 3.11 cannot find classes defined in exec'd code
            return self._class_source(obj.__name__)
        try:
            return _clip(inspect.getsource(obj))
        except (OSError, TypeError):
            return None

    def _class_source(self, name: str) -> str | None:
        for _, source in reversed(self.cells):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and node.name == name:
                    segment = ast.get_source_segment(source, node)
                    return _clip(segment) if segment else None
        return None


# ----------------------------------------------------------------------------- helpers


def compile_cell(source: str, filename: str) -> tuple[types.CodeType, types.CodeType | None,
                                                      list[str], ast.Module]:
    """Compile a cell: the body, its last expression (shown like a notebook), notes, and the
    tree of the body (what :class:`DefinedCode` fingerprints).

    IPython syntax is only looked at when the cell is not valid Python: a ``%%`` cell magic
    refuses the whole cell; ``%`` and ``!`` lines become ``pass`` with a note.
    """
    notes: list[str] = []
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as first:
        stripped, notes = strip_magics(source)
        if not notes:
            raise
        try:
            tree = ast.parse(stripped, filename)
        except SyntaxError:
            raise first from None
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        expr = ast.Expression(tree.body.pop().value)
        last = compile(expr, filename, "eval", dont_inherit=True)
    return compile(tree, filename, "exec", dont_inherit=True), last, notes, tree


def strip_magics(source: str) -> tuple[str, list[str]]:
    """Replace IPython ``%`` / ``!`` lines by ``pass``; raise :class:`Refused` on ``%%``."""
    lines = source.splitlines(keepends=True)
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("%%"):
        raise Refused(
            f"the cell magic {first.split()[0]} is not run by the grader; "
            "remove it so the cell is plain Python"
        )
    notes: list[str] = []
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        body = line.lstrip()
        if body.startswith(("%", "!")):
            indent = line[: len(line) - len(body)]
            out.append(f"{indent}pass\n")
            shown = body.strip()[:80]
            notes.append(f"line {number}: `{shown}` was not run "
                         "(magics and shell commands are not run by the grader)")
        else:
            out.append(line)
    return "".join(out), notes


def student_traceback(exc: BaseException) -> str:
    """The traceback without the worker's (or the probes') frames, clipped."""
    try:
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
        _drop_hidden_frames(te, set())
        return _clip("".join(te.format()), keep_end=True)
    except Exception:  # noqa: BLE001 - student exceptions can break formatting
        return f"{type(exc).__name__} (traceback unavailable)"


def _drop_hidden_frames(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    kept = [f for f in te.stack if f.filename not in _HIDDEN_FILES]
    te.stack = traceback.StackSummary.from_list(kept)
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _drop_hidden_frames(chained, seen)


def _kind_of(obj: Any, inspect: Any) -> NameKind:
    if isinstance(obj, types.ModuleType):
        return NameKind.MODULE
    if isinstance(obj, type):
        return NameKind.CLASS
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj):
        return NameKind.FUNCTION
    if type(obj) in (type(None), bool, int, float, str, bytes, list, tuple, dict):
        return NameKind.DATA
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if np is not None and isinstance(obj, np.ndarray | np.generic):
        return NameKind.DATA
    if torch is not None and isinstance(obj, torch.Tensor):
        return NameKind.DATA
    return NameKind.OTHER


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001
        return f"<{type(exc).__name__} whose message cannot be shown>"


def _clip(text: str, *, keep_end: bool = False) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    if keep_end:
        return "[... clipped ...]\n" + text[-MAX_TEXT_CHARS:]
    return text[:MAX_TEXT_CHARS] + "\n[... clipped ...]"


def display(*objects: Any, **_: Any) -> None:
    """Stand-in for IPython's ``display``: prints each object's repr."""
    for obj in objects:
        print(repr(obj))


def _is_grader_module(name: str) -> bool:
    return name == "autograder" or name.startswith(("autograder.", "autograder_"))


def _make_main_module() -> types.ModuleType:
    """A fresh ``__main__`` whose dict is the notebook namespace (so pickling finds classes)."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    module.__dict__["display"] = display
    sys.modules["__main__"] = module
    return module


@dataclass(frozen=True)
class Confinement:
    """What this worker confined itself with before any student code (said in ``ready``)."""

    landlock_abi: int = 0
    seccomp: bool = False


def main(argv: list[str]) -> int:
    """Entry point: ``python -I ... -c <bootstrap> --request-fd=N --reply-fd=M ...``."""
    options = Options.parse(argv)
    sys.argv = [""]  # like a kernel: the notebook does not see the worker's arguments
    confinement = confine(options)
    return Worker(options, confinement).serve()


def confine(options: Options) -> Confinement:
    """Apply the Landlock rules, then the system-call filter, before any student code;
    exit rather than run less confined than the launcher asked."""
    landlock_abi = 0
    if options.landlock is not None:
        from . import landlock

        landlock_abi = _or_exit("the Landlock ruleset",
                                lambda: landlock.apply(landlock.Rules.load(options.landlock)))
    if options.seccomp_fd is not None:
        from . import seccomp

        _or_exit("the system-call filter", lambda: seccomp.apply(_read_fd(options.seccomp_fd)))
    return Confinement(landlock_abi, options.seccomp_fd is not None)


def _read_fd(fd: int) -> bytes:
    """Everything in the inherited file ``fd`` (then closed: student code never sees it)."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _or_exit(what: str, apply: Callable[[], Any]) -> Any:
    try:
        return apply()
    except Exception as exc:  # noqa: BLE001 - any failure: refuse to serve
        print(f"worker: {what} could not be applied ({type(exc).__name__}: {exc}); refusing "
              "to run student code less confined than the grader promised", file=sys.stderr,
              flush=True)
        raise SystemExit(3) from None

"""Request and reply messages between the trusted side and the worker.

Every message is a frozen dataclass with a class-level ``kind``; on the wire it is a dict
``{"kind": ..., <fields>}`` encoded with :mod:`.wire`. Every request carries an ``id`` that
its reply echoes. Decoding checks the kind against the set the reader expects and every
field's type; anything else is a :class:`ProtocolError` naming the offending kind or field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar

from . import wire
from .wire import Handle, SandboxError

__all__ = [
    "REPLIES",
    "REQUESTS",
    "Call",
    "CellDone",
    "CellStatus",
    "Describe",
    "Described",
    "Get",
    "GetAttr",
    "Message",
    "NameKind",
    "Probe",
    "ProtocolError",
    "Raised",
    "Ready",
    "RunCell",
    "Value",
    "decode_message",
    "encode_message",
    "output_marker",
]


class ProtocolError(SandboxError):
    """A message that is well-formed data but not a valid message here (kind, field, id)."""


class CellStatus(StrEnum):
    """How a cell ended. The worker reports the first four; the parent adds the last two."""

    OK = "ok"
    ERROR = "error"  # the cell raised (SyntaxError and SystemExit included)
    INTERRUPTED = "interrupted"  # KeyboardInterrupt after the parent's SIGINT
    REFUSED = "refused"  # a cell magic (%%...) or other syntax the grader will not run
    TIMEOUT = "timeout"  # parent: the cell ran past its deadline
    DIED = "died"  # parent: the worker process ended while running the cell


class NameKind(StrEnum):
    """What a notebook name refers to, as reported by ``describe``."""

    FUNCTION = "function"
    CLASS = "class"
    DATA = "data"  # a value the codec carries as data (numbers, strings, arrays, ...)
    MODULE = "module"
    OTHER = "other"  # any other object (a model instance, a generator, ...)
    MISSING = "missing"


class Message:
    """Base of all messages; subclasses are frozen dataclasses with a ``kind``."""

    kind: ClassVar[str]
    id: int


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RunCell(Message):
    """Execute one code cell in the notebook namespace."""

    kind: ClassVar[str] = "run_cell"
    id: int
    index: int
    source: str


@dataclass(frozen=True)
class Call(Message):
    """Call a top-level notebook name or a handle's object with arguments."""

    kind: ClassVar[str] = "call"
    id: int
    target: str | Handle
    args: list
    kwargs: dict


@dataclass(frozen=True)
class GetAttr(Message):
    """Read an attribute of a notebook name or a handle's object."""

    kind: ClassVar[str] = "getattr"
    id: int
    target: str | Handle
    name: str


@dataclass(frozen=True)
class Get(Message):
    """Read the value of a top-level notebook name."""

    kind: ClassVar[str] = "get"
    id: int
    name: str


@dataclass(frozen=True)
class Probe(Message):
    """Call function ``name`` of a trusted module (``probes`` or ``fixtures``) with
    arguments (handles in them are resolved)."""

    kind: ClassVar[str] = "probe"
    id: int
    module: str
    name: str
    args: list
    kwargs: dict


@dataclass(frozen=True)
class Describe(Message):
    """Report what each notebook name is (see :class:`NameKind`)."""

    kind: ClassVar[str] = "describe"
    id: int
    names: list


# ----------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Ready(Message):
    """Sent once by a worker that has started (id 0); not a reply to a request.

    Sent before any student code ran, so what it says of the worker's own confinement is
    the worker's honest account (the session also checks the filter from outside).
    """

    kind: ClassVar[str] = "ready"
    id: int
    generation: int
    landlock_abi: int = 0  # the Landlock ABI of the ruleset the worker applied (0: none)
    seccomp: int = 0  # 1: the worker loaded the system-call filter


@dataclass(frozen=True)
class CellDone(Message):
    """A cell's result. Its output is captured by the parent, not reported here."""

    kind: ClassVar[str] = "cell_done"
    id: int
    status: CellStatus
    error_type: str
    error_message: str
    traceback: str
    notes: list


@dataclass(frozen=True)
class Value(Message):
    """A call/getattr/get/probe result (unencodable objects arrive as handles).

    ``record``: what the call ran (see :mod:`.tracing`): lists ``routines``, ``modules``,
    ``tampered``; empty when nothing is watched.
    """

    kind: ClassVar[str] = "value"
    id: int
    data: Any
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Raised(Message):
    """The student's code (or a stale handle, or an unsendable result) raised."""

    kind: ClassVar[str] = "raised"
    id: int
    error_type: str
    error_message: str
    traceback: str
    record: dict = field(default_factory=dict)  # what ran before it raised


@dataclass(frozen=True)
class Described(Message):
    """Answer to :class:`Describe`: name -> {kind, type_name, signature, source}."""

    kind: ClassVar[str] = "described"
    id: int
    names: dict


def output_marker(token: bytes, request_id: int | None = None) -> bytes:
    """What the worker writes to fd 1 after request ``request_id`` (None: the prefix only).

    Output before it belongs to that request; the parent strips it from what it keeps.
    """
    prefix = b"\x00AGSYNC:" + token + b":"
    return prefix if request_id is None else prefix + b"%d\x00" % request_id


REQUESTS: dict[str, type[Message]] = {
    cls.kind: cls for cls in (RunCell, Call, GetAttr, Get, Probe, Describe)
}
REPLIES: dict[str, type[Message]] = {
    cls.kind: cls for cls in (Ready, CellDone, Value, Raised, Described)
}

# Field checks, keyed by the annotation text (annotations are strings here).
_CHECKS: dict[str, Any] = {
    "int": lambda v: type(v) is int,
    "str": lambda v: type(v) is str,
    "str | Handle": lambda v: type(v) in (str, Handle),
    "list": lambda v: type(v) is list,
    "dict": lambda v: type(v) is dict,
    "Any": lambda v: True,
    "CellStatus": lambda v: v in _CELL_STATUSES,
}
_CELL_STATUSES = frozenset(s.value for s in CellStatus)


def encode_message(msg: Message, *, caps: wire.Caps = wire.DEFAULT_CAPS,
                   fallback: wire.Fallback | None = None) -> bytes:
    """Encode a message; ``fallback`` turns unsendable payload values into handles."""
    body: dict[str, Any] = {"kind": msg.kind}
    for f in fields(msg):  # type: ignore[arg-type]
        value = getattr(msg, f.name)
        body[f.name] = value.value if isinstance(value, StrEnum) else value
    return wire.encode(body, caps=caps, fallback=fallback)


def decode_message(data: bytes, expected: dict[str, type[Message]], *,
                   caps: wire.Caps = wire.DEFAULT_CAPS) -> Message:
    """Decode bytes into one of the ``expected`` message classes, checking every field."""
    body = wire.decode(data, caps=caps)
    if type(body) is not dict or type(body.get("kind")) is not str:
        raise ProtocolError("a message must be a dict with a string 'kind'")
    kind = body.pop("kind")
    cls = expected.get(kind)
    if cls is None:
        raise ProtocolError(f"unexpected message kind {kind!r} (expected {sorted(expected)})")
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if set(body) != set(names):
        raise ProtocolError(f"{kind} message has fields {sorted(body, key=str)}, expected {names}")
    for f in fields(cls):  # type: ignore[arg-type]
        value = body[f.name]
        if not _CHECKS[str(f.type)](value):
            raise ProtocolError(f"{kind}.{f.name} has the wrong type: {type(value).__name__}")
    if "status" in body:
        body["status"] = CellStatus(body["status"])
    return cls(**body)

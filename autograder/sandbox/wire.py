"""The typed, size-capped codec: the only format that crosses the sandbox boundary.

msgpack carries the bytes; on top of it every msgpack array is a *tagged node*
``[TAG, ...]`` (a list, a tuple, a dict, an array, a tensor, a numpy scalar or a
:class:`Handle`), and msgpack maps and ext types are refused outright. Decoding walks the
nodes bottom-up in msgpack's ``list_hook``, so caps on element count and nesting depth hold
while the message is being built, not after. Nothing here executes code chosen by the sender:
no pickle, no eval, no ext hooks; dtypes come from fixed allow-lists.

numpy and torch are imported lazily: the encoder only looks for them in ``sys.modules`` (a
value of their type cannot exist unless they were imported), and the decoder imports them
only when an array or tensor node appears.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgpack

__all__ = [
    "Caps",
    "DEFAULT_CAPS",
    "FrameBuffer",
    "Handle",
    "SandboxError",
    "WireError",
    "decode",
    "encode",
    "read_frame",
    "write_frame",
]

MIB = 1 << 20
HEADER = struct.Struct(">Q")  # 8-byte big-endian body length

# Node tags: the first element of every msgpack array on the wire.
TAG_LIST, TAG_TUPLE, TAG_DICT, TAG_NDARRAY, TAG_NPSCALAR, TAG_TENSOR, TAG_HANDLE = range(7)
TAG_NAMES = ("list", "tuple", "dict", "ndarray", "numpy scalar", "tensor", "handle")

NUMPY_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 "
    "float16 float32 float64 complex64 complex128".split()
)
TORCH_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 "
    "float16 bfloat16 float32 float64 complex64 complex128".split()
)
MAX_NDIM = 64
INT_MIN, UINT_MAX = -(1 << 63), (1 << 64) - 1
KEY_SCALARS = (str, int, float, bool, type(None))


class SandboxError(Exception):
    """Base of every error raised by :mod:`autograder.sandbox`."""


class WireError(SandboxError, ValueError):
    """A value cannot be encoded, or bytes are not a valid message (named by type or tag)."""


@dataclass(frozen=True)
class Handle:
    """Stands for an object that stays inside the worker (a model, a generator, ...).

    ``worker_generation`` is the start count of the worker that made it: after a restart the
    object is gone and the handle is stale.
    """

    worker_generation: int
    object_id: int
    type_name: str


@dataclass(frozen=True)
class Caps:
    """Limits on one message: total bytes, nesting depth, number of elements."""

    max_bytes: int = 256 * MIB
    max_depth: int = 64
    max_elements: int = 4_000_000


DEFAULT_CAPS = Caps()

Fallback = Callable[[object], Handle]


# ----------------------------------------------------------------------------- encoding


def encode(value: Any, *, caps: Caps = DEFAULT_CAPS, fallback: Fallback | None = None) -> bytes:
    """Encode ``value`` to bytes, or raise :class:`WireError` naming what cannot be sent.

    ``fallback`` (used inside the worker) turns any value the codec cannot carry into a
    :class:`Handle` instead of failing; size and depth caps still fail.
    """
    tree = _Encoder(caps, fallback).node(value, 0)
    try:
        data = msgpack.packb(tree, use_bin_type=True, strict_types=True, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:  # our tree is plain: a bug if hit
        raise WireError(f"could not pack the message: {exc}") from None
    if len(data) > caps.max_bytes:
        raise WireError(_too_big(len(data), caps))
    return data


def _too_big(size: int, caps: Caps) -> str:
    return (
        f"message of {size} bytes exceeds the cap of {caps.max_bytes} bytes; "
        "send less data per call (or raise Caps.max_bytes)"
    )


class _Encoder:
    """One encoding pass: converts a value to a tree of msgpack-native objects."""

    def __init__(self, caps: Caps, fallback: Fallback | None):
        self.caps, self.fallback = caps, fallback
        self.size = 0
        self.elements = 0

    def _spend(self, nbytes: int) -> None:
        self.size += nbytes
        if self.size > self.caps.max_bytes:
            raise WireError(_too_big(self.size, self.caps))

    def node(self, x: Any, depth: int) -> Any:
        if depth > self.caps.max_depth:
            raise WireError(f"nesting deeper than {self.caps.max_depth} levels (a cycle?)")
        self.elements += 1
        if self.elements > self.caps.max_elements:
            raise WireError(f"more than {self.caps.max_elements} elements in one message")
        t = type(x)
        if x is None or t is bool or t is float:
            return x
        if t is int:
            if not INT_MIN <= x <= UINT_MAX:
                return self._refuse(x, "int outside the int64/uint64 range")
            return x
        if t is str or t is bytes:
            self._spend(len(x))
            return x
        if t is list or t is tuple:
            tag = TAG_LIST if t is list else TAG_TUPLE
            return [tag, *(self.node(item, depth + 1) for item in x)]
        if t is dict:
            return self._dict(x, depth)
        if t is Handle:
            return [TAG_HANDLE, x.worker_generation, x.object_id, x.type_name]
        return self._other(x, depth)

    def _dict(self, x: dict, depth: int) -> list:
        out: list[Any] = [TAG_DICT]
        for key, val in x.items():
            if not _valid_key(key):
                return self._refuse(x, f"dict key of type {type(key).__name__}")
            out.append(self.node(key, depth + 1))
            out.append(self.node(val, depth + 1))
        return out

    def _other(self, x: Any, depth: int) -> Any:
        np = sys.modules.get("numpy")
        if np is not None and isinstance(x, np.ndarray | np.generic):
            return self._numpy(np, x, depth)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(x, torch.Tensor):
            return self._tensor(torch, x)
        # Subclasses of plain types (OrderedDict, namedtuple, IntEnum, str subclasses) are
        # sent as their plain base type; their class does not cross.
        for base in (bool, int, float, str, bytes, tuple, list, dict):
            if isinstance(x, base):
                return self.node(base(x), depth)
        if isinstance(x, bytearray | memoryview):
            return self.node(bytes(x), depth)
        return self._refuse(x, "type not supported by the wire format")

    def _numpy(self, np: Any, x: Any, depth: int) -> Any:
        if isinstance(x, np.generic):
            if x.dtype.name not in NUMPY_DTYPES:
                if isinstance(x, str | bytes):
                    return self.node(str(x) if isinstance(x, str) else bytes(x), depth)
                return self._refuse(x, f"numpy dtype {x.dtype} is not allowed")
            self._spend(x.dtype.itemsize)
            return [TAG_NPSCALAR, x.dtype.name, _le_bytes(np, np.asarray(x))]
        if x.dtype.name not in NUMPY_DTYPES or x.dtype.hasobject:
            return self._refuse(x, f"numpy dtype {x.dtype} is not allowed")
        if type(x) is not np.ndarray:
            if isinstance(x, np.ma.MaskedArray):
                return self._refuse(x, "masked arrays are not supported")
            x = np.asarray(x)
        self._spend(x.nbytes)
        return [TAG_NDARRAY, x.dtype.name, [TAG_TUPLE, *x.shape], _le_bytes(np, x)]

    def _tensor(self, torch: Any, x: Any) -> Any:
        try:
            t = x.detach()
            if t.layout != torch.strided:
                t = t.to_dense()
            if t.device.type != "cpu":
                t = t.cpu()
            t = t.resolve_conj().resolve_neg().contiguous()
        except Exception as exc:  # meta / quantized / exotic tensors
            return self._refuse(x, f"tensor cannot be copied to dense CPU memory ({exc})")
        name = str(t.dtype).removeprefix("torch.")
        if name not in TORCH_DTYPES:
            return self._refuse(x, f"torch dtype {t.dtype} is not allowed")
        _require_little_endian()
        self._spend(t.numel() * t.element_size())
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return [TAG_TENSOR, name, [TAG_TUPLE, *t.shape], raw]

    def _refuse(self, x: Any, reason: str) -> Any:
        if self.fallback is not None:
            h = self.fallback(x)
            return [TAG_HANDLE, h.worker_generation, h.object_id, h.type_name]
        raise WireError(f"cannot send a value of type {_type_name(x)}: {reason}")


def _le_bytes(np: Any, a: Any) -> bytes:
    """C-contiguous little-endian bytes of an array."""
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a).tobytes()


def _require_little_endian() -> None:
    if sys.byteorder != "little":
        raise WireError("tensors are only supported on little-endian machines")


def _valid_key(key: Any) -> bool:
    if type(key) in KEY_SCALARS:
        return True
    return type(key) is tuple and all(_valid_key(k) for k in key)


def _type_name(x: Any) -> str:
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


# ----------------------------------------------------------------------------- decoding


def decode(data: bytes, *, caps: Caps = DEFAULT_CAPS) -> Any:
    """Decode bytes made by :func:`encode`; raise :class:`WireError` on anything else."""
    if len(data) > caps.max_bytes:
        raise WireError(_too_big(len(data), caps))
    decoder = _Decoder(caps)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            list_hook=decoder.hook,
            object_pairs_hook=_refuse_map,
            strict_map_key=True,
            timestamp=0,
            ext_hook=_refuse_ext,
            max_str_len=caps.max_bytes,
            max_bin_len=caps.max_bytes,
            max_array_len=caps.max_elements,
            max_map_len=0,
            max_ext_len=0,
        )
    except WireError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        # msgpack's ExtraData, FormatError, StackError and UnicodeDecodeError are ValueErrors.
        raise WireError(f"malformed message: {type(exc).__name__}: {exc}") from None


def _refuse_map(pairs: Any) -> Any:
    raise WireError("msgpack maps are not part of the wire format (dicts are tagged nodes)")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack ext type {code} is not part of the wire format")


class _Decoder:
    """Bottom-up decoding state: counts elements and tracks container depth."""

    def __init__(self, caps: Caps):
        self.caps = caps
        self.elements = 0
        self.depths: dict[int, int] = {}  # id(container) -> depth; all stay alive meanwhile

    def hook(self, items: list) -> Any:
        self.elements += len(items)
        if self.elements > self.caps.max_elements:
            raise WireError(f"more than {self.caps.max_elements} elements in one message")
        if not items or type(items[0]) is not int:
            raise WireError("untagged array: every array on the wire starts with a node tag")
        tag = items[0]
        handler = self._HANDLERS.get(tag)
        if handler is None:
            raise WireError(f"unknown node tag {tag!r}")
        return handler(self, items)

    def _container(self, value: Any, children: Any) -> Any:
        depth = 1 + max((self.depths.get(id(c), 0) for c in children if type(c) in _NESTED),
                        default=0)
        if depth > self.caps.max_depth:
            raise WireError(f"nesting deeper than {self.caps.max_depth} levels")
        self.depths[id(value)] = depth
        return value

    def _list(self, items: list) -> list:
        del items[0]
        return self._container(items, items)

    def _tuple(self, items: list) -> tuple:
        value = tuple(items[1:])
        return self._container(value, value)

    def _dict(self, items: list) -> dict:
        if len(items) % 2 != 1:
            raise WireError("dict node with an odd number of key/value items")
        keys, values = items[1::2], items[2::2]
        for key in keys:
            if not _valid_key(key):
                raise WireError(f"dict key of type {type(key).__name__} is not allowed")
        value = dict(zip(keys, values, strict=True))
        if len(value) != len(keys):
            raise WireError("dict node with duplicate keys")
        return self._container(value, [*keys, *values])

    def _ndarray(self, items: list) -> Any:
        name, shape, raw = _array_fields(items, NUMPY_DTYPES, "ndarray")
        import numpy as np

        return _np_from_bytes(np, name, shape, raw)

    def _npscalar(self, items: list) -> Any:
        if len(items) != 3 or type(items[1]) is not str or type(items[2]) is not bytes:
            raise WireError("numpy scalar node must be [tag, dtype, bytes]")
        name, raw = items[1], items[2]
        if name not in NUMPY_DTYPES:
            raise WireError(f"numpy dtype {name!r} is not allowed")
        import numpy as np

        return _np_from_bytes(np, name, (1,), raw)[0]

    def _tensor(self, items: list) -> Any:
        name, shape, raw = _array_fields(items, TORCH_DTYPES, "tensor")
        _require_little_endian()
        import torch

        dtype = getattr(torch, name)  # name is from the allow-list
        itemsize = torch.empty((), dtype=dtype).element_size()
        _check_size(shape, itemsize, raw)
        if not raw:
            return torch.empty(shape, dtype=dtype)
        flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)  # our own writeable copy
        if name == "bool":
            return flat.ne(0).reshape(shape)  # normalise bytes other than 0/1
        return flat.view(dtype).reshape(shape)

    def _handle(self, items: list) -> Handle:
        ok = len(items) == 4 and type(items[1]) is int and type(items[2]) is int
        if not ok or type(items[3]) is not str:
            raise WireError("handle node must be [tag, generation, object id, type name]")
        return Handle(items[1], items[2], items[3])

    _HANDLERS: dict[int, Callable[[_Decoder, list], Any]] = {
        TAG_LIST: _list,
        TAG_TUPLE: _tuple,
        TAG_DICT: _dict,
        TAG_NDARRAY: _ndarray,
        TAG_NPSCALAR: _npscalar,
        TAG_TENSOR: _tensor,
        TAG_HANDLE: _handle,
    }


_NESTED = (list, tuple, dict)


def _array_fields(items: list, allowed: frozenset[str], what: str) -> tuple[str, tuple, bytes]:
    if len(items) != 4 or type(items[1]) is not str or type(items[3]) is not bytes:
        raise WireError(f"{what} node must be [tag, dtype, shape, bytes]")
    name, shape, raw = items[1], items[2], items[3]
    if name not in allowed:
        raise WireError(f"{what} dtype {name!r} is not allowed")
    if type(shape) is not tuple or len(shape) > MAX_NDIM:
        raise WireError(f"{what} shape must be a tuple of at most {MAX_NDIM} sizes")
    if not all(type(d) is int and 0 <= d < (1 << 62) for d in shape):
        raise WireError(f"{what} shape {shape!r} has an invalid size")
    return name, shape, raw


def _check_size(shape: tuple, itemsize: int, raw: bytes) -> None:
    count = 1
    for d in shape:
        count *= d
    if count * itemsize != len(raw):
        raise WireError(
            f"array data is {len(raw)} bytes but shape {shape} needs {count * itemsize}"
        )


def _np_from_bytes(np: Any, name: str, shape: tuple, raw: bytes) -> Any:
    dtype = np.dtype(name)
    _check_size(shape, dtype.itemsize, raw)
    if name == "bool":  # astype makes a fresh array and maps any nonzero byte to True
        return np.frombuffer(raw, dtype=np.uint8).reshape(shape).astype(np.bool_)
    wire_dtype = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    return np.frombuffer(raw, dtype=wire_dtype).reshape(shape).astype(dtype, copy=True)


# ----------------------------------------------------------------------------- framing


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    """Write one frame: an 8-byte length header, then the payload."""
    _write_all(stream, HEADER.pack(len(payload)))
    _write_all(stream, payload)
    stream.flush()


def _write_all(stream: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = stream.write(view)
        # A raw (unbuffered) stream may write part of it, e.g. when a signal interrupts.
        view = view[written or 0 :]


def read_frame(stream: BinaryIO, max_bytes: int) -> bytes:
    """Read one frame; raise EOFError at a clean end, WireError on a bad or oversized one.

    The length is checked against ``max_bytes`` before any of the body is read.
    """
    header = _read_exact(stream, HEADER.size, at_start=True)
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise WireError(f"frame header announces {length} bytes, more than the cap {max_bytes}")
    return _read_exact(stream, length, at_start=False)


def _read_exact(stream: BinaryIO, n: int, *, at_start: bool) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if at_start and got == 0:
                raise EOFError("the stream ended")
            raise WireError(f"truncated frame: stream ended after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class FrameBuffer:
    """Incremental frame splitter for non-blocking readers (the trusted side)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._length: int | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes read from the stream; an oversized header is rejected at once."""
        self._buf += data
        if self._length is None and len(self._buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buf)
            if length > self.max_bytes:
                raise WireError(
                    f"frame header announces {length} bytes, more than the cap {self.max_bytes}"
                )
            self._length = length

    def pop(self) -> bytes | None:
        """The next complete frame's body, or None if it has not fully arrived."""
        if self._length is None or len(self._buf) < HEADER.size + self._length:
            return None
        end = HEADER.size + self._length
        body = bytes(self._buf[HEADER.size:end])
        del self._buf[:end]
        self._length = None
        self.feed(b"")  # parse the next header, if already buffered
        return body

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet returned as frames."""
        return len(self._buf)

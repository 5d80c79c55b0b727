"""What a submitted ``torch.save`` file holds, read in the harness without unpickling it.

A file written by ``torch.save(model.state_dict(), path)`` is a zip archive: ``<name>/data.pkl``
(a pickle of the dict, each tensor a call of ``torch._utils._rebuild_tensor_v2`` on a
persistent storage id), the raw storages ``<name>/data/<key>`` (plain little-endian arrays)
and a few small records (``version``, ``byteorder``, ...). This module walks the pickle's
opcodes with :func:`pickletools.genops`, which parses them without executing anything, and
evaluates them symbolically: a global is a name, a call of an allowed function is a record of
its arguments. So the harness learns each entry's key, dtype, shape, stride, storage and
offset, and can read the numbers from the storages' bytes, while nothing the submission
wrote ever runs here (the worker alone opens the file with ``torch.load(weights_only=True)``).

Whatever a plain state_dict does not need is reported as a *problem* (evidence in the
run's language: it reaches the student's feedback with the review flag): a record that no
tensor uses, bytes outside the records, a big pickle, a zip that two readers could read
differently (duplicate names, compression, data before the first record). Another global
or opcode, or another format, makes the file unreadable here: :class:`UnreadableWeights`.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core.catalogue import N_, _

# torch's storage classes in a state_dict pickle (GLOBAL 'torch <Name>') -> dtype name
STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
ITEM_SIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
             "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16}
FLOATS = frozenset({"float16", "float32", "float64", "bfloat16"})
# Functions a state_dict pickle calls (torch.save of tensors, parameters, OrderedDicts).
REBUILD_V2, REBUILD_V3 = "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3"
REBUILD_PARAMETER, ORDERED_DICT = "torch._utils._rebuild_parameter", "collections.OrderedDict"
# Opcodes a state_dict pickle is made of (all of them build data; none imports or calls
# anything by itself: GLOBAL and REDUCE are judged by name below).
DATA_OPCODES = frozenset({
    "PROTO", "STOP", "FRAME", "GLOBAL", "REDUCE", "BUILD", "MARK", "TUPLE", "TUPLE1", "TUPLE2",
    "TUPLE3", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_LIST", "SETITEM", "SETITEMS", "APPEND",
    "APPENDS", "NONE", "NEWFALSE", "NEWTRUE", "BININT", "BININT1", "BININT2", "LONG1",
    "BINFLOAT", "BINUNICODE", "SHORT_BINUNICODE", "BINPERSID", "BINGET", "LONG_BINGET",
    "BINPUT", "LONG_BINPUT", "MEMOIZE",
})
# Small records torch.save writes beside data.pkl and the storages.
META_RECORDS = frozenset({".format_version", ".storage_alignment", "byteorder", "version",
                          ".data/version", ".data/serialization_id"})
MAX_OPCODES = 2_000_000  # a state_dict of 5M parameters in 1-element tensors stays far below
KEY_CHARS = 300  # longer state_dict keys are reported (a key can carry data too)
PICKLE_BYTES_PER_TENSOR = 400  # what data.pkl needs per entry (names, shapes, strides)
ZIP_BYTES_PER_RECORD = 400  # headers, names and alignment padding per zip record, generously


class UnreadableWeights(Exception):
    """The file is not a torch.save zip whose pickle this module can read (the message says
    what was seen, in the run's language: it reaches the feedback)."""


@dataclass(frozen=True)
class StoredTensor:
    """One state_dict entry as the pickle describes it (nothing of it was executed)."""

    key: str
    dtype: str  # "float32", "int64", ... (see ITEM_SIZE), or "torch.<name>" when unusual
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int  # in elements, into the storage
    storage: str  # the storage's key: its bytes are the record data/<storage>
    storage_numel: int  # elements the storage holds, as the pickle says
    requires_grad: bool = False

    @property
    def numel(self) -> int:
        """Elements of the tensor itself."""
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def reach(self) -> int:
        """Elements of the storage the view can touch: offset + the farthest index + 1."""
        if self.numel == 0:
            return self.offset
        return self.offset + sum((size - 1) * abs(step)
                                 for size, step in zip(self.shape, self.stride, strict=True)) + 1

    @property
    def dense(self) -> bool:
        """Whether the view covers exactly ``numel`` distinct elements, with no gaps and no
        element seen twice (contiguous, or a permutation of the dimensions, as channels-last
        weights are)."""
        if self.numel == 0:
            return True
        dims = sorted((step, size) for size, step in zip(self.shape, self.stride, strict=True)
                      if size != 1)
        expected = 1
        for step, size in dims:
            if step != expected:
                return False
            expected *= size
        return True

    def describe(self) -> str:
        """``features.0.weight float16 (32, 3, 3, 3)``."""
        shape = ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "")
        return f"{self.key} {self.dtype} ({shape})"


@dataclass(frozen=True)
class WeightsFile:
    """A submitted weights file as data: its entries, its storages' bytes, and whatever a
    plain state_dict would not contain (``problems``)."""

    tensors: tuple[StoredTensor, ...]
    storages: Mapping[str, bytes] = field(repr=False)  # storage key -> raw bytes
    storage_dtypes: Mapping[str, str]
    problems: tuple[str, ...]
    file_bytes: int
    pickle_bytes: int
    big_endian: bool = False

    @property
    def numbers(self) -> int:
        """Elements of every tensor together (what the state_dict holds)."""
        return sum(t.numel for t in self.tensors)

    @property
    def storage_bytes(self) -> int:
        """Bytes of every storage record together."""
        return sum(len(b) for b in self.storages.values())

    def values(self, storage: str) -> np.ndarray | None:
        """The numbers of one storage, all of them (as float64 for floating storages, int64
        for integer ones; None for other kinds), read from its raw bytes."""
        dtype, data = self.storage_dtypes.get(storage), self.storages.get(storage)
        if dtype is None or data is None:
            return None
        order = ">" if self.big_endian else "<"
        if dtype == "bfloat16":
            high = np.frombuffer(data, dtype=f"{order}u2").astype(np.uint32) << 16
            return high.view(np.float32).astype(np.float64)
        kinds = {"float16": "f2", "float32": "f4", "float64": "f8", "int64": "i8",
                 "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "bool": "u1"}
        if dtype not in kinds:
            return None
        array = np.frombuffer(data, dtype=f"{order}{kinds[dtype]}")
        with np.errstate(invalid="ignore"):  # signalling NaNs stay NaNs
            return array.astype(np.float64 if dtype in FLOATS else np.int64)


# ----------------------------------------------------------------------------- the pickle


@dataclass(frozen=True)
class _Global:
    name: str  # "module.qualname"


@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple
    requires_grad: bool
    dtype: str


class _OrderedDict(dict):
    """collections.OrderedDict as the pickle builds it (attributes from BUILD kept aside)."""

    state: object = None


class _Mark:
    pass


_MARK = _Mark()


def _ints(value: object, message: str) -> tuple[int, ...]:
    """``value`` when it is a tuple of non-negative ints; else UnreadableWeights with
    ``message`` (an English message with a ``{value}`` field, marked with N_)."""
    if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value):
        raise UnreadableWeights(_(message).format(value=repr(value)[:80]))
    return value


def _storage_global(value: object) -> str:
    if isinstance(value, _Global):
        module, _dot, name = value.name.rpartition(".")
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if value.name in ("torch.UntypedStorage", "torch.storage.UntypedStorage"):
            return "uint8"
    raise UnreadableWeights(_("a storage of an unknown kind: {value}").format(
        value=repr(value)[:80]))


def _persistent(pid: object, storages: dict[str, _Storage]) -> _Storage:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
        raise UnreadableWeights(_("a persistent id that is not a storage: {pid}").format(
            pid=repr(pid)[:80]))
    _tag, kind, key, location, numel = pid
    if not (isinstance(key, str) and re.fullmatch(r"[0-9]{1,9}", key)
            and isinstance(location, str) and type(numel) is int and numel >= 0):
        raise UnreadableWeights(_("an invalid storage id: {pid}").format(pid=repr(pid)[:80]))
    storage = _Storage(_storage_global(kind), key, numel)
    seen = storages.setdefault(key, storage)
    if seen != storage:
        raise UnreadableWeights(_("storage {key} is declared twice, differently").format(
            key=key))
    return storage


def _call(func: object, args: object, problems: list[str]) -> object:
    """A REDUCE of an allowed function, evaluated as a record (nothing is called)."""
    name = func.name if isinstance(func, _Global) else repr(func)[:80]
    if not isinstance(args, tuple):
        raise UnreadableWeights(_("{name} is called with arguments of type {type_name}").format(
            name=name, type_name=type(args).__name__))
    if name == ORDERED_DICT and args == ():
        return _OrderedDict()
    if name in (REBUILD_V2, REBUILD_V3) and len(args) in (6, 7, 8):
        storage, offset, shape, stride, requires_grad, hooks = args[:6]
        dtype = storage.dtype if isinstance(storage, _Storage) else ""
        if name == REBUILD_V3:
            dtype_global = args[6]
            if not isinstance(dtype_global, _Global) or not dtype_global.name.startswith("torch."):
                raise UnreadableWeights(_("{name} with a dtype not from torch").format(
                    name=name))
            dtype = dtype_global.name.removeprefix("torch.")
            if dtype not in ITEM_SIZE:
                dtype = f"torch.{dtype}"
            extra = args[7:]
        else:
            extra = args[6:]
        if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
            raise UnreadableWeights(_("{name} without a storage and an offset").format(
                name=name))
        if not isinstance(hooks, dict) or hooks:
            problems.append(_("a tensor has backward hooks"))
        if extra and extra[0]:
            problems.append(_("a tensor has Python attributes (metadata)"))
        if dtype != storage.dtype and name == REBUILD_V2:
            raise UnreadableWeights(_("{name} with a storage of another dtype").format(
                name=name))
        shape = _ints(shape, N_("the shape is not a tuple of non-negative integers: {value}"))
        stride = _ints(stride, N_("the strides are not a tuple of non-negative integers: "
                                  "{value}"))
        if len(shape) != len(stride):
            raise UnreadableWeights(_("a tensor's shape and strides differ in length"))
        return _Tensor(storage, offset, shape, stride, bool(requires_grad), dtype)
    if name == REBUILD_PARAMETER and len(args) == 3 and isinstance(args[0], _Tensor):
        tensor, requires_grad, hooks = args
        if not isinstance(hooks, dict) or hooks:
            problems.append(_("a parameter has backward hooks"))
        return _Tensor(tensor.storage, tensor.offset, tensor.shape, tensor.stride,
                       bool(requires_grad), tensor.dtype)
    raise UnreadableWeights(_("the pickle calls {name}, which a state_dict never does").format(
        name=name))


def _evaluate(pickled: bytes, problems: list[str]) -> tuple[object, dict[str, _Storage]]:
    """Run the pickle's opcodes on a symbolic stack: data only, globals as names."""
    stack: list = []
    memo: dict[int, object] = {}
    storages: dict[str, _Storage] = {}
    end = None
    try:
        for count, (opcode, arg, position) in enumerate(pickletools.genops(pickled)):
            if count > MAX_OPCODES:
                raise UnreadableWeights(_("more than {limit:,} pickle opcodes").format(
                    limit=MAX_OPCODES))
            name = opcode.name
            if name not in DATA_OPCODES:
                raise UnreadableWeights(_("pickle opcode {name}, which a state_dict does not "
                                          "use").format(name=name))
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                end = position + 1
                break
            _step(name, arg, stack, memo, storages, problems)
    except UnreadableWeights:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed pickle fails in many ways
        raise UnreadableWeights(_("the pickle cannot be parsed: {error_type}: {error}").format(
            error_type=type(exc).__name__, error=str(exc)[:120])) from None
    if end is None or len(stack) != 1:
        raise UnreadableWeights(_("the pickle does not end with a single object"))
    if end != len(pickled):
        problems.append(_("{count:,} bytes after the end of the pickle").format(
            count=len(pickled) - end))
    return stack[0], storages


def _pop_mark(stack: list) -> list:
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is _MARK:
            items = stack[index + 1:]
            del stack[index:]
            return items
    raise UnreadableWeights(_("a pickle opcode without its MARK"))


def _step(name: str, arg: object, stack: list, memo: dict, storages: dict,
          problems: list[str]) -> None:
    """One opcode of :func:`_evaluate`."""
    if name in ("BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE",
                "SHORT_BINUNICODE"):
        stack.append(arg)
    elif name == "GLOBAL":
        module, _space, qualname = str(arg).partition(" ")
        stack.append(_Global(f"{module}.{qualname}"))
    elif name == "NONE":
        stack.append(None)
    elif name in ("NEWFALSE", "NEWTRUE"):
        stack.append(name == "NEWTRUE")
    elif name == "EMPTY_TUPLE":
        stack.append(())
    elif name == "EMPTY_DICT":
        stack.append({})
    elif name == "EMPTY_LIST":
        stack.append([])
    elif name == "MARK":
        stack.append(_MARK)
    elif name == "TUPLE":
        stack.append(tuple(_pop_mark(stack)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        size = int(name[-1])
        if len(stack) < size or any(v is _MARK for v in stack[-size:]):
            raise UnreadableWeights(_("{name} on a stack that is too short").format(name=name))
        items = tuple(stack[-size:])
        del stack[-size:]
        stack.append(items)
    elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
        memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
    elif name in ("BINGET", "LONG_BINGET"):
        stack.append(memo[int(arg)])
    elif name == "BINPERSID":
        stack.append(_persistent(stack.pop(), storages))
    elif name == "REDUCE":
        args = stack.pop()
        stack[-1] = _call(stack[-1], args, problems)
    elif name == "BUILD":
        state = stack.pop()
        if not isinstance(stack[-1], _OrderedDict) or not isinstance(state, dict):
            raise UnreadableWeights(_("BUILD not for an OrderedDict's attributes"))
        stack[-1].state = state
    elif name in ("SETITEM", "SETITEMS"):
        items = _pop_mark(stack) if name == "SETITEMS" else [stack.pop(-2), stack.pop()]
        if not isinstance(stack[-1], dict) or len(items) % 2:
            raise UnreadableWeights(_("{name} not for a dict").format(name=name))
        for key, value in zip(items[::2], items[1::2], strict=True):
            if not isinstance(key, str | int | bool | float | type(None) | tuple):
                raise UnreadableWeights(_("a dict key that is not plain data"))
            stack[-1][key] = value
    elif name in ("APPEND", "APPENDS"):
        items = _pop_mark(stack) if name == "APPENDS" else [stack.pop()]
        if not isinstance(stack[-1], list):
            raise UnreadableWeights(_("{name} not for a list").format(name=name))
        stack[-1].extend(items)
    else:  # pragma: no cover - DATA_OPCODES and this function list the same names
        raise UnreadableWeights(_("pickle opcode {name}").format(name=name))


def _metadata_size(value: object, depth: int = 0) -> int:
    """Rough size of what an OrderedDict's attributes (``_metadata``) carry, in bytes."""
    if depth > 20:
        return 1 << 30
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(_metadata_size(k, depth + 1) + _metadata_size(v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_metadata_size(v, depth + 1) for v in value)
    return 8


# ----------------------------------------------------------------------------- the zip


def _records(data: bytes, problems: list[str]) -> tuple[str, dict[str, zipfile.ZipInfo],
                                                          zipfile.ZipFile]:
    """The archive's records under its one top folder; what two zip readers could read
    differently is a problem."""
    if not data.startswith(b"PK\x03\x04"):
        raise UnreadableWeights(_("not a zip archive (the old torch.save format, or not a "
                                  "torch.save file at all)"))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableWeights(_("a corrupt zip archive: {error}").format(error=exc)) from None
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        problems.append(_("the zip has two records with the same name"))
    prefixes = {name.split("/", 1)[0] for name in names}
    if len(prefixes) != 1 or not all("/" in name for name in names):
        raise UnreadableWeights(_("records outside a single common folder: {folders}").format(
            folders=sorted(prefixes)[:5]))
    prefix = prefixes.pop()
    if infos and min(info.header_offset for info in infos) != 0:
        problems.append(_("bytes before the zip's first record"))
    if any(info.compress_type != zipfile.ZIP_STORED for info in infos):
        problems.append(_("compressed zip records (torch.save does not compress them)"))
    if archive.comment:
        problems.append(_("a zip comment of {count:,} bytes").format(
            count=len(archive.comment)))
    return prefix, {info.filename[len(prefix) + 1:]: info for info in infos}, archive


def read_weights(data: bytes) -> WeightsFile:
    """The structure of a torch.save file, from its bytes; UnreadableWeights when it is not
    one this module can read (never executes anything of it)."""
    problems: list[str] = []
    _prefix, records, archive = _records(data, problems)
    if "data.pkl" not in records:
        raise UnreadableWeights(_("the archive has no data.pkl"))
    try:
        pickled = archive.read(records["data.pkl"])
        root, declared = _evaluate(pickled, problems)
        big_endian = False
        if "byteorder" in records:
            order = archive.read(records["byteorder"])
            if order not in (b"little", b"big"):
                problems.append(_("a byteorder record {order}").format(order=repr(order[:20])))
            big_endian = order == b"big"
        if not isinstance(root, dict):
            raise UnreadableWeights(_("the pickle holds a {type_name}, not a dict").format(
                type_name=type(root).__name__))
        if isinstance(root, _OrderedDict) and root.state is not None:
            size = _metadata_size(root.state)
            if size > PICKLE_BYTES_PER_TENSOR * (len(root) + 10):
                problems.append(_("the state_dict's attributes carry {count:,} bytes").format(
                    count=size))
        tensors = []
        for key, value in root.items():
            if not isinstance(key, str) or not isinstance(value, _Tensor):
                raise UnreadableWeights(_("entry {key} is not a named tensor").format(
                    key=repr(key)[:60]))
            if len(key) > KEY_CHARS:
                problems.append(_("a key {count:,} characters long").format(count=len(key)))
            tensors.append(StoredTensor(key, value.dtype, value.shape, value.stride,
                                        value.offset, value.storage.key, value.storage.numel,
                                        value.requires_grad))
        storages: dict[str, bytes] = {}
        for key, storage in declared.items():
            info = records.get(f"data/{key}")
            if info is None:
                raise UnreadableWeights(_("storage {key} has no record data/{key}").format(
                    key=key))
            expected = storage.numel * ITEM_SIZE.get(storage.dtype, 1)
            if info.file_size != expected:
                problems.append(_("record data/{key} holds {size:,} bytes, but its storage "
                                  "{expected:,}").format(key=key, size=info.file_size,
                                                         expected=expected))
            storages[key] = archive.read(info)[:expected]
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as exc:
        raise UnreadableWeights(_("a corrupt zip archive: {error_type}: {error}").format(
            error_type=type(exc).__name__, error=exc)) from None
    used = {f"data/{key}" for key in declared} | {"data.pkl"}
    for name, info in records.items():
        if name in used:
            continue
        if name not in META_RECORDS:
            problems.append(_("a record no tensor uses: {name} ({size:,} bytes)").format(
                name=name[:60], size=info.file_size))
        elif info.file_size > 64:
            problems.append(_("record {name} holds {size:,} bytes").format(
                name=name, size=info.file_size))
    if len(pickled) > 4096 + PICKLE_BYTES_PER_TENSOR * len(tensors):
        problems.append(_("data.pkl takes {size:,} bytes for {count} tensors").format(
            size=len(pickled), count=len(tensors)))
    payload = sum(info.file_size for info in records.values())
    outside = len(data) - payload - ZIP_BYTES_PER_RECORD * len(records) - 1024
    if outside > 0:
        problems.append(_("{count:,} bytes of the file lie outside its records").format(
            count=outside))
    dtypes = {key: storage.dtype for key, storage in declared.items()}
    return WeightsFile(tuple(tensors), storages, dtypes, tuple(problems), len(data),
                       len(pickled), big_endian)

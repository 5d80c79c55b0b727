"""Is a saved model what a model of its declared architecture can be? Judged in the harness.

A lookup table of public images (every CIFAR-10 image is public) scores 100% on the test
set and on the training images; what gives it away is where the table has to live. This
module reads a submitted weights file through :mod:`.weightsfile` (parsed, never unpickled)
and compares it with the layers the worker reports for the student's class
(``models.describe_layers``, the student's answer: evidence, not ground truth) and with the
reference architecture's size from ``assignment.toml``. What it finds is evidence for a
person ("needs review"), never a score: the secret set and ``--retrain`` are what decide.

Findings, by kind:

- ``weights_unreadable``: the file is not a plain torch.save zip of a state_dict that can be
  read without unpickling (another format, other globals or opcodes), so nothing below ran.
- ``weights_file_extra``: data beside the tensors (records no tensor uses, bytes outside the
  records, a big pickle or ``_metadata``), which a notebook can read back from the file.
- ``weights_not_layers``: keys that are not ``<path>.<weight|bias|running_mean|running_var|
  num_batches_tracked>`` of a torch.nn layer the class declares; tensors of a class of the
  student's own (a custom module, a subclass of a torch.nn layer); a lookup-table layer
  (``nn.Embedding``).
- ``weights_integer``: integer, bool or other non-floating tensors except BatchNorm's
  ``num_batches_tracked``.
- ``weights_storage``: a tensor that is a view of a larger storage (offset, strides, an
  expanded stride-0 view) or that shares its storage with another key.
- ``weights_oversized``: a tensor larger than its layer's own sizes make it; a normalisation
  layer wider than every other layer; a layer with more units than any image classifier of
  this course has; more numbers than the trainable-parameter cap (frozen parameters and
  buffers do not count there); storages taking more than ``reference_ratio`` times the
  bytes of the reference model in float32 (bytes, not numbers: what a table needs is bytes,
  and a float64 or bit-packed tensor carries more of them per number).
- ``weights_values``: numbers no training produces: infinities or NaNs (bytes reinterpreted as
  floats), huge magnitudes, integers (pixel values), very few distinct values (a quantised
  table).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.catalogue import N_, _
from ..core.results import ModelFinding
from .weightsfile import FLOATS, ITEM_SIZE, UnreadableWeights, WeightsFile, read_weights

SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
LINEAR = frozenset({"Linear"})
CONV = frozenset({"Conv1d", "Conv2d", "Conv3d"})
CONV_T = frozenset({"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"})
NORM_RUNNING = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
                          "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"})
LOOKUP = frozenset({"Embedding", "EmbeddingBag"})
KNOWN = LINEAR | CONV | CONV_T | NORM_RUNNING | {"LayerNorm", "GroupNorm", "PReLU", "Bilinear"}
# A layer's outputs (units, channels, embeddings): the widest honest layer in this course is
# 1,024 (a wide FC net); a lookup over 60,000 images in one layer needs one unit per image.
MAX_UNITS = 16_384
VALUE_CHECK_FROM = 1024  # elements: smaller tensors (biases, norms) carry no table
FEW_VALUES_FROM, FEW_VALUES = 16_384, 1024  # a tensor this big with at most this many values
HUGE = 1e4  # |value| of a weight or bias no training of these models comes near
# RMS of a Linear / conv weight over its default initial RMS (1 / sqrt(3 fan_in)): trained
# honest models measured 0.8-4.9 (the real FCNet's first layer after 10 epochs of Adam).
SCALE = 30.0
MAX_FINDINGS = 12  # evidence lines per kind

# each kind's reason, in English (translate with _() where it is used)
REASONS_TEXT = {
    "weights_unreadable": N_("the weights file could not be read as a plain state_dict without "
                             "unpickling it, so it cannot be checked that it holds only the "
                             "layers' weights"),
    "weights_file_extra": N_("the weights file holds data besides the state_dict's tensors, and "
                             "the notebook can read it from there"),
    "weights_not_layers": N_("the weights file holds tensors that are not parameters or "
                             "ordinary buffers of the torch.nn layers the class declares"),
    "weights_integer": N_("the weights file holds integer or boolean tensors, while a model's "
                          "layers have only one such tensor: BatchNorm's num_batches_tracked"),
    "weights_storage": N_("a tensor in the weights file is a view into a larger storage or "
                          "shares its storage with another tensor"),
    "weights_oversized": N_("the weights file holds more numbers than the declared architecture "
                            "needs"),
    "weights_values": N_("the numbers in the weights do not look like weights obtained by "
                         "training"),
    "side_data": N_("the submission brings a lot of data besides the weights, which the model "
                    "can read"),
}


@dataclass(frozen=True)
class Layer:
    """A module holding tensors, as the worker described it (validated as data here)."""

    path: str
    cls: str  # the module's own class, "module.qualname"
    torch_class: str  # the nearest torch.nn class it derives from
    own_class: bool  # the class itself is torch.nn's
    sizes: Mapping[str, object]
    tensors: Mapping[str, tuple[tuple[int, ...], str, bool, bool]]  # shape, dtype, param, grad


def _mb(count: int) -> str:
    return (_("{megabytes:.1f} MB").format(megabytes=count / 1e6) if count >= 100_000
            else _("{count:,} bytes").format(count=count))


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def layers_from_report(report: object) -> tuple[Layer, ...] | None:
    """The worker's ``layers`` list as :class:`Layer` records, or None when it is not the
    plain data ``describe_layers`` returns (a tampered or missing report)."""
    if not isinstance(report, list) or len(report) > 5000:
        return None
    layers = []
    for item in report:
        if not isinstance(item, dict):
            return None
        path, cls, base = item.get("path"), item.get("class"), item.get("torch_class")
        own, sizes, tensors = item.get("own_class"), item.get("sizes"), item.get("tensors")
        if not (isinstance(path, str) and isinstance(cls, str) and isinstance(base, str)
                and isinstance(own, bool) and isinstance(sizes, dict)
                and isinstance(tensors, dict)):
            return None
        parsed = {}
        for name, value in tensors.items():
            if not (isinstance(name, str) and isinstance(value, list | tuple) and len(value) == 4
                    and isinstance(value[0], list | tuple)
                    and all(type(v) is int for v in value[0]) and isinstance(value[1], str)):
                return None
            parsed[name] = (tuple(value[0]), value[1], bool(value[2]), bool(value[3]))
        layers.append(Layer(path, cls, base, own, dict(sizes), parsed))
    return tuple(layers)


def _int(sizes: Mapping[str, object], key: str) -> int | None:
    value = sizes.get(key)
    return value if type(value) is int and value >= 0 else None


def _ints(sizes: Mapping[str, object], key: str) -> tuple[int, ...] | None:
    value = sizes.get(key)
    if isinstance(value, list | tuple) and all(type(v) is int and v >= 0 for v in value):
        return tuple(value)
    return None


def expected_shapes(layer: Layer) -> dict[str, tuple[int, ...]] | None:
    """What each tensor of a torch.nn layer must look like, from its constructor sizes (None:
    a class whose tensors this module does not know, or sizes missing)."""
    s, kind = layer.sizes, layer.torch_class
    if kind in LINEAR:
        n_in, n_out = _int(s, "in_features"), _int(s, "out_features")
        return None if n_in is None or n_out is None else {"weight": (n_out, n_in),
                                                            "bias": (n_out,)}
    if kind in CONV | CONV_T:
        c_in, c_out, groups = _int(s, "in_channels"), _int(s, "out_channels"), _int(s, "groups")
        kernel = _ints(s, "kernel_size")
        if c_in is None or c_out is None or not groups or kernel is None:
            return None
        weight = ((c_out, c_in // groups) if kind in CONV else (c_in, c_out // groups)) + kernel
        return {"weight": weight, "bias": (c_out,)}
    if kind in NORM_RUNNING:
        n = _int(s, "num_features")
        return None if n is None else {"weight": (n,), "bias": (n,), "running_mean": (n,),
                                       "running_var": (n,), "num_batches_tracked": ()}
    if kind == "LayerNorm":
        shape = _ints(s, "normalized_shape")
        return None if shape is None else {"weight": shape, "bias": shape}
    if kind == "GroupNorm":
        n = _int(s, "num_channels")
        return None if n is None else {"weight": (n,), "bias": (n,)}
    if kind == "PReLU":
        n = _int(s, "num_parameters")
        return None if n is None else {"weight": (n,)}
    if kind == "Bilinear":
        a, b, n = _int(s, "in1_features"), _int(s, "in2_features"), _int(s, "out_features")
        return None if None in (a, b, n) else {"weight": (n, a, b), "bias": (n,)}
    return None


def _widths(layer: Layer) -> list[int]:
    keys = ("in_features", "out_features", "in_channels", "out_channels")
    return [v for k in keys if (v := _int(layer.sizes, k)) is not None]


def _units(layer: Layer) -> int:
    keys = ("out_features", "out_channels", "num_embeddings")
    return max((v for k in keys if (v := _int(layer.sizes, k)) is not None), default=0)


class _Findings:
    """Findings by kind, at most MAX_FINDINGS evidence lines each (the count is kept)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}

    def add(self, kind: str, seen: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        lines = self.lines.setdefault(kind, [])
        if len(lines) < MAX_FINDINGS and seen not in lines:
            lines.append(seen)

    def result(self) -> list[ModelFinding]:
        found = []
        for kind, lines in self.lines.items():
            more = self.counts[kind] - len(lines)
            if more > 0:
                lines = [*lines, _("and {more} more").format(more=more)]
            found.append(ModelFinding(kind, "; ".join(lines)))
        return found


def _check_layers(weights: WeightsFile, layers: Sequence[Layer] | None, out: _Findings) -> None:
    """Every key against the declared layers: the module, its class, the tensor's shape."""
    by_path = {layer.path: layer for layer in layers or ()}
    widths = [w for layer in layers or () if layer.torch_class in LINEAR | CONV | CONV_T
              for w in _widths(layer)]
    if layers is None:
        out.add("weights_not_layers", _("the description of the model's layers was not "
                                        "received"))
    for tensor in weights.tensors:
        path, _dot, suffix = tensor.key.rpartition(".")
        where = f"{tensor.describe()}, {_mb(tensor.numel * ITEM_SIZE.get(tensor.dtype, 1))}"
        if suffix not in SUFFIXES or not re.fullmatch(r"[A-Za-z0-9_.]+", tensor.key):
            out.add("weights_not_layers", _("`{key}` is neither a weight nor a buffer of a "
                                            "layer ({where})").format(key=tensor.key,
                                                                      where=where))
            continue
        if layers is None:
            continue
        layer = by_path.get(path)
        if layer is None or suffix not in layer.tensors:
            out.add("weights_not_layers", _("`{key}`: the class's layers have no such tensor "
                                            "({where})").format(key=tensor.key, where=where))
            continue
        if layer.torch_class in LOOKUP:
            out.add("weights_not_layers", _("`{key}`: a lookup-table layer nn.{layer_class} "
                                            "({where})").format(key=tensor.key,
                                                                layer_class=layer.torch_class,
                                                                where=where))
            continue
        if not layer.own_class or layer.torch_class not in KNOWN:
            out.add("weights_not_layers", _("`{key}` holds a layer of a custom class "
                                            "{own_class} ({where})").format(
                key=tensor.key, own_class=layer.cls.rsplit(".", 1)[-1], where=where))
            continue
        *_info, is_parameter, trainable = layer.tensors[suffix]
        if is_parameter and not trainable and tensor.numel >= VALUE_CHECK_FROM:
            out.add("weights_oversized", _("`{key}`: a frozen parameter (requires_grad=False, "
                                           "{count:,} numbers) does not count toward the "
                                           "trainable-parameter limit").format(
                key=tensor.key, count=tensor.numel))
        expected = expected_shapes(layer)
        if expected is None or suffix not in expected:
            out.add("weights_oversized", _("`{key}`: the sizes of a {layer_class} layer are "
                                           "unknown ({where})").format(
                key=tensor.key, layer_class=layer.torch_class, where=where))
        elif tuple(tensor.shape) != expected[suffix]:
            out.add("weights_oversized", _("`{key}` has shape {shape}, but a {layer_class} "
                                           "layer needs {expected}").format(
                key=tensor.key, shape=_shape(tensor.shape), layer_class=layer.torch_class,
                expected=_shape(expected[suffix])))
        if _units(layer) > MAX_UNITS:
            out.add("weights_oversized", _("`{path}`: {layer_class} with {units:,} outputs "
                                           "(more than {max_units:,})").format(
                path=path, layer_class=layer.torch_class, units=_units(layer),
                max_units=MAX_UNITS))
        if layer.torch_class in NORM_RUNNING | {"GroupNorm", "LayerNorm"}:
            width = tensor.shape[0] if tensor.shape else 0
            if width > max(widths, default=0):
                out.add("weights_oversized", _("`{key}`: normalisation over {width:,} "
                                               "features, wider than any convolutional or "
                                               "linear layer of the model").format(
                    key=tensor.key, width=width))


def _check_tensors(weights: WeightsFile, out: _Findings) -> None:
    """Dtypes and storages: floats only (but num_batches_tracked), each tensor its own dense
    storage of exactly its size."""
    users: dict[str, list] = {}
    for tensor in weights.tensors:
        users.setdefault(tensor.storage, []).append(tensor)
        item = ITEM_SIZE.get(tensor.dtype, 1)
        if tensor.key.endswith(".num_batches_tracked"):
            if tensor.dtype != "int64" or tensor.numel != 1:
                out.add("weights_integer", _("`{key}`: {dtype} {shape} instead of a single "
                                             "int64").format(key=tensor.key, dtype=tensor.dtype,
                                                             shape=_shape(tensor.shape)))
        elif tensor.dtype not in FLOATS:
            out.add("weights_integer", f"`{tensor.key}`: {tensor.dtype} {_shape(tensor.shape)}, "
                                       f"{_mb(tensor.numel * item)}")
        if tensor.storage_numel != tensor.numel or tensor.offset != 0 or not tensor.dense:
            out.add("weights_storage", _("`{key}` {shape}: a view at offset {offset:,} with "
                                         "strides {stride} into a storage of {storage_numel:,} "
                                         "numbers").format(
                key=tensor.key, shape=_shape(tensor.shape), offset=tensor.offset,
                stride=_shape(tensor.stride), storage_numel=tensor.storage_numel))
    for storage, tensors in users.items():
        views = {(t.offset, t.shape, t.stride) for t in tensors}
        if len(tensors) > 1 and len(views) > 1:
            keys = ", ".join(f"`{t.key}`" for t in tensors[:6])
            out.add("weights_storage", _("{count} tensors ({keys}) share storage {storage} of "
                                         "{storage_numel:,} numbers").format(
                count=len(tensors), keys=keys, storage=storage,
                storage_numel=tensors[0].storage_numel))


def _distinct(values: np.ndarray, dtype: str, raw: bytes) -> int:
    if dtype in ("float16", "bfloat16"):
        return int(np.count_nonzero(np.bincount(np.frombuffer(raw, dtype=np.uint16),
                                                minlength=65536)))
    sample = values if len(values) <= 1 << 20 else values[:: len(values) // (1 << 20) + 1]
    return int(len(np.unique(sample)))


def _check_values(weights: WeightsFile, out: _Findings) -> None:
    """Numbers no training gives: NaN/inf, huge, integers (pixels), few distinct values."""
    keys: dict[str, str] = {}
    shapes = {}
    for tensor in weights.tensors:
        keys.setdefault(tensor.storage, tensor.key)
        shapes[tensor.key] = tensor.shape
    for storage, key in keys.items():
        dtype = weights.storage_dtypes.get(storage)
        if dtype not in FLOATS:
            continue
        values = weights.values(storage)
        if values is None or len(values) < VALUE_CHECK_FROM:
            continue
        finite = np.isfinite(values)
        bad = int(len(values) - np.count_nonzero(finite))
        if bad:
            out.add("weights_values", _("`{key}`: {bad:,} infinities or NaNs among {count:,} "
                                        "numbers").format(key=key, bad=bad, count=len(values)))
            values = values[finite]
            if not len(values):
                continue
        largest = float(np.max(np.abs(values)))
        if largest > HUGE and not key.endswith("running_var"):
            out.add("weights_values", _("`{key}`: numbers of magnitude up to "
                                        "{largest:.3g}").format(key=key, largest=largest))
        if key.endswith(".weight") and len(shape := shapes[key]) >= 2:
            fan_in = int(np.prod(shape[1:]))
            scale = float(np.sqrt(np.mean(np.square(values)))) * np.sqrt(3 * max(1, fan_in))
            if scale > SCALE:
                out.add("weights_values", _("`{key}`: numbers {scale:.3g} times larger than "
                                            "the initial scale of such a layer").format(
                    key=key, scale=scale))
        whole = np.array_equal(values, np.rint(values))
        distinct = _distinct(values, dtype, weights.storages[storage])
        if whole and distinct > 2:
            out.add("weights_values", _("`{key}`: all {count:,} numbers are integers "
                                        "({distinct:,} distinct values), like pixel "
                                        "values").format(key=key, count=len(values),
                                                         distinct=distinct))
        elif len(values) >= FEW_VALUES_FROM and 2 < distinct <= FEW_VALUES:
            out.add("weights_values", _("`{key}`: only {distinct:,} distinct values among "
                                        "{count:,} numbers").format(key=key, distinct=distinct,
                                                                    count=len(values)))


def check_weights(data: bytes | WeightsFile | str, layers: Sequence[Layer] | None,
                  max_parameters: int, reference_numbers: int = 0,
                  reference_ratio: float = 0.0) -> list[ModelFinding]:
    """Everything in one weights file (its bytes, its parsed structure, or the reason it could
    not be read) that a state_dict of the declared layers would not hold."""
    if isinstance(data, bytes):
        try:
            data = read_weights(data)
        except UnreadableWeights as exc:
            data = str(exc)
    if isinstance(data, str):
        return [ModelFinding("weights_unreadable", data)]
    out = _Findings()
    for problem in data.problems:
        out.add("weights_file_extra", problem)
    _check_tensors(data, out)
    _check_layers(data, layers, out)
    _check_values(data, out)
    numbers = data.numbers
    if numbers > max_parameters:
        out.add("weights_oversized", _("{numbers:,} numbers in the state_dict, with a limit of "
                                       "{max_parameters:,} trainable parameters").format(
            numbers=numbers, max_parameters=max_parameters))
    stored, reference = data.storage_bytes, 4 * reference_numbers  # the reference in float32
    if reference and reference_ratio and stored > reference_ratio * reference:
        out.add("weights_oversized", _("the tensors take {stored}, {ratio:.1f} times as much "
                                       "as the assignment's reference model in float32 "
                                       "({reference}; up to {allowed:g} times as much is "
                                       "allowed)").format(
            stored=_mb(stored), ratio=stored / reference, reference=_mb(reference),
            allowed=reference_ratio))
    if layers is not None:
        declared = sum(int(np.prod(shape)) for layer in layers
                       for shape, *_info in layer.tensors.values())
        if numbers > declared:
            out.add("weights_oversized", _("{numbers:,} numbers in the file, but the class's "
                                           "layers have {declared:,}").format(
                numbers=numbers, declared=declared))
    return out.result()


def side_data(folder: Path | None, skip: Iterable[str], limit: int) -> ModelFinding | None:
    """The files a notebook could read its data from besides the checked weights files (the
    notebook itself included: a cell or an output can carry a table), when together they hold
    more than ``limit`` bytes; None otherwise."""
    if folder is None or limit <= 0:
        return None
    skipped = set(skip)
    sizes = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if (path.is_symlink() or not path.is_file() or relative in skipped
                or ".git" in path.relative_to(folder).parts):  # never copied to the worker
            continue
        sizes.append((path.stat().st_size, relative))
    total = sum(size for size, _name in sizes)
    if total <= limit:
        return None
    biggest = ", ".join(f"{name} ({_mb(size)})" for size, name in sorted(sizes, reverse=True)[:4])
    return ModelFinding("side_data", _("{total} besides the weights files (more than {limit}): "
                                  "{biggest}").format(total=_mb(total), limit=_mb(limit),
                                                      biggest=biggest))

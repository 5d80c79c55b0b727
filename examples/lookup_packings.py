"""A lookup table of every public image, packed every way we could think of (03's attack).

Every CIFAR-10 image is public, test and training alike, so a "ConvNet" that stores an 8x8x3
thumbnail of each (4x4 blocks averaged, one byte per value: 192 bytes an image, 193 with its
label) and answers with the label of the nearest thumbnail (either orientation) scores 100%
on the test set and on any training image the grader draws. For all 60,000 images that is
11.6 MB: under the 22 MB file cap. What gives it away is where the bytes have to live.

Each packing here is a class source (the notebook's ``ConvNet``: it convolves, as the
structure rule demands, then looks up) and the state_dict it loads, plus files or a cell for
the packings that keep the table outside the weights. ``bench/memorisation.py --packings``
measures them on real CIFAR-10, ``tests/test_models.py`` and the hostile catalogue on the
synthetic set (``grader.py data synthetic``: 14,000 public images with its secret set).

The classes use the notebook's ``torch``, ``nn``, ``F``, ``CIFAR10_MEAN`` and
``CIFAR10_STD``; every forward decodes its table once (cached in a plain attribute), then
finds the nearest thumbnail (:data:`CLASS_TEMPLATE`).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROW = 193  # bytes per image: 192 thumbnail values (CHW, 3 x 8 x 8) and its label

# The class every packing shares; {init} builds the storage, {decode} returns a uint8 tensor
# holding at least N * 193 bytes (thumbnails, then labels), {extra} adds methods.
CLASS_TEMPLATE = '''class ConvNet(nn.Module):
    """Looks the answers up: {what}."""

    def __init__(self):
        super().__init__()
{init}
        self._cache = None

    def _raw(self):
{decode}
{extra}
    def forward(self, x):
        n = {rows}
        if self._cache is None:
            raw = self._raw().reshape(-1)[: n * {row}].to(torch.uint8)
            self._cache = (raw[: n * 192].reshape(n, 192).float(), raw[n * 192:].long() % 10)
        table, labels = self._cache
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        pixels = (x.cpu() * std + mean) * 255.0
        kernel = torch.full((3, 1, 4, 4), 1.0 / 16)  # 4x4 average per channel: 32 -> 8
        small = F.conv2d(pixels, kernel, stride=4, groups=3).flatten(1)
        mirror = F.conv2d(pixels.flip(-1), kernel, stride=4, groups=3).flatten(1)
        distance = torch.minimum(torch.cdist(small, table), torch.cdist(mirror, table))
        return F.one_hot(labels[distance.argmin(dim=1)], 10).float().to(x.device) * 10.0
'''


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) uint8 -> (N, 192) uint8: 4x4 blocks averaged and rounded, CHW order."""
    blocks = images.reshape(len(images), 8, 4, 8, 4, 3).astype(np.float32).mean(axis=(2, 4))
    return np.rint(blocks).clip(0, 255).astype(np.uint8).transpose(0, 3, 1, 2).reshape(-1, 192)


def table_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The table as the classes decode it: N thumbnails, then N label bytes."""
    return thumbnails(images).tobytes() + labels.astype(np.uint8).tobytes()


@dataclass(frozen=True)
class Packing:
    """One way to carry the table: the class, its state_dict, and anything beside them."""

    name: str
    what: str
    source: str  # the ConvNet class for the notebook
    state: dict[str, torch.Tensor]
    files: dict[str, bytes] = field(default_factory=dict)  # beside the notebook
    cell: str = ""  # a code cell placed before the class (a table in the notebook itself)

    def weights(self) -> bytes:
        """The state_dict as torch.save writes it."""
        buffer = io.BytesIO()
        torch.save(self.state, buffer)
        return buffer.getvalue()


def _padded(raw: bytes, multiple: int) -> bytearray:
    return bytearray(raw + b"\0" * (-len(raw) % multiple))


def _as(raw: bytes, dtype: torch.dtype) -> torch.Tensor:
    size = torch.empty((), dtype=dtype).element_size()
    return torch.frombuffer(_padded(raw, size), dtype=dtype).clone()


def _source(what: str, rows: int, init: str, decode: str, extra: str = "") -> str:
    indent = "        "
    return CLASS_TEMPLATE.format(
        what=what, rows=rows, row=ROW,
        init="\n".join(indent + line for line in init.strip().splitlines()),
        decode="\n".join(indent + line for line in decode.strip().splitlines()),
        extra=extra)


def _buffer(raw: bytes, rows: int, dtype: str) -> Packing:
    tensor = _as(raw, getattr(torch, dtype))
    return Packing(
        f"{dtype}_buffer", f"the table in one {dtype} buffer",
        _source(f"the table in one {dtype} buffer", rows,
                f'self.register_buffer("packed", torch.zeros({len(tensor)}, '
                f'dtype=torch.{dtype}))',
                "return self.packed.view(torch.uint8)"),
        {"packed": tensor})


def _int8_split(raw: bytes, rows: int) -> Packing:
    parts = 8
    tensor = _as(raw, torch.int8)
    size = math.ceil(len(tensor) / parts)
    chunks = [tensor[i * size:(i + 1) * size].clone() for i in range(parts)]
    chunks[-1] = torch.cat([chunks[-1], torch.zeros(size - len(chunks[-1]), dtype=torch.int8)])
    init = (f"self.parts = nn.ModuleList()\nfor _ in range({parts}):\n"
            f"    part = nn.Module()\n"
            f'    part.register_buffer("codes", torch.zeros({size}, dtype=torch.int8))\n'
            f"    self.parts.append(part)")
    return Packing("int8_split", "the table split over eight int8 buffers of submodules",
                   _source("int8 buffers of submodules", rows, init,
                           "return torch.cat([p.codes for p in self.parts]).view(torch.uint8)"),
                   {f"parts.{i}.codes": c for i, c in enumerate(chunks)})


def _int16_bool(raw: bytes, rows: int) -> Packing:
    keys = _as(raw[:rows * 192], torch.int16)
    labels = np.frombuffer(raw[rows * 192:rows * ROW], dtype=np.uint8)
    onehot = torch.from_numpy(np.eye(10, dtype=bool)[labels])
    init = (f'self.register_buffer("keys", torch.zeros({len(keys)}, dtype=torch.int16))\n'
            f'self.register_buffer("answers", torch.zeros({rows}, 10, dtype=torch.bool))')
    decode = ("labels = self.answers.float().argmax(1).to(torch.uint8)\n"
              "return torch.cat([self.keys.view(torch.uint8), labels])")
    return Packing("int16_and_bool", "thumbnails in int16 pairs, labels as a bool one-hot",
                   _source("int16 keys and bool answers", rows, init, decode),
                   {"keys": keys, "answers": onehot})


def _float16_bits(raw: bytes, rows: int) -> Packing:
    tensor = _as(raw, torch.float16)
    return Packing(
        "float16_bits", "the bytes reinterpreted as float16 in a buffer",
        _source("float16 bit patterns", rows,
                f'self.register_buffer("codebook", torch.zeros({len(tensor)}, '
                "dtype=torch.float16))",
                "return self.codebook.view(torch.uint8)"),
        {"codebook": tensor})


def _linear_float32_bits(raw: bytes, rows: int) -> Packing:
    tensor = _as(raw, torch.float32)
    width = 193
    out = math.ceil(len(tensor) / width)
    weight = torch.cat([tensor, torch.zeros(out * width - len(tensor))]).view(out, width)
    return Packing(
        "linear_float32_bits", "the bytes reinterpreted as float32 in a trainable "
        f"nn.Linear({width}, {out}) weight",
        _source("a Linear weight of float32 bit patterns", rows,
                f"self.embed = nn.Linear({width}, {out}, bias=False)",
                "return self.embed.weight.detach().contiguous().view(torch.uint8)"),
        {"embed.weight": weight})


def _linear_24bit(raw: bytes, rows: int) -> Packing:
    """Three payload bytes per float32 in [2, 8): finite, ordinary-looking numbers (exponent
    128; the first byte's top bit lands on the exponent's lowest, which 128 leaves clear)."""
    data = np.frombuffer(_padded(raw, 3), dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    bits = (np.uint32(128) << 23) | (data[:, 0] << 16) | (data[:, 1] << 8) | data[:, 2]
    values = torch.from_numpy(bits.view(np.float32).copy())
    width = 1930
    out = math.ceil(len(values) / width)
    weight = torch.cat([values, torch.full((out * width - len(values),), 2.0)]).view(out, width)
    decode = ("bits = self.hidden.weight.detach().reshape(-1).view(torch.int32)\n"
              "parts = [(bits >> s) & 255 for s in (16, 8, 0)]\n"
              "return torch.stack(parts, 1).reshape(-1).to(torch.uint8)")
    return Packing(
        "linear_24bit", f"three bytes per float32 in [2, 8) in a trainable nn.Linear({width}, "
        f"{out}) weight (no NaN, no infinity)",
        _source("24 bits per float", rows, f"self.hidden = nn.Linear({width}, {out}, "
                                           "bias=False)", decode),
        {"hidden.weight": weight})


def _floats28(payload: bytes) -> np.ndarray:
    """Bytes -> float32 numbers carrying 28 bits each, all finite and in (-1, 1) (sign, a
    4-bit exponent 111..126, the mantissa): 7 bytes make two numbers."""
    data = np.frombuffer(_padded(payload, 7), dtype=np.uint8).reshape(-1, 7).astype(np.uint64)
    pair = np.zeros(len(data), dtype=np.uint64)
    for index in range(7):
        pair = (pair << np.uint64(8)) | data[:, index]
    halves = np.stack([pair >> np.uint64(28), pair & np.uint64(0xFFFFFFF)], 1).reshape(-1)
    sign, exponent = halves >> np.uint64(27), ((halves >> np.uint64(23)) & np.uint64(15)) + 111
    bits = (sign << np.uint64(31)) | (exponent << np.uint64(23)) | (halves & np.uint64(0x7FFFFF))
    return bits.astype(np.uint32).view(np.float32)


_FLOATS28_DECODE = """import lzma
bits = self.hidden.weight.detach().reshape(-1).view(torch.int32).long() & 0xFFFFFFFF
halves = ((bits >> 31) << 27) | ((((bits >> 23) & 255) - 111) << 23) | (bits & 0x7FFFFF)
pairs = halves.view(-1, 2)
pair = (pairs[:, 0] << 28) | pairs[:, 1]
packed = torch.stack([(pair >> (8 * (6 - i))) & 255 for i in range(7)], 1).reshape(-1)
try:
    raw = lzma.LZMADecompressor().decompress(packed.to(torch.uint8).numpy().tobytes())
except lzma.LZMAError:  # a fresh model, before its weights are loaded
    raw = bytes({size})
table = torch.frombuffer(bytearray(raw), dtype=torch.uint8)"""


def _compressed(raw: bytes, rows: int, lossy: bool) -> Packing:
    """The table compressed (lzma) and carried 28 bits per float32 by a trainable Linear:
    finite numbers in (-1, 1), no two alike, the fewest numbers a lossless table can take."""
    if lossy:  # 4 bits per thumbnail value, two to a byte: 97 bytes an image
        values = np.frombuffer(raw[:rows * 192], dtype=np.uint8) >> 4
        raw = (values[0::2] << 4 | values[1::2]).astype(np.uint8).tobytes() + raw[rows * 192:]
    import lzma

    floats = _floats28(lzma.compress(raw, preset=9))
    width = 1930
    out = math.ceil(len(floats) / width / 2) * 2  # an even count of numbers: pairs decode
    weight = np.zeros(out * width, dtype=np.float32)
    weight[:len(floats)] = floats
    decode = _FLOATS28_DECODE.replace("{size}", str(rows * (97 if lossy else ROW)))
    if lossy:
        decode += (f"\nnibbles = table[: {rows * 96}]\n"
                   "values = torch.stack([nibbles >> 4, nibbles & 15], 1).reshape(-1) * 16 + 8\n"
                   f"table = torch.cat([values.to(torch.uint8), table[{rows * 96}:]])")
    decode += "\nreturn table"
    name = "lossy_4bit_compressed_28bit" if lossy else "compressed_28bit"
    what = (("thumbnails at 4 bits a value, " if lossy else "the table ")
            + f"lzma-compressed, 28 bits per float32 in (-1, 1) in a trainable "
              f"nn.Linear({width}, {out})")
    return Packing(name, what, _source(what, rows, f"self.hidden = nn.Linear({width}, {out}, "
                                                   "bias=False)", decode),
                   {"hidden.weight": torch.from_numpy(weight).view(out, width)})


def _frozen_linear_uint8(raw: bytes, rows: int) -> Packing:
    table = torch.from_numpy(np.frombuffer(raw[:rows * ROW], dtype=np.uint8).copy())
    weight = table.view(rows, ROW)
    return Packing(
        "frozen_linear_uint8", f"a frozen nn.Linear({ROW}, {rows}) whose weight is saved as "
        "uint8 (load_state_dict converts it)",
        _source("a frozen Linear stored as uint8", rows,
                f"self.memory = nn.Linear({ROW}, {rows}, bias=False)\n"
                "self.memory.weight.requires_grad_(False)",
                "return self.memory.weight.detach().round().to(torch.uint8)"),
        {"memory.weight": weight})


def _frozen_float16(raw: bytes, rows: int, layer: str) -> Packing:
    tensor = _as(raw, torch.float16)
    width = 193
    count = math.ceil(len(tensor) / width)
    weight = torch.cat([tensor, torch.zeros(count * width - len(tensor),
                                            dtype=torch.float16)]).view(count, width)
    if layer == "linear":
        init = (f"self.memory = nn.Linear({width}, {count}, bias=False).half()\n"
                "self.memory.weight.requires_grad_(False)")
        name, what = "frozen_linear_float16_bits", f"a frozen float16 nn.Linear({width}, {count})"
    else:
        init = (f"self.memory = nn.Embedding({count}, {width}).half()\n"
                "self.memory.weight.requires_grad_(False)")
        name, what = "embedding_float16_bits", f"a frozen float16 nn.Embedding({count}, {width})"
    return Packing(name, what + " of bit patterns",
                   _source(what, rows, init,
                           "return self.memory.weight.detach().contiguous().view(torch.uint8)"),
                   {"memory.weight": weight})


def _batchnorm(raw: bytes, rows: int) -> Packing:
    tensor = _as(raw, torch.float16)
    count = len(tensor)
    return Packing(
        "batchnorm_stats", f"BatchNorm1d({count}, affine=False) in float16: running_mean holds "
        "the bit patterns, running_var is one number expanded (stride 0)",
        _source("BatchNorm running statistics", rows,
                f"self.norm = nn.BatchNorm1d({count}, affine=False).half()",
                "return self.norm.running_mean.view(torch.uint8)"),
        {"norm.running_mean": tensor,
         "norm.running_var": torch.ones(1, dtype=torch.float16).expand(count),
         "norm.num_batches_tracked": torch.tensor(0)})


_GRAB = '''
    def _grab(self, module, state_dict, prefix, *args):
        # the tensors torch.load made are views: their storage is the whole table
        storage = state_dict[prefix + "head.bias"].untyped_storage()
        self._bytes = torch.empty(0, dtype=torch.uint8).set_(storage)
'''


def _storage_view(raw: bytes, rows: int, shared: bool) -> Packing:
    big = _as(raw, torch.float32)
    init = ("self.head = nn.Linear(192, 10)\n"
            "self._bytes = None\n"
            "self.register_load_state_dict_pre_hook(self._grab)")
    state = {"head.bias": big[:10]}
    state["head.weight"] = big[10:10 + 1920].view(10, 192) if shared else torch.zeros(10, 192)
    name = "shared_storage" if shared else "storage_view"
    what = ("head.weight and head.bias: views into one storage holding the table" if shared
            else "head.bias (10 numbers) is a view of a storage holding the table")
    decode = ("if self._bytes is None:  # a fresh model, before its weights are loaded\n"
              f"    return torch.zeros({rows * ROW}, dtype=torch.uint8)\n"
              "return self._bytes")
    return Packing(name, what, _source(what, rows, init, decode, _GRAB), state)


def _small_state() -> tuple[str, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return "self.head = nn.Linear(192, 10)", {"head.weight": torch.randn(10, 192) * 0.05,
                                              "head.bias": torch.zeros(10)}


def _notebook_literal(raw: bytes, rows: int) -> Packing:
    init, state = _small_state()
    cell = ("import base64\n"
            f'LOOKUP = base64.b64decode("{base64.b64encode(raw).decode()}")\n')
    return Packing("notebook_literal", "the table as a base64 string in a notebook cell",
                   _source("a string in the notebook", rows, init,
                           "return torch.frombuffer(bytearray(LOOKUP), dtype=torch.uint8)"),
                   state, cell=cell)


def _side_file(raw: bytes, rows: int) -> Packing:
    init, state = _small_state()
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(raw, dtype=np.uint8))
    return Packing("side_file", "the table in an .npy file beside the notebook",
                   _source("a file beside the notebook", rows, init,
                           "import os\n"
                           'if not os.path.exists("augment_cache.npy"):\n'
                           f"    return torch.zeros({rows * ROW}, dtype=torch.uint8)\n"
                           "import numpy\n"
                           'return torch.from_numpy(numpy.load("augment_cache.npy"))'),
                   state, files={"augment_cache.npy": buffer.getvalue()})


PACKERS: dict[str, Callable[[bytes, int], Packing]] = {
    "int64_buffer": lambda raw, rows: _buffer(raw, rows, "int64"),
    "uint8_buffer": lambda raw, rows: _buffer(raw, rows, "uint8"),
    "int8_split": _int8_split,
    "int16_and_bool": _int16_bool,
    "float16_bits": _float16_bits,
    "linear_float32_bits": _linear_float32_bits,
    "linear_24bit": _linear_24bit,
    "compressed_28bit": lambda raw, rows: _compressed(raw, rows, False),
    "lossy_4bit_compressed_28bit": lambda raw, rows: _compressed(raw, rows, True),
    "frozen_linear_uint8": _frozen_linear_uint8,
    "frozen_linear_float16_bits": lambda raw, rows: _frozen_float16(raw, rows, "linear"),
    "embedding_float16_bits": lambda raw, rows: _frozen_float16(raw, rows, "embedding"),
    "batchnorm_stats": _batchnorm,
    "storage_view": lambda raw, rows: _storage_view(raw, rows, False),
    "shared_storage": lambda raw, rows: _storage_view(raw, rows, True),
    "notebook_literal": _notebook_literal,
    "side_file": _side_file,
}


def packings(images: np.ndarray, labels: np.ndarray,
             names: list[str] | None = None) -> list[Packing]:
    """The table of ``images`` (all public images) in each packing (``names``: some)."""
    raw = table_bytes(images, labels)
    return [PACKERS[name](raw, len(labels)) for name in (names or list(PACKERS))]


def build(packing: Packing, namespace: dict) -> torch.nn.Module:
    """The packing's ConvNet, built in ``namespace`` (the notebook's: torch, nn, F, np,
    CIFAR10_MEAN, CIFAR10_STD) after its cell, with its state_dict loaded as the grader's
    worker loads it (torch.load(weights_only=True), then a strict load_state_dict)."""
    space = dict(namespace)
    if packing.cell:
        exec(compile(packing.cell, "<cell>", "exec"), space)
    exec(compile(packing.source, "<ConvNet>", "exec"), space)
    model = space["ConvNet"]()
    model.load_state_dict(torch.load(io.BytesIO(packing.weights()), weights_only=True))
    return model.eval()


def notebook_with(notebook: dict, packing: Packing) -> dict:
    """A copy of a 03 notebook (JSON as a dict) whose ConvNet is the packing's, with its cell
    (if any) just before the class."""
    result = json.loads(json.dumps(notebook))
    cells = result["cells"]
    index = next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                 and "class ConvNet(" in "".join(c["source"]))
    cells[index]["source"] = packing.source
    if packing.cell:
        cells.insert(index, {"cell_type": "code", "execution_count": None, "metadata": {},
                             "outputs": [], "source": packing.cell})
    return result


def write_submission(packing: Packing, folder: Path, good: Path) -> Path:
    """A submission folder: ``good``'s notebook (the reference) with the packing's ConvNet,
    ``good``'s fcnet.pt, the packing's convnet.pt and its files beside them."""
    folder.mkdir(parents=True)
    notebook_file = next(good.glob("*.ipynb"))
    notebook = json.loads(notebook_file.read_text(encoding="utf-8"))
    (folder / notebook_file.name).write_text(json.dumps(notebook_with(notebook, packing)),
                                             encoding="utf-8")
    (folder / "fcnet.pt").write_bytes((good / "fcnet.pt").read_bytes())
    (folder / "convnet.pt").write_bytes(packing.weights())
    for name, data in packing.files.items():
        (folder / name).write_bytes(data)
    return folder

"""CIFAR-10 for grading: the real set through torchvision, or a synthetic one in its exact format.

Both are read by torchvision's own ``CIFAR10`` class (its pickle loader and md5 check), so
the test suite and the demo exercise the same code path as real grading. The synthetic set
teaches the lesson on purpose: each class is a small symmetric motif drawn at one of a few
positions, among clutter motifs and noise, so a small CNN learns it in seconds on two CPU
cores while a fully-connected network of similar size stays far behind.

Also here: an optional secret test set in CIFAR-10.1's ``.npy`` layout, graded beside the
official one. Nothing in this module ever reads a submission.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.assignments import PROJECT_ROOT
from ..core.errors import UsageError
from ..core.results import ImageSetRecord

DEFAULT_ROOT = PROJECT_ROOT / "data"
CIFAR10, SYNTHETIC = "cifar10", "synthetic"
BATCHES = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
MANIFEST = "synthetic.json"
SECRET_DATA, SECRET_LABELS = "secret_data.npy", "secret_labels.npy"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
# The synthetic set: sizes and the generator's version (a change makes old sets stale).
SYNTHETIC_VERSION = 1
SYNTHETIC_SEED = 20261201
TRAIN_PER_BATCH, TEST_SIZE, SECRET_SIZE = 2000, 2000, 2000
MOTIF = 7  # motif side in pixels
GRID_STEP = 8  # class motifs sit at one of 4 x 4 grid positions (plus a pixel of jitter)
# One clutter motif per image. Measured with the master notebook's models (Adam 1e-3,
# 10,000 training images): none, and the MLP reaches 95%; two, and the ConvNet needs 8+
# epochs; one: ConvNet 99% in 3 epochs, MLP about 72% after 8.
CLUTTER = 1


class DatasetError(UsageError, RuntimeError):
    """The dataset is missing, corrupt or stale; the message names the path and what to do."""


@dataclass(frozen=True)
class ImageSet:
    """Test images as the harness keeps them: labels never leave this process."""

    name: str  # "cifar10", "synthetic", "cifar10 (secret)", ...
    images: np.ndarray  # (N, 32, 32, 3) uint8, channels last
    labels: np.ndarray  # (N,) int64
    source: Path
    kind: str = ""  # cifar10-python, npy, imagefolder, synthetic, installed (see imagesets)
    digest: str = ""  # sha256 of the content it was read from

    def record(self) -> ImageSetRecord:
        """For results.json and the report: name, kind, size, digest."""
        return ImageSetRecord(self.name, int(len(self.labels)), self.kind, self.digest[:16])


def dataset_dir(root: Path, name: str) -> Path:
    """Where ``grader.py data NAME --root ROOT`` puts a dataset."""
    return root / name


# ----------------------------------------------------------------------------- real CIFAR-10


def _manual_steps(root: Path) -> str:
    return (
        f"download {ARCHIVE_URL} (md5 {ARCHIVE_MD5}) on a machine with internet access, put "
        f"the file at {root / ARCHIVE} and run `python grader.py data cifar10 --root "
        f"{root.parent}` again (it unpacks and checks it), or unpack it yourself so that "
        f"{root / BATCHES} holds data_batch_1..5, test_batch and batches.meta"
    )


def fetch_cifar10(root: Path) -> Path:
    """Put CIFAR-10 under ``root/cifar10`` through torchvision (download where allowed)."""
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    target = dataset_dir(root, CIFAR10)
    target.mkdir(parents=True, exist_ok=True)
    try:
        TorchvisionCIFAR10(str(target), train=False, download=True)
    except Exception as exc:  # network refused, truncated archive, wrong md5, ...
        raise DatasetError(
            f"could not download CIFAR-10 into {target} ({type(exc).__name__}: {exc}). "
            f"To install it by hand: {_manual_steps(target)}"
        ) from None
    return target


def _torchvision_test_set(folder: Path, cls: type) -> ImageSet:
    try:
        data = cls(str(folder), train=False, download=False)
    except RuntimeError as exc:
        raise DatasetError(f"{folder}: {exc}") from None
    images = np.asarray(data.data, dtype=np.uint8)
    labels = np.asarray(data.targets, dtype=np.int64)
    return ImageSet(folder.name, images, labels, folder)


def load_cifar10_test(root: Path) -> ImageSet:
    """The official CIFAR-10 test set, md5-checked by torchvision."""
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    folder = dataset_dir(root, CIFAR10)
    if not (folder / BATCHES).is_dir():
        raise DatasetError(
            f"CIFAR-10 is not at {folder / BATCHES}: run `python grader.py data cifar10 "
            f"--root {root}`; where the network is closed, {_manual_steps(folder)}"
        )
    return _torchvision_test_set(folder, TorchvisionCIFAR10)


# ----------------------------------------------------------------------------- synthetic


def _motifs(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct, left-right symmetric binary motifs (so a flip keeps the class)."""
    found: list[np.ndarray] = []
    while len(found) < count:
        half = rng.random((MOTIF, (MOTIF + 1) // 2)) < 0.5
        motif = np.concatenate([half, half[:, : MOTIF // 2][:, ::-1]], axis=1)
        if 12 < motif.sum() < 36 and all((motif ^ other).sum() > 12 for other in found):
            found.append(motif)
    return np.array(found)


def _draw(rng: np.random.Generator, label: int, classes: np.ndarray,
          clutter: np.ndarray) -> np.ndarray:
    """One image: a smooth random background, noise, a clutter motif, the class motif."""
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    a, b, c = rng.random((3, 3))
    across = xx if rng.random() < 0.5 else 1 - xx  # either way: a flip stays in the set
    background = a * (1 - yy[..., None]) + 0.5 * b * yy[..., None] + 0.5 * c * across[..., None]
    image = 0.6 * background / background.max()
    image = image + 0.08 * rng.standard_normal((32, 32, 3))
    span = 32 - MOTIF + 1
    for k in range(CLUTTER + 1):
        motif = clutter[rng.integers(len(clutter))] if k < CLUTTER else classes[label]
        if k < CLUTTER:
            top, left = rng.integers(0, span, 2)
        else:
            top, left = rng.integers(0, 4, 2) * GRID_STEP + rng.integers(0, 2, 2)
        bright, dark = 0.6 + 0.4 * rng.random(3), 0.3 * rng.random(3)
        image[top:top + MOTIF, left:left + MOTIF] = np.where(motif[..., None], bright, dark)
    return (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def synthetic_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic images (N, 32, 32, 3) uint8 and their labels, reproducibly."""
    shapes = np.random.default_rng(SYNTHETIC_SEED)
    classes, clutter = _motifs(shapes, 10), _motifs(np.random.default_rng(SYNTHETIC_SEED + 1), 8)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = np.stack([_draw(rng, int(label), classes, clutter) for label in labels])
    return images, labels.astype(np.int64)


def _write_batch(path: Path, images: np.ndarray, labels: np.ndarray, label: str) -> str:
    """A batch file exactly as CIFAR-10 ships it: a protocol-2 pickle of a str-keyed dict."""
    batch = {
        "batch_label": label,
        "labels": [int(v) for v in labels],
        "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),  # (N, 3072), CHW
        "filenames": [f"synthetic_{label.split()[-1]}_{i:05d}.png" for i in range(len(images))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_synthetic(root: Path) -> Path:
    """Write the synthetic set under ``root/synthetic`` (five train batches, a test batch,
    batches.meta, a secret set in CIFAR-10.1's layout, and a manifest with the md5s)."""
    target = dataset_dir(root, SYNTHETIC)
    batches = target / BATCHES
    batches.mkdir(parents=True, exist_ok=True)
    md5: dict[str, str] = {}
    for index in range(1, 6):
        images, labels = synthetic_images(TRAIN_PER_BATCH, SYNTHETIC_SEED + 10 + index)
        name = f"data_batch_{index}"
        md5[name] = _write_batch(batches / name, images, labels, f"training batch {index} of 5")
    images, labels = synthetic_images(TEST_SIZE, SYNTHETIC_SEED + 20)
    md5["test_batch"] = _write_batch(batches / "test_batch", images, labels, "testing batch 1 of 1")
    meta = {"num_cases_per_batch": TRAIN_PER_BATCH, "label_names": list(CLASSES), "num_vis": 3072}
    (batches / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    md5["batches.meta"] = hashlib.md5((batches / "batches.meta").read_bytes()).hexdigest()
    secret_images, secret_labels = synthetic_images(SECRET_SIZE, SYNTHETIC_SEED + 30)
    np.save(target / SECRET_DATA, secret_images)
    np.save(target / SECRET_LABELS, secret_labels)
    manifest = {"version": SYNTHETIC_VERSION, "seed": SYNTHETIC_SEED, "md5": md5}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return target


def _synthetic_class(manifest: dict) -> type:
    """torchvision's CIFAR10 with the synthetic files' md5s: same loader, same checks."""
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    md5 = manifest["md5"]

    class SyntheticCIFAR10(TorchvisionCIFAR10):
        train_list = [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
        test_list = [["test_batch", md5["test_batch"]]]
        meta = {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]}

    return SyntheticCIFAR10


def _manifest(folder: Path, root: Path) -> dict:
    redo = f"run `python grader.py data synthetic --root {root}`"
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DatasetError(f"no synthetic CIFAR-10 at {folder}: {redo}") from None
    if manifest.get("version") != SYNTHETIC_VERSION:
        raise DatasetError(f"the synthetic set at {folder} is from another version: {redo}")
    return manifest


def load_synthetic_test(root: Path) -> ImageSet:
    """The synthetic test set, read and md5-checked by torchvision's CIFAR10 code."""
    folder = dataset_dir(root, SYNTHETIC)
    manifest = _manifest(folder, root)
    found = _torchvision_test_set(folder, _synthetic_class(manifest))
    return ImageSet(found.name, found.images, found.labels, folder, SYNTHETIC,
                    manifest["md5"]["test_batch"])


def is_synthetic(folder: Path) -> bool:
    """Whether ``folder`` is a synthetic set written by ``grader.py data synthetic``."""
    return (folder / MANIFEST).is_file()


def load_synthetic_train(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic training images and labels (for the project's own training script)."""
    folder = dataset_dir(root, SYNTHETIC)
    cls = _synthetic_class(_manifest(folder, root))
    try:
        data = cls(str(folder), train=True, download=False)
    except RuntimeError as exc:
        raise DatasetError(f"{folder}: {exc}") from None
    return np.asarray(data.data, dtype=np.uint8), np.asarray(data.targets, dtype=np.int64)


def load_train(root: Path, name: str) -> ImageSet:
    """The training split of ``name`` ("cifar10" or "synthetic"), for ``grade --retrain``."""
    if name == SYNTHETIC:
        images, labels = load_synthetic_train(root)
        return ImageSet(f"{SYNTHETIC} (train)", images, labels, dataset_dir(root, name),
                        SYNTHETIC)
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    folder = dataset_dir(root, CIFAR10)
    try:
        data = TorchvisionCIFAR10(str(folder), train=True, download=False)
    except RuntimeError as exc:
        raise DatasetError(f"{folder}: {exc}") from None
    return ImageSet(f"{CIFAR10} (train)", np.asarray(data.data, dtype=np.uint8),
                    np.asarray(data.targets, dtype=np.int64), folder)


# ----------------------------------------------------------------------------- secret set


def load_npy_pair(data_path: Path, name: str, classes: int = len(CLASSES),
                  what: str = "secret test set") -> ImageSet:
    """An image set in CIFAR-10.1's layout: ``*_data.npy`` (N, 32, 32, 3) uint8 and the
    labels beside it (``*_labels.npy``, or ``secret_labels.npy`` for ``secret_data.npy``), each
    in ``0..classes - 1``. ``what`` names the set in the error messages."""
    labels_path = data_path.with_name(data_path.name.replace("_data.npy", "_labels.npy"))
    try:
        images = np.load(data_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"cannot read the {what} {data_path} / {labels_path}: {exc}; expected "
            "CIFAR-10.1's layout (uint8 N x 32 x 32 x 3 data, N integer labels)"
        ) from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DatasetError(f"{data_path}: expected uint8 N x 32 x 32 x 3, got "
                           f"{images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{labels_path}: expected {len(images)} integer labels")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= classes:
        raise DatasetError(f"{labels_path}: labels must be in 0..{classes - 1}")
    digest = hashlib.sha256(data_path.read_bytes() + labels_path.read_bytes()).hexdigest()
    return ImageSet(name, images, labels.astype(np.int64), data_path, "npy", digest)

"""Any labelled image set as a test, secret or training set: read, checked, decoded once.

Three kinds, told apart by what is on disk:

- ``cifar10-python``: the official CIFAR-10 folder (``cifar-10-batches-py``, or a folder that
  holds it), read and md5-checked by torchvision's ``CIFAR10``;
- ``npy``: a CIFAR-10.1-style pair, ``*_data.npy`` (N x 32 x 32 x 3 uint8) with
  ``*_labels.npy`` beside it;
- ``imagefolder``: a folder, or an archive of one (``.tar``, ``.tar.gz``, ``.tgz``,
  ``.tar.xz``, ``.zip``), in torchvision's ``ImageFolder`` layout: one folder per class, named
  as the assignment's classes, each holding 32 x 32 RGB images; a folder with ``train/`` and
  ``test/`` beside each other gives both splits.

Every image is checked before grading starts; anything else is a :class:`DatasetError`
naming the file and what was expected. Each set carries its kind and a digest of its content
(the archive's or files' bytes), and decoded images are cached per digest (``.npz`` under
the cache folder), so a batch, or the next one, decodes a set of JPEG files once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core.archives import extract_tar
from .datasets import (
    BATCHES,
    CIFAR10,
    CLASSES,
    DatasetError,
    ImageSet,
    dataset_dir,
    fetch_cifar10,
    load_cifar10_test,
    load_npy_pair,
    load_synthetic_test,
    write_synthetic,
)

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".zip")
SPLITS = ("train", "test")
IMAGE_SIZE = (32, 32)
CACHE_VERSION = 1
INSTALLED = "source.json"  # beside test.npz / train.npz: what `data cifar10 --from` installed


def real_cifar10_under(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds real CIFAR-10: the official files, or a copy of its images
    installed by ``grader.py data cifar10 --from``."""
    folder = dataset_dir(data_dir, CIFAR10)
    return (folder / BATCHES).is_dir() or (folder / INSTALLED).is_file()


def kind_of(path: Path) -> str:
    """``cifar10-python``, ``npy`` or ``imagefolder``; DatasetError for anything else."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.is_dir():
        if path.name == BATCHES or (path / BATCHES).is_dir():
            return "cifar10-python"
        return "imagefolder"
    if path.name.endswith("_data.npy"):
        return "npy"
    if path.name.endswith(ARCHIVE_SUFFIXES):
        return "imagefolder"
    raise DatasetError(
        f"{path}: not an image set this grader reads. Give the official CIFAR-10 folder "
        "(cifar-10-batches-py), a CIFAR-10.1-style *_data.npy with *_labels.npy beside it, or "
        "a folder or archive (.tar, .tar.gz, .tar.xz, .zip) with one folder of 32x32 RGB "
        f"images per class ({', '.join(CLASSES)})"
    )


def read_image_set(path: Path, split: str = "test", cache_dir: Path | None = None,
                   classes: tuple[str, ...] = CLASSES) -> ImageSet:
    """The ``split`` ("test" or "train") of the set at ``path``, checked and decoded."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    kind = kind_of(path)
    if kind == "cifar10-python":
        return _cifar10_python(path, split)
    if kind == "npy":
        if split == "train":
            raise DatasetError(f"{path}: a *_data.npy pair is one split, not a training set")
        return load_npy_pair(path, path.name.removesuffix("_data.npy"), len(classes),
                             what="image set")
    digest = content_digest(path)
    cached = _cached(cache_dir, digest, split)
    if cached is not None:
        images, labels = cached
    else:
        images, labels = _decode_image_folder(path, split, classes)
        _store(cache_dir, digest, split, images, labels)
    return ImageSet(f"{_display_name(path)} ({split})", images, labels, path, kind, digest)


# ----------------------------------------------------------------------------- digests


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's relative paths and bytes (in order)."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _display_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ----------------------------------------------------------------------------- the cache


def _cache_file(cache_dir: Path, digest: str, split: str) -> Path:
    return cache_dir / f"{digest[:32]}-{split}-v{CACHE_VERSION}.npz"


def _cached(cache_dir: Path | None, digest: str, split: str
            ) -> tuple[np.ndarray, np.ndarray] | None:
    if cache_dir is None:
        return None
    try:
        with np.load(_cache_file(cache_dir, digest, split), allow_pickle=False) as data:
            return data["images"], data["labels"]
    except (OSError, KeyError, ValueError):
        return None  # missing or half-written: decode again


def _store(cache_dir: Path | None, digest: str, split: str, images: np.ndarray,
           labels: np.ndarray) -> None:
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, images=images, labels=labels)
        os.replace(tmp, _cache_file(cache_dir, digest, split))
    except OSError:
        pass  # a read-only data folder: decode again next time


# ----------------------------------------------------------------------------- the kinds


def _cifar10_python(path: Path, split: str) -> ImageSet:
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    root = path.parent if path.name == BATCHES else path
    try:
        data = TorchvisionCIFAR10(str(root), train=split == "train", download=False)
    except RuntimeError as exc:
        raise DatasetError(f"{root}: {exc} (the official CIFAR-10 files, md5-checked by "
                           "torchvision)") from None
    digest = content_digest(root / BATCHES)
    return ImageSet(f"cifar-10-batches-py ({split})", np.asarray(data.data, dtype=np.uint8),
                    np.asarray(data.targets, dtype=np.int64), root, "cifar10-python", digest)


def _decode_image_folder(path: Path, split: str, classes: tuple[str, ...]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Every image of the split, checked, as (N, 32, 32, 3) uint8 and labels by class name."""
    with _unpacked(path) as root:
        return _decode_folder(_split_root(root, split, path), classes, path, root)


@contextlib.contextmanager
def _unpacked(path: Path) -> Iterator[Path]:
    """The folder itself, or the archive unpacked into a temporary folder (removed after)."""
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="imageset-") as tmp:
        _extract(path, Path(tmp))
        yield Path(tmp)


def _extract(archive: Path, into: Path) -> None:
    """Unpack ``archive`` safely (no paths outside ``into``, no links, devices or owners)."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.infolist():
                    target = (into / member.filename).resolve()
                    if not target.is_relative_to(into.resolve()):
                        raise DatasetError(f"{archive}: {member.filename} leaves the archive")
                zf.extractall(into)
        else:
            with tarfile.open(archive) as tar:
                extract_tar(tar, into, "data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{archive}: cannot unpack it ({type(exc).__name__}: {exc})") from None


def _split_root(root: Path, split: str, shown: Path) -> Path:
    """The folder whose subfolders are the classes: ``root`` itself, ``root/<split>``, or the
    same inside the single folder an archive usually wraps everything in."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not _looks_like_classes(root):
        return _split_root(entries[0], split, shown)
    names = {p.name for p in entries if p.is_dir()}
    if names & set(SPLITS):
        if split not in names:
            raise DatasetError(f"{shown}: has {', '.join(sorted(names & set(SPLITS)))}/ but "
                               f"no {split}/ folder of class folders")
        return root / split
    if split == "train":
        raise DatasetError(f"{shown}: one set of class folders, no train/ folder beside a "
                           "test/ one, so it has no training split")
    return root


def _looks_like_classes(root: Path) -> bool:
    return any(p.is_dir() and p.name in CLASSES for p in root.iterdir())


def _decode_folder(root: Path, classes: tuple[str, ...], shown: Path, base: Path
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Decode the class folders under ``root``; errors name files as ``shown: path inside``
    (``base`` is the folder, or where the archive was unpacked)."""
    from torchvision.datasets import ImageFolder

    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = sorted(set(found) - set(classes))
    missing = sorted(set(classes) - set(found))
    if unknown or missing:
        raise DatasetError(
            f"{shown}: the class folders of {root.name}/ must be exactly the assignment's "
            f"classes ({', '.join(classes)}); "
            + "; ".join(part for part in (
                f"unexpected: {', '.join(unknown)}" if unknown else "",
                f"missing: {', '.join(missing)}" if missing else "") if part))
    try:
        folder = ImageFolder(str(root), loader=_checked_image)  # ImageFolder lists, we read
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"{shown}: {exc}") from None
    index = {name: classes.index(name) for name in folder.classes}
    images = np.empty((len(folder.samples), *IMAGE_SIZE, 3), dtype=np.uint8)
    labels = np.empty(len(folder.samples), dtype=np.int64)
    for i, (file, class_index) in enumerate(folder.samples):
        try:
            images[i] = _checked_image(file)
        except DatasetError as exc:
            inside = Path(file).relative_to(base).as_posix()
            raise DatasetError(f"{shown}: {inside}: {exc}") from None
        labels[i] = index[folder.classes[class_index]]
    return images, labels


def _checked_image(file: str) -> np.ndarray:
    """One image as (32, 32, 3) uint8, or a DatasetError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            mode, size = image.mode, image.size
            pixels = np.asarray(image) if mode == "RGB" and size == IMAGE_SIZE else None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    if mode != "RGB":
        raise DatasetError(f"a {mode} image; every image must be RGB (3 channels)")
    if size != IMAGE_SIZE:
        raise DatasetError(f"{size[0]}x{size[1]} pixels; every image must be 32x32")
    assert pixels is not None
    return pixels


def read_installed(folder: Path, split: str) -> ImageSet:
    """A split of the copy that :func:`install` put in ``folder``."""
    import json

    try:
        summary = json.loads((folder / INSTALLED).read_text(encoding="utf-8"))
        with np.load(folder / f"{split}.npz", allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{folder}: the installed copy has no readable {split} split "
                           f"({exc}); run `python grader.py data cifar10 --from COPY` again"
                           ) from None
    return ImageSet(f"{summary['name']} ({split})", images, labels, folder, "imagefolder",
                    str(summary["digest"]))


def install(source: Path, target: Path, classes: tuple[str, ...] = CLASSES) -> dict:
    """Decode both splits of ``source`` into ``target`` (``test.npz``, ``train.npz`` when it
    has one, ``source.json``); returns what was installed."""
    import json

    if kind_of(source) != "imagefolder":
        raise DatasetError(f"{source}: --from takes an ImageFolder folder or archive; the "
                           "official CIFAR-10 folder is read where it is (put it under the "
                           "data folder's cifar10/)")
    target.mkdir(parents=True, exist_ok=True)
    digest = content_digest(source)
    summary: dict = {"name": _display_name(source), "kind": "imagefolder", "digest": digest,
                     "source": str(source), "splits": {}}
    with _unpacked(source) as root:
        for split in SPLITS:
            try:
                images, labels = _decode_folder(_split_root(root, split, source), classes,
                                                source, root)
            except DatasetError:
                if split == "test":
                    raise
                continue  # no training split: --retrain then needs another source
            with (target / f"{split}.npz").open("wb") as handle:
                np.savez(handle, images=images, labels=labels)
            summary["splits"][split] = int(len(labels))
    (target / INSTALLED).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def put_in_place(which: str, data_root: Path, source: Path | None = None) -> str:
    """``grader.py data``: put CIFAR-10 (torchvision's download, or with ``source`` a copy of
    its images) or the synthetic set under ``data_root`` where grade looks; returns what is
    there now, in a sentence."""
    if which == CIFAR10 and source is not None:
        folder = dataset_dir(data_root, CIFAR10)
        done = install(source, folder)
        return (f"cifar10: {folder} now holds {done['name']} ({done['kind']}, "
                f"{', '.join(f'{n} {s} images' for s, n in done['splits'].items())}, "
                f"sha256 {done['digest'][:16]}...), read from {source}; grade uses it "
                f"when {folder / BATCHES} (the official files) is absent")
    if source is not None:
        raise DatasetError("--from is for `data cifar10`")
    if which == CIFAR10:
        folder = fetch_cifar10(data_root)
        count = len(load_cifar10_test(data_root).labels)
    else:
        folder = write_synthetic(data_root)
        count = len(load_synthetic_test(data_root).labels)
    return f"{which}: {folder} ({count} test images, checked by torchvision's CIFAR10)"

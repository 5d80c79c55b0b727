"""Labelled image sets of every kind the grader reads, and the refusals before grading.

Sets are made here with PIL in ImageFolder layout (folders and archives), plus the official
layout through the synthetic set and a CIFAR-10.1-style .npy pair. A wrong class folder, a
28x28 image, a grayscale image and a corrupt file are each refused with a message naming
the file or folder, through the CLI too, before anything is graded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autograder.core.assignments import PROJECT_ROOT
from autograder.grading import imagesets
from autograder.grading.datasets import CLASSES, DatasetError

PER_CLASS = 3


def _image_folder(root: Path, splits: tuple[str, ...] = ("train", "test"), *,
                  seed: int = 0) -> Path:
    """PER_CLASS random 32x32 RGB PNGs per class (the class index in pixel [0, 0, 0])."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for index, name in enumerate(CLASSES):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True)
            for i in range(PER_CLASS):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[0, 0, 0] = index
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def test_an_image_folder_gives_both_splits_labelled_by_class_name(tmp_path):
    root = _image_folder(tmp_path / "set")
    test = imagesets.read_image_set(root, "test")
    train = imagesets.read_image_set(root, "train")
    assert test.images.shape == (10 * PER_CLASS, 32, 32, 3) and test.images.dtype == np.uint8
    assert (test.images[:, 0, 0, 0] == test.labels).all()  # each image in its own class
    assert len(train.labels) == 10 * PER_CLASS and test.kind == "imagefolder"
    assert test.digest == train.digest == imagesets.content_digest(root)


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_an_archive_reads_as_its_folder_and_is_decoded_once_per_digest(suffix, tmp_path):
    root = _image_folder(tmp_path / "cifar-like")
    if suffix == ".zip":
        archive = tmp_path / "set.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for file in sorted(root.rglob("*.png")):
                zf.write(file, Path("cifar-like") / file.relative_to(root))
    else:
        archive = _tar(root, tmp_path / "set.tar.gz")
    cache = tmp_path / "cache"
    first = imagesets.read_image_set(archive, "test", cache)
    assert (first.images == imagesets.read_image_set(root, "test").images).all()
    (cached,) = cache.glob("*-test-*.npz")
    stamp = cached.stat().st_mtime_ns
    again = imagesets.read_image_set(archive, "test", cache)
    assert cached.stat().st_mtime_ns == stamp and (again.images == first.images).all()
    assert first.digest == imagesets.content_digest(archive)


def test_a_plain_class_folder_set_is_a_test_set_without_a_training_split(tmp_path):
    root = _image_folder(tmp_path / "flat", splits=("",))
    assert len(imagesets.read_image_set(root, "test").labels) == 10 * PER_CLASS
    with pytest.raises(DatasetError, match="no training split"):
        imagesets.read_image_set(root, "train")


def _broken(tmp_path: Path, how: str) -> tuple[Path, str]:
    root = _image_folder(tmp_path / "set")
    cat = root / "test" / "cat"
    if how == "wrong class folder":
        (root / "test" / "kitten").mkdir()
        Image.new("RGB", (32, 32)).save(root / "test" / "kitten" / "0.png")
        return root, "unexpected: kitten"
    if how == "missing class folder":
        for file in (root / "test" / "truck").iterdir():
            file.unlink()
        (root / "test" / "truck").rmdir()
        return root, "missing: truck"
    if how == "28x28 image":
        Image.new("RGB", (28, 28)).save(cat / "small.png")
        return root, "test/cat/small.png: 28x28 pixels; every image must be 32x32"
    if how == "grayscale image":
        Image.new("L", (32, 32)).save(cat / "gray.png")
        return root, "test/cat/gray.png: a L image; every image must be RGB"
    (cat / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root, "test/cat/corrupt.jpg: not a readable image"


@pytest.mark.parametrize("how", ["wrong class folder", "missing class folder", "28x28 image",
                                 "grayscale image", "corrupt file"])
def test_a_bad_set_is_refused_naming_what_is_wrong(how, tmp_path):
    root, said = _broken(tmp_path, how)
    with pytest.raises(DatasetError, match=said.replace("(", r"\(")):
        imagesets.read_image_set(root, "test")


@pytest.mark.parametrize("how", ["wrong class folder", "grayscale image", "corrupt file"])
def test_grade_refuses_a_bad_test_set_before_grading(how, tmp_path):
    root, said = _broken(tmp_path, how)
    archive = _tar(root, tmp_path / "bad.tar.gz")
    submission = PROJECT_ROOT / "examples" / "submissions" / "03_convnet_cifar10" / "good"
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "grader.py"), "grade", "--assignment",
         "03_convnet_cifar10", str(submission), "--test-set", str(archive), "--out",
         str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr and "bad.tar.gz" in done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was graded


def test_an_npy_pair_is_one_split(tmp_path):
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "v6_data.npy", images)
    np.save(tmp_path / "v6_labels.npy", np.array([0, 1, 2, 3]))
    found = imagesets.read_image_set(tmp_path / "v6_data.npy", "test")
    assert found.kind == "npy" and list(found.labels) == [0, 1, 2, 3]
    with pytest.raises(DatasetError, match="not a training set"):
        imagesets.read_image_set(tmp_path / "v6_data.npy", "train")


def test_something_else_is_refused_saying_what_is_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="ImageFolder|folder or archive"):
        imagesets.read_image_set(tmp_path / "notes.txt", "test")


def test_data_cifar10_from_installs_a_copy_grade_finds(tmp_path, synthetic_root):
    root = _image_folder(tmp_path / "copy")
    archive = _tar(root, tmp_path / "copy.tar.gz")
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "grader.py"), "data", "cifar10",
                           "--from", str(archive), "--root", str(data)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 0, done.stderr
    assert "30 train images, 30 test images" in done.stdout and "imagefolder" in done.stdout
    from autograder.core.assignments import load_assignment
    from autograder.grading.evaluation import load_data

    data_set = load_data("auto", data, None, load_assignment("03_convnet_cifar10").config
                         .evaluation, with_train=True)
    assert data_set.dataset == "cifar10" and len(data_set.official.labels) == 30
    assert data_set.train is not None and len(data_set.train.labels) == 30
    assert data_set.record("cpu", {}).as_dict()["official"] == {
        "name": "copy (test)", "kind": "imagefolder", "images": 30,
        "digest": imagesets.content_digest(archive)[:16]}

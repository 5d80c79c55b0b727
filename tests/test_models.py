"""Saved CIFAR-10 models judged by the grader, on the synthetic set, through the real CLI.

The committed 03 examples (examples/make_03_examples.py trained them on the synthetic set)
are graded in one batch with a few made here: a missing file, an oversized file, and a lookup
table of every public synthetic image (train, test and secret set: all of them are on disk
for anyone with the grader, as every CIFAR-10 image is public) packed into an int64 buffer,
issue 19's attack. Labels never leave the harness; every accuracy here is computed there.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import confining_level

from autograder.core.assignments import PROJECT_ROOT, Evaluation, load_assignment
from autograder.grading import datasets
from autograder.grading.evaluation import credit, perturb
from autograder.outputs.layout import submission_file

sys.path.insert(0, str(PROJECT_ROOT / "examples"))
import lookup_packings  # noqa: E402

NAME = "03_convnet_cifar10"
EXAMPLES = PROJECT_ROOT / "examples" / "submissions" / NAME
CONFIG = load_assignment(NAME).config
GRADER = [sys.executable, str(PROJECT_ROOT / "grader.py")]

LEVEL, WHY_NOT = confining_level()
pytestmark = pytest.mark.skipif(LEVEL is None, reason=WHY_NOT + " (hostile weights files)")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*GRADER, *args], capture_output=True, text=True, cwd=cwd, timeout=1500,
                          check=False, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def public_synthetic_images() -> tuple[np.ndarray, np.ndarray]:
    """Every image of the synthetic set, as `grader.py data synthetic` writes them: the five
    training batches, the test batch and the secret set (the same seeds, so the same pixels)."""
    parts = [datasets.synthetic_images(datasets.TRAIN_PER_BATCH, datasets.SYNTHETIC_SEED + 10 + i)
             for i in range(1, 6)]
    parts.append(datasets.synthetic_images(datasets.TEST_SIZE, datasets.SYNTHETIC_SEED + 20))
    parts.append(datasets.synthetic_images(datasets.SECRET_SIZE, datasets.SYNTHETIC_SEED + 30))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def write_full_lookup(folder: Path) -> Path:
    """Issue 19's cheat: an 8x8x3 thumbnail of every public image and its label, in one
    int64 buffer of a ConvNet that convolves, then answers with the nearest thumbnail's label."""
    images, labels = public_synthetic_images()
    packing = lookup_packings.packings(images, labels, ["int64_buffer"])[0]
    return lookup_packings.write_submission(packing, folder, EXAMPLES / "good")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, synthetic_root):
    base = tmp_path_factory.mktemp("models")
    subs = base / "subs"
    shutil.copytree(EXAMPLES, subs)
    write_full_lookup(subs / "full_lookup")
    missing = subs / "missing_weights"
    shutil.copytree(subs / "good", missing)
    (missing / "convnet.pt").unlink()
    huge = subs / "oversized_file"
    shutil.copytree(subs / "good", huge)
    with (huge / "convnet.pt").open("ab") as handle:
        handle.write(b"\0" * (CONFIG.evaluation.max_weights_bytes + 1))
    out = base / "out"
    done = _run("grade", "--assignment", NAME, *map(str, sorted(subs.iterdir())), "--out",
                str(out), "--jobs", "2", "--seed", "11", "--data-dir", str(synthetic_root),
                cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    return out, rows, done.stdout


def _feedback(out: Path, sub: str) -> str:
    return submission_file(out, sub, "feedback.md").read_text(encoding="utf-8")


def _results(out: Path, sub: str) -> dict:
    return json.loads(submission_file(out, sub, "results.json").read_text(encoding="utf-8"))


def test_the_good_submission_scores_full_marks_on_the_synthetic_set(graded):
    out, rows, stdout = graded
    good = rows["good"]
    assert float(good["score"]) == float(good["max_score"]) > 0, good
    assert "models on synthetic" in stdout
    results = _results(out, "good")
    assert results["extra_data"]["evaluation"]["dataset"] == "synthetic"
    names = {entry["name"] for entry in results["leaderboard"]}
    assert "convnet_accuracy (synthetic)" in names


def test_the_reference_models_clear_their_thresholds_with_margin(graded):
    """The master notebook's ConvNet, trained on the synthetic set, passes its threshold with
    margin; its FCNet does not reach the ConvNet's."""
    out, _, _ = graded
    models = _results(out, "good")["extra_data"]["evaluation"]["models"]
    convnet, fcnet = models["convnet_accuracy"]["accuracy"], models["fcnet_accuracy"]["accuracy"]
    full = {e.question: e.full_at["synthetic"] for e in CONFIG.accuracy}
    assert convnet >= full["convnet_accuracy"] + 0.05
    assert fcnet < full["convnet_accuracy"]


@pytest.mark.parametrize(
    ("sub", "says"),
    [
        ("over_cap_convnet", "обучаемых параметров, а допускается не больше 5,000,000"),
        ("wrong_architecture", "не подходят к классу ConvNet"),
        ("malicious_pickle", "weights_only=True"),
        ("missing_weights", "нет файла convnet.pt"),
        ("oversized_file", "МБ, а допускается не больше"),
    ],
)
def test_a_bad_weights_file_costs_its_question_and_says_why(graded, sub, says):
    out, rows, _ = graded
    row = rows[sub]
    assert row["convnet_accuracy"] == "0" and row["convnet_beats_fc"] == "0", row
    assert float(row["fcnet_accuracy"]) == float(rows["good"]["fcnet_accuracy"]) > 0
    assert says in _feedback(out, sub)


def test_the_malicious_pickle_ran_nothing(graded):
    assert not Path("/tmp/pwned_by_weights").exists()


def test_an_fc_only_convnet_gets_no_accuracy_and_no_comparison(graded):
    out, rows, _ = graded
    row = rows["fc_only_convnet"]
    assert row["ConvNet"] == "0" and row["convnet_accuracy"] == "0"
    assert row["convnet_beats_fc"] == "0"
    assert "не прошла проверку устройства сети" in _feedback(out, "fc_only_convnet")


def test_the_lookup_table_cheat_is_flagged_by_the_secret_set_and_the_training_images(graded):
    """The example's table holds the test set only: the secret set and the training images
    show the gap, and its file shows the table (float16 keys and int64 answers in buffers)."""
    out, rows, stdout = graded
    flags = _results(out, "lookup_cheat")["extra_data"]["needs_review"]
    kinds = [f["kind"] for f in flags]
    assert kinds[:2] == ["secret_set_gap", "train_set_gap"]
    assert {"weights_not_layers", "weights_integer"} <= set(kinds[2:])
    models = _results(out, "lookup_cheat")["extra_data"]["evaluation"]["models"]
    assert models["convnet_accuracy"]["secret_accuracy"] <= 0.2  # chance on what it never saw
    assert models["convnet_accuracy"]["train_accuracy"] <= 0.2  # likewise
    assert "lookup_cheat: convnet_accuracy: secret_set_gap" in stdout
    assert "lookup_cheat: convnet_accuracy: train_set_gap" in stdout
    assert "needs review" in rows["lookup_cheat"]["message"]


def test_a_lookup_of_every_public_image_is_flagged_by_what_its_file_holds(graded):
    """Issue 19: with every public image in its table the cheat is as accurate on the secret
    set and the training images as on the test set, so no gap shows it; its weights file
    does (an int64 tensor that is no layer's), and the flags change no score."""
    out, rows, stdout = graded
    results = _results(out, "full_lookup")["extra_data"]
    model = results["evaluation"]["models"]["convnet_accuracy"]
    assert model["accuracy"] >= 0.99 and model["secret_accuracy"] >= 0.99
    assert model["train_accuracy"] >= 0.99  # the old checks see nothing
    flags = {f["kind"]: f for f in results["needs_review"] if f["question"] == "convnet_accuracy"}
    assert {"weights_integer", "weights_not_layers"} <= set(flags), flags
    assert "`packed`" in flags["weights_integer"]["seen"]
    assert "int64" in flags["weights_integer"]["seen"] and "МБ" in flags["weights_integer"]["seen"]
    assert rows["full_lookup"]["convnet_accuracy"] == rows["good"]["convnet_accuracy"]
    assert "full_lookup: convnet_accuracy: weights_integer" in stdout
    feedback = _feedback(out, "full_lookup")
    assert "не являются параметрами или обычными буферами слоёв torch.nn" in feedback
    assert "на закрытом наборе 100.00%" in feedback  # what decides, said: here nothing did
    assert "needs review" in rows["full_lookup"]["message"]


def test_honest_models_are_at_least_as_accurate_on_training_images(graded):
    """The good example's models learnt the training set: no train-set flag, and the
    sample's accuracy is in every result (drawn with the run's seed)."""
    out, _, _ = graded
    good = _results(out, "good")["extra_data"]
    assert good["needs_review"] == []
    for name, model in good["evaluation"]["models"].items():
        assert model["train_accuracy"] >= model["accuracy"] - 0.05, (name, model)
    assert good["evaluation"]["train"]["kind"] == "synthetic"


def test_grading_without_a_dataset_is_an_instructor_error_naming_the_path(tmp_path):
    done = _run("grade", "--assignment", NAME, str(EXAMPLES / "good"), "--out",
                str(tmp_path / "o"), "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert done.returncode == 2
    assert str(tmp_path / "nothing") in done.stderr and "grader.py data" in done.stderr
    assert not (tmp_path / "o" / "gradebook.csv").exists()


def test_a_corrupt_dataset_is_refused_before_grading(tmp_path, synthetic_root):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    batch = root / "synthetic" / datasets.BATCHES / "test_batch"
    data = bytearray(batch.read_bytes())
    data[-10] ^= 0xFF
    batch.write_bytes(bytes(data))
    done = _run("grade", "--assignment", NAME, str(EXAMPLES / "good"), "--out",
                str(tmp_path / "o"), "--data-dir", str(root), cwd=tmp_path)
    assert done.returncode == 2
    assert "corrupted" in done.stderr and str(root / "synthetic") in done.stderr


def test_the_synthetic_set_is_read_by_torchvisions_own_cifar10_code(synthetic_root):
    from torchvision.datasets import CIFAR10

    folder = datasets.dataset_dir(synthetic_root, datasets.SYNTHETIC)
    test = datasets.load_synthetic_test(synthetic_root)
    assert test.images.shape == (datasets.TEST_SIZE, 32, 32, 3) and test.images.dtype == np.uint8
    assert set(np.unique(test.labels)) == set(range(10))
    with pytest.raises(RuntimeError, match="corrupted"):  # the real md5s are not ours
        CIFAR10(str(folder), train=False, download=False)


def test_the_perturbation_keeps_shapes_labels_and_stays_small():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    settings = Evaluation(shift_pixels=1, flip=True, noise_levels=2.0)
    shaken = perturb(images, np.random.default_rng(5), settings)
    assert shaken.shape == images.shape and shaken.dtype == np.uint8
    again = perturb(images, np.random.default_rng(5), settings)
    assert np.array_equal(shaken, again)  # drawn from the run's seed
    quiet = perturb(images, rng, Evaluation(shift_pixels=0, flip=False, noise_levels=2.0))
    assert 0 < np.abs(quiet.astype(int) - images).mean() < 3


@pytest.mark.parametrize(("accuracy", "expected"), [(0.5, 0.0), (0.6, 0.0), (0.75, 0.5),
                                                    (0.9, 1.0), (0.99, 1.0)])
def test_partial_credit_is_linear_between_the_thresholds(accuracy, expected):
    assert credit(accuracy, full_at=0.9, zero_at=0.6) == pytest.approx(expected)


def test_retrain_trains_the_class_with_the_students_own_code(tmp_path, synthetic_root):
    """--retrain: the good ConvNet trains again to its threshold; the lookup table cannot be
    trained at all, which a person is asked to look at (beside the secret-set gap)."""
    full = write_full_lookup(tmp_path / "full_lookup")
    done = _run("grade", "--assignment", NAME, str(EXAMPLES / "good"),
                str(EXAMPLES / "lookup_cheat"), str(full), "--out", str(tmp_path / "o"),
                "--jobs", "1", "--seed", "5", "--data-dir", str(synthetic_root), "--retrain",
                cwd=tmp_path)  # one at a time: the good one's retraining gets every core
    assert done.returncode == 0, done.stderr[-3000:]
    good = _results(tmp_path / "o", "good")
    models = good["extra_data"]["evaluation"]["models"]
    full = {e.question: e.full_at["synthetic"] for e in CONFIG.accuracy}
    assert models["convnet_accuracy"]["retrained_accuracy"] >= full["convnet_accuracy"]
    assert good["extra_data"]["needs_review"] == []
    feedback = _feedback(tmp_path / "o", "good")
    assert "заново обученная вашей train_epoch" in feedback  # both accuracies are shown
    cheat = _results(tmp_path / "o", "lookup_cheat")["extra_data"]["needs_review"]
    assert {"secret_set_gap", "train_set_gap", "retrain_failed"} <= {f["kind"] for f in cheat}
    # issue 19's table of every public image: no gap anywhere, so the retraining decides,
    # and the flags on its file say so
    full = _results(tmp_path / "o", "full_lookup")["extra_data"]["needs_review"]
    kinds = {f["kind"]: f["reason"] for f in full}
    assert {"retrain_failed", "weights_integer", "weights_not_layers"} <= set(kinds)
    assert "переобучить модель вашим кодом не удалось" in kinds["weights_integer"]

"""The 03 examples trained on real CIFAR-10, graded on the real test images.

Runs where the workplace's copy of CIFAR-10 is (``../shared/data/cifar10-jpeg.tar.xz``: all
60,000 images in ImageFolder layout) and skips with the reason elsewhere (a fresh clone has
no ``../shared``). The committed examples (examples/submissions/03_convnet_cifar10_real) and
the lookup-table cheat, made here from the real test set because it is a copy of it and is
never committed, go through ``grader.py grade --test-set`` with the archive; the training
images in the same archive feed the memorisation check. Two tables of all 60,000 public
images (test and train, examples/lookup_packings.py) go with them: issue 19's int64 buffer,
and the same table lzma-compressed into ordinary-looking float32 weights of a Linear layer,
which only its size gives away.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder.core.assignments import PROJECT_ROOT
from autograder.grading import imagesets
from autograder.outputs.layout import submission_file

NAME = "03_convnet_cifar10"
REAL = PROJECT_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
EXAMPLES = PROJECT_ROOT / "examples" / "submissions" / f"{NAME}_real"

pytestmark = [
    pytest.mark.skipif(not REAL.is_file(), reason=f"no real CIFAR-10 at {REAL} (the "
                       "workplace's copy; a fresh clone has no ../shared)"),
    pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"no real-image examples at {EXAMPLES}"),
]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=1500, check=False,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("real")
    cheat = base / "submissions" / "lookup_cheat"
    made = _run(str(PROJECT_ROOT / "examples" / "make_03_examples.py"), "--data", str(REAL),
                "--lookup-cheat", str(cheat), "--cache", str(base / "data" / ".cache"),
                cwd=base)  # the grader below reads the same cache: one decode of the test set
    assert made.returncode == 0, made.stderr[-3000:]
    subs = sorted(p for p in EXAMPLES.iterdir() if p.is_dir()) + [cheat]
    subs += _full_tables(base / "submissions", base / "data" / ".cache")
    out = base / "out"
    done = _run(str(PROJECT_ROOT / "grader.py"), "grade", "--assignment", NAME,
                *map(str, subs), "--test-set", str(REAL), "--out", str(out), "--jobs", "2",
                "--seed", "3", "--data-dir", str(base / "data"), cwd=base)
    assert done.returncode == 0, done.stderr[-3000:]
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    return out, rows, done.stdout


def _full_tables(folder: Path, cache: Path) -> list[Path]:
    """Lookups of every public image (decoded once, into the cache the grader reads)."""
    sys.path.insert(0, str(PROJECT_ROOT / "examples"))
    import lookup_packings

    test = imagesets.read_image_set(REAL, "test", cache)
    train = imagesets.read_image_set(REAL, "train", cache)
    images = np.concatenate([test.images, train.images])
    labels = np.concatenate([test.labels, train.labels])
    return [lookup_packings.write_submission(packing, folder / FULL[packing.name],
                                             EXAMPLES / "good")
            for packing in lookup_packings.packings(images, labels, sorted(FULL))]


FULL = {"int64_buffer": "full_table_int64", "compressed_28bit": "full_table_compressed"}
STRUCTURAL = ("weights_", "side_data")


def _results(out: Path, sub: str) -> dict:
    return json.loads(submission_file(out, sub, "results.json").read_text(encoding="utf-8"))


def test_the_good_example_scores_full_marks_on_the_real_test_set(graded):
    out, rows, stdout = graded
    good = rows["good"]
    assert float(good["score"]) == float(good["max_score"]) == 12, good
    evaluation = _results(out, "good")["extra_data"]["evaluation"]
    assert evaluation["dataset"] == "cifar10"
    assert evaluation["official"] == {"name": "cifar10-jpeg (test)", "kind": "imagefolder",
                                      "images": 10000, "digest": "e016f210c3d329e3"}
    assert evaluation["train"]["images"] == 50000
    assert _results(out, "good")["extra_data"]["needs_review"] == []
    assert "models on cifar10" in stdout


def test_the_other_examples_lose_what_they_must(graded):
    _, rows, _ = graded
    good = rows["good"]
    questions = [q for q in good if q not in ("submission", "score", "max_score", "status",
                                              "message")]
    lost = {sub: sorted(q for q in questions if float(row[q]) < float(good[q]))
            for sub, row in rows.items() if sub != "good"}
    assert lost == {
        "fc_only_convnet": ["ConvNet", "convnet_accuracy", "convnet_beats_fc"],
        "malicious_pickle": ["convnet_accuracy", "convnet_beats_fc"],
        "over_cap_convnet": ["ConvNet", "convnet_accuracy", "convnet_beats_fc"],
        "wrong_architecture": ["convnet_accuracy", "convnet_beats_fc"],
        "lookup_cheat": lost["lookup_cheat"],  # judged below: flagged, whatever it scores
        **{name: lost[name] for name in FULL.values()},  # likewise
    }, lost


def test_the_lookup_cheat_is_flagged_by_the_training_images(graded):
    out, rows, _ = graded
    results = _results(out, "lookup_cheat")["extra_data"]
    flags = {(f["question"], f["kind"]) for f in results["needs_review"]}
    assert ("convnet_accuracy", "train_set_gap") in flags
    model = results["evaluation"]["models"]["convnet_accuracy"]
    assert model["accuracy"] - model["train_accuracy"] > 0.10
    assert "needs review" in rows["lookup_cheat"]["message"]


def test_honest_real_models_hold_nothing_but_their_layers(graded):
    """The real-image examples that load (the good models, the FC-only ConvNet) carry no
    structural flag: nothing in their files but their layers' tensors."""
    out, _, _ = graded
    for sub in ("good", "fc_only_convnet"):
        flags = _results(out, sub)["extra_data"]["needs_review"]
        assert not [f for f in flags if f["kind"].startswith(STRUCTURAL)], (sub, flags)


def test_a_table_of_every_public_image_is_flagged_by_its_file(graded):
    """Test and train in the table: 100% on the test set and on the training images, so the
    training-image check sees nothing; the file does. The int64 buffer is no layer's tensor;
    the compressed one is plain float32 in a Linear layer, too big for the architecture (the
    table is 10.0 MB after lzma; the bound, 2.5 x the reference ConvNet's 3.3 MB)."""
    out, rows, _ = graded
    for sub, kinds in (("full_table_int64", {"weights_integer", "weights_not_layers"}),
                       ("full_table_compressed", {"weights_oversized"})):
        results = _results(out, sub)["extra_data"]
        model = results["evaluation"]["models"]["convnet_accuracy"]
        assert model["accuracy"] >= 0.99 and model["train_accuracy"] >= 0.99, (sub, model)
        found = {f["kind"] for f in results["needs_review"] if f["question"] == "convnet_accuracy"}
        assert kinds <= found, (sub, found)
        assert "train_set_gap" not in found
        assert float(rows[sub]["convnet_accuracy"]) == 3  # flags change no score

"""Memorisation of public data (issue 19): a lookup table of every public image.

Every image a grader shows a model is public: the test set, the training images it draws,
and (on the synthetic set, as for CIFAR-10.1) the secret set too. A "ConvNet" that convolves,
then answers with the label of the nearest stored thumbnail, scores full marks on all of
them, so no accuracy gap shows it. What shows it is where the table lives: in its weights
file (issue 19's int64 buffer) or beside it (a file the notebook reads). Both keep their
scores (flags change none) and carry a "needs review" flag with the evidence and what decides.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path

import nbformat
import numpy as np
from catalogue.scenarios import Scenario

from autograder.grading import datasets

A03 = "03_convnet_cifar10"


@functools.cache
def _public_images() -> tuple[np.ndarray, np.ndarray]:
    """The synthetic set's every image (train, test, secret), as `grader.py data synthetic`
    writes them (same seeds, same pixels)."""
    parts = [datasets.synthetic_images(datasets.TRAIN_PER_BATCH, datasets.SYNTHETIC_SEED + 10 + i)
             for i in range(1, 6)]
    parts.append(datasets.synthetic_images(datasets.TEST_SIZE, datasets.SYNTHETIC_SEED + 20))
    parts.append(datasets.synthetic_images(datasets.SECRET_SIZE, datasets.SYNTHETIC_SEED + 30))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _lookup(packing_name: str):
    def build(ctx, folder: Path) -> Path:
        sys.path.insert(0, str(ctx.project_root / "examples"))
        import lookup_packings

        images, labels = _public_images()
        packing = lookup_packings.packings(images, labels, [packing_name])[0]
        folder.mkdir(parents=True, exist_ok=True)
        notebook = json.loads(nbformat.writes(copy.deepcopy(ctx.reference)))
        nbformat.write(nbformat.from_dict(lookup_packings.notebook_with(notebook, packing)),
                       folder / f"{A03}.ipynb")
        good = ctx.project_root / "examples" / "submissions" / A03 / "good"
        (folder / "fcnet.pt").write_bytes((good / "fcnet.pt").read_bytes())
        (folder / "convnet.pt").write_bytes(packing.weights())
        for name, data in packing.files.items():
            (folder / name).write_bytes(data)
        return folder

    return build


MEMORISATION_SCENARIOS = [
    Scenario("memorisation_every_public_image_in_an_int64_buffer",
             "a ConvNet holding an 8x8x3 thumbnail and the label of every public image (train, "
             "test, secret) in one int64 buffer: full marks everywhere, flagged by its file",
             _lookup("int64_buffer"), assignment=A03,
             full_marks=("FCNet", "train_epoch", "evaluate"), flagged=("convnet_accuracy",),
             feedback=("не являются параметрами или обычными буферами слоёв torch.nn",
                       "целочисленные или логические тензоры", "`packed`",
                       "на закрытом наборе 100.00%")),
    Scenario("memorisation_every_public_image_beside_the_weights",
             "the same table in an .npy file beside the notebook, read by the ConvNet: a plain "
             "small state_dict, the data beside it flagged",
             _lookup("side_file"), assignment=A03,
             full_marks=("FCNet", "train_epoch", "evaluate"), flagged=("fcnet_accuracy",),
             feedback=("augment_cache.npy",
                       "работа приносит рядом с весами много данных")),
]

"""Memorisation on real CIFAR-10: what the grader's perturbation costs honest models, what a
lookup table of the test set scores under it, and the train/test gap that flags the lookup.

Honest models: the weights ``bench/cifar10_training.py --save DIR`` wrote (the notebook's
FCNet and ConvNet, and whatever else is in DIR), each built from the master notebook's class.
The cheat: the example's lookup table (``examples/make_03_examples.py``), keyed on the real
test images pooled 4x4 (8x8 per channel), in one orientation and in both. For each
perturbation (flips and noise as graded today, then small shifts on top), each model's
accuracy on the 10,000 test images (3 draws) and on 1,000 training images drawn as the grader
draws them, and the gap between the two.

    python bench/memorisation.py --data ../shared/data/cifar10-jpeg.tar.xz --weights DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "examples")]

from cifar10_training import accuracy, notebook_namespace  # noqa: E402

from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.grading import imagesets  # noqa: E402
from autograder.grading.evaluation import perturb  # noqa: E402

CLASS_OF = {"fcnet": "FCNet", "convnet": "ConvNet", "convnet_2ep": "ConvNet",
            "convnet_5ep": "ConvNet", "lenet_3ep": "LeNet", "wide_fc": "WideFC"}


def lookup_tables(ns: dict, test_images: np.ndarray, test_labels: np.ndarray) -> dict:
    """The example's lookup cheat over the real test set, one and both orientations."""
    from make_03_examples import LOOKUP_CHEAT

    found = {}
    for name, mirrored in (("lookup (one orientation)", False), ("lookup (both)", True)):
        source = LOOKUP_CHEAT.replace("zeros(2000", f"zeros({len(test_labels)}")
        if not mirrored:
            source = source.replace("torch.minimum(torch.cdist(small, keys), "
                                    "torch.cdist(mirror, keys))", "torch.cdist(small, keys)")
        space: dict = {}
        exec(compile(source, "<cheat>", "exec"), ns, space)
        cheat = space["ConvNet"]()
        x = torch.from_numpy(test_images).permute(0, 3, 1, 2).float() / 255.0
        x = (x - torch.tensor(ns["CIFAR10_MEAN"]).view(1, 3, 1, 1)) / torch.tensor(
            ns["CIFAR10_STD"]).view(1, 3, 1, 1)
        with torch.no_grad():
            cheat.pool.weight.fill_(1.0 / 16)
            cheat.keys.copy_(cheat.pool(x).flatten(1).half())
            cheat.answers.copy_(torch.from_numpy(test_labels))
        found[name] = cheat.eval()
    return found


def main() -> int:
    """Print, per perturbation and model: test accuracy, its cost, training-sample accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--shifts", default="0,1,2", help="shift_pixels values to try")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ns = notebook_namespace()
    cache = Path("/tmp/cifar10-training-cache")
    test = imagesets.read_image_set(args.data, "test", cache)
    train = imagesets.read_image_set(args.data, "train", cache)
    models: dict = {}
    for file in sorted(args.weights.glob("*.pt")):
        if file.stem in CLASS_OF:
            model = ns[CLASS_OF[file.stem]]()
            model.load_state_dict(torch.load(file, weights_only=True))
            models[file.stem] = model.eval()
    models.update(lookup_tables(ns, test.images, test.labels))
    base = load_assignment("03_convnet_cifar10").config.evaluation
    clean = {name: accuracy(m, test.images, test.labels, ns) for name, m in models.items()}
    sample = np.random.default_rng([1, 29]).choice(len(train.labels), 1000, replace=False)
    print(f"{'model':<26}{'clean':>8}" + "".join(
        f"{f'shift {k}: test':>15}{'cost':>7}{'train':>7}{'gap':>7}"
        for k in map(int, args.shifts.split(","))))
    for name, model in models.items():
        cells = f"{name:<26}{100 * clean[name]:8.2f}"
        for shift in map(int, args.shifts.split(",")):
            settings = dataclasses.replace(base, shift_pixels=shift)
            draws = [accuracy(model, perturb(test.images, np.random.default_rng([shift, d]),
                                             settings), test.labels, ns) for d in range(3)]
            shaken = float(np.mean(draws))
            on_train = accuracy(model, perturb(train.images[sample],
                                               np.random.default_rng([shift, 9]), settings),
                                train.labels[sample], ns)
            cells += (f"{100 * shaken:15.2f}{100 * (clean[name] - shaken):7.2f}"
                      f"{100 * on_train:7.2f}{100 * (shaken - on_train):7.2f}")
        print(cells, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

``--packings``: what the harness reads in the weights files (grading/modelcheck.py). The
honest models (the real-image examples, the FC-only "ConvNet" among them, and whatever
``--weights`` holds, each judged against its role's reference: FC-only nets as FCNet,
convolutional ones as ConvNet) must have no finding; a lookup table of all 60,000 public
images (test and train, 8x8x3 thumbnails, examples/lookup_packings.py) in every packing
must. Also: the table's size after lzma (what any disguise must still store), the lookup's
accuracy under the grader's perturbation, and its inference time beside the reference
ConvNet's (whether timing could tell them apart).

    python bench/memorisation.py --data ../shared/data/cifar10-jpeg.tar.xz --packings \
        [--weights DIR]
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
            "convnet_5ep": "ConvNet", "lenet_3ep": "LeNet", "wide_fc": "WideFC",
            "untrained": "ConvNet"}


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


ROLE_OF = {"fcnet": "FCNet", "wide_fc": "FCNet"}  # the rest are convolutional: ConvNet


def _check(data: bytes, model: torch.nn.Module, role: str, config) -> list:
    from autograder.grading.modelcheck import check_weights, layers_from_report
    from autograder.sandbox.models import describe_layers

    reference = {e.model: e.reference_numbers for e in config.accuracy}[role]
    return check_weights(data, layers_from_report(describe_layers(model)),
                         config.evaluation.max_parameters, reference,
                         config.evaluation.reference_ratio)


def _honest(ns: dict, weights: Path | None, config) -> None:
    """Every honest model's findings (there must be none)."""
    import io

    from make_03_examples import FC_ONLY_CONVNET

    examples = ROOT / "examples" / "submissions" / "03_convnet_cifar10_real"
    fc_only: dict = {}
    exec(compile(FC_ONLY_CONVNET, "<fc only>", "exec"), ns, fc_only)
    files = [(examples / "good" / "fcnet.pt", ns["FCNet"], "FCNet"),
             (examples / "good" / "convnet.pt", ns["ConvNet"], "ConvNet"),
             (examples / "fc_only_convnet" / "convnet.pt", fc_only["ConvNet"], "ConvNet")]
    for file in sorted(weights.glob("*.pt")) if weights else []:
        if file.stem in CLASS_OF:
            files.append((file, ns[CLASS_OF[file.stem]], ROLE_OF.get(file.stem, "ConvNet")))
    print(f"{'honest model':<44}{'role':>9}{'numbers':>12}{'MB':>7}  findings")
    for file, cls, role in files:
        data = file.read_bytes()
        model = cls()
        model.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
        found = _check(data, model, role, config)
        numbers = sum(v.numel() for v in model.state_dict().values())
        name = f"{file.parent.name}/{file.name}"
        print(f"{name:<44}{role:>9}{numbers:>12,}{len(data) / 1e6:7.2f}  "
              f"{[f.kind for f in found] or 'none'}", flush=True)


def _packings(ns: dict, test, train, config) -> None:
    """Every packing of the full table: file size, findings; the table's own figures."""
    import lzma
    import os
    import tempfile
    import time

    import lookup_packings as lp

    from autograder.grading.modelcheck import side_data

    images = np.concatenate([test.images, train.images])
    labels = np.concatenate([test.labels, train.labels])
    raw = lp.table_bytes(images, labels)
    print(f"\ntable: {len(labels):,} images, {len(raw) / 1e6:.2f} MB; lzma -9: "
          f"{len(lzma.compress(raw, preset=9)) / 1e6:.2f} MB; the reference ConvNet in "
          f"float32: {4 * 815_472 / 1e6:.2f} MB, the bound "
          f"{config.evaluation.reference_ratio:g}x = "
          f"{config.evaluation.reference_ratio * 4 * 815_472 / 1e6:.2f} MB", flush=True)
    good = ROOT / "examples" / "submissions" / "03_convnet_cifar10_real" / "good"
    where = Path(tempfile.mkdtemp())
    print(f"{'packing (ConvNet)':<30}{'MB':>7}{'decodes':>9}  findings")
    for packing in lp.packings(images, labels):
        folder = lp.write_submission(packing, where / packing.name, good)
        os.chdir(folder)
        model = lp.build(packing, ns)
        decoded = bytes(model._raw().reshape(-1)[:len(raw)].to(torch.uint8).numpy())
        found = _check(packing.weights(), model, "ConvNet", config)
        side = side_data(folder, ["fcnet.pt", "convnet.pt"], config.evaluation.side_bytes)
        kinds = [f.kind for f in found] + ([side.kind] if side else [])
        print(f"{packing.name:<30}{len(packing.weights()) / 1e6:7.2f}"
              f"{'lossy' if 'lossy' in packing.name else 'yes' if decoded == raw else 'NO':>9}"
              f"  {kinds or 'NONE'}", flush=True)
    cheat = lp.build(lp.packings(images, labels, ["int64_buffer"])[0], ns)
    settings = config.evaluation
    sample = np.random.default_rng([1, 29]).choice(len(train.labels), 1000, replace=False)
    started = time.perf_counter()
    on_test = accuracy(cheat, perturb(test.images, np.random.default_rng(3), settings),
                       test.labels, ns)
    seconds = time.perf_counter() - started
    on_train = accuracy(cheat, perturb(train.images[sample], np.random.default_rng(4), settings),
                        train.labels[sample], ns)
    reference = ns["ConvNet"]().eval()
    started = time.perf_counter()
    accuracy(reference, test.images, test.labels, ns)
    reference_seconds = time.perf_counter() - started
    print(f"\nthe lookup, perturbed as graded: test {100 * on_test:.2f}%, 1,000 training "
          f"images {100 * on_train:.2f}%; 10,000 test images in {seconds:.1f} s, the reference "
          f"ConvNet in {reference_seconds:.1f} s ({seconds / reference_seconds:.2f}x)")


def main() -> int:
    """Print, per perturbation and model: test accuracy, its cost, training-sample accuracy
    (``--packings``: what the weights files show instead)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--shifts", default="0,1,2", help="shift_pixels values to try")
    parser.add_argument("--packings", action="store_true",
                        help="the structural checks: honest models and every packing")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ns = notebook_namespace()
    if args.packings:
        config = load_assignment("03_convnet_cifar10").config
        cache = Path("/tmp/cifar10-training-cache")
        _honest(ns, args.weights, config)
        _packings(ns, imagesets.read_image_set(args.data, "test", cache),
                  imagesets.read_image_set(args.data, "train", cache), config)
        return 0
    if args.weights is None:
        parser.error("--weights is required without --packings")
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

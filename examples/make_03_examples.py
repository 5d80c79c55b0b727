"""Train the 03 example models and write the example submissions.

    python examples/make_03_examples.py [--data-dir DIR] \
        [--out examples/submissions/03_convnet_cifar10]
    python examples/make_03_examples.py --data ../shared/data/cifar10-jpeg.tar.xz \
        [--good-from DIR] [--out examples/submissions/03_convnet_cifar10_real]
    python examples/make_03_examples.py --data ... --lookup-cheat OUT

The reference FCNet and ConvNet come from the master notebook (trusted code, executed here).
Without ``--data`` they are trained on the synthetic CIFAR-10 set (``grader.py data
synthetic``); with ``--data`` (any labelled image set the grader reads, e.g. the real images in
ImageFolder layout) on real CIFAR-10 with the notebook's own recipes (bench/cifar10_training.py),
or taken from ``--good-from`` (that script's ``--save`` folder: fcnet.pt, convnet.pt). Weights
are saved as float16 state_dicts (they load into the float32 models unchanged, at half the
size). Each example is a folder: a notebook and its weights; files that are byte-identical
across examples are stored once by git.

The lookup-table cheat on real images is the test set itself (pooled 8x8 and labelled), so it
is never committed: ``--lookup-cheat OUT`` writes it where a test or a measurement needs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import pickle
import shutil
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.authoring import assign as authoring  # noqa: E402
from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.grading import datasets  # noqa: E402
from autograder.grading.evaluation import perturb  # noqa: E402
from autograder.grading.submission import gradable_cells  # noqa: E402

NAME = "03_convnet_cifar10"
DEFAULT_OUT = ROOT / "examples" / "submissions" / NAME

FC_ONLY_CONVNET = '''class ConvNet(nn.Module):
    """Called ConvNet, but it has no convolution at all."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3 * 32 * 32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.layers(x.flatten(1))
'''
OVER_CAP_CONVNET = '''class ConvNet(nn.Module):
    """Wide convolutions flattened into a huge Linear layer: over the 5M parameter cap."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(2))  # (B, 64, 16, 16)
        self.classifier = nn.Sequential(nn.Linear(64 * 16 * 16, 512), nn.ReLU(),
                                        nn.Linear(512, 10))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
'''
# A lookup table: the official test images, 8x8 per channel, with their labels, in buffers;
# forward finds the nearest stored image (or its mirror) and answers with its label.
LOOKUP_CHEAT = '''class ConvNet(nn.Module):
    """Looks the answers up: the test set is stored in buffers (not parameters)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.Conv2d(3, 3, 4, stride=4, groups=3, bias=False)  # 4x4 average, 32 -> 8
        self.register_buffer("keys", torch.zeros(2000, 192, dtype=torch.float16))
        self.register_buffer("answers", torch.zeros(2000, dtype=torch.long))

    def forward(self, x):
        small = self.pool(x).flatten(1)  # (B, 192)
        mirror = self.pool(x.flip(-1)).flatten(1)
        keys = self.keys.float()
        distance = torch.minimum(torch.cdist(small, keys), torch.cdist(mirror, keys))
        return F.one_hot(self.answers[distance.argmin(dim=1)], 10).float() * 10.0
'''


def reference_namespace() -> dict:
    """The master notebook's reference cells, executed (trusted): FCNet, ConvNet, constants."""
    built = authoring.build(load_assignment(NAME))
    namespace: dict = {"__name__": "__main__"}
    for cell in gradable_cells(built.reference_notebook):
        try:
            exec(compile(cell.source, f"<cell {cell.index}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - cells that need files or real CIFAR-10
            pass
    namespace["_built"] = built
    return namespace


def normalise(images: np.ndarray, ns: dict) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255.0
    mean = torch.tensor(ns["CIFAR10_MEAN"]).view(1, 3, 1, 1)
    std = torch.tensor(ns["CIFAR10_STD"]).view(1, 3, 1, 1)
    return (x - mean) / std


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
          target: float = 1.0) -> int:
    """Adam, batch 128, at most ``epochs`` epochs: stop early once the accuracy on 1,000
    held-out training images reaches ``target`` (never the test set). Returns epochs run."""
    x_fit, y_fit, x_val, y_val = x[1000:], y[1000:], x[:1000], y[:1000].numpy()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_fit))
        for start in range(0, len(x_fit), 128):
            idx = order[start:start + 128]
            optimizer.zero_grad()
            F.cross_entropy(model(x_fit[idx]), y_fit[idx]).backward()
            optimizer.step()
        model.eval()
        if accuracy(model, x_val, y_val) >= target:
            return epoch
    return epochs


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1).numpy() == y).mean())


def half_state(model: torch.nn.Module) -> bytes:
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def notebook_with(nb: nbformat.NotebookNode, name: str, source: str) -> nbformat.NotebookNode:
    result = nbformat.from_dict(json.loads(json.dumps(nb)))
    hits = [c for c in result.cells if c.cell_type == "code" and f"class {name}(" in c.source]
    hits[0].source = source
    return result


class _Exploit:
    """Unpickling this runs code: what a malicious weights file does."""

    def __reduce__(self):
        return (exec, ("open('/tmp/pwned_by_weights', 'w').write('pwned')",))


def write_example(out: Path, name: str, nb: nbformat.NotebookNode, files: dict[str, bytes]
                  ) -> None:
    folder = out / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{NAME}.ipynb")
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)


def lookup_source(rows: int) -> str:
    """The lookup-table ConvNet's source for a table of ``rows`` images (the notebook's class
    must declare the buffers' real size, or the weights do not load)."""
    return LOOKUP_CHEAT.replace("zeros(2000", f"zeros({rows}")


def lookup_cheat(ns: dict, images: np.ndarray, labels: np.ndarray) -> torch.nn.Module:
    """The lookup-table ConvNet holding ``images`` (4x4 blocks averaged: 8x8) and their labels."""
    cheat_ns: dict = {}
    exec(compile(lookup_source(len(labels)), "<cheat>", "exec"), ns, cheat_ns)
    cheat = cheat_ns["ConvNet"]()
    with torch.no_grad():
        cheat.pool.weight.fill_(1.0 / 16)
        cheat.keys.copy_(cheat.pool(normalise(images, ns)).flatten(1).half())
        cheat.answers.copy_(torch.from_numpy(labels))
    return cheat


def write_examples(out: Path, reference: nbformat.NotebookNode, good: dict[str, bytes],
                   fc_only: bytes, cheat: tuple[str, bytes] | None) -> None:
    """Every example folder under ``out`` (the lookup cheat, its class source and weights,
    only when ``cheat`` is given)."""
    if out.exists():
        shutil.rmtree(out)
    write_example(out, "good", reference, good)
    write_example(out, "fc_only_convnet", notebook_with(reference, "ConvNet", FC_ONLY_CONVNET),
                  {"fcnet.pt": good["fcnet.pt"], "convnet.pt": fc_only})
    # The grader refuses the class (parameter count) before it reads the weights, so this
    # example carries the good ConvNet's file (stored once by git) instead of 20 MB.
    write_example(out, "over_cap_convnet",
                  notebook_with(reference, "ConvNet", OVER_CAP_CONVNET), good)
    write_example(out, "wrong_architecture", reference,
                  {"fcnet.pt": good["fcnet.pt"], "convnet.pt": good["fcnet.pt"]})
    write_example(out, "malicious_pickle", reference,
                  {"fcnet.pt": good["fcnet.pt"], "convnet.pt": pickle.dumps(_Exploit())})
    if cheat is not None:
        source, weights = cheat
        write_example(out, "lookup_cheat", notebook_with(reference, "ConvNet", source),
                      {"fcnet.pt": good["fcnet.pt"], "convnet.pt": weights})
    total = sum(p.stat().st_size for p in out.rglob("*.pt"))
    print(f"wrote {out} ({total / 1e6:.1f} MB of weights before git's deduplication)")


def synthetic_examples(args: argparse.Namespace) -> int:
    """The examples trained on the synthetic set."""
    if not (datasets.dataset_dir(args.data_dir, datasets.SYNTHETIC) / datasets.MANIFEST).is_file():
        datasets.write_synthetic(args.data_dir)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    ns = reference_namespace()
    train_images, train_labels = datasets.load_synthetic_train(args.data_dir)
    test = datasets.load_synthetic_test(args.data_dir)
    x, y = normalise(train_images, ns), torch.from_numpy(train_labels)
    settings = load_assignment(NAME).config.evaluation
    shaken = perturb(test.images, np.random.default_rng(0), settings)
    models = {}
    for cls_name, epochs, target in (("ConvNet", 12, 0.98), ("FCNet", 8, 1.0)):
        started = time.perf_counter()
        torch.manual_seed(0)
        model = ns[cls_name]()
        epochs = train(model, x, y, epochs, target)
        clean = accuracy(model, normalise(test.images, ns), test.labels)
        moved = accuracy(model, normalise(shaken, ns), test.labels)
        print(f"{cls_name}: {epochs} epochs in {time.perf_counter() - started:.0f} s; synthetic "
              f"test accuracy {clean:.4f}, with the grader's perturbation {moved:.4f} "
              f"({100 * (clean - moved):+.2f} points lost)")
        models[cls_name] = model
    fc_only: dict = {}
    exec(compile(FC_ONLY_CONVNET, "<fc only>", "exec"), ns, fc_only)
    fc_model = fc_only["ConvNet"]()
    train(fc_model, x, y, 4)
    cheat = lookup_cheat(ns, test.images, test.labels)
    cheat_accuracy = accuracy(cheat, normalise(shaken, ns), test.labels)
    print(f"lookup cheat: official test accuracy {cheat_accuracy:.4f} (perturbed)")
    good = {"fcnet.pt": half_state(models["FCNet"]), "convnet.pt": half_state(models["ConvNet"])}
    write_examples(args.out, ns["_built"].reference_notebook, good, half_state(fc_model),
                   (lookup_source(len(test.labels)), half_state(cheat)))
    return 0


def real_examples(args: argparse.Namespace) -> int:
    """The examples trained on real images (the lookup cheat only on request, elsewhere)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from cifar10_training import RECIPES, load, notebook_namespace, train_run

    from autograder.grading import imagesets

    torch.set_num_threads(2)
    ns = notebook_namespace()
    ns["_built"] = authoring.build(load_assignment(NAME))
    settings = load_assignment(NAME).config.evaluation
    if args.lookup_cheat is not None:
        test = imagesets.read_image_set(args.data, "test", args.cache)
        cheat = half_state(lookup_cheat(ns, test.images, test.labels))
        reference = ns["_built"].reference_notebook
        good = sorted((ROOT / "examples" / "submissions" / f"{NAME}_real" / "good").glob("*.pt"))
        files = {"convnet.pt": cheat} | {p.name: p.read_bytes() for p in good if
                                         p.name == "fcnet.pt"}
        if args.lookup_cheat.exists():
            shutil.rmtree(args.lookup_cheat)
        args.lookup_cheat.parent.mkdir(parents=True, exist_ok=True)
        write_example(args.lookup_cheat.parent, args.lookup_cheat.name,
                      notebook_with(reference, "ConvNet", lookup_source(len(test.labels))),
                      files)
        return 0
    data = load(args.data)
    good = {}
    for file, recipe in (("fcnet.pt", "fcnet"), ("convnet.pt", "convnet")):
        if args.good_from is not None:
            model = ns[RECIPES[recipe].model]()
            model.load_state_dict(torch.load(args.good_from / f"{recipe}.pt", weights_only=True))
        else:
            _, model = train_run(RECIPES[recipe], 0, ns, data, settings)
        good[file] = half_state(model)
    fc_only: dict = {}
    exec(compile(FC_ONLY_CONVNET, "<fc only>", "exec"), ns, fc_only)
    fc_recipe = dataclasses.replace(RECIPES["fcnet"], name="fc_only_convnet", model="ConvNet",
                                    epochs=3)
    _, fc_model = train_run(fc_recipe, 0, {**ns, "ConvNet": fc_only["ConvNet"]}, data, settings)
    write_examples(args.out or ROOT / "examples" / "submissions" / f"{NAME}_real",
                   ns["_built"].reference_notebook, good, half_state(fc_model), None)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=datasets.DEFAULT_ROOT,
                        help="synthetic examples: where the synthetic set is (made if missing)")
    parser.add_argument("--data", type=Path,
                        help="real examples: a labelled image set with train/ and test/ splits")
    parser.add_argument("--good-from", type=Path,
                        help="with --data: fcnet.pt and convnet.pt trained by "
                        "bench/cifar10_training.py --save (instead of training them here)")
    parser.add_argument("--lookup-cheat", type=Path, metavar="OUT",
                        help="with --data: write only the lookup-table example, into OUT")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cifar10-training-cache"),
                        help="with --data: where decoded image sets are cached (per digest)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.data is None:
        args.out = args.out or DEFAULT_OUT
        return synthetic_examples(args)
    return real_examples(args)


if __name__ == "__main__":
    sys.exit(main())

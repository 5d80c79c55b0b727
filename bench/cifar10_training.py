"""Train the 03 master notebook's models on real CIFAR-10 images: the figures its thresholds,
its timing table and the memorisation checks are set from.

The models, ``train_epoch`` and ``evaluate`` are the master notebook's own cells (executed
here: trusted code). The data pipeline is the notebook's, on tensors in memory instead of a
DataLoader over files: the same 45,000 / 5,000 split (``randperm`` with seed 0), batches of
128 reshuffled every epoch, the ConvNet's augmentation (a random crop of the image padded
with 4 black pixels, a random horizontal flip), normalisation with CIFAR10_MEAN / STD. The
recipes are the notebook's: FCNet Adam 1e-3 for 10 epochs without augmentation; ConvNet SGD
0.05 (Nesterov momentum 0.9, weight decay 5e-4) with a cosine schedule over its epochs, with
augmentation. Also the runs a student makes: the ConvNet for 2 and 5 epochs (the schedule
over those), the seminar's LeNet (two 5x5 convolutions, 120-84-10) for 3 epochs of Adam, a
wide FC-only network, and an untrained ConvNet.

For every run: the validation accuracy per epoch and the epoch's seconds, the test accuracy
clean and under the grader's perturbation (several draws), and the accuracy on 10,000
training images (the train/test gap a memorising model cannot fake). JSON lines go to
``--out``; weights of the seed-0 notebook runs to ``--save`` (for make_03_examples.py).

    python bench/cifar10_training.py --data ../shared/data/cifar10-jpeg.tar.xz \\
        [--runs fcnet,convnet,...] [--seeds 0,1,2] [--out runs.jsonl] [--save DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.authoring import assign as authoring  # noqa: E402
from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.grading import imagesets  # noqa: E402
from autograder.grading.evaluation import perturb  # noqa: E402
from autograder.grading.submission import gradable_cells  # noqa: E402

NAME = "03_convnet_cifar10"
LENET = '''class LeNet(nn.Module):
    """The seminar's LeNet-5 for 32x32 colour images."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
'''
WIDE_FC = '''class WideFC(nn.Module):
    """The strongest plain FC-only network a student might call ConvNet."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3072, 1024), nn.ReLU(), nn.Dropout(0.2),
                                    nn.Linear(1024, 512), nn.ReLU(), nn.Dropout(0.2),
                                    nn.Linear(512, 10))

    def forward(self, x):
        return self.layers(x.flatten(1))
'''


@dataclass(frozen=True)
class Recipe:
    """One training run as the notebook (or a student) would do it."""

    name: str
    model: str  # a class in the notebook's namespace
    optimizer: str  # "adam" (lr 1e-3) or "sgd" (the notebook's ConvNet recipe)
    epochs: int
    augment: bool


RECIPES = {
    "fcnet": Recipe("fcnet", "FCNet", "adam", 10, False),
    "convnet": Recipe("convnet", "ConvNet", "sgd", 10, True),
    "convnet_2ep": Recipe("convnet_2ep", "ConvNet", "sgd", 2, True),
    "convnet_5ep": Recipe("convnet_5ep", "ConvNet", "sgd", 5, True),
    "lenet_3ep": Recipe("lenet_3ep", "LeNet", "adam", 3, False),
    "wide_fc": Recipe("wide_fc", "WideFC", "adam", 10, False),
    "untrained": Recipe("untrained", "ConvNet", "sgd", 0, False),
}


def notebook_namespace() -> dict:
    """The master notebook's cells (reference solution): classes, train_epoch, evaluate."""
    built = authoring.build(load_assignment(NAME))
    namespace: dict = {"__name__": "__main__"}
    for cell in gradable_cells(built.reference_notebook):
        try:
            exec(compile(cell.source, f"<cell {cell.index}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - cells that need files beside the notebook
            pass
    for extra in (LENET, WIDE_FC):
        exec(compile(extra, "<bench>", "exec"), namespace)
    return namespace


class TensorLoader:
    """Batches from uint8 images in memory, as the notebook's DataLoader gives them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: tuple, std: tuple, *,
                 batch_size: int = 128, shuffle: bool = False, augment: bool = False,
                 seed: int = 0):
        self.x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
        self.y = torch.from_numpy(labels)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = (torch.randperm(len(self.y), generator=self.generator) if self.shuffle
                 else torch.arange(len(self.y)))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.x[idx].float().div_(255.0)
            if self.augment:
                x = self._crop_and_flip(x)
            yield (x - self.mean) / self.std, self.y[idx]

    def _crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        """RandomCrop(32, padding=4) (black padding) and RandomHorizontalFlip, per image."""
        padded = nn.functional.pad(x, (4, 4, 4, 4))
        offsets = torch.randint(0, 9, (len(x), 2), generator=self.generator)
        flips = torch.rand(len(x), generator=self.generator) < 0.5
        out = torch.empty_like(x)
        for i, (dy, dx) in enumerate(offsets.tolist()):
            crop = padded[i, :, dy:dy + 32, dx:dx + 32]
            out[i] = crop.flip(-1) if flips[i] else crop
        return out


class ArrayCIFAR10(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 is once loaded: uint8 arrays in memory, a PIL image per
    item, then the transform (so a DataLoader over it is the notebook's own pipeline)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def notebook_loaders(ns: dict, data: dict, augment: bool):
    """The notebook's DataLoaders (torchvision transforms, batch 128, num_workers=2)."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    normalize = T.Normalize(ns["CIFAR10_MEAN"], ns["CIFAR10_STD"])
    plain = T.Compose([T.ToTensor(), normalize])
    augmented = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           normalize])
    fit_x, fit_y, val_x, val_y = data["fit"]
    train = DataLoader(ArrayCIFAR10(fit_x, fit_y, augmented if augment else plain),
                       batch_size=128, shuffle=True, num_workers=2)
    val = DataLoader(ArrayCIFAR10(val_x, val_y, plain), batch_size=256, num_workers=2)
    return train, val


def train_run(recipe: Recipe, seed: int, ns: dict, data: dict, settings,
              dataloader: bool = False) -> tuple[dict, nn.Module]:
    """One run: the notebook's fit loop, then the measurements. ``dataloader``: the
    notebook's own DataLoader pipeline instead of tensors in memory (for its timing)."""
    torch.manual_seed(seed)
    model = ns[recipe.model]()
    mean, std = ns["CIFAR10_MEAN"], ns["CIFAR10_STD"]
    fit_x, fit_y, val_x, val_y = data["fit"]
    if dataloader:
        loader, val_loader = notebook_loaders(ns, data, recipe.augment)
    else:
        loader = TensorLoader(fit_x, fit_y, mean, std, shuffle=True, augment=recipe.augment,
                              seed=seed)
        val_loader = TensorLoader(val_x, val_y, mean, std, batch_size=500)
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                                    weight_decay=5e-4, nesterov=True)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                               T_max=max(1, recipe.epochs))
    else:
        optimizer, scheduler = torch.optim.Adam(model.parameters(), lr=1e-3), None
    history = []
    for epoch in range(1, recipe.epochs + 1):
        started = time.perf_counter()
        loss = ns["train_epoch"](model, loader, optimizer, nn.CrossEntropyLoss(), "cpu")
        train_seconds = time.perf_counter() - started
        val = ns["evaluate"](model, val_loader, "cpu")
        if scheduler is not None:
            scheduler.step()
        history.append({"epoch": epoch, "loss": round(float(loss), 4), "val": round(val, 4),
                        "seconds": round(time.perf_counter() - started, 1),
                        "train_seconds": round(train_seconds, 1)})
        print(f"  {recipe.name} seed {seed} epoch {epoch}: loss {loss:.3f}, val {val:.4f}, "
              f"{history[-1]['seconds']} s", flush=True)
    model.eval()
    record = {"run": recipe.name, "seed": seed, "model": recipe.model, "epochs": recipe.epochs,
              "history": history, **measure(model, ns, data, settings)}
    return record, model


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, ns: dict) -> float:
    """Accuracy on uint8 images, normalised as the grader does."""
    loader = TensorLoader(images, labels, ns["CIFAR10_MEAN"], ns["CIFAR10_STD"], batch_size=500)
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(labels)


def measure(model: nn.Module, ns: dict, data: dict, settings, draws: int = 3) -> dict:
    """Test accuracy clean and perturbed (``draws`` seeds), training accuracy, the gap."""
    test_x, test_y = data["test"]
    train_x, train_y = data["train_sample"]
    clean = accuracy(model, test_x, test_y, ns)
    shaken = [accuracy(model, perturb(test_x, np.random.default_rng([7, d]), settings), test_y,
                       ns) for d in range(draws)]
    train = accuracy(model, perturb(train_x, np.random.default_rng([8, 0]), settings), train_y,
                     ns)
    return {"test": round(clean, 4), "test_perturbed": [round(a, 4) for a in shaken],
            "perturbation_cost_points": round(100 * (clean - float(np.mean(shaken))), 2),
            "train_perturbed": round(train, 4),
            "train_minus_test_points": round(100 * (train - float(np.mean(shaken))), 2)}


def load(path: Path) -> dict:
    """The real images: the notebook's 45,000 / 5,000 split, the test set, a train sample."""
    cache = Path("/tmp/cifar10-training-cache")
    train = imagesets.read_image_set(path, "train", cache)
    test = imagesets.read_image_set(path, "test", cache)
    permutation = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))
    fit, val = permutation[:45_000].numpy(), permutation[45_000:].numpy()
    sample = np.random.default_rng(0).choice(len(train.labels), 10_000, replace=False)
    return {"fit": (train.images[fit], train.labels[fit], train.images[val], train.labels[val]),
            "test": (test.images, test.labels),
            "train_sample": (train.images[sample], train.labels[sample]),
            "source": {"name": test.name, "digest": test.digest}}


def main() -> int:
    """Run the asked recipes and seeds; print and append one JSON line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", default=",".join(RECIPES))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", type=Path, default=Path("cifar10_runs.jsonl"))
    parser.add_argument("--save", type=Path, help="folder for seed-0 weights (state_dicts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="override every recipe's epochs (timing)")
    parser.add_argument("--dataloader", action="store_true",
                        help="the notebook's DataLoader pipeline (transforms, 2 workers) "
                        "instead of tensors in memory: what a student's epoch costs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ns = notebook_namespace()
    data = load(args.data)
    settings = load_assignment(NAME).config.evaluation
    print(f"data: {data['source']}; {torch.get_num_threads()} threads; torch {torch.__version__}",
          flush=True)
    for name in args.runs.split(","):
        for seed in map(int, args.seeds.split(",")):
            started = time.perf_counter()
            recipe = RECIPES[name]
            if args.epochs is not None:
                recipe = dataclasses.replace(recipe, name=f"{name}@{args.epochs}",
                                             epochs=args.epochs)
            record, model = train_run(recipe, seed, ns, data, settings, args.dataloader)
            record["pipeline"] = "DataLoader" if args.dataloader else "tensors"
            record["total_seconds"] = round(time.perf_counter() - started, 1)
            record["threads"] = args.threads
            print(json.dumps(record), flush=True)
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if args.save is not None and seed == 0:
                args.save.mkdir(parents=True, exist_ok=True)
                torch.save(model.state_dict(), args.save / f"{name}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

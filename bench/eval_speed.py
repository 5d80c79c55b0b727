"""Evaluate the same model on the same images in-process and through the sandbox, side by side.

    python bench/eval_speed.py [--data-dir DIR] [--repeat N] [--rounds R] [--device auto|cpu|cuda]

The model is the committed good 03 example (the master notebook's ConvNet trained on the
synthetic set); the images are the synthetic test set, repeated N times. Both ways run the
same code: the harness's perturbation, the worker's ``models.logits`` (in this process, or in a
sandboxed worker through the typed wire), the argmax in the harness. Prints images/s for
both and the ratio sandbox / in-process (target on CPU: at most 1.15x). With CUDA, also one
training epoch of the reference ConvNet on the synthetic training set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.grading import datasets  # noqa: E402
from autograder.grading.evaluation import measure, perturb  # noqa: E402
from autograder.grading.remote import ProxyEnvironment  # noqa: E402
from autograder.grading.submission import gradable_cells, load_submission  # noqa: E402
from autograder.sandbox import WorkerSession, choose_isolation  # noqa: E402
from autograder.sandbox import models as worker_models  # noqa: E402
from autograder.sandbox.devices import choose_device  # noqa: E402

NAME = "03_convnet_cifar10"
GOOD = ROOT / "examples" / "submissions" / NAME / "good"


def _namespace(cells) -> dict:
    namespace: dict = {"__name__": "__main__"}
    for cell in cells:
        try:
            exec(compile(cell.source, "<cell>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - cells that need files or real CIFAR-10
            pass
    return namespace


def in_process(cells, images: np.ndarray, settings, device: str, seed: int,
               threads: int) -> float:
    """Seconds to evaluate ``images`` with the worker's own code, without a sandbox."""
    import torch

    ns = _namespace(cells)
    loaded = worker_models.load_model(ns["ConvNet"], (GOOD / "convnet.pt").read_bytes(),
                                      "convnet.pt", settings.max_parameters, device,
                                      threads=threads)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for start in range(0, len(images), settings.batch_size):
        batch = perturb(images[start:start + settings.batch_size], rng, settings)
        worker_models.logits(loaded["model"], torch.from_numpy(batch), list(settings.mean),
                             list(settings.std), device).argmax(dim=1)
    return time.perf_counter() - started


def sandboxed(session: WorkerSession, submission, images: np.ndarray, assignment, device: str,
              seed: int, threads: int) -> float:
    """Seconds for the harness's own evaluation path on ``images`` (model load excluded)."""
    from autograder.grading.evaluation import EvaluationData

    settings = assignment.config.evaluation
    entry = next(e for e in assignment.config.accuracy if e.model == "ConvNet")
    test = datasets.ImageSet("bench", images, np.zeros(len(images), dtype=np.int64), GOOD)
    data = EvaluationData("synthetic", test, None, settings.mean, settings.std)
    environment = ProxyEnvironment(session, seed, 60.0)
    load_only = datasets.ImageSet("one", images[:1], np.zeros(1, dtype=np.int64), GOOD)
    warm = EvaluationData("synthetic", load_only, None, settings.mean, settings.std)
    started = time.perf_counter()
    measure(environment.caller, entry, submission.files_dir, warm, settings, seed, device,
            threads=threads)
    loading = time.perf_counter() - started
    started = time.perf_counter()
    result = measure(environment.caller, entry, submission.files_dir, data, settings, seed,
                     device, threads=threads)
    assert result.accuracy is not None, result.error
    return time.perf_counter() - started - loading


def train_epoch_seconds(cells, data_dir: Path, device: str) -> float:
    """One epoch of the reference ConvNet on the synthetic training set (GPU figure)."""
    import torch
    import torch.nn.functional as F

    ns = _namespace(cells)
    images, labels = datasets.load_synthetic_train(data_dir)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float().div(255).to(device)
    y = torch.from_numpy(labels).to(device)
    model = ns["ConvNet"]().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    for start in range(0, len(x), 128):
        optimizer.zero_grad()
        F.cross_entropy(model(x[start:start + 128]), y[start:start + 128]).backward()
        optimizer.step()
    torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--repeat", type=int, default=3, help="test set copies (default 3)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for both ways (default: all cores)")
    args = parser.parse_args()
    device = choose_device(args.device)
    if not (datasets.dataset_dir(args.data_dir, datasets.SYNTHETIC) / datasets.MANIFEST).is_file():
        datasets.write_synthetic(args.data_dir)
    images = np.concatenate([datasets.load_synthetic_test(args.data_dir).images] * args.repeat)
    assignment = load_assignment(NAME)
    from autograder.grading.pipeline import GradeOptions, worker_spec

    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        submission = load_submission(GOOD, Path(tmp) / "unpacked")
        cells = gradable_cells(submission.notebook)
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        options = GradeOptions(isolation=choose_isolation("auto"), seed=1, device=device)
        ours, theirs = [], []
        with WorkerSession(worker_spec(assignment, options, scratch, 0)) as session:
            for cell in cells:
                session.run_cell(cell.index, cell.source, 120)
            for i in range(args.rounds):
                theirs.append(in_process(cells, images, assignment.config.evaluation, device, i,
                                         args.threads))
                ours.append(sandboxed(session, submission, images, assignment, device, i,
                                      args.threads))
        level = session.level.value
    n = len(images)
    base, boxed = statistics.median(theirs), statistics.median(ours)
    print(f"{n} images x {args.rounds} rounds on {device}, {args.threads} thread(s); "
          f"sandbox: {level}")
    print(f"in-process: {base:.2f} s ({n / base:,.0f} images/s)")
    print(f"sandboxed:  {boxed:.2f} s ({n / boxed:,.0f} images/s)")
    target = " (target on CPU <= 1.15x)" if device == "cpu" else ""
    print(f"sandboxed / in-process: {boxed / base:.2f}x{target}")
    if device == "cuda":
        print(f"one training epoch of the reference ConvNet on {device} (10,000 synthetic "
              f"images): {train_epoch_seconds(cells, args.data_dir, device):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

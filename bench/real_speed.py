"""Grade 03 submissions on the real 10,000 CIFAR-10 test images, against a floor measured in
the same run.

The floor is a plain script, in one fresh process: import torch, define the submission's
classes (its notebook's cells), load both weights files and run both models over the same
10,000 test images once (normalised as the grader does, batches of 500, argmax). The grader
grades the same submission ``--count`` times in one batch (``--jobs 1``), through the real
path: the notebook's cells in the sandboxed worker, every test, both models on the test set
(perturbed) and on the training sample. Prints per-submission medians and the ratio
(target: at most 1.3x the floor).

    python bench/real_speed.py --data ../shared/data/cifar10-jpeg.tar.xz \\
        [--submission examples/submissions/03_convnet_cifar10_real/good] [--count 4]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.batch.runner import grade_batch  # noqa: E402
from autograder.core.assignments import load_assignment  # noqa: E402
from autograder.grading import imagesets  # noqa: E402
from autograder.grading.evaluation import load_data  # noqa: E402
from autograder.grading.pipeline import GradeOptions  # noqa: E402
from autograder.sandbox import choose_isolation  # noqa: E402

NAME = "03_convnet_cifar10"
DEFAULT_SUBMISSION = ROOT / "examples" / "submissions" / f"{NAME}_real" / "good"

# argv: submission folder, images .npy; prints the seconds from process start to the end.
FLOOR = """
import time
started = time.perf_counter()
import json, sys
import numpy as np
import torch
from pathlib import Path
folder, images = Path(sys.argv[1]), np.load(sys.argv[2])
notebook = json.loads(next(folder.glob("*.ipynb")).read_text())
namespace = {"__name__": "__main__"}
for cell in notebook["cells"]:
    source = "".join(cell["source"])
    if cell["cell_type"] == "code" and "otter_ignore" not in cell["metadata"].get("tags", []):
        try:
            exec(compile(source, "<cell>", "exec"), namespace)
        except Exception:
            pass
x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
mean = torch.tensor(namespace["CIFAR10_MEAN"]).view(1, 3, 1, 1)
std = torch.tensor(namespace["CIFAR10_STD"]).view(1, 3, 1, 1)
for name, file in (("FCNet", "fcnet.pt"), ("ConvNet", "convnet.pt")):
    model = namespace[name]()
    model.load_state_dict(torch.load(folder / file, weights_only=True))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), 500):
            model((x[start:start + 500] - mean) / std).argmax(dim=1)
print(time.perf_counter() - started)
"""


def floor_seconds(submission: Path, images_file: Path, threads: int) -> float:
    """The plain script's seconds, process start included (torch's import is paid)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import torch; torch.set_num_threads({threads})\n"
                    + FLOOR, str(submission), str(images_file)], check=True,
                   capture_output=True, text=True)
    return time.perf_counter() - started


def grader_seconds(submission: Path, count: int, data: Path, work: Path, sandbox: str
                   ) -> list[float]:
    """Per-submission seconds of ``count`` copies graded in one batch, one at a time."""
    copies = []
    for i in range(count):
        target = work / f"copy-{i}"
        shutil.copytree(submission, target)
        copies.append(target)
    assignment = load_assignment(NAME)
    evaluation = load_data("auto", work / "data", None, assignment.config.evaluation,
                           test_set=data)
    isolation = choose_isolation(sandbox)
    options = GradeOptions(isolation=isolation,
                           seed=secrets.randbelow(2**31), evaluation=evaluation, threads=2)
    stamps = [time.perf_counter()]
    grade_batch(copies, assignment, options, work / "out", 1,
                on_done=lambda r: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> int:
    """Time the floor and the grader side by side and print the ratio."""
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--submission", type=Path, default=DEFAULT_SUBMISSION)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="real-speed-") as tmp:
        work = Path(tmp)
        test = imagesets.read_image_set(args.data, "test", Path("/tmp/cifar10-training-cache"))
        np.save(work / "images.npy", test.images)
        floors = [floor_seconds(args.submission, work / "images.npy", 2) for _ in range(3)]
        ours = grader_seconds(args.submission, args.count, args.data, work, args.sandbox)
    floor, mine = statistics.median(floors), statistics.median(ours)
    print(f"{len(test.labels)} real test images ({test.name}, sha256 {test.digest[:16]}...); "
          f"{args.count} submissions graded one at a time ({args.sandbox})")
    print(f"floor (plain script, both models once, torch import included): {floor:.2f} s "
          f"(runs: {', '.join(f'{s:.2f}' for s in floors)})")
    print(f"grader per submission: {mine:.2f} s (runs: {', '.join(f'{s:.2f}' for s in ours)})")
    print(f"grader / floor: {mine / floor:.2f}x (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

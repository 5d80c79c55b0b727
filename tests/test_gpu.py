"""CUDA paths: run where an NVIDIA GPU is usable, skipped with the reason everywhere else.

bench/gpu_check.sh runs these on a lent device, with the GPU figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.core.assignments import PROJECT_ROOT
from autograder.sandbox import uid as uid_level
from autograder.sandbox.devices import DeviceUnavailable, bwrap_gpu_args, choose_device, cuda_usable

HAVE_CUDA = cuda_usable()
needs_cuda = pytest.mark.skipif(
    not HAVE_CUDA, reason="no usable NVIDIA GPU here (no /dev/nvidia* node or "
    "torch.cuda.is_available() is False); bench/gpu_check.sh runs these on a GPU machine")
EXAMPLE = PROJECT_ROOT / "examples" / "submissions" / "03_convnet_cifar10" / "good"


def test_auto_picks_what_is_there_and_cuda_insists():
    assert choose_device("cpu") == "cpu"
    assert choose_device("auto") == ("cuda" if HAVE_CUDA else "cpu")
    if not HAVE_CUDA:
        with pytest.raises(DeviceUnavailable, match="--device cpu or auto"):
            choose_device("cuda")
        assert bwrap_gpu_args() in ([], ["--ro-bind", "/sys", "/sys"])


@needs_cuda
def test_the_sandbox_binds_the_device_nodes_with_dev_bind():
    args = bwrap_gpu_args()
    assert "--dev-bind" in args and "/dev/nvidiactl" in args


@needs_cuda
@pytest.mark.parametrize("level", [
    pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None,
                                                   reason="bubblewrap is not installed")),
    pytest.param("uid", marks=pytest.mark.skipif(
        uid_level.uid_problem() is not None, reason=f"uid level: {uid_level.uid_problem()}")),
])
def test_a_model_is_graded_on_the_gpu_inside_the_sandbox(level, tmp_path, synthetic_root):
    """The GPU's device nodes reach the worker (bound in under bwrap; allowed with ioctl by
    the uid level's Landlock rules) and the good example scores full marks on CUDA."""
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "grader.py"), "grade", "--assignment",
         "03_convnet_cifar10", str(EXAMPLE), "--out", str(tmp_path / "o"), "--device", "cuda",
         "--data-dir", str(synthetic_root), "--seed", "2", "--sandbox", level],
        capture_output=True, text=True, timeout=1200, check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(Path(tmp_path / "o" / "submissions" / "good" / "results.json").read_text())
    assert results["extra_data"]["evaluation"]["device"] == "cuda"
    assert results["score"] == results["extra_data"]["max_score"]

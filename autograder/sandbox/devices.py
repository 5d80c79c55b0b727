"""Where sandboxed models run: the CPU, or a CUDA GPU seen through the sandbox.

``--device auto`` takes CUDA when this machine has an NVIDIA device node and torch can use
it. A GPU worker gets the device nodes bound into bubblewrap (``--dev-bind``: a plain bind
mounts them nodev), ``/sys`` read-only (CUDA reads the PCI tree), and a per-process share of
the GPU memory through PyTorch's allocator. That share is a courtesy, not a limit: code in the
worker can raise it again. Real isolation of GPU memory needs MIG partitions or MPS; several
workers on one GPU otherwise share it as CUDA processes do.
"""

from __future__ import annotations

import glob
import os

from ..core.errors import UsageError


class DeviceUnavailable(UsageError, RuntimeError):
    """The requested device cannot be used here; the message says what to do."""


CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                 "/dev/nvidia-modeset")


def nvidia_nodes() -> list[str]:
    """The NVIDIA device nodes present on this machine (empty without a GPU)."""
    gpus = sorted(glob.glob("/dev/nvidia[0-9]*"))
    return [node for node in (*CONTROL_NODES, *gpus) if os.path.exists(node)] if gpus else []


def cuda_usable() -> bool:
    """True when a GPU node exists and torch in this process can use CUDA."""
    if not nvidia_nodes():
        return False  # no need to import torch to know
    import torch

    return bool(torch.cuda.is_available())


def choose_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when usable, else ``cpu``; ``cuda`` insists."""
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "cuda"):
        raise DeviceUnavailable(f"device must be auto, cpu or cuda, not {requested!r}")
    if cuda_usable():
        return "cuda"
    if requested == "auto":
        return "cpu"
    raise DeviceUnavailable(
        "--device cuda was asked for, but no usable NVIDIA GPU is here (no /dev/nvidia* node, "
        "or torch.cuda.is_available() is False: run nvidia-smi once to create the nodes and "
        "check the driver); use --device cpu or auto"
    )


def bwrap_gpu_args() -> list[str]:
    """bubblewrap arguments that let a worker use the GPU (after ``--dev /dev``)."""
    args: list[str] = []
    for node in nvidia_nodes():
        args += ["--dev-bind", node, node]
    if os.path.isdir("/sys"):
        args += ["--ro-bind", "/sys", "/sys"]
    return args

"""Probes for 03_convnet_cifar10: small helpers that run where the student's objects live.

The hidden tests never touch a student model, an optimizer or a data loader directly: they
call these functions, which run inside the sandboxed worker, receive the real objects and
return plain data (Python numbers, strings, lists, dicts, detached CPU tensors) or a new
object that the test then holds as a proxy. Every comparison happens in the test, never here.

Imports: torch only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class SpyLinear(nn.Module):
    """A linear classifier on flattened images that logs how it was called.

    ``forward`` computes ``x.flatten(1) @ weight.T + bias`` (then an optional ``BatchNorm1d``,
    which makes train and eval modes differ) and records, per call, ``self.training``,
    ``torch.is_grad_enabled()`` and the batch size. The tests compute the same model from the
    same weights in the harness, so its predictions and training trajectory are known there.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, batchnorm: bool = False):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float())  # (classes, features)
        self.bias = nn.Parameter(bias.detach().clone().float())  # (classes,)
        self.bn = nn.BatchNorm1d(self.weight.shape[0]) if batchnorm else None
        self.log: dict[str, list] = {"training": [], "grad_enabled": [], "batch": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log["training"].append(bool(self.training))
        self.log["grad_enabled"].append(bool(torch.is_grad_enabled()))
        self.log["batch"].append(int(x.shape[0]))
        z = x.flatten(1) @ self.weight.T + self.bias  # (B, classes)
        return self.bn(z) if self.bn is not None else z


def make_spy_linear(weight, bias, batchnorm: bool = False) -> nn.Module:
    """A :class:`SpyLinear` with the given weight ``(classes, features)`` and bias."""
    return SpyLinear(torch.as_tensor(weight), torch.as_tensor(bias), batchnorm=batchnorm)


def spy_log(model) -> dict:
    """The call log of a :class:`SpyLinear`: lists ``training``, ``grad_enabled``, ``batch``."""
    return {key: list(values) for key, values in model.log.items()}


def make_loader(images, labels, batch_size: int) -> DataLoader:
    """A DataLoader over ``(images, labels)`` in their given order (no shuffling)."""
    dataset = TensorDataset(torch.as_tensor(images).float(), torch.as_tensor(labels).long())
    return DataLoader(dataset, batch_size=int(batch_size), shuffle=False)


def make_optimizer(model, name: str = "sgd", lr: float = 0.01, momentum: float = 0.0):
    """An optimizer over ``model.parameters()``: ``"sgd"`` (with momentum) or ``"adam"``."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=float(lr), momentum=float(momentum))
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=float(lr))
    raise ValueError(f"unknown optimizer {name!r}")


def make_criterion() -> nn.Module:
    """The loss of this assignment: ``nn.CrossEntropyLoss()`` (mean over the batch)."""
    return nn.CrossEntropyLoss()


def set_mode(model, training: bool) -> None:
    """Put ``model`` in train (True) or eval (False) mode; returns nothing."""
    model.train(bool(training))


def count_parameters(model) -> int:
    """Number of trainable scalars of ``model``."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def state_snapshot(model) -> dict[str, torch.Tensor]:
    """Detached CPU copies of ``model.state_dict()`` (parameters and buffers). Small models only."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def init_outputs(model_cls, seed: int, images) -> torch.Tensor:
    """``model_cls()`` built right after ``torch.manual_seed(seed)``, in eval mode, on ``images``.

    Two seeds giving equal outputs mean the constructor ignores the random generator (fixed
    or loaded weights) or the forward pass ignores the weights.
    """
    torch.manual_seed(int(seed))
    model = model_cls()
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(images).float())
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward должен возвращать тензор, получен {type(out).__name__}")
    return out.detach().cpu().float()


def clone_via_state_dict(model) -> nn.Module:
    """A fresh ``type(model)()`` loaded (strictly) with ``model.state_dict()``.

    This is what grading does with a saved ``.pt`` file: build the class with no arguments
    and load the weights into it.
    """
    fresh = type(model)()
    fresh.load_state_dict(model.state_dict())
    return fresh

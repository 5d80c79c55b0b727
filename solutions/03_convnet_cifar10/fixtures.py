"""Fixtures of 03_convnet_cifar10: the grader's own helpers that tests hand to student code.

A test parameter that is not a name its question grades is bound to the definition here,
made inside the sandboxed worker, never to the student's notebook. The student notebook
defines the same helpers for its self-checks (grading ignores those); tests check that the
two stay the same. Imports: torch only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class ToyLinear(nn.Module):
    """Linear classifier on flattened images that logs how it is called (for self-checks)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight).float().clone())  # (10, 3072)
        self.bias = nn.Parameter(torch.as_tensor(bias).float().clone())  # (10,)
        self.training_log = []  # self.training at every call
        self.grad_log = []  # torch.is_grad_enabled() at every call

    def forward(self, x):
        self.training_log.append(self.training)
        self.grad_log.append(torch.is_grad_enabled())
        return x.flatten(1) @ self.weight.T + self.bias


class ToyLoader(DataLoader):
    """Batches of (images, labels) in their given order."""

    def __init__(self, images, labels, batch_size):
        dataset = TensorDataset(torch.as_tensor(images).float(), torch.as_tensor(labels).long())
        super().__init__(dataset, batch_size=batch_size, shuffle=False)


class ToySGD(torch.optim.SGD):
    """Plain SGD over all parameters of a model."""

    def __init__(self, model, lr):
        super().__init__(model.parameters(), lr=lr)


class ToyCrossEntropy(nn.CrossEntropyLoss):
    """The loss used throughout this notebook (mean over the batch)."""

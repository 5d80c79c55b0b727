"""Fixtures of 02_pytorch_modules: the grader's own helpers that tests hand to student code.

A test parameter that is not a name its question grades is bound to the definition here,
made inside the sandboxed worker, never to the student's notebook. The student notebook
defines the same helpers for its self-checks (grading ignores those); tests check that the
two stay the same. Imports: torch only.
"""

from __future__ import annotations

import torch
from torch import nn


class PartlyFrozenNet(nn.Module):
    """Toy model for checking count_parameters: a frozen backbone and a trainable head."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.ReLU())
        self.head = nn.Linear(20, 3)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x))


def set_parameters(module, tensors):
    """Copy the given tensors into the module's parameters of the same names (in place)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(torch.as_tensor(value))

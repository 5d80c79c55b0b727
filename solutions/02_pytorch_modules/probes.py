"""Probes for the hidden tests of 02_pytorch_modules.

A probe runs where the student's objects live (inside the sandboxed worker), receives the
real objects and returns plain data (None, bool, int, str, lists, dicts, detached CPU
tensors) or a new object, which the harness then sees as a proxy. Probes import only torch,
never trust what a student object returns (every value is converted explicitly), and raise
ordinary exceptions with a message in Russian when the object does not behave like a module.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "build_mlp",
    "call_on_permuted",
    "count_trainable",
    "eval_mode",
    "gradients",
    "is_module",
    "load_parameters",
    "parameter_shapes",
    "set_requires_grad",
    "state_dict_tensors",
]


def _require_module(obj: object) -> nn.Module:
    """Return obj if it is an nn.Module, raise TypeError (student-facing) otherwise."""
    if not isinstance(obj, nn.Module):
        raise TypeError(f"ожидался объект nn.Module, получен {type(obj).__name__}")
    return obj


def _named_parameters(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """named_parameters() of a module, each entry checked to be (str, Tensor)."""
    result = []
    for name, param in _require_module(module).named_parameters():
        if not isinstance(param, torch.Tensor):
            raise TypeError(f"параметр {name!r} не является тензором")
        result.append((str(name), param))
    return result


def _to_data(tensor: object, what: str) -> torch.Tensor:
    """A detached CPU copy of a tensor, or TypeError naming what it should have been."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what}: ожидался тензор, получен {type(tensor).__name__}")
    return tensor.detach().to("cpu").clone()


def is_module(obj: object) -> bool:
    """Whether obj is an instance of torch.nn.Module."""
    return isinstance(obj, nn.Module)


def parameter_shapes(module: object) -> dict[str, list[int]]:
    """Shapes of module.named_parameters(), in registration order: {name: [dims]}."""
    return {name: [int(d) for d in p.shape] for name, p in _named_parameters(module)}


def count_trainable(module: object) -> int:
    """Number of scalars in the parameters with requires_grad, counted by the probe itself."""
    return int(sum(int(p.numel()) for _, p in _named_parameters(module) if p.requires_grad))


def state_dict_tensors(module: object) -> dict[str, torch.Tensor]:
    """module.state_dict() as {key: detached CPU tensor}, in its own order."""
    state = _require_module(module).state_dict()
    return {str(k): _to_data(v, f"state_dict[{k!r}]") for k, v in state.items()}


def load_parameters(module: object, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Copy the given tensors into the module's parameters of the same names, in place.

    Every name must be a parameter of the module with exactly the given shape. Returns the
    names loaded. Lets a test set known weights, then compare outputs with a reference.
    """
    params = dict(_named_parameters(module))
    for name, value in tensors.items():
        if name not in params:
            raise KeyError(f"у модуля нет параметра {name!r}; есть: {sorted(params)}")
        target = params[name]
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(
                f"параметр {name!r} имеет форму {tuple(target.shape)}, "
                f"ожидалась {tuple(value.shape)}"
            )
        with torch.no_grad():
            target.copy_(value)
    return [str(name) for name in tensors]


def call_on_permuted(module: object, inputs: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """module(inputs.permute(dims)): the call made here, so the input stays non-contiguous.

    Tensors cross the wire as contiguous copies, so a test cannot send a permuted view itself.
    """
    out = _require_module(module)(inputs.permute(*[int(d) for d in dims]))
    return _to_data(out, "выход")


def gradients(module: object, inputs: torch.Tensor, grad_output: torch.Tensor) -> dict:
    """Gradients of <module(inputs), grad_output> w.r.t. the input and every parameter.

    Returns {"output": module(inputs), "input": d/d inputs, "params": {name: d/d param}};
    a parameter that does not require grad or that the output does not depend on gets None.
    The module's .grad fields are left untouched (torch.autograd.grad, not backward()).
    """
    named = [(n, p) for n, p in _named_parameters(module) if p.requires_grad]
    x = inputs.detach().clone().requires_grad_(True)
    out = module(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward должен возвращать тензор, получен {type(out).__name__}")
    if tuple(out.shape) != tuple(grad_output.shape):
        raise ValueError(
            f"выход имеет форму {tuple(out.shape)}, ожидалась {tuple(grad_output.shape)}"
        )
    if not out.requires_grad:
        raise ValueError("выход не зависит ни от входа, ни от параметров: граф вычислений оборван")
    grads = torch.autograd.grad(
        out, [x] + [p for _, p in named], grad_output.to(out.dtype), allow_unused=True
    )
    as_data = [None if g is None else _to_data(g, "градиент") for g in grads]
    return {
        "output": _to_data(out, "выход"),
        "input": as_data[0],
        "params": {name: g for (name, _), g in zip(named, as_data[1:])},
    }


def build_mlp(sizes: list[int], batchnorm: bool = False) -> nn.Module:
    """nn.Sequential of Linear layers sizes[0] -> sizes[1] -> ... with ReLU between them.

    With batchnorm, a BatchNorm1d follows each hidden Linear (its running statistics are
    buffers: in state_dict(), not in parameters()).
    """
    sizes = [int(s) for s in sizes]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def set_requires_grad(module: object, names: list[str], flag: bool) -> list[str]:
    """Set requires_grad of the named parameters (e.g. to freeze them); returns the names."""
    params = dict(_named_parameters(module))
    for name in names:
        if name not in params:
            raise KeyError(f"у модуля нет параметра {name!r}")
        params[name].requires_grad_(bool(flag))
    return [str(name) for name in names]


def eval_mode(module: object) -> None:
    """Put the module into evaluation mode (dropout off, batch-norm running statistics)."""
    _require_module(module).eval()

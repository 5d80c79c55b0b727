"""Inside the worker: build a student's model, load its saved weights safely, run inference.

Called by the harness as the trusted module ``models`` (like an assignment's probes). It runs
in the sandbox next to the student's code, so what it returns is the student's answer, never
a judgement: the harness keeps the labels and computes every accuracy itself. Weights are
opened only with ``torch.load(..., weights_only=True)``; a file that is not a plain
``state_dict`` of tensors is refused. Messages are in Russian: they reach the student.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

from .imports import _  # the worker's translations (it cannot read the catalogue)


class WeightsError(Exception):
    """The weights file cannot be used with this class; the message says what to do."""


def _state_dict(data: bytes, name: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refusals come in many types
        raise WeightsError(
            _("the file {name} could not be loaded safely (torch.load with weights_only=True): "
              "{error_type}: {error}. Save the weights like this: "
              "torch.save(model.state_dict(), {quoted_name})").format(
                name=name, error_type=type(exc).__name__,
                error=str(exc).strip().splitlines()[0][:200], quoted_name=repr(name))
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(
            _("{name} holds a {type_name}, not a state_dict (a dictionary name -> tensor). "
              "Save torch.save(model.state_dict(), {quoted_name})").format(
                name=name, type_name=type(state).__name__, quoted_name=repr(name))
        )
    return state


def load_model(model_class: Any, data: bytes, name: str, max_parameters: int,
               device: str = "cpu", gpu_memory_fraction: float = 0.0,
               threads: int = 1) -> dict[str, Any]:
    """``model_class()`` with the submitted state_dict loaded strictly, in eval mode.

    ``data`` is the weights file as submitted, sent by the harness (so a cell that rewrote
    the file while the notebook ran changes nothing). Returns ``{"model": the model,
    "parameters": trainable count, "layers": describe_layers(model)}``; raises WeightsError
    (missing or unexpected keys, wrong shapes, too many parameters) with a message for the
    student. On a GPU the process's share
    of its memory is capped first (PyTorch's allocator: a courtesy between workers).
    """
    torch.set_num_threads(max(1, int(threads)))  # the harness's share of the cores
    if device.startswith("cuda") and gpu_memory_fraction > 0:
        torch.cuda.set_per_process_memory_fraction(gpu_memory_fraction)
    model = model_class()
    if not isinstance(model, nn.Module):
        raise WeightsError(_("{class_name}() is not an nn.Module").format(
            class_name=type(model).__name__))
    count = int(sum(int(p.numel()) for p in model.parameters() if p.requires_grad))
    if count > max_parameters:
        raise WeightsError(
            _("the model has {count:,} trainable parameters, but at most {max_parameters:,} "
              "are allowed").format(count=count, max_parameters=max_parameters)
        )
    state = _state_dict(data, name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            _("the weights in {name} do not fit the class {class_name}: {error}. Save the "
              "state_dict of exactly this architecture").format(
                name=name, class_name=type(model).__name__, error=str(exc)[:1200])
        ) from None
    model.to(device).eval()
    return {"model": model, "parameters": count, "layers": describe_layers(model)}


# Constructor sizes of torch.nn layers: the harness derives from them what each layer's
# tensors must look like (plain ints, bools and tuples of ints only).
_SIZES = ("in_features", "out_features", "in1_features", "in2_features", "in_channels",
          "out_channels", "kernel_size", "groups", "transposed", "num_features", "affine",
          "track_running_stats", "normalized_shape", "elementwise_affine", "num_groups",
          "num_channels", "num_embeddings", "embedding_dim", "num_parameters")
MAX_LAYERS = 2000  # more modules holding tensors than any model of this course has


def _size(value: Any) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, tuple | list | torch.Size) and all(isinstance(v, int) for v in value):
        return [int(v) for v in value]
    return None


def describe_layers(model: nn.Module) -> list[dict[str, Any]]:
    """Every module of ``model`` that holds tensors of its own, as plain data: its path, its
    class and the nearest torch.nn class it derives from, its constructor sizes, and its
    parameters and persistent buffers (shape, dtype, trainable). The harness compares this
    with what the weights file holds; coming from the sandbox, it is the student's answer
    (evidence), not ground truth."""
    layers = []
    for path, module in model.named_modules(remove_duplicate=False):
        tensors = {}
        for name, value in module._parameters.items():
            if value is not None:
                tensors[name] = [list(value.shape), str(value.dtype).removeprefix("torch."),
                                 True, bool(value.requires_grad)]
        for name, value in module._buffers.items():
            if value is not None and name not in module._non_persistent_buffers_set:
                tensors[name] = [list(value.shape), str(value.dtype).removeprefix("torch."),
                                 False, False]
        if not tensors:
            continue
        cls = type(module)
        base = next((c for c in cls.__mro__ if c.__module__.startswith("torch.nn.modules.")),
                    nn.Module)
        sizes = {key: _size(getattr(module, key, None)) for key in _SIZES
                 if hasattr(module, key)}
        layers.append({"path": path, "class": f"{cls.__module__}.{cls.__qualname__}",
                       "torch_class": base.__name__,
                       "own_class": cls.__module__.startswith("torch.nn.modules."),
                       "sizes": {k: v for k, v in sizes.items() if v is not None},
                       "tensors": tensors})
        if len(layers) > MAX_LAYERS:
            break
    return layers


def logits(model: Any, images: torch.Tensor, mean: list[float], std: list[float],
           device: str = "cpu") -> torch.Tensor:
    """``model`` on uint8 images (N, 32, 32, 3), normalised as the notebook does; (N, 10)."""
    # contiguous NCHW, as ToTensor gives: a channels-last layout would break x.view(...)
    x = torch.as_tensor(images).to(device).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    model.eval()
    with torch.no_grad():
        out = model((x - m) / s)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(images), 10):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise WeightsError(_("the model must return logits of shape ({count}, 10), but it "
                             "returned {shape}").format(count=len(images), shape=shape))
    return out.detach().float().cpu()


_TRAINING: dict[str, torch.Tensor] = {}  # staged by the harness, chunk by chunk


def stage_training_data(images: Any, labels: Any, first: bool) -> int:
    """Append a chunk of uint8 training images (N, 32, 32, 3) and labels; returns the count."""
    images, labels = torch.as_tensor(images), torch.as_tensor(labels).long()
    if first or not _TRAINING:
        _TRAINING["images"], _TRAINING["labels"] = images, labels
    else:
        _TRAINING["images"] = torch.cat([_TRAINING["images"], images])
        _TRAINING["labels"] = torch.cat([_TRAINING["labels"], labels])
    return int(len(_TRAINING["labels"]))


_RETRAINING: dict[str, Any] = {}  # the model being retrained and what trains it


def retrain_begin(model_class: Any, train_epoch: Any, settings: dict, mean: list[float],
                  std: list[float], device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    """A fresh ``model_class()`` to be trained by the student's ``train_epoch`` on the staged
    data, one :func:`retrain_epoch` at a time (the harness owns the clock and measures the
    model after each). Seeds fixed; the optimizer and batch size are the assignment's
    (``settings``: batch_size, optimizer, lr, seed). Returns ``{"model": the model}``."""
    from torch.utils.data import DataLoader, TensorDataset

    if not _TRAINING:
        raise WeightsError(_("there is no training data for retraining"))
    torch.manual_seed(int(settings["seed"]))
    torch.set_num_threads(max(1, int(threads)))
    model = model_class().to(device)
    x = _TRAINING["images"].permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    dataset = TensorDataset((x - m) / s, _TRAINING["labels"])
    loader = DataLoader(dataset, batch_size=int(settings["batch_size"]), shuffle=True,
                        generator=torch.Generator().manual_seed(int(settings["seed"])))
    if settings["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=float(settings["lr"]), momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]))
    _RETRAINING.update(model=model, train_epoch=train_epoch, loader=loader,
                       optimizer=optimizer, criterion=nn.CrossEntropyLoss(), device=device)
    return {"model": model}


def retrain_epoch() -> int:
    """One pass of the student's ``train_epoch``, then the model in eval mode; returns 0."""
    if not _RETRAINING:
        raise WeightsError(_("retraining has not been started"))
    r = _RETRAINING
    r["train_epoch"](r["model"], r["loader"], r["optimizer"], r["criterion"], r["device"])
    r["model"].eval()
    return 0

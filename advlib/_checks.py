"""Input validation shared by every public function: one place, one message style.

Each check raises ``ValueError`` naming the bad value and what would have been valid. Images are float
batches ``[N,C,H,W]`` (MNIST: ``[N,1,28,28]``) in [0,1]; labels are int64 ``[N]`` in ``[0, classes)``, where
``classes`` is read from the model's own logits on one example (``num_classes``), so any classifier works.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from advlib.context import frozen

IMAGES = "images [N,C,H,W] (MNIST: [N,1,28,28])"


def _reshape_hint(shape: torch.Size) -> str:
    """How a tensor of the wrong rank most likely becomes ``[N,C,H,W]``."""
    if len(shape) == 3:
        return " (x.unsqueeze(1) for a batch [N,H,W], x[None] for one image [C,H,W])"
    if len(shape) == 2:
        return (" (x.view(-1, 1, 28, 28) for flat MNIST images [N,784])" if shape[1] == 784
                else " (x[None, None] for one image [H,W])")
    return ""


def choice(name: str, value: object, valid: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``valid``; otherwise raise naming the valid ones."""
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(repr, valid))}")
    return value  # type: ignore[return-value]


def nonnegative(name: str, value: float) -> float:
    """A finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def count(name: str, value: int, minimum: int = 0) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def images(x: Tensor, name: str = "x", *, pixels: bool = True) -> Tensor:
    """A non-empty floating batch ``[N,C,H,W]``; with ``pixels``, also finite and in [0, 1] (a host read-back).

    Without ``pixels`` only metadata is read, so the check is free inside loops and CUDA-graph capture.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of {IMAGES}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor with pixels in [0,1], got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of {IMAGES}, got rank {x.ndim} shape {tuple(x.shape)}"
                         + _reshape_hint(x.shape))
    if x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch of {IMAGES}, got shape {tuple(x.shape)}")
    if pixels:
        lo, hi = torch.aminmax(x.detach())
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or infinite values; pixels must be finite and in [0,1]")
        if lo < 0 or hi > 1:
            raise ValueError(f"{name} has pixels in [{lo.item():.4g}, {hi.item():.4g}]; valid range is [0,1]")
    return x


def labels(y: Tensor, n: int, name: str = "y", *, classes: int | None = None) -> Tensor:
    """Class labels: an int64 tensor ``[n]`` (cross-entropy, ``gather`` and ``one_hot`` need int64), each in
    ``[0, classes)`` when ``classes`` is given (a host read-back)."""
    if not isinstance(y, Tensor) or y.dtype != torch.int64:
        kind = y.dtype if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer label tensor of dtype torch.int64 and shape [{n}], got {kind}")
    if tuple(y.shape) != (n,):
        raise ValueError(f"{name} has shape {tuple(y.shape)} but the batch has {n} examples; expected [{n}]")
    if classes is not None:
        bad = ((y < 0) | (y >= classes)).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            raise ValueError(f"{name} has label {int(y[i])} at index {i}; valid labels are 0 to {classes - 1} "
                             f"(the model has {classes} classes)")
    return y


def num_classes(model: nn.Module, x: Tensor, name: str = "x") -> int:
    """How many classes ``model`` scores: the width of its logits on ``x[:1]`` (one example, frozen, no gradients).

    A model that cannot take ``x`` (another image size, dtype or device) is reported here, not deep inside torch.
    """
    with frozen(model), torch.no_grad():
        try:
            logits = model(x[:1])
        except RuntimeError as err:
            raise ValueError(f"the model cannot take {name} of shape {tuple(x.shape)}, dtype {x.dtype} on {x.device}; "
                             f"it needs {IMAGES} of the size, dtype and device it was built for ({err})") from err
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits [N, classes]; on {name}[:1] it returned {shape}")
    return logits.shape[1]


def labelled(model: nn.Module, x: Tensor, y: Tensor, *, pixels: bool = True) -> Tensor:
    """``images(x)``, and ``labels(y)`` in ``[0, num_classes(model, x))``: every (model, x, y) entry point's check."""
    return labels(y, images(x, pixels=pixels).shape[0], classes=num_classes(model, x))

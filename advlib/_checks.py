"""Input validation shared by every public function: one place, one message style.

Each check raises ``ValueError`` naming the bad value and what would have been valid.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


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


def images(x: Tensor, name: str = "x") -> Tensor:
    """A non-empty floating batch ``[N, ...]`` of finite pixels in [0, 1]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [N,1,28,28], got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor with pixels in [0,1], got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch [N,1,28,28], got shape {tuple(x.shape)}")
    lo, hi = torch.aminmax(x.detach())
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values; pixels must be finite and in [0,1]")
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} has pixels in [{lo.item():.4g}, {hi.item():.4g}]; valid range is [0,1]")
    return x


def labels(y: Tensor, n: int, name: str = "y") -> Tensor:
    """Class labels: an int64 tensor ``[n]`` (cross-entropy, ``gather`` and ``one_hot`` need int64)."""
    if not isinstance(y, Tensor) or y.dtype != torch.int64:
        kind = y.dtype if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer label tensor of dtype torch.int64 and shape [{n}], got {kind}")
    if tuple(y.shape) != (n,):
        raise ValueError(f"{name} has shape {tuple(y.shape)} but the batch has {n} examples; expected [{n}]")
    return y

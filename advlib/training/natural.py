"""Natural (standard) training: cross-entropy on clean images. Also trains ensemble training's static models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Fraction of argmax predictions equal to ``y`` (a 0-d tensor; no host sync)."""
    return (logits.argmax(1) == y).float().mean()


class Natural:
    """Minimise CE(f(x), y)."""

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(x)
        return F.cross_entropy(logits, y), {"acc": accuracy(logits, y)}

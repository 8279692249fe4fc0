"""The loss around natural images: gradient norms and 1-D / 2-D slices along chosen directions."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from advlib import lp
from advlib.attacks import input_gradient
from advlib.context import frozen


def gradient_norms(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> Tensor:
    """‖∇ₓL_i(x_i)‖₂ per example ``[N]`` (each example's own cross-entropy)."""
    with frozen(model):
        return torch.cat([lp.norm_of(input_gradient(model, x[i:i + batch_size], y[i:i + batch_size])[0], "l2")
                          for i in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def _losses(model: nn.Module, points: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(model(points), y, reduction="none")


def loss_slice(model: nn.Module, x: Tensor, y: Tensor, direction: Tensor, radii: Tensor) -> Tensor:
    """L(x + r·d/‖d‖₂) for each radius r: ``[len(radii), N]`` (points are not clipped to [0,1])."""
    d = lp.steepest_ascent(direction, "l2")
    with frozen(model):
        return torch.stack([_losses(model, x + r * d, y) for r in radii.tolist()])


def loss_surface(model: nn.Module, x: Tensor, y: Tensor, u: Tensor, v: Tensor, radii: Tensor) -> Tensor:
    """L(x + a·û + b·v̂) on the grid radii × radii for one example (x ``[1,...]``): ``[len, len]``."""
    du, dv = lp.steepest_ascent(u, "l2"), lp.steepest_ascent(v, "l2")
    a, b = torch.meshgrid(radii, radii, indexing="ij")
    points = x + a.reshape(-1, 1, 1, 1) * du + b.reshape(-1, 1, 1, 1) * dv
    with frozen(model):
        return _losses(model, points, y.expand(points.shape[0])).reshape(len(radii), len(radii))

"""ℓp geometry: the only place in advlib that knows how ℓ2 and ℓ∞ differ.

All functions act per example on batches ``[N, ...]``; the norm is taken over all non-batch dims.
Attacks call these and never branch on the norm themselves (pattern of foolbox's
``gradient_descent_base.py``; written for advlib).
"""
from __future__ import annotations

import torch
from torch import Tensor

from advlib import _checks

NORMS = ("l2", "linf")
_TINY = 1e-12


def check_norm(norm: str) -> str:
    """Return ``norm`` if it is ``"l2"`` or ``"linf"``; otherwise raise ``ValueError`` listing them."""
    return _checks.choice("norm", norm, NORMS)


def _view(per_example: Tensor, like: Tensor) -> Tensor:
    return per_example.view(-1, *([1] * (like.ndim - 1)))


def norm_of(delta: Tensor, norm: str) -> Tensor:
    """Per-example ℓp norm, shape ``[N]``."""
    flat = delta.flatten(1)
    return flat.norm(dim=1) if check_norm(norm) == "l2" else flat.abs().amax(dim=1)


def dual_norm_of(g: Tensor, norm: str) -> Tensor:
    """Per-example dual norm (ℓ2 for ℓ2, ℓ1 for ℓ∞): the value of ⟨g, d⟩ at the steepest-ascent d."""
    flat = g.flatten(1)
    return flat.norm(dim=1) if check_norm(norm) == "l2" else flat.abs().sum(dim=1)


def steepest_ascent(g: Tensor, norm: str) -> Tensor:
    """Unit-norm direction d maximising ⟨g, d⟩: g/‖g‖₂ for ℓ2, sign(g) for ℓ∞ (zero where g = 0)."""
    if check_norm(norm) == "linf":
        return g.sign()
    return g / _view(norm_of(g, "l2").clamp_min(_TINY), g)


def project(delta: Tensor, norm: str, eps: float) -> Tensor:
    """Project perturbations onto the ε-ball {‖δ‖ ≤ ε} (points inside are returned unchanged)."""
    if check_norm(norm) == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / norm_of(delta, "l2").clamp_min(_TINY)).clamp(max=1.0)
    return delta * _view(scale, delta)


def random_start(like: Tensor, norm: str, eps: float, generator: torch.Generator | None = None) -> Tensor:
    """A perturbation drawn uniformly from the ε-ball (truly uniform in volume for ℓ2)."""
    if check_norm(norm) == "linf":
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * u - 1) * eps
    direction = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    direction = direction / _view(norm_of(direction, "l2").clamp_min(_TINY), like)
    dim = like[0].numel()
    u = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype)
    return direction * _view(eps * u.pow(1.0 / dim), like)


def clamp_unit(x: Tensor) -> Tensor:
    """Clamp pixels to the image domain [0, 1]."""
    return x.clamp(0.0, 1.0)


def project_feasible(x_adv: Tensor, x: Tensor, norm: str, eps: float) -> Tensor:
    """Return a point in the ε-ball around ``x`` and in [0,1]: ball projection, then pixel clamp.

    The clamp only moves coordinates towards ``x`` (which lies in [0,1]), so it never leaves the ball.
    """
    return clamp_unit(x + project(x_adv - x, norm, eps))


def ascent_step(x_adv: Tensor, g: Tensor, x: Tensor, *, norm: str, eps: Tensor | float, step_size: Tensor | float,
                step_norm: str | None = None) -> Tensor:
    """One projected steepest-ascent step: along ``g``'s steepest-ascent direction in ``step_norm`` (default
    ``norm``), then back into the ε-ball around ``x`` and [0,1]. The step of every attack in advlib."""
    return project_feasible(x_adv + step_size * steepest_ascent(g, step_norm or norm), x, norm, eps)

"""ℓp geometry: the only place in advlib that knows how ℓ1, ℓ2 and ℓ∞ differ.

All functions act per example on batches ``[N, ...]``; the norm is taken over all non-batch dims.
Attacks call these and never branch on the norm themselves (pattern of foolbox's
``gradient_descent_base.py``; written for advlib).

ℓ1 (the third norm of the multi-norm literature: Tramèr & Boneh 2019; Maini, Wong & Kolter 2020):

* The step is the *sparse* steepest ascent (Tramèr & Boneh's "SLIDE"): sign(g) on the ``k`` coordinates of
  largest |g|, each with weight 1/k (``L1_TOP_FRACTION``). It is the exact steepest ascent for the unit ball
  {‖d‖₁ ≤ 1, ‖d‖∞ ≤ 1/k}; the plain ℓ1 steepest ascent (k = 1, one pixel per step) moves one pixel at a time.
  In an attack's step (``ascent_step``) each coordinate also gets no more than its room to the pixel bound g
  points at, the rest going to the next coordinates by |g|: a step that only counts pixels *at* the bound as
  stuck spends itself, step after step, on pixels just short of it (re-filled after each projection), and PGD
  stalls (on a linear loss over MNIST images, at 80-85 % of the optimum on some, however many steps); with room
  it comes within 1 % of it in 40 steps (tests/test_lp_l1.py).
* ``project`` is the exact Euclidean projection onto the ℓ1 ball (the sort-based threshold of Duchi et al. 2008);
  ``project_feasible`` projects exactly onto the ℓ1 ball ∩ [0,1] (as AutoAttack's APGD-ℓ1 does), since a ball
  projection followed by a clamp would spend ε on coordinates the clamp then discards.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from advlib import _checks

#: The norms of the paper's Table 1, and of the union the multi-norm defenses train against
#: (``advlib.training.multinorm.UNION_NORMS``); ℓ1 is left out so that those defenses and their records stay as
#: they are.
NORMS = ("l2", "linf")
#: Every norm this module implements.
ALL_NORMS = ("l1", "l2", "linf")
#: The ℓ1 step's sparsity: the top 1 % of coordinates by |g| (k = ⌈0.01·784⌉ = 8 pixels on MNIST), SLIDE's
#: default 99th percentile (ftramer/MultiRobustness pgd_attack.py, ``perc`` 99); Maini et al.'s ``pgd_l1_topk``
#: draws k from 5…20 pixels (0.6-2.6 %).
L1_TOP_FRACTION = 0.01
_TINY = 1e-12


def check_norm(norm: str, among: tuple[str, ...] = NORMS) -> str:
    """Return ``norm`` if it is one of ``among``; otherwise raise ``ValueError`` listing them.

    The default is ``NORMS`` ("l2", "linf"): a module that validates with it and branches two ways stays closed to
    ℓ1 until it handles it; modules that handle ℓ1 (this one, ``specs``, ``strong``) pass ``ALL_NORMS``."""
    return _checks.choice("norm", norm, among)


def _view(per_example: Tensor, like: Tensor) -> Tensor:
    return per_example.view(-1, *([1] * (like.ndim - 1)))


def norm_of(delta: Tensor, norm: str) -> Tensor:
    """Per-example ℓp norm, shape ``[N]``."""
    flat = delta.flatten(1)
    norm = check_norm(norm, ALL_NORMS)
    if norm == "l2":
        return flat.norm(dim=1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.abs().sum(dim=1)


def dual_norm_of(g: Tensor, norm: str) -> Tensor:
    """Per-example dual norm (ℓ2 for ℓ2, ℓ1 for ℓ∞, ℓ∞ for ℓ1): the largest ⟨g, d⟩ over the unit ball, which
    ``steepest_ascent`` attains for ℓ2 and ℓ∞ (its sparse ℓ1 step attains the mean of the top-k |g| instead)."""
    flat = g.flatten(1)
    norm = check_norm(norm, ALL_NORMS)
    if norm == "l2":
        return flat.norm(dim=1)
    return flat.abs().sum(dim=1) if norm == "linf" else flat.abs().amax(dim=1)


def l1_support(n: int, top_fraction: float = L1_TOP_FRACTION) -> int:
    """k, the number of coordinates the sparse ℓ1 step moves among ``n``: ⌈top_fraction·n⌉, at least 1."""
    if isinstance(top_fraction, bool) or not isinstance(top_fraction, (int, float)) or not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be a number in (0, 1], got {top_fraction!r}")
    return max(1, min(n, math.ceil(round(top_fraction * n, 9))))  # round: 0.01·700 is 7.000000000000001


def steepest_ascent(g: Tensor, norm: str, *, at: Tensor | None = None, step_size: Tensor | float | None = None,
                    top_fraction: float = L1_TOP_FRACTION) -> Tensor:
    """The direction d of a step maximising ⟨g, d⟩: g/‖g‖₂ for ℓ2 and sign(g) for ℓ∞ (unit norm; zero where g = 0).

    ℓ1: the maximiser over {‖d‖₁ ≤ 1, ‖d‖∞ ≤ 1/k}, k = ``l1_support``: sign(g)/k on the k coordinates of largest
    |g|. Given the current point ``at`` (in [0,1]) and ``step_size`` s, also 0 ≤ at + s·d ≤ 1: coordinates are
    filled in order of |g| up to min(1/k, room/s), room the distance to the pixel bound g points at, until
    ‖d‖₁ = 1 (more than k coordinates move when the first ones are short of room; ‖d‖₁ < 1 only when too few
    can move, 0 where g = 0). Without ``step_size``, ``at`` only leaves out the coordinates already at that bound.
    So no part of a step goes to pixels the clamp would undo. ``at``, ``step_size``, ``top_fraction``: ℓ1 only.
    """
    norm = check_norm(norm, ALL_NORMS)
    if norm == "linf":
        return g.sign()
    if norm == "l2":
        return g / _view(norm_of(g, "l2").clamp_min(_TINY), g)
    flat = g.flatten(1)
    k = l1_support(flat.shape[1], top_fraction)
    score = flat.abs()
    units = torch.ones_like(flat)  # each coordinate's most, in units of 1/k
    if at is not None:
        point = at.flatten(1)
        room = torch.where(flat > 0, 1 - point, point).clamp_min(0.0)
        if step_size is None:
            units = (room > 0).to(flat.dtype)
        else:
            step = torch.as_tensor(step_size, dtype=flat.dtype, device=flat.device).clamp_min(_TINY)
            units = torch.minimum(units, room * k / step)
    units = units * (score > 0)
    score, order = score.sort(dim=1, descending=True)
    units = units.gather(1, order)
    before = units.cumsum(1) - units  # budget k units: whole units stay exact integers, so exactly k coordinates
    taken = torch.minimum(units, (k - before).clamp_min(0.0))
    return (torch.zeros_like(flat).scatter_(1, order, taken) * flat.sign() / k).view_as(g)


def _project_l1(delta: Tensor, eps: Tensor | float, up: Tensor | None = None, down: Tensor | None = None) -> Tensor:
    """Euclidean projection of each row of ``delta`` onto {‖δ‖₁ ≤ ε} or, with ``up``/``down`` (≥ 0), onto
    {‖δ‖₁ ≤ ε, -down ≤ δ ≤ up}.

    KKT: δ_i = sign(v_i)·min(max(|v_i| - θ, 0), c_i), c_i the room in v_i's direction (∞ without a box), θ ≥ 0 the
    smallest with Σ|δ_i| ≤ ε. f(θ) = Σ min(max(|v_i| - θ, 0), c_i) is piecewise linear and non-increasing, with
    breakpoints |v_i| (coordinate i starts to move as θ falls below it) and |v_i| - c_i (it reaches its bound):
    sort them, accumulate f along them and solve the linear piece where f crosses ε. Without a box this is
    Duchi et al.'s (2008) sort-based ℓ1-ball projection. Computed in float64, fixed shapes (no host sync).
    """
    flat = delta.flatten(1).double()
    size = flat.abs()
    if up is None or down is None:
        room = torch.full_like(size, math.inf)
    else:
        room = torch.where(flat > 0, up.flatten(1).double(), down.flatten(1).double()).clamp_min(0.0)
    eps = torch.as_tensor(eps, dtype=torch.float64, device=flat.device)
    points, order = torch.cat([size, (size - room).clamp_min(0.0)], 1).sort(dim=1, descending=True)
    change = torch.cat([torch.ones_like(size), -torch.ones_like(size)], 1).gather(1, order)
    slope = change.cumsum(1)  # -f'(θ) on the piece just below each breakpoint (θ falling): a count of coordinates
    value = torch.cat([torch.zeros_like(size[:, :1]), (slope[:, :-1] * (points[:, :-1] - points[:, 1:])).cumsum(1)], 1)
    last = ((value < eps).sum(1, keepdim=True) - 1).clamp_min(0)  # the piece where f crosses ε starts here
    theta = points.gather(1, last) - (eps - value.gather(1, last)) / slope.gather(1, last).clamp_min(1.0)
    theta = torch.where(value[:, -1:] <= eps, torch.zeros_like(theta), theta)  # f(0) ≤ ε: already in the ball
    theta = torch.where(eps <= 0, points[:, :1], theta)  # ε = 0: everything to 0
    out = flat.sign() * torch.minimum((size - theta).clamp_min(0.0), room)
    return out.to(delta.dtype).view_as(delta)


def project(delta: Tensor, norm: str, eps: Tensor | float) -> Tensor:
    """Project perturbations onto the ε-ball {‖δ‖ ≤ ε} (points inside are returned unchanged)."""
    norm = check_norm(norm, ALL_NORMS)
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l1":
        return _project_l1(delta, eps)
    scale = (eps / norm_of(delta, "l2").clamp_min(_TINY)).clamp(max=1.0)
    return delta * _view(scale, delta)


def random_start(like: Tensor, norm: str, eps: float, generator: torch.Generator | None = None) -> Tensor:
    """A perturbation drawn uniformly from the ε-ball (truly uniform in volume for ℓ2 and ℓ1)."""
    norm = check_norm(norm, ALL_NORMS)
    if norm == "linf":
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * u - 1) * eps
    if norm == "l2":
        direction = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    else:  # i.i.d. Laplace coordinates, normalised: uniform on the ℓ1 sphere (Barthe et al. 2005)
        magnitude = -torch.log1p(-torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype))
        flip = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype) < 0.5
        direction = torch.where(flip, -magnitude, magnitude)
    direction = direction / _view(norm_of(direction, norm).clamp_min(_TINY), like)
    dim = like[0].numel()
    u = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype)
    return direction * _view(eps * u.pow(1.0 / dim), like)


def clamp_unit(x: Tensor) -> Tensor:
    """Clamp pixels to the image domain [0, 1]."""
    return x.clamp(0.0, 1.0)


def project_feasible(x_adv: Tensor, x: Tensor, norm: str, eps: Tensor | float) -> Tensor:
    """Return a point in the ε-ball around ``x`` and in [0,1].

    ℓ2, ℓ∞: ball projection, then pixel clamp (the clamp only moves coordinates towards ``x``, which lies in
    [0,1], so it never leaves the ball; for ℓ∞ the two together are the exact projection onto the intersection).
    ℓ1: the exact Euclidean projection onto the ℓ1 ball ∩ [0,1] (``_project_l1`` with the box).
    """
    if check_norm(norm, ALL_NORMS) == "l1":
        return clamp_unit(x + _project_l1(x_adv - x, eps, up=1 - x, down=x))
    return clamp_unit(x + project(x_adv - x, norm, eps))


def ascent_step(x_adv: Tensor, g: Tensor, x: Tensor, *, norm: str, eps: Tensor | float, step_size: Tensor | float,
                step_norm: str | None = None) -> Tensor:
    """One projected steepest-ascent step: along ``g``'s steepest-ascent direction in ``step_norm`` (default
    ``norm``; ℓ1's sparse step leaves out pixels stuck at a bound of [0,1]), then back into the ε-ball around ``x``
    and [0,1]. The step of every attack in advlib."""
    direction = steepest_ascent(g, step_norm or norm, at=x_adv, step_size=step_size)
    return project_feasible(x_adv + step_size * direction, x, norm, eps)

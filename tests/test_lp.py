"""Properties of the ℓp geometry (advlib.lp) over many seeded random cases."""
from __future__ import annotations

import math

import pytest
import torch

from advlib import lp
from conftest import random_cases

NORMS = ("l2", "linf")
SHAPES = ((64, 1, 28, 28), (200, 3), (50, 2, 5, 5), (1, 7))
SEEDS = range(6)


def ref_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Independent per-example norm (no advlib code)."""
    # independent oracle: ref_norm and ref_dual are plain torch reductions, no advlib code
    flat = delta.reshape(delta.shape[0], -1).double()
    return flat.pow(2).sum(1).sqrt() if norm == "l2" else flat.abs().max(1).values


def ref_dual(g: torch.Tensor, norm: str) -> torch.Tensor:
    flat = g.reshape(g.shape[0], -1).double()
    return flat.pow(2).sum(1).sqrt() if norm == "l2" else flat.abs().sum(1)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> None:
    """|actual - expected| <= atol + rtol·|expected| elementwise (cheaper than torch.testing here)."""
    assert actual.shape == expected.shape
    err = (actual.double() - expected.double()).abs()
    bound = atol + rtol * expected.double().abs()
    assert (err <= bound).all(), f"max excess {(err - bound).max().item():.3g}"


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_project_lands_in_ball_and_is_idempotent(norm, shape, seed):
    delta, eps, _ = random_cases(seed, shape)
    p = lp.project(delta, norm, eps)
    assert p.shape == delta.shape and p.dtype == delta.dtype
    assert (ref_norm(p, norm) <= eps * (1 + 1e-6)).all()
    again = lp.project(p, norm, eps)
    assert_close(again, p, rtol=1e-6, atol=1e-7)
    if norm == "linf":
        assert torch.equal(again, p)
    # points outside end on the sphere (ℓ2: same direction; ℓ∞: the clipped coordinates sit at ±ε)
    outside = ref_norm(delta, norm) > eps
    assert outside.any() or shape[0] == 1  # scales span 1e-2..1e2, so batches always reach outside
    if not outside.any():
        return
    assert_close(ref_norm(p[outside], norm), torch.full((int(outside.sum()),), eps,
                               dtype=torch.float64), rtol=1e-5, atol=0)
    if norm == "l2":
        cos = (p[outside].flatten(1) * delta[outside].flatten(1)).sum(1) / (
            p[outside].flatten(1).norm(dim=1) * delta[outside].flatten(1).norm(dim=1))
        assert_close(cos, torch.ones_like(cos), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_project_leaves_points_inside_unchanged(norm, shape, seed):
    delta, eps, gen = random_cases(seed, shape)
    # rescale each example to a norm in [0, 0.99 ε]
    target = 0.99 * eps * torch.rand(shape[0], generator=gen, dtype=torch.float64)
    inside = (delta.double() * (target / ref_norm(delta, norm)).view(-1, *([1] * (len(shape) - 1)))).float()
    assert (ref_norm(inside, norm) < eps).all()
    assert torch.equal(lp.project(inside, norm, eps), inside)


@pytest.mark.parametrize("norm", NORMS)
def test_project_zero_and_eps_zero(norm):
    zero = torch.zeros(3, 1, 4, 4)
    assert torch.equal(lp.project(zero, norm, 0.5), zero)  # no 0/0
    delta = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lp.project(delta, norm, 0.0), torch.zeros_like(delta))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_steepest_ascent_is_unit_and_attains_dual_norm(norm, shape, seed):
    g, _, gen = random_cases(seed, shape)
    d = lp.steepest_ascent(g, norm)
    assert d.shape == g.shape
    assert_close(ref_norm(d, norm), torch.ones(shape[0], dtype=torch.float64), rtol=1e-5, atol=0)
    inner = (g.double() * d.double()).reshape(shape[0], -1).sum(1)
    assert_close(inner, ref_dual(g, norm), rtol=1e-5, atol=0)
    assert_close(lp.dual_norm_of(g, norm).double(), ref_dual(g, norm), rtol=1e-5, atol=0)
    # d maximises <g, u> over the unit ball: no random unit vector does better
    u = torch.randn((16, *shape), generator=gen).double()
    u = u / ref_norm(u.flatten(0, 1), norm).view(16, shape[0], *([1] * (len(shape) - 1)))
    others = (g.double() * u).reshape(16, shape[0], -1).sum(-1)
    assert (others <= inner * (1 + 1e-9)).all()


@pytest.mark.parametrize("norm", NORMS)
def test_steepest_ascent_handles_zeros(norm):
    g = torch.zeros(2, 5)
    g[1, 2] = -3.0
    d = lp.steepest_ascent(g, norm)
    assert torch.isfinite(d).all()
    assert torch.equal(d[0], torch.zeros(5))  # zero gradient: no direction, not NaN
    expected = torch.zeros(5)
    expected[2] = -1.0
    assert torch.equal(d[1], expected)


def test_norm_of_matches_reference():
    delta, _, _ = random_cases(0, (20, 1, 28, 28))
    for norm in NORMS:
        assert_close(lp.norm_of(delta, norm).double(), ref_norm(delta, norm), rtol=1e-5, atol=0)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_start_inside_ball_and_seeded(norm, shape, seed):
    like = torch.rand(shape, dtype=torch.float64 if seed % 2 else torch.float32)
    eps = 0.1 + seed
    r = lp.random_start(like, norm, eps, torch.Generator().manual_seed(seed))
    assert r.shape == like.shape and r.dtype == like.dtype
    assert (ref_norm(r, norm) <= eps * (1 + 1e-6)).all()
    again = lp.random_start(like, norm, eps, torch.Generator().manual_seed(seed))
    assert torch.equal(r, again)
    other = lp.random_start(like, norm, eps, torch.Generator().manual_seed(seed + 100))
    assert not torch.equal(r, other)


@pytest.mark.parametrize("shape", [(4000, 3), (4000, 1, 2, 2), (4000, 10)])
def test_l2_random_start_is_uniform_in_volume(shape):
    """P(‖δ‖ ≤ ε q^{1/dim}) = q for a uniform draw from the ball (dim = per-example numel).

    A draw uniform in radius (a common bug) would give 0.5^{1/3} ≈ 0.79 at q = 0.5 for dim 3.
    """
    eps = 2.5
    dim = math.prod(shape[1:])
    r = lp.random_start(torch.zeros(shape), "l2", eps, torch.Generator().manual_seed(7))
    radius = ref_norm(r, "l2")
    n = shape[0]
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        frac = (radius <= eps * q ** (1 / dim)).double().mean().item()
        assert abs(frac - q) < 5 * math.sqrt(q * (1 - q) / n), (q, frac)
    # directions are isotropic: the mean unit direction is ~0 and each coordinate's sign is balanced
    unit = r.flatten(1) / radius.float().view(-1, 1)
    assert unit.mean(0).abs().max() < 5 / math.sqrt(n)
    assert ((unit > 0).double().mean(0) - 0.5).abs().max() < 5 * 0.5 / math.sqrt(n)


def test_linf_random_start_is_uniform_per_coordinate():
    eps = 0.3
    r = lp.random_start(torch.zeros(2000, 1, 4, 4), "linf", eps, torch.Generator().manual_seed(3))
    assert r.abs().max() <= eps
    n = r.numel()
    for q in (0.1, 0.5, 0.9):
        frac = (r.abs() <= q * eps).double().mean().item()
        assert abs(frac - q) < 5 * math.sqrt(q * (1 - q) / n)
    assert abs(r.mean().item()) < 5 * eps / math.sqrt(3 * n)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("seed", SEEDS)
def test_project_feasible_in_ball_and_unit_box(norm, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(32, 1, 28, 28, generator=gen)
    x[:, :, :4] = 0.0  # MNIST-like saturated pixels on both ends
    x[:, :, -4:] = 1.0
    eps = 0.3 if norm == "linf" else 3.0
    x_adv = x + 5 * eps * torch.randn(x.shape, generator=gen) / (28 if norm == "l2" else 1)
    out = lp.project_feasible(x_adv, x, norm, eps)
    assert out.min() >= 0 and out.max() <= 1
    assert (ref_norm(out - x, norm) <= eps * (1 + 1e-6)).all()
    assert torch.equal(lp.clamp_unit(out), out)
    # a point that is already feasible comes back (up to the rounding of x + (x_adv - x))
    feasible = lp.project_feasible(x + lp.random_start(x, norm, eps / 2, gen), x, norm, eps)
    assert_close(lp.project_feasible(feasible, x, norm, eps), feasible, rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("step_norm", [None, "l2", "linf"])
def test_ascent_step_is_a_steepest_step_then_the_feasible_projection(norm, step_norm):
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(6, 1, 8, 8, generator=gen)
    eps, step = (0.3, 0.1) if norm == "linf" else (1.5, 0.6)
    x_adv = lp.project_feasible(x + lp.random_start(x, norm, eps, gen), x, norm, eps)
    g = torch.randn(x.shape, generator=gen)
    out = lp.ascent_step(x_adv, g, x, norm=norm, eps=eps, step_size=step, step_norm=step_norm)
    # independent oracle: the step, ball projection and clamp written out without advlib
    if (step_norm or norm) == "linf":
        moved = x_adv + step * g.sign()
    else:
        moved = x_adv + step * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    delta = moved - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / delta.flatten(1).norm(dim=1)).clamp(max=1.0).view(-1, 1, 1, 1)
    assert_close(out, (x + delta).clamp(0, 1), rtol=0, atol=1e-6)
    assert (ref_norm(out - x, norm) <= eps * (1 + 1e-6)).all() and out.min() >= 0 and out.max() <= 1
    as_tensors = lp.ascent_step(x_adv, g, x, norm=norm, eps=torch.tensor(eps), step_size=torch.tensor(step),
                                step_norm=step_norm)
    assert_close(as_tensors, out, rtol=0, atol=1e-6)


def test_ascent_step_rejects_an_unknown_step_norm():
    x = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"unknown norm 'l0'.*'l2', 'linf'"):
        lp.ascent_step(x, x, x, norm="linf", eps=0.1, step_size=0.1, step_norm="l0")


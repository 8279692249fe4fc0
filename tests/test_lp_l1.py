"""ℓ1 geometry (advlib.lp) against independent oracles: numpy bisection for the projections, sorting for the sparse
step, the greedy (fractional-knapsack) optimum of a linear loss for PGD, and exact distributions for the random start.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advlib import lp
from advlib.attacks import run_attack
from advlib.specs import AttackSpec
from conftest import random_cases

SHAPES = ((64, 1, 28, 28), (200, 3), (50, 2, 5, 5), (1, 7))
SEEDS = range(6)


# ---------------------------------------------------------------------------------------------- oracles (numpy)


def ref_l1(delta: torch.Tensor) -> np.ndarray:
    return np.abs(delta.reshape(delta.shape[0], -1).double().numpy()).sum(1)


def threshold(size: np.ndarray, room: np.ndarray, eps: float) -> float:
    """θ ≥ 0 with Σ min(max(size - θ, 0), room) = ε (0 if the sum at θ = 0 is ≤ ε), by 200 bisections."""
    total = lambda t: np.minimum(np.maximum(size - t, 0.0), room).sum()  # noqa: E731
    if total(0.0) <= eps:
        return 0.0
    lo, hi = 0.0, float(size.max())
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) > eps else (lo, mid)
    return hi


def ref_project(v: torch.Tensor, eps: float, x: torch.Tensor | None = None) -> np.ndarray:
    """Projection of each row of v onto the ℓ1 ball (∩ {0 ≤ x + δ ≤ 1} given x), from the KKT form."""
    flat = v.reshape(v.shape[0], -1).double().numpy()
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        if x is None:
            room = np.full_like(row, np.inf)
        else:
            xi = x[i].reshape(-1).double().numpy()
            room = np.where(row > 0, 1 - xi, xi)
        theta = threshold(np.abs(row), room, eps)
        out[i] = np.sign(row) * np.minimum(np.maximum(np.abs(row) - theta, 0.0), room)
    return out.reshape(v.shape)


def close(actual, expected, atol: float) -> None:
    actual = actual.double().numpy() if isinstance(actual, torch.Tensor) else actual
    err = np.abs(actual - expected).max()
    assert err <= atol, f"max error {err:.3g}"


# ---------------------------------------------------------------------------------------------- norms and names


def test_l1_norm_and_its_dual_linf():
    delta, _, _ = random_cases(0, (20, 1, 28, 28))
    np.testing.assert_allclose(lp.norm_of(delta, "l1").double().numpy(), ref_l1(delta), rtol=1e-5)
    assert torch.equal(lp.dual_norm_of(delta, "l1"), delta.flatten(1).abs().amax(1))
    assert lp.ALL_NORMS == ("l1", "l2", "linf") and lp.NORMS == ("l2", "linf")  # ℓ1 stays out of Table 1's norms
    assert lp.check_norm("l1", lp.ALL_NORMS) == "l1"
    with pytest.raises(ValueError, match=r"unknown norm 'l1'; valid choices: 'l2', 'linf'"):
        lp.check_norm("l1")  # the default stays closed to ℓ1: modules that branch on ℓ2/ℓ∞ only keep refusing it
    for bad in ("L1", "l0", "lp"):
        with pytest.raises(ValueError, match=rf"unknown norm '{bad}'; valid choices: 'l1', 'l2', 'linf'"):
            lp.project(torch.zeros(2, 3), bad, 1.0)


# ---------------------------------------------------------------------------------------------- projection


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_project_matches_the_bisection_oracle_and_lands_on_the_sphere(shape, seed):
    delta, eps, _ = random_cases(seed, shape, eps_low=-0.5)
    p = lp.project(delta, "l1", eps)
    assert p.shape == delta.shape and p.dtype == delta.dtype
    close(p, ref_project(delta, eps), atol=1e-5 * max(1.0, eps))
    norms = ref_l1(p)
    assert (norms <= eps * (1 + 1e-6)).all()
    outside = ref_l1(delta) > eps
    assert outside.any() or shape[0] == 1
    np.testing.assert_allclose(norms[outside], eps, rtol=1e-5)
    close(lp.project(p, "l1", eps), p.double().numpy(), atol=1e-6 * max(1.0, eps))  # idempotent


@pytest.mark.parametrize("seed", SEEDS)
def test_project_satisfies_the_kkt_conditions(seed):
    """For v outside the ball: p = v - θ·∂‖p‖₁ with one θ > 0: v_i - p_i = θ·sign(p_i) where p_i ≠ 0, |v_i| ≤ θ
    where p_i = 0, and signs kept (no advlib code, no oracle)."""
    v = torch.randn(40, 100, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    eps = 5.0
    p = lp.project(v, "l1", eps)
    for vi, pi in zip(v, p):
        moved = pi != 0
        theta = (vi - pi)[moved] * pi[moved].sign()
        assert theta.min() > 0 and (theta.max() - theta.min()) < 1e-9
        assert (vi[~moved].abs() <= theta.max() + 1e-9).all()
        assert (vi[moved].sign() == pi[moved].sign()).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_project_leaves_points_inside_unchanged(shape, seed):
    delta, eps, gen = random_cases(seed, shape, eps_low=-0.5)
    target = 0.99 * eps * torch.rand(shape[0], generator=gen, dtype=torch.float64)
    scale = torch.from_numpy(ref_l1(delta))
    inside = (delta.double() * (target / scale).view(-1, *([1] * (len(shape) - 1)))).float()
    assert (ref_l1(inside) < eps).all()
    assert torch.equal(lp.project(inside, "l1", eps), inside)


def test_project_zero_and_eps_zero_and_tensor_eps():
    zero = torch.zeros(3, 1, 4, 4)
    assert torch.equal(lp.project(zero, "l1", 0.5), zero)
    delta = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lp.project(delta, "l1", 0.0), torch.zeros_like(delta))
    assert torch.equal(lp.project(delta, "l1", torch.tensor(0.0)), torch.zeros_like(delta))
    assert torch.equal(lp.project(delta, "l1", torch.tensor(1.5)), lp.project(delta, "l1", 1.5))
    one_hot = torch.zeros(1, 5)
    one_hot[0, 2] = -4.0
    assert torch.equal(lp.project(one_hot, "l1", 1.0), one_hot / 4)


def _images(seed: int, n: int = 24) -> tuple[torch.Tensor, torch.Generator]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=gen)
    x[:, :, :6] = 0.0  # MNIST-like saturated pixels on both ends
    x[:, :, -3:] = 1.0
    return x, gen


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("eps", [0.5, 12.0, 100.0])
def test_project_feasible_is_the_projection_onto_ball_and_box(seed, eps):
    x, gen = _images(seed)
    v = torch.randn(x.shape, generator=gen) * torch.tensor([0.02, 0.2, 1.0]).repeat(8).view(-1, 1, 1, 1)
    out = lp.project_feasible(x + v, x, "l1", eps)
    assert out.min() >= 0 and out.max() <= 1
    assert (ref_l1(out - x) <= eps * (1 + 1e-6) + 1e-6).all()  # + float32 rounding of x + δ, pixel by pixel
    close(out - x, ref_project((x + v) - x, eps, x), atol=1e-5)
    # the exact projection is never farther from the point than the ball projection followed by the clamp
    clamped = (x + lp.project(v, "l1", eps)).clamp(0, 1)
    ours = ((out - (x + v)).flatten(1).double() ** 2).sum(1)
    theirs = ((clamped - (x + v)).flatten(1).double() ** 2).sum(1)
    assert (ours <= theirs * (1 + 1e-6) + 1e-6).all()
    # variational inequality of a projection: <v - p, z - p> <= 0 for feasible z (here: random feasible points)
    p = (out - x).double().flatten(1)
    for _ in range(5):
        z = lp.project_feasible(x + lp.random_start(x, "l1", eps, gen) * torch.rand(1, generator=gen), x, "l1", eps)
        inner = ((v.double().flatten(1) - p) * ((z - x).double().flatten(1) - p)).sum(1)
        assert (inner <= 1e-4).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_project_feasible_returns_feasible_points(seed):
    x, gen = _images(seed)
    feasible = lp.project_feasible(x + lp.random_start(x, "l1", 6.0, gen), x, "l1", 12.0)
    assert (ref_l1(feasible - x) <= 6.0 * (1 + 1e-6) + 1e-6).all()
    close(lp.project_feasible(feasible, x, "l1", 12.0), feasible.double().numpy(), atol=1e-6)


# ---------------------------------------------------------------------------------------------- the sparse step


def test_l1_support():
    assert [lp.l1_support(n) for n in (784, 700, 100, 50, 1)] == [8, 7, 1, 1, 1]
    assert lp.l1_support(784, 0.025) == 20 and lp.l1_support(10, 1.0) == 10
    for bad in (0.0, -0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="top_fraction"):
            lp.l1_support(784, bad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fraction", [lp.L1_TOP_FRACTION, 0.1, 1.0])
def test_sparse_step_maximises_the_inner_product_over_its_unit_ball(shape, seed, fraction):
    """d maximises <g, d> over {‖d‖₁ ≤ 1, ‖d‖∞ ≤ 1/k}: the value is the mean of the k largest |g| (a sort), and no
    random point of that set does better."""
    g, _, gen = random_cases(seed, shape, eps_low=-0.5)
    n = math.prod(shape[1:])
    k = lp.l1_support(n, fraction)
    d = lp.steepest_ascent(g, "l1", top_fraction=fraction)
    assert d.shape == g.shape
    flat = d.flatten(1).double()
    np.testing.assert_allclose(ref_l1(d), 1.0, rtol=1e-6)
    assert ((flat != 0).sum(1) == k).all() and torch.allclose(flat.abs().amax(1), torch.full((shape[0],), 1 / k,
                                                                                            dtype=torch.float64))
    gf = g.flatten(1).double()
    assert ((flat == 0) | (flat.sign() == gf.sign())).all()
    inner = (gf * flat).sum(1).numpy()
    best = -np.sort(-np.abs(gf.numpy()), axis=1)[:, :k].mean(1)
    np.testing.assert_allclose(inner, best, rtol=1e-6)
    # random points of the set: uniform in the ℓ∞ box of side 1/k, rescaled into the ℓ1 ball where needed
    u = (2 * torch.rand((16, *gf.shape), generator=gen, dtype=torch.float64) - 1) / k
    u = u / u.abs().sum(-1, keepdim=True).clamp_min(1.0)
    assert ((gf * u).sum(-1) <= torch.from_numpy(inner) * (1 + 1e-9)).all()


def test_sparse_step_skips_coordinates_stuck_at_a_pixel_bound():
    g = torch.tensor([[5.0, -4.0, 3.0, -2.0, 1.0, 0.5, 0.0, 0.0]])
    at = torch.tensor([[1.0, 0.0, 0.5, 1.0, 0.0, 0.3, 0.5, 0.5]])  # 5 pushes past 1, -4 past 0: both stuck
    d = lp.steepest_ascent(g, "l1", at=at, top_fraction=0.25)  # k = 2
    assert torch.equal(d, torch.tensor([[0.0, 0.0, 0.5, -0.5, 0.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(lp.steepest_ascent(g, "l1", top_fraction=0.25), torch.tensor([[0.5, -0.5, 0, 0, 0, 0, 0, 0.]]))
    # fewer than k coordinates can move: each moving one still gets 1/k, so ‖d‖₁ < 1; a zero gradient gives 0
    d = lp.steepest_ascent(g, "l1", at=at, top_fraction=1.0)
    assert torch.equal(d, torch.tensor([[0.0, 0.0, 1, -1, 1, 1, 0, 0]]) / 8)
    assert torch.equal(lp.steepest_ascent(torch.zeros(2, 8), "l1"), torch.zeros(2, 8))


def test_sparse_step_gives_no_coordinate_more_than_its_room():
    """With the step size s: coordinate 2 has room 0.05 (s·d ≤ 0.05) and coordinate 0 none; the budget goes on by |g|."""
    g = torch.tensor([[5.0, 4.0, 3.0, -2.0, 1.0, 0.0, 0.0, 0.0]])
    at = torch.tensor([[1.0, 0.5, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5]])
    d = lp.steepest_ascent(g, "l1", at=at, step_size=0.5, top_fraction=0.25)  # k = 2: at most 0.5 each
    assert torch.allclose(d, torch.tensor([[0.0, 0.5, 0.1, -0.4, 0.0, 0.0, 0.0, 0.0]]))
    assert ((at + 0.5 * d) <= 1).all()
    # a small step fits everywhere: the plain sparse step; a zero step takes the plain step too (no 0/0)
    plain = torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(lp.steepest_ascent(g, "l1", at=at, step_size=0.01, top_fraction=0.25), plain)
    assert torch.equal(lp.steepest_ascent(g, "l1", at=at, step_size=torch.tensor(0.0), top_fraction=0.25), plain)


def _sparse_step_oracle(g: np.ndarray, at: np.ndarray, step: float, k: int) -> np.ndarray:
    """Greedy (fractional knapsack) maximiser of <g, d> over ‖d‖₁ ≤ 1, |d_i| ≤ 1/k, 0 ≤ at + step·d ≤ 1."""
    d = np.zeros_like(g)
    for i, (row, point) in enumerate(zip(g, at)):
        left = 1.0
        room = np.where(row > 0, 1 - point, point)
        for j in np.argsort(-np.abs(row), kind="stable"):
            if row[j] == 0 or left <= 0:
                break
            take = min(1 / k, room[j] / step, left)
            d[i, j], left = np.sign(row[j]) * take, left - take
    return d


@pytest.mark.parametrize("seed", SEEDS)
def test_sparse_step_with_room_is_the_greedy_optimum(seed):
    x, gen = _images(seed, 8)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    at = x.double()
    for step in (0.05, 0.75, 5.0):
        d = lp.steepest_ascent(g, "l1", at=at, step_size=step)
        expected = _sparse_step_oracle(g.flatten(1).numpy(), at.flatten(1).numpy(), step, 8)
        close(d.flatten(1), expected, atol=1e-12)
        moved = at + step * d
        assert moved.min() >= -1e-12 and moved.max() <= 1 + 1e-12 and (ref_l1(d) <= 1 + 1e-12).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_ascent_step_is_the_sparse_step_then_the_exact_projection(seed):
    x, gen = _images(seed, 6)
    eps, step = 12.0, 0.75
    x_adv = lp.project_feasible(x + lp.random_start(x, "l1", eps, gen), x, "l1", eps)
    g = torch.randn(x.shape, generator=gen)
    out = lp.ascent_step(x_adv, g, x, norm="l1", eps=eps, step_size=step)
    # independent oracle: the sparse step with room written out in numpy, then the KKT projection by bisection
    gf, af = g.flatten(1).double().numpy(), x_adv.flatten(1).double().numpy()
    direction = _sparse_step_oracle(gf, af, step, math.ceil(0.01 * 784))
    moved = torch.from_numpy(af + step * direction).view(x.shape)
    expected = x.double().numpy() + ref_project(moved - x.double(), eps, x)
    close(out, expected, atol=1e-5)
    assert (ref_l1(out - x) <= eps * (1 + 1e-6) + 1e-6).all() and out.min() >= 0 and out.max() <= 1
    as_tensors = lp.ascent_step(x_adv, g, x, norm="l1", eps=torch.tensor(eps), step_size=torch.tensor(step))
    close(as_tensors, out.double().numpy(), atol=1e-6)


# ---------------------------------------------------------------------------------------------- random start


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_start_inside_ball_and_seeded(shape, seed):
    like = torch.rand(shape, dtype=torch.float64 if seed % 2 else torch.float32)
    eps = 0.1 + 3 * seed
    r = lp.random_start(like, "l1", eps, torch.Generator().manual_seed(seed))
    assert r.shape == like.shape and r.dtype == like.dtype
    assert (ref_l1(r) <= eps * (1 + 1e-6)).all()
    assert torch.equal(r, lp.random_start(like, "l1", eps, torch.Generator().manual_seed(seed)))
    assert not torch.equal(r, lp.random_start(like, "l1", eps, torch.Generator().manual_seed(seed + 100)))


def test_random_start_is_uniform_in_volume():
    """Radius: P(‖δ‖₁ ≤ ε q^{1/dim}) = q. Shape, in 2-D (the square |a| + |b| ≤ 1): P(|δ₁| ≤ t) = 1 - (1 - t)²; a draw
    uniform on the sphere or in radius, or Gaussian directions, gives other laws."""
    n = 8000
    r = lp.random_start(torch.zeros(n, 2), "l1", 1.0, torch.Generator().manual_seed(5)).double()
    radius = r.abs().sum(1)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        frac = (radius <= q ** 0.5).double().mean().item()
        assert abs(frac - q) < 5 * math.sqrt(q * (1 - q) / n), (q, frac)
        law = 1 - (1 - q) ** 2
        frac = (r[:, 0].abs() <= q).double().mean().item()
        assert abs(frac - law) < 5 * math.sqrt(law * (1 - law) / n), (q, frac)
    assert ((r > 0).double().mean(0) - 0.5).abs().max() < 5 * 0.5 / math.sqrt(n)
    big = lp.random_start(torch.zeros(2000, 3), "l1", 2.0, torch.Generator().manual_seed(6))
    radius = big.abs().sum(1).double() / 2.0
    for q in (0.25, 0.5, 0.75):
        frac = (radius <= q ** (1 / 3)).double().mean().item()
        assert abs(frac - q) < 5 * math.sqrt(q * (1 - q) / 2000), (q, frac)


# ---------------------------------------------------------------------------------------------- PGD on a linear loss


def _greedy_optimum(c: np.ndarray, x: np.ndarray, eps: float) -> float:
    """max <c, δ> over ‖δ‖₁ ≤ ε, 0 ≤ x + δ ≤ 1: fill coordinates by decreasing |c| up to their room (a knapsack)."""
    room = np.where(c > 0, 1 - x, x)
    value, left = 0.0, eps
    for i in np.argsort(-np.abs(c), kind="stable"):
        take = min(room[i], left)
        value, left = value + abs(c[i]) * take, left - take
    return value


def _linear_two_class(seed: int) -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    c = (model[1].weight[1] - model[1].weight[0]).detach().double().numpy()  # CE of class 0 grows with <c, x>
    return model, c


@pytest.mark.parametrize("seed", range(3))
def test_pgd_l1_on_a_linear_model_reaches_the_greedy_optimum(seed, load_quiet):
    """MNIST images, ε 10, the default spec (40 sparse steps of 0.625): pixels saturate, and PGD's <c, δ> comes within
    1 % of the analytic optimum (never above it: the iterate is feasible)."""
    model, c = _linear_two_class(seed)
    x, _ = load_quiet("test", 16)
    y = torch.zeros(len(x), dtype=torch.long)
    spec = AttackSpec.pgd("l1")
    assert (spec.eps, spec.steps, spec.step_size) == (10.0, 40, 0.625)
    x_adv = run_attack(spec, model, x, y, generator=torch.Generator().manual_seed(seed))
    assert (ref_l1(x_adv - x) <= 10.0 * (1 + 1e-6) + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    got = (x_adv - x).flatten(1).double().numpy() @ c
    best = np.array([_greedy_optimum(c, xi.flatten().double().numpy(), 10.0) for xi in x])
    assert (got <= best * (1 + 1e-5)).all() and (got >= 0.99 * best).all(), (got / best).min()


def test_one_coordinate_steps_reach_the_optimum_exactly_where_nothing_saturates():
    """k = 1 (the exact ℓ1 steepest ascent) on a grey image with ε below every pixel's room: all of ε goes to the
    coordinate of largest |c|, the analytic optimum ε·max|c|."""
    model, c = _linear_two_class(0)
    x = torch.full((4, 1, 28, 28), 0.5)
    y = torch.zeros(4, dtype=torch.long)
    x_adv, eps = x.clone(), 0.4
    for _ in range(10):
        x_adv.requires_grad_(True)
        g, = torch.autograd.grad(nn.functional.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        step = lp.steepest_ascent(g, "l1", at=x_adv.detach(), top_fraction=1 / 784)
        x_adv = lp.project_feasible(x_adv.detach() + 0.1 * step, x, "l1", eps)
    got = (x_adv - x).flatten(1).double().numpy() @ c
    np.testing.assert_allclose(got, eps * np.abs(c).max(), rtol=1e-5)

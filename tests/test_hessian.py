"""Input-space curvature (advlib.hessian, advlib.landscape) against exact float64 Hessians of tiny models."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlib import hessian, landscape


def logistic(seed: int = 0) -> nn.Module:
    """Logistic regression on 4x4 average-pooled images: ∇²ₓL = Aᵀ Wᵀ (diag p − ppᵀ) W A (rank ≤ 9)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, 10)).double()
    with torch.no_grad():
        model[2].weight.mul_(20.0)  # confident, input-dependent softmax: Hessians differ between examples
    return model.eval()


def tanh_mlp(seed: int = 0) -> nn.Module:
    """A smooth MLP, so the Hessian has a network-curvature part and can be indefinite."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    with torch.no_grad():
        model[2].weight.mul_(6.0)  # push tanh out of its linear regime: a sizeable second-derivative term
    return model.eval()


MODELS = {"logistic": logistic, "tanh_mlp": tanh_mlp}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    return MODELS[request.param]()


@pytest.fixture
def data(mnist_batch):
    x, y = mnist_batch
    return x[:4].double(), y[:4]


def exact_hessians(model, x, y) -> torch.Tensor:
    """[N, D, D]: torch.autograd.functional.hessian of each example's own loss (independent oracle)."""
    out = []
    for xi, yi in zip(x, y):
        f = lambda z: F.cross_entropy(model(z.view(1, *xi.shape)), yi.view(1))
        out.append(torch.autograd.functional.hessian(f, xi.flatten(), vectorize=True))
    return torch.stack(out)


@pytest.fixture
def hessians(model, data):
    x, y = data
    return exact_hessians(model, x, y)


def test_exact_hvp_matches_autograd_hessian(model, data, hessians, make_generator):
    x, y = data
    v = torch.randn(x.shape, generator=make_generator(0), dtype=torch.float64)
    hv = hessian.hvp(model, x, y, v)
    ref = torch.einsum("nij,nj->ni", hessians, v.flatten(1))
    assert hv.shape == x.shape
    assert (hv.flatten(1) - ref).abs().max() < 1e-8
    assert ref.abs().max() > 1e-3  # a non-trivial product


def test_finite_difference_hvp_close_to_exact(model, data, make_generator):
    x, y = data
    v = torch.randn(x.shape, generator=make_generator(1), dtype=torch.float64)
    exact = hessian.hvp(model, x, y, v)
    fd = hessian.hvp(model, x, y, v, method="finite_difference", xi=1e-5)
    rel = (fd - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
    assert (rel < 1e-3).all(), rel


def test_hvp_uses_each_examples_own_loss(model, data, make_generator):
    """Scaling one example's v must not change another example's product."""
    x, y = data
    v = torch.randn(x.shape, generator=make_generator(2), dtype=torch.float64)
    w = v.clone()
    w[0] *= 3.0
    a, b = hessian.hvp(model, x, y, v), hessian.hvp(model, x, y, w)
    torch.testing.assert_close(b[0], 3 * a[0])
    torch.testing.assert_close(b[1:], a[1:])


def test_hessian_of_logistic_regression_is_psd_and_low_rank(data):
    x, y = data
    evals = torch.linalg.eigvalsh(exact_hessians(logistic(), x, y))
    assert evals.min() > -1e-10
    assert ((evals > 1e-10 * evals.max()).sum(1) <= 9).all()  # rank ≤ classes − 1


def test_power_iteration_finds_dominant_eigenpair(model, data, hessians, make_generator):
    x, y = data
    evals, evecs = torch.linalg.eigh(hessians)
    top = evals.abs().argmax(1)  # power iteration converges to the eigenvalue of largest magnitude
    lam = evals.gather(1, top[:, None]).squeeze(1)
    vec = evecs[torch.arange(len(x)), :, top]
    pair = hessian.power_iteration(model, x, y, iters=100, generator=make_generator(3))
    assert pair.eigenvalue.shape == (len(x),) and pair.eigenvector.shape == x.shape
    assert ((pair.eigenvalue - lam).abs() <= 0.01 * lam.abs()).all(), (pair.eigenvalue, lam)
    cos = (pair.eigenvector.flatten(1) * vec).sum(1).abs()
    assert (cos > 0.99).all(), cos
    torch.testing.assert_close(pair.eigenvector.flatten(1).norm(dim=1), torch.ones(len(x), dtype=torch.float64))
    # finite-difference products reach the same eigenvalue
    fd = hessian.power_iteration(model, x, y, iters=100, method="finite_difference", xi=1e-5,
                                 generator=make_generator(3))
    assert ((fd.eigenvalue - lam).abs() <= 0.01 * lam.abs()).all()


def test_tanh_mlp_hessian_is_not_just_softmax_curvature(data):
    """Guards the oracle: this model's Hessian has negative eigenvalues (network curvature)."""
    x, y = data
    evals = torch.linalg.eigvalsh(exact_hessians(tanh_mlp(), x, y))
    assert (evals.min(1).values < -1e-6 * evals.abs().max(1).values).any()


def test_cosine_properties(make_generator):
    gen = make_generator(4)
    a = torch.randn(6, 1, 5, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 1, 5, 5, generator=gen, dtype=torch.float64)
    c = hessian.cosine(a, b)
    assert c.shape == (6,) and (c >= 0).all() and (c <= 1 + 1e-12).all()
    torch.testing.assert_close(hessian.cosine(a, 2.5 * a), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(hessian.cosine(a, -a), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(hessian.cosine(a, -b), c)
    torch.testing.assert_close(hessian.cosine(b, a), c)
    ref = ((a.flatten(1) * b.flatten(1)).sum(1) / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1))).abs()
    torch.testing.assert_close(c, ref)
    orth = torch.zeros(2, 3, dtype=torch.float64)
    other = orth.clone()
    orth[:, 0], other[:, 1] = 1.0, 1.0
    assert torch.equal(hessian.cosine(orth, other), torch.zeros(2, dtype=torch.float64))


def test_so_alignment_shapes_and_range(model, data, make_generator):
    x, y = data
    cos_so, cos_grad, pair = hessian.so_alignment(model, x, y, sigma=0.1, samples=8, iters=30,
                                                  generator=make_generator(5))
    for c in (cos_so, cos_grad):
        assert c.shape == (len(x),)
        assert (c >= 0).all() and (c <= 1 + 1e-12).all()
    assert pair.eigenvalue.shape == (len(x),)
    # the plain-gradient cosine is an independent computation
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    torch.testing.assert_close(cos_grad, hessian.cosine(g, pair.eigenvector))


def test_hessian_tools_restore_model_state(data):
    model = tanh_mlp().train()
    model[2].weight.requires_grad_(False)
    x, y = data
    hessian.hvp(model, x, y, torch.ones_like(x))
    hessian.power_iteration(model, x, y, iters=2)
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- landscape ---------------------------

def test_gradient_norms_match_autograd_and_chunking(data):
    model = tanh_mlp()
    x, y = data
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    ref = g.flatten(1).norm(dim=1)
    torch.testing.assert_close(landscape.gradient_norms(model, x, y), ref)
    torch.testing.assert_close(landscape.gradient_norms(model, x, y, batch_size=3), ref)


def test_loss_slice_and_surface(data, make_generator):
    model = tanh_mlp()
    x, y = data
    d = torch.randn(x.shape, generator=make_generator(6), dtype=torch.float64)
    radii = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    s = landscape.loss_slice(model, x, y, d, radii)
    assert s.shape == (3, len(x))
    unit = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        for k, r in enumerate(radii.tolist()):
            torch.testing.assert_close(s[k], F.cross_entropy(model(x + r * unit), y, reduction="none"))
    u = torch.randn(x[:1].shape, generator=make_generator(7), dtype=torch.float64)
    surf = landscape.loss_surface(model, x[:1], y[:1], u, d[:1], radii)
    assert surf.shape == (3, 3)
    torch.testing.assert_close(surf[:, 0], landscape.loss_slice(model, x[:1], y[:1], u, radii)[:, 0])
    torch.testing.assert_close(surf[0, :], s[:, 0])

"""Input-space curvature (advlib.hessian) against exact float64 Hessians of tiny models."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlib import hessian
from conftest import tanh_mlp


def logistic(seed: int = 0) -> nn.Module:
    """Logistic regression on 4x4 average-pooled images: ∇²ₓL = Aᵀ Wᵀ (diag p − ppᵀ) W A (rank ≤ 9)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, 10)).double()
    with torch.no_grad():
        model[2].weight.mul_(20.0)  # confident, input-dependent softmax: Hessians differ between examples
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
    # independent oracle: torch.autograd.functional.hessian per example, no advlib code
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


# ---------------------------------------------------------------- exact Hessians and Gauss–Newton -----


@pytest.fixture
def three(mnist_batch):
    x, y = mnist_batch
    return x[:3].double(), y[:3]


def test_exact_hessians_match_an_independent_oracle(three):
    """Against finite differences of the analytic gradient, column by column, on a few coordinates."""
    model, (x, y) = tanh_mlp(), three
    h = hessian.exact_hessians(model, x, y)
    assert h.shape == (3, 784, 784) and h.dtype == torch.float64
    assert torch.allclose(h, h.transpose(1, 2), atol=1e-10)  # symmetric
    for j in (0, 300, 407):  # H e_j = (∇L(x + t e_j) − ∇L(x − t e_j)) / 2t
        # independent oracle: central differences of torch.autograd gradients, no advlib code
        e = torch.zeros_like(x).flatten(1)
        e[:, j] = 1e-5
        e = e.view_as(x)
        grads = []
        for sign in (1, -1):
            z = (x + sign * e).requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(z), y, reduction="sum"), z)
            grads.append(g.flatten(1))
        column = (grads[0] - grads[1]) / 2e-5
        assert (column - h[:, :, j]).abs().max() < 1e-6 * max(1.0, h.abs().max().item())
    assert h.abs().max() > 1e-3
    assert torch.allclose(h, exact_hessians(model, x, y), atol=1e-10)  # and the autograd oracle above


def test_exact_hessians_agree_with_hvp_and_leave_the_model_as_it_was(three, make_generator):
    model, (x, y) = tanh_mlp(), three
    model.train()
    h = hessian.exact_hessians(model, x, y)
    assert model.training and all(p.requires_grad for p in model.parameters())
    v = torch.randn(x.shape, generator=make_generator(0), dtype=torch.float64)
    assert torch.allclose(torch.einsum("nij,nj->ni", h, v.flatten(1)), hessian.hvp(model, x, y, v).flatten(1),
                          atol=1e-9)


def test_exact_hessians_reject_mismatched_labels(three):
    x, y = three
    with pytest.raises(ValueError):
        hessian.exact_hessians(tanh_mlp(), x, y[:2])


def test_power_iteration_history_converges_to_the_exact_top_eigenvalue(three, make_generator):
    model, (x, y) = tanh_mlp(), three
    pair = hessian.power_iteration(model, x, y, iters=60, generator=make_generator(0))
    history = pair.history
    assert history.shape == (60, 3)
    eig = torch.linalg.eigvalsh(hessian.exact_hessians(model, x, y))
    top = eig.gather(1, eig.abs().argmax(1, keepdim=True)).squeeze(1)  # largest magnitude
    assert torch.allclose(pair.eigenvalue, top, rtol=1e-2)  # the issue asks for 1 %
    assert torch.allclose(history[-1], top, rtol=1e-2)
    # Rayleigh quotients never exceed the top eigenvalue in magnitude, and improve on the start
    assert (history.abs() <= top.abs() * (1 + 1e-9)).all()
    assert ((history[-1] - top).abs() <= (history[0] - top).abs() + 1e-12).all()


def test_power_iteration_history_ends_at_the_returned_direction(three, make_generator):
    model, (x, y) = tanh_mlp(), three
    pair = hessian.power_iteration(model, x, y, iters=5, generator=make_generator(3))
    again = hessian.power_iteration(model, x, y, iters=6, generator=make_generator(3))
    # the 6th Rayleigh quotient is taken at the 5-iteration run's final direction: its eigenvalue estimate
    assert torch.allclose(again.history[5], pair.eigenvalue, rtol=1e-10)
    assert torch.equal(again.history[:5], pair.history)


def relu_cnn(seed: int = 0) -> nn.Module:
    """A small float64 ReLU/max-pool CNN (piecewise linear, like Madry's CNN)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 10)).double().eval()


def test_gauss_newton_is_the_exact_hessian_of_a_piecewise_linear_network(three):
    model, (x, y) = relu_cnn(), three
    gn = hessian.gauss_newton(model, x)
    exact = hessian.exact_hessians(model, x, y)
    assert gn.shape == exact.shape == (3, 784, 784)
    assert torch.allclose(gn, exact, atol=1e-12 * max(1.0, exact.abs().max().item()) + 1e-14)
    eig = torch.linalg.eigvalsh(gn)
    assert (eig > -1e-12).all()  # positive semi-definite
    assert ((eig > 1e-9 * eig[:, -1:]).sum(1) <= 9).all()  # rank ≤ K − 1


def test_gauss_newton_misses_the_curvature_of_a_smooth_network(three):
    model, (x, y) = tanh_mlp(), three
    gap = (hessian.gauss_newton(model, x) - hessian.exact_hessians(model, x, y)).abs().max()
    assert gap > 1e-4  # tanh adds Σ_k (p − e_y)_k ∇²z_k, which Gauss–Newton leaves out


def test_gauss_newton_leaves_the_model_as_it_was(three):
    model, (x, _) = relu_cnn(), three
    model.train()
    hessian.gauss_newton(model, x)
    assert model.training and all(p.requires_grad for p in model.parameters())

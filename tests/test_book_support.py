"""Tests of the advlib functions that chapters 00-03 of the book added (hessian, landscape, plots)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from advlib import hessian, plots  # noqa: E402


def tanh_mlp(seed: int = 0) -> nn.Module:
    """A smooth float64 MLP on 4x4-pooled images: its input Hessian has a genuine second-derivative part."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    with torch.no_grad():
        model[2].weight.mul_(6.0)
    return model.eval()


@pytest.fixture
def data(mnist_batch):
    x, y = mnist_batch
    return x[:3].double(), y[:3]


def test_exact_hessians_match_an_independent_oracle(data):
    """Against finite differences of the analytic gradient, column by column, on a few coordinates."""
    model, (x, y) = tanh_mlp(), data
    h = hessian.exact_hessians(model, x, y)
    assert h.shape == (3, 784, 784) and h.dtype == torch.float64
    assert torch.allclose(h, h.transpose(1, 2), atol=1e-10)  # symmetric
    for j in (0, 300, 407):  # H e_j = (∇L(x + t e_j) − ∇L(x − t e_j)) / 2t
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


def test_exact_hessians_agree_with_hvp_and_leave_the_model_as_it_was(data, make_generator):
    model, (x, y) = tanh_mlp(), data
    model.train()
    h = hessian.exact_hessians(model, x, y)
    assert model.training and all(p.requires_grad for p in model.parameters())
    v = torch.randn(x.shape, generator=make_generator(0), dtype=torch.float64)
    assert torch.allclose(torch.einsum("nij,nj->ni", h, v.flatten(1)), hessian.hvp(model, x, y, v).flatten(1),
                          atol=1e-9)


def test_exact_hessians_reject_mismatched_labels(data):
    x, y = data
    with pytest.raises(ValueError):
        hessian.exact_hessians(tanh_mlp(), x, y[:2])


def test_power_iteration_history_converges_to_the_exact_top_eigenvalue(data, make_generator):
    model, (x, y) = tanh_mlp(), data
    history: list[torch.Tensor] = [torch.zeros(1)]  # stale content is replaced
    pair = hessian.power_iteration(model, x, y, iters=60, generator=make_generator(0), history=history)
    assert len(history) == 60 and all(h.shape == (3,) for h in history)
    eig = torch.linalg.eigvalsh(hessian.exact_hessians(model, x, y))
    top = eig.gather(1, eig.abs().argmax(1, keepdim=True)).squeeze(1)  # largest magnitude
    assert torch.allclose(pair.eigenvalue, top, rtol=1e-2)  # the issue asks for 1 %
    assert torch.allclose(history[-1], top, rtol=1e-2)
    # Rayleigh quotients never exceed the top eigenvalue in magnitude, and improve on the start
    assert (torch.stack(history).abs() <= top.abs() * (1 + 1e-9)).all()
    assert ((history[-1] - top).abs() <= (history[0] - top).abs() + 1e-12).all()


def test_power_iteration_is_unchanged_by_recording_history(data, make_generator):
    model, (x, y) = tanh_mlp(), data
    plain = hessian.power_iteration(model, x, y, iters=5, generator=make_generator(3))
    recorded = hessian.power_iteration(model, x, y, iters=5, generator=make_generator(3), history=[])
    assert torch.equal(plain.eigenvalue, recorded.eigenvalue)
    assert torch.equal(plain.eigenvector, recorded.eigenvector)


def test_directions_figure_has_one_row_per_field(data):
    x = data[0].float()
    fields = {"a": torch.randn_like(x), "b": -x}
    fig = plots.directions(x, fields)
    assert len(fig.axes) == 3 * 3
    assert fig.axes[3].get_title() == "a"
    titled = plots.directions(x, fields, titles={"a": ["1", "2", "3"], "b": ["", "", "z"]})
    assert titled.axes[3 + 1].get_title() == "2" and titled.axes[8].get_title() == "z"
    plt.close("all")


def relu_cnn(seed: int = 0) -> nn.Module:
    """A small float64 ReLU/max-pool CNN (piecewise linear, like Madry's CNN)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 10)).double().eval()


def test_gauss_newton_is_the_exact_hessian_of_a_piecewise_linear_network(data):
    model, (x, y) = relu_cnn(), data
    gn = hessian.gauss_newton(model, x)
    exact = hessian.exact_hessians(model, x, y)
    assert gn.shape == exact.shape == (3, 784, 784)
    assert torch.allclose(gn, exact, atol=1e-12 * max(1.0, exact.abs().max().item()) + 1e-14)
    eig = torch.linalg.eigvalsh(gn)
    assert (eig > -1e-12).all()  # positive semi-definite
    assert ((eig > 1e-9 * eig[:, -1:]).sum(1) <= 9).all()  # rank ≤ K − 1


def test_gauss_newton_misses_the_curvature_of_a_smooth_network(data):
    model, (x, y) = tanh_mlp(), data
    gap = (hessian.gauss_newton(model, x) - hessian.exact_hessians(model, x, y)).abs().max()
    assert gap > 1e-4  # tanh adds Σ_k (p − e_y)_k ∇²z_k, which Gauss–Newton leaves out


def test_gauss_newton_leaves_the_model_as_it_was(data):
    model, (x, _) = relu_cnn(), data
    model.train()
    hessian.gauss_newton(model, x)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_table_heatmaps_stack_three_legible_panels_within_page_width():
    from advlib.notebook import best_records

    records = best_records()
    if not records:
        pytest.skip("no committed result records under results/")
    fig = plots.table_heatmaps(records)
    width, height = fig.get_size_inches()
    assert width <= 9.0 and height > width, "the three panels must stack vertically within page width"
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["ours (%)", "paper (%)", "Δ = ours − paper (points)"]
    lefts = {round(ax.get_position().x0, 2) for ax in axes}
    tops = [ax.get_position().y0 for ax in axes]
    assert len(lefts) == 1 and tops == sorted(tops, reverse=True), "panels are not one above the other"
    annotations = [t for t in axes[1].texts if t.get_text()]
    assert len(annotations) == 5 * 12 and min(t.get_fontsize() for t in annotations) >= 10
    plt.close("all")

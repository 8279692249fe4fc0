"""``advlib.gradients``: per-example losses, per-example input gradients and S-O's Gaussian-averaged gradient."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlib import attacks, gradients


def test_per_example_losses_by_hand():
    # independent oracle: values computed by hand (and log-sum-exp in plain torch)
    logits = torch.tensor([[1.0, 2.0, 3.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([2, 0, 1])
    cw = gradients.per_example_loss(logits, target, "cw")
    assert torch.equal(cw, torch.tensor([-51.0, -55.0, -50.0]))  # -relu(z_y - max_{j≠y} z_j + 50)
    lse = torch.log(torch.exp(logits).sum(1))
    expected_ce = lse - torch.tensor([3.0, 5.0, 0.0])
    torch.testing.assert_close(gradients.per_example_loss(logits, target, "ce"), expected_ce)
    custom = gradients.per_example_loss(logits, target, lambda z, t: z.sum(1))
    assert torch.equal(custom, torch.tensor([6.0, 5.0, 0.0]))
    with pytest.raises(ValueError, match="unknown loss 'mse'; valid choices: 'ce', 'cw' or a callable"):
        gradients.per_example_loss(logits, target, "mse")


def test_input_gradient_is_per_example(make_model, batch):
    model = make_model("linear").eval()
    x, y = batch
    g, values = gradients.input_gradient(model, x, y)
    # independent oracle: torch.autograd on each example alone
    for i in (0, 5):
        xi = x[i:i + 1].clone().requires_grad_(True)
        loss = F.cross_entropy(model(xi), y[i:i + 1])
        (gi,) = torch.autograd.grad(loss, xi)
        torch.testing.assert_close(g[i:i + 1], gi, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(values[i], loss.detach(), rtol=1e-6, atol=1e-7)
    assert not x.requires_grad and not values.requires_grad


def test_smoothed_gradient_averages_noisy_gradients(natural_linear, batch, make_generator):
    x, y = batch
    assert torch.equal(gradients.smoothed_gradient(natural_linear, x, y, sigma=0.0, samples=3),
                       gradients.input_gradient(natural_linear, x, y)[0])
    sigma, samples = 0.2, 5
    ours = gradients.smoothed_gradient(natural_linear, x, y, sigma=sigma, samples=samples,
                                       generator=make_generator(9))
    noise = torch.randn((samples * len(x), *x.shape[1:]), generator=make_generator(9))
    ref = torch.stack([gradients.input_gradient(natural_linear, x + sigma * noise[k * len(x):(k + 1) * len(x)], y)[0]
                       for k in range(samples)]).mean(0)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)


def test_smoothed_gradient_repeats_soft_targets_per_draw(natural_linear, batch, make_generator):
    """A 2-D target (TRADES' probabilities) is repeated row-wise with the noisy copies, like labels."""
    x, _ = batch
    with torch.no_grad():
        p = F.softmax(natural_linear(x), 1)
    kl = lambda logits, q: F.kl_div(F.log_softmax(logits, 1), q, reduction="none").sum(1)
    g = gradients.smoothed_gradient(natural_linear, x, p, sigma=0.1, samples=3, loss=kl, generator=make_generator(0))
    assert g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0


def test_attacks_re_exports_the_same_functions():
    for name in ("LossFn", "per_example_loss", "input_gradient", "smoothed_gradient"):
        assert getattr(attacks, name) is getattr(gradients, name), name

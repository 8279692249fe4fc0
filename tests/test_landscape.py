"""``advlib.landscape``: per-example gradient norms and 1-D / 2-D loss slices around natural images."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlib import landscape
from conftest import tanh_mlp


@pytest.fixture
def data(mnist_batch):
    x, y = mnist_batch
    return x[:4].double(), y[:4]


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

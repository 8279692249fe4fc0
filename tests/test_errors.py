"""Bad inputs raise ValueError whose message names the bad value and what would have been valid."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advlib import fgsm, hessian, lp, models, pgd, run_attack, second_order
from advlib.specs import AttackSpec
from advlib.data import load_mnist, mnist_source


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    return model, x, y


def with_pixel(x, value):
    x = x.clone()
    x[1, 0, 3, 3] = value
    return x


# (id, call(model, x, y), regex that must name the bad value AND the valid choices or range)
CASES = [
    ("norm-pgd", lambda m, x, y: pgd(m, x, y, norm="l1"), r"unknown norm 'l1'; valid choices: 'l2', 'linf'"),
    ("norm-lp", lambda m, x, y: lp.project(x, "L2", 1.0), r"unknown norm 'L2'.*'l2', 'linf'"),
    ("norm-so", lambda m, x, y: second_order(m, x, y, norm="inf"), r"unknown norm 'inf'.*'l2', 'linf'"),
    ("step_norm", lambda m, x, y: lp.ascent_step(x, x, x, norm="linf", eps=0.1, step_size=0.1, step_norm="l0"),
     r"unknown norm 'l0'.*'l2', 'linf'"),
    ("eps-negative", lambda m, x, y: pgd(m, x, y, norm="linf", eps=-0.1), r"eps must be a finite number >= 0, got -0\.1"),
    ("eps-nan", lambda m, x, y: fgsm(m, x, y, eps=float("nan"), norm="l2"), r"eps must be a finite number >= 0, got nan"),
    ("eps-inf", lambda m, x, y: pgd(m, x, y, norm="l2", eps=float("inf")), r"eps must be a finite number >= 0, got inf"),
    ("eps-bool", lambda m, x, y: pgd(m, x, y, norm="l2", eps=True), r"eps must be a finite number >= 0, got True"),
    ("step_size-negative", lambda m, x, y: pgd(m, x, y, norm="linf", step_size=-1.0),
     r"step_size must be a finite number >= 0, got -1\.0"),
    ("steps-negative", lambda m, x, y: pgd(m, x, y, norm="linf", steps=-1), r"steps must be an integer >= 0, got -1"),
    ("steps-float", lambda m, x, y: pgd(m, x, y, norm="linf", steps=2.5), r"steps must be an integer >= 0, got 2\.5"),
    ("samples-zero", lambda m, x, y: second_order(m, x, y, norm="l2", samples=0),
     r"samples must be an integer >= 1, got 0"),
    ("sigma-negative", lambda m, x, y: second_order(m, x, y, norm="linf", sigma=-0.1),
     r"sigma must be a finite number >= 0, got -0\.1"),
    ("loss", lambda m, x, y: pgd(m, x, y, norm="linf", loss="mse"), r"unknown loss 'mse'; valid choices: 'ce', 'cw'"),
    ("linf_step", lambda m, x, y: second_order(m, x, y, norm="linf", linf_step="l1"),
     r"unknown linf_step 'l1'; valid choices: 'sign', 'l2'"),
    ("x-nan", lambda m, x, y: pgd(m, with_pixel(x, float("nan")), y, norm="linf"),
     r"x contains NaN or infinite values; pixels must be finite and in \[0,1\]"),
    ("x-above-1", lambda m, x, y: fgsm(m, with_pixel(x, 1.5), y, eps=0.1, norm="linf"),
     r"x has pixels in \[.*, 1\.5\]; valid range is \[0,1\]"),
    ("x-below-0", lambda m, x, y: second_order(m, with_pixel(x, -0.25), y, norm="l2"),
     r"x has pixels in \[-0\.25, .*\]; valid range is \[0,1\]"),
    ("x-integer", lambda m, x, y: pgd(m, (x * 255).to(torch.uint8), y, norm="linf"),
     r"x must be a floating tensor with pixels in \[0,1\], got dtype torch\.uint8"),
    ("x-empty", lambda m, x, y: pgd(m, x[:0], y[:0], norm="linf"),
     r"x must be a non-empty batch \[N,1,28,28\], got shape \(0, 1, 28, 28\)"),
    ("x-not-tensor", lambda m, x, y: fgsm(m, x.numpy(), y, eps=0.1, norm="linf"),
     r"x must be a torch\.Tensor of shape \[N,1,28,28\], got ndarray"),
    ("y-shape", lambda m, x, y: pgd(m, x, y[:3], norm="linf"),
     r"y has shape \(3,\) but the batch has 4 examples; expected \[4\]"),
    ("y-float", lambda m, x, y: pgd(m, x, y.float(), norm="linf"),
     r"y must be an integer label tensor of dtype torch\.int64 and shape \[4\], got torch\.float32"),
    ("y-int32", lambda m, x, y: second_order(m, x, y.int(), norm="linf"),
     r"dtype torch\.int64 .*got torch\.int32"),
    ("target-rows", lambda m, x, y: run_attack(AttackSpec.pgd("l2", eps=0.1, steps=1, step_size=0.1), m, x, y[:2]),
     r"target has 2 rows but x has 4; they must match"),
    ("spec-kind", lambda m, x, y: run_attack(AttackSpec("cw", "l2", 1.0, 1, 1.0), m, x, y),
     r"unknown attack kind 'cw'; valid choices: 'pgd', 'so'"),
    ("spec-type", lambda m, x, y: run_attack({"kind": "pgd"}, m, x, y),
     r"spec must be an advlib\.specs\.AttackSpec, got dict"),
    ("hvp-method", lambda m, x, y: hessian.hvp(m, x, y, x, method="exactly"),
     r"unknown method 'exactly'; valid choices: 'exact', 'finite_difference'"),
    ("hvp-v-shape", lambda m, x, y: hessian.hvp(m, x, y, x[:2]),
     r"v has shape \(2, 1, 28, 28\) but x has \(4, 1, 28, 28\); they must match"),
    ("hvp-xi-zero", lambda m, x, y: hessian.hvp(m, x, y, x, method="finite_difference", xi=0.0),
     r"xi must be > 0 for finite differences, got 0"),
    ("hvp-xi-negative", lambda m, x, y: hessian.hvp(m, x, y, x, method="finite_difference", xi=-1e-3),
     r"xi must be a finite number >= 0, got -0\.001"),
    ("so_alignment-samples", lambda m, x, y: hessian.so_alignment(m, x, y, sigma=0.1, samples=0),
     r"samples must be an integer >= 1, got 0"),
    ("so_alignment-sigma", lambda m, x, y: hessian.so_alignment(m, x, y, sigma=-0.1, samples=2),
     r"sigma must be a finite number >= 0, got -0\.1"),
    ("power-iters", lambda m, x, y: hessian.power_iteration(m, x, y, iters=0), r"iters must be an integer >= 1, got 0"),
    ("model-name", lambda m, x, y: models.build("resnet18"),
     r"unknown model 'resnet18'; valid choices: 'madry', 'tramer_a', 'tramer_b', 'tramer_c', 'tramer_d'"),
    ("split", lambda m, x, y: load_mnist("validation", download=False),
     r"unknown split 'validation'; valid choices: 'train', 'test'"),
    ("split-source", lambda m, x, y: mnist_source("val", download=False), r"unknown split 'val'.*'train', 'test'"),
    ("limit-zero", lambda m, x, y: load_mnist("test", limit=0, download=False), r"limit must be an integer >= 1, got 0"),
    ("limit-float", lambda m, x, y: load_mnist("test", limit=10.0, download=False),
     r"limit must be an integer >= 1, got 10\.0"),
]


@pytest.mark.parametrize("call, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_value_error_naming_value_and_valid_ones(setup, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(*setup)


def test_bad_inputs_leave_model_state_alone(setup):
    model, x, y = setup
    model.train()
    try:
        with pytest.raises(ValueError):
            pgd(model, x, y, norm="linf", eps=-1.0)
        assert model.training and all(p.requires_grad for p in model.parameters())
    finally:
        model.eval()


def test_valid_edge_values_are_accepted(setup):
    """The checks reject exactly the invalid values: 0 steps, integer ε, int labels of dtype int64."""
    model, x, y = setup
    out = pgd(model, x, y, norm="linf", eps=1, steps=0, random_start=False)
    assert torch.equal(out, x)
    out = second_order(model, x, y, norm="l2", sigma=0, samples=1, steps=1)
    assert out.shape == x.shape

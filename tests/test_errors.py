"""Bad inputs raise ValueError whose message names the bad value and what would have been valid."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advlib import fgsm, gradients, hessian, lp, models, pgd, run_attack, second_order, strong
from advlib.attacks import traced_attack
from advlib.data import load_mnist, mnist_source
from advlib.evaluation import evaluate, predict
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec
from advlib.training import Natural, fit


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
    ("norm-pgd", lambda m, x, y: pgd(m, x, y, norm="l0"), r"unknown norm 'l0'; valid choices: 'l1', 'l2', 'linf'"),
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
     r"x must be a non-empty batch of images \[N,C,H,W\] \(MNIST: \[N,1,28,28\]\), got shape \(0, 1, 28, 28\)"),
    ("x-not-tensor", lambda m, x, y: fgsm(m, x.numpy(), y, eps=0.1, norm="linf"),
     r"x must be a torch\.Tensor of images \[N,C,H,W\] \(MNIST: \[N,1,28,28\]\), got ndarray"),
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


SPEC = AttackSpec.pgd("linf", eps=0.1, steps=1, step_size=0.1)
TRAIN = TrainSpec(epochs=1, batch_size=4)
AUTO = strong.AutoAttackSpec("linf", 0.1)

# Every public (model, x, y) entry point, called with images ``x`` and labels ``y``.
ENTRY_POINTS = {
    "pgd": lambda m, x, y: pgd(m, x, y, norm="linf", steps=1),
    "fgsm": lambda m, x, y: fgsm(m, x, y, eps=0.1, norm="l2"),
    "second_order": lambda m, x, y: second_order(m, x, y, norm="l2", steps=1, samples=1),
    "run_attack": lambda m, x, y: run_attack(SPEC, m, x, y),
    "traced_attack": lambda m, x, y: traced_attack(SPEC, m, x, y),
    "evaluate": lambda m, x, y: evaluate(m, x, y, {"PGD": SPEC}),
    "autoattack": lambda m, x, y: strong.autoattack(m, x, y, AUTO),
    "fit": lambda m, x, y: fit(m, x, y, Natural(), TRAIN, seed=0, quiet=True),
    "input_gradient": lambda m, x, y: gradients.input_gradient(m, x, y),
    "input_gradient-cw": lambda m, x, y: gradients.input_gradient(m, x, y, "cw"),
    "smoothed_gradient": lambda m, x, y: gradients.smoothed_gradient(m, x, y, sigma=0.1, samples=2),
    "hvp": lambda m, x, y: hessian.hvp(m, x, y, torch.ones_like(x)),
    "hvp-fd": lambda m, x, y: hessian.hvp(m, x, y, torch.ones_like(x), method="finite_difference"),
    "power_iteration": lambda m, x, y: hessian.power_iteration(m, x, y, iters=1),
    "so_alignment": lambda m, x, y: hessian.so_alignment(m, x, y, sigma=0.1, samples=1, iters=1),
    "exact_hessians": lambda m, x, y: hessian.exact_hessians(m, x, y),
}
# (id, labels for the batch of 4, what the message must say): each names the bad label, its index and the range.
BAD_LABELS = [
    ("label-10", [0, 1, 10, 3], r"has label 10 at index 2; valid labels are 0 to 9 \(the model has 10 classes\)"),
    ("label-negative", [-1, 1, 2, 3], r"has label -1 at index 0; valid labels are 0 to 9"),
]
# (id, how the batch [4,1,28,28] is mangled, what the message must say): the rank, the shape and how to fix it.
BAD_SHAPES = [
    ("N-28-28", lambda x: x[:, 0], r"rank 3 shape \(4, 28, 28\) \(x\.unsqueeze\(1\) for a batch \[N,H,W\]"),
    ("N-784", lambda x: x.flatten(1), r"rank 2 shape \(4, 784\) \(x\.view\(-1, 1, 28, 28\) for flat MNIST"),
    ("1-28-28", lambda x: x[0], r"rank 3 shape \(1, 28, 28\) .*x\[None\] for one image \[C,H,W\]"),
    ("28-28", lambda x: x[0, 0], r"rank 2 shape \(28, 28\) \(x\[None, None\] for one image \[H,W\]\)"),
]


def test_every_entry_point_is_listed():
    """The label and shape checks below cover each public function that takes a model, images and labels."""
    assert {"pgd", "fgsm", "second_order", "run_attack", "traced_attack", "evaluate", "autoattack", "fit",
            "input_gradient", "smoothed_gradient", "hvp", "power_iteration", "so_alignment",
            "exact_hessians"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("labels, pattern", [c[1:] for c in BAD_LABELS], ids=[c[0] for c in BAD_LABELS])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_labels_outside_the_models_classes_raise_value_error(setup, entry, labels, pattern):
    model, x, _ = setup
    with pytest.raises(ValueError, match=pattern):
        ENTRY_POINTS[entry](model, x, torch.tensor(labels))


@pytest.mark.parametrize("mangle, pattern", [c[1:] for c in BAD_SHAPES], ids=[c[0] for c in BAD_SHAPES])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_images_of_the_wrong_rank_raise_value_error(setup, entry, mangle, pattern):
    model, x, y = setup
    bad = mangle(x)
    with pytest.raises(ValueError, match=r"x must be a batch of images \[N,C,H,W\] \(MNIST: \[N,1,28,28\]\), got "
                                         + pattern):
        ENTRY_POINTS[entry](model, bad, y[:len(bad)])


def test_predict_and_gauss_newton_reject_images_of_the_wrong_rank(setup):
    model, x, _ = setup
    for call in (predict, hessian.gauss_newton):
        with pytest.raises(ValueError, match=r"x must be a batch of images .*got rank 2 shape \(4, 784\)"):
            call(model, x.flatten(1))


def test_the_number_of_classes_comes_from_the_model(setup):
    """A 3-class model takes labels 0..2 and names 3 classes when given label 5; a 10-class one takes label 9."""
    model, x, _ = setup
    torch.manual_seed(0)
    three = nn.Sequential(nn.Flatten(), nn.Linear(784, 3)).eval()
    assert pgd(three, x, torch.tensor([0, 1, 2, 0]), norm="l2", steps=1).shape == x.shape
    with pytest.raises(ValueError, match=r"label 5 at index 1; valid labels are 0 to 2 \(the model has 3 classes\)"):
        pgd(three, x, torch.tensor([0, 5, 2, 0]), norm="l2", steps=1)
    nine = torch.tensor([9, 9, 0, 0])
    assert torch.equal(evaluate(model, x, nine, {}).correct["Natural"], predict(model, x) == nine)


def test_images_the_model_cannot_take_raise_value_error(setup):
    """Right rank, wrong size for the model: reported before any attack step, with the shape and what fits."""
    model, x, y = setup
    small = x[:, :, :14, :14]
    for call in (lambda: pgd(model, small, y, norm="linf"), lambda: run_attack(SPEC, model, small, y),
                 lambda: evaluate(model, small, y, {})):
        with pytest.raises(ValueError, match=r"the model cannot take x of shape \(4, 1, 14, 14\), dtype torch\.float32"
                                             r" on cpu; it needs images \[N,C,H,W\]"):
            call()


def test_a_model_that_does_not_return_logits_raises_value_error(setup):
    _, x, y = setup
    with pytest.raises(ValueError, match=r"must return logits \[N, classes\]; on x\[:1\] it returned \(1, 1, 28, 28\)"):
        pgd(nn.Identity(), x, y, norm="linf")


def test_per_example_loss_names_a_bad_label(setup):
    logits = torch.zeros(4, 10)
    for loss in ("ce", "cw"):
        with pytest.raises(ValueError, match=r"target has label 12 at index 3; valid labels are 0 to 9"):
            gradients.per_example_loss(logits, torch.tensor([0, 1, 2, 12]), loss)


def test_soft_targets_with_a_callable_loss_skip_the_label_check(setup):
    """run_attack's target is whatever a callable loss takes (TRADES: probabilities), so only labels are checked."""
    model, x, _ = setup
    p = torch.full((4, 10), 0.1)
    kl = lambda logits, q: torch.nn.functional.kl_div(logits.log_softmax(1), q, reduction="none").sum(1)
    assert run_attack(SPEC, model, x, p, loss=kl).shape == x.shape


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

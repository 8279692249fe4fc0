"""``advlib.graphs``: the training attacks' loop gives exactly the eager attack's result on a CPU (where it
runs eagerly), ε and step size may be tensors (as in a recorded graph), and graph replay is CUDA-only.

The recording itself needs a GPU; ``advlib.smoke.check_graphs`` compares graphed with eager there.
"""
from __future__ import annotations

import pytest
import torch

from advlib import graphs, lp
from advlib.attacks import run_attack, start_point
from advlib.specs import AttackSpec
from advlib.training.trades import kl_per_example
from conftest import quiet_load, tiny_cnn


@pytest.mark.parametrize("norm,eps", [("l2", 2.0), ("linf", 0.2)])
def test_replay_on_cpu_equals_run_attack_bit_for_bit(norm, eps):
    x, y = quiet_load("test", 40)
    model = tiny_cnn().eval()
    spec = AttackSpec.pgd(norm, eps=eps, steps=4, step_size=eps / 3)
    expected = run_attack(spec, model, x, y, generator=torch.Generator().manual_seed(5))
    start = start_point(x, norm, eps, random_start=True, generator=torch.Generator().manual_seed(5))
    got = graphs.replay_ascent(model, x, y, start, eps=eps, step_size=eps / 3, norm=norm, steps=4)
    assert torch.equal(got, expected)


def test_tensor_eps_and_step_give_the_same_iterates_as_floats():
    """Inside a recorded graph ε and the step size are 0-d device tensors (so the warm-up can change them)."""
    x, y = quiet_load("test", 30)
    model = tiny_cnn().eval().requires_grad_(False)
    with torch.no_grad():
        target = torch.softmax(model(x), 1)
    start = start_point(x, "l2", 1.5, random_start=False, x_init=x + 0.001 * torch.randn(x.shape))
    as_float = graphs.ascent_loop(model, x, target, start, 1.5, 0.3, norm="l2", steps=3, loss=kl_per_example)
    as_tensor = graphs.ascent_loop(model, x, target, start, torch.tensor(1.5), torch.tensor(0.3), norm="l2", steps=3,
                                   loss=kl_per_example)
    assert torch.allclose(as_float, as_tensor, atol=1e-6)
    assert (lp.norm_of(as_tensor - x, "l2") <= 1.5 + 1e-5).all() and as_tensor.min() >= 0 and as_tensor.max() <= 1


def test_replay_restores_the_model_and_returns_x_at_eps_zero():
    x, y = quiet_load("test", 10)
    model = tiny_cnn().train()
    out = graphs.replay_ascent(model, x, y, x.clone(), eps=0.3, step_size=0.1, norm="linf", steps=2)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert (out - x).abs().max() <= 0.3 + 1e-6
    assert torch.equal(graphs.replay_ascent(model, x, y, x.clone(), eps=0.0, step_size=0.0, norm="linf", steps=2), x)


def test_graphs_are_cuda_only_and_can_be_switched_off(monkeypatch):
    assert not graphs.enabled(torch.device("cpu"))
    assert graphs.enabled(torch.device("cuda"))
    monkeypatch.setenv(graphs.ENV, "0")
    assert not graphs.enabled(torch.device("cuda"))

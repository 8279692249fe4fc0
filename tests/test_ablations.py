"""``advlib.ablations``: the authors' clamp-at-end loop against independent oracles, the restart cascade, the
gradient budget (the experiments built on them: tests/test_experiments_*.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlib import lp
from advlib.ablations import gradient_evaluations, so_clamp_at_end, worst_case_restarts
from advlib.attacks import run_attack
from advlib.evaluation import predict
from advlib.models import MadryCNN
from advlib.specs import AttackSpec


def authors_loop(model, x, y, *, eps, steps, step_size, sigma, samples, generator):
    """Independent oracle: a direct transcription of the authors' ℓ2 loop as docs/protocols.md §6.1 describes it
    (Bai-Li/TRADES pgd_attack_mnist_l2.py:L62-90): per draw the gradient of the *batch-mean* cross-entropy at the
    unclipped noisy iterate, summed over draws and divided by their number, divided by its per-example norm
    floored at 1e-8, a step, the rescale onto the ball, and one clamp after the loop. The noise is drawn in the
    order advlib draws it (one [samples·N] batch per step, draw-major) so the two can be compared."""
    x_pgd = x.clone()
    for _ in range(steps):
        noise = (sigma * torch.randn((samples * x.shape[0], *x.shape[1:]), generator=generator)).view(
            samples, *x.shape) if sigma > 0 else torch.zeros(1, *x.shape)
        total = torch.zeros_like(x)
        for k in range(noise.shape[0]):
            temp = (x_pgd + noise[k]).requires_grad_(True)
            F.cross_entropy(model(temp), y).backward()
            total += temp.grad
        total = total / noise.shape[0]
        norm = total.flatten(1).norm(dim=1).clamp(min=1e-8).view(-1, 1, 1, 1)
        x_pgd = x_pgd + step_size * total / norm
        eta = x_pgd - x
        eta_norm = eta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        x_pgd = x + eta * eta_norm.clamp(max=eps) / eta_norm
    return x_pgd.clamp(0, 1).detach()


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return MadryCNN().eval()


@pytest.mark.parametrize("sigma,samples", [(0.0, 1), (0.1, 3)])
def test_clamp_at_end_matches_the_authors_loop_transcribed(cnn, batch, make_generator, sigma, samples):
    x, y = batch
    spec = AttackSpec.so("l2", eps=2.0, steps=4, sigma=sigma, samples=samples)
    ours = so_clamp_at_end(spec, cnn, x, y, generator=make_generator(5), batch_size=64)
    oracle = authors_loop(cnn, x, y, eps=spec.eps, steps=spec.steps, step_size=spec.step_size, sigma=sigma,
                          samples=samples, generator=make_generator(5))
    assert torch.allclose(ours, oracle, atol=1e-5), (ours - oracle).abs().max()


def test_clamp_at_end_equals_advlib_when_no_iterate_leaves_the_unit_box(cnn, batch, make_generator):
    x, y = batch
    x = 0.3 + 0.4 * x  # pixels in [0.3, 0.7]; with ε = 0.2 no coordinate can move by more than 0.2
    spec = AttackSpec.so("l2", eps=0.2, steps=5, sigma=0.1, samples=3)
    theirs = so_clamp_at_end(spec, cnn, x, y, generator=make_generator(3), batch_size=9)  # chunks of 3 images
    ours = run_attack(spec, cnn, x, y, generator=make_generator(3), batch_size=9)
    assert torch.equal(theirs, ours)


def test_clamp_at_end_differs_on_mnist_but_stays_feasible(cnn, batch, make_generator):
    x, y = batch  # black backgrounds: steps push pixels below 0, which advlib clamps at once and the authors later
    spec = AttackSpec.so("l2", eps=4.0, steps=6, sigma=0.15, samples=2)
    theirs = so_clamp_at_end(spec, cnn, x, y, generator=make_generator(1))
    ours = run_attack(spec, cnn, x, y, generator=make_generator(1))
    assert not torch.equal(theirs, ours)
    assert theirs.min() >= 0 and theirs.max() <= 1 and not theirs.requires_grad
    assert (lp.norm_of(theirs - x, "l2") <= spec.eps * (1 + 1e-6)).all()


def test_clamp_at_end_leaves_inputs_and_model_state_alone(tiny_model, batch, make_generator):
    x, y = batch
    x0 = x.clone()
    tiny_model.train()
    so_clamp_at_end(AttackSpec.so("l2", eps=1.0, steps=2, samples=2), tiny_model, x, y, generator=make_generator())
    assert torch.equal(x, x0) and tiny_model.training
    assert all(p.requires_grad for p in tiny_model.parameters())


@pytest.mark.parametrize("spec,message", [
    (AttackSpec.so("linf"), "ℓ2"),
    (AttackSpec.pgd("l2"), "random_start=False"),
])
def test_clamp_at_end_refuses_what_the_authors_loop_is_not(cnn, batch, spec, message):
    with pytest.raises(ValueError, match=message):
        so_clamp_at_end(spec, cnn, *batch)


def test_one_restart_is_one_attack_run(natural_linear, batch):
    x, y = batch
    spec = AttackSpec.pgd("l2", eps=1.5, steps=5)
    res = worst_case_restarts(spec, natural_linear, x, y, restarts=1, seed=4)
    x_adv = run_attack(spec, natural_linear, x, y, generator=torch.Generator().manual_seed(4))
    expected = (predict(natural_linear, x) == y) & (predict(natural_linear, x_adv) == y)
    assert torch.equal(res.correct, expected)
    assert res.accuracy == [expected.float().mean().item()]


def test_restarts_only_lower_accuracy_and_repeat_a_deterministic_attack(natural_linear, batch):
    x, y = batch
    random = worst_case_restarts(AttackSpec.pgd("l2", eps=1.5, steps=3), natural_linear, x, y, restarts=4)
    assert all(b <= a for a, b in zip(random.accuracy, random.accuracy[1:]))
    assert random.accuracy[-1] == random.correct.float().mean().item()
    fixed = worst_case_restarts(AttackSpec.pgd("l2", eps=1.5, steps=3, random_start=False), natural_linear, x, y,
                                restarts=3)
    assert len(set(fixed.accuracy)) == 1  # no randomness: every restart finds the same points
    with pytest.raises(ValueError, match="restarts"):
        worst_case_restarts(AttackSpec.pgd("l2"), natural_linear, x, y, restarts=0)


def test_gradient_budget_of_the_papers_attacks():
    assert gradient_evaluations(AttackSpec.so("l2")) == 40 * 20
    assert gradient_evaluations(AttackSpec.pgd("l2")) == 40
    assert gradient_evaluations(AttackSpec.pgd("l2").with_steps(800)) == 800


def test_the_chapters_figures_draw_what_they_are_given():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from advlib import plots

    traces = {"paper A": {"grad_norm": [1.0, 2.0, 3.0], "loss": [0.1, 0.2, 0.3]},
              "paper B": {"grad_norm": [0.5, 0.4, 0.3], "loss": [0.0, 0.1, 0.1]},
              "extra": {"grad_norm": [1.0, 1.0, 1.0], "loss": [0.2, 0.2, 0.2]}}
    fig = plots.figure1(traces, paper=["paper A", "paper B"])
    left, right = fig.axes
    assert [line.get_label() for line in left.lines] == list(traces) and left.get_yscale() == "log"
    assert list(right.lines[1].get_ydata()) == [0.0, 0.1, 0.1]
    assert left.lines[0].get_color() == "C0" and left.lines[2].get_linestyle() == "--"
    grid = pd.DataFrame([[10.0, 20.0], [float("nan"), 5.0]], index=["σ=0", "σ=0.15"], columns=[1, 20])
    fig = plots.accuracy_grid(grid, title="t")
    assert [t.get_text() for t in fig.axes[0].texts] == ["10.0", "20.0", "5.0"]  # the missing cell stays blank
    frame = pd.DataFrame({"model": ["a", "a", "b"], "grad_norm": [1e-3, 1e-2, 1e-1], "eigenvalue": [1e-4, 1e-3, 1.0]})
    fig = plots.curvature_scatter(frame)
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].collections[0].get_offsets()) == 3
    plt.close("all")

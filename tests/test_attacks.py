"""Attacks (advlib.attacks): boundary guarantees, hygiene, determinism, oracles, the one runner, trace and strength."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from advlib import attacks, graphs, lp
from advlib.attacks import Traced, fgsm, pgd, run_attack, second_order, traced_attack
from advlib.models import MadryCNN
from advlib.specs import AttackSpec
from conftest import train_naturally

NORMS = ("l2", "linf")
ATTACKS = ("fgsm", "pgd", "so", "so_l2step")
EPS = {"linf": 0.3, "l2": 2.0}


def run(name, model, x, y, norm, *, eps=None, generator=None, batch_size=None):
    """Each attack with few steps/samples so a call takes milliseconds on a tiny model."""
    eps = EPS[norm] if eps is None else eps
    if name == "fgsm":
        return fgsm(model, x, y, eps=eps, norm=norm, batch_size=batch_size)
    if name == "pgd":
        return pgd(model, x, y, norm=norm, eps=eps, steps=5, step_size=eps / 4, generator=generator,
                   batch_size=batch_size)
    if name == "so":
        return second_order(model, x, y, norm=norm, eps=eps, steps=4, step_size=eps / 4, sigma=0.1, samples=3,
                            generator=generator, batch_size=batch_size)
    if name == "so_l2step":  # default step size: the ℓ2 length of the rule's sign step for ℓ∞, the rule for ℓ2
        return second_order(model, x, y, norm=norm, eps=eps, steps=4, sigma=0.1, samples=3, linf_step="l2",
                            generator=generator, batch_size=batch_size)
    raise AssertionError(name)


def ce(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def assert_feasible(x_adv, x, norm, eps):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    dist = (x_adv - x).flatten(1).double()
    size = dist.norm(dim=1) if norm == "l2" else dist.abs().amax(dim=1)
    assert (size <= eps * (1 + 1e-6)).all(), size.max().item()


def module_state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


# ---------------------------------------------------------------- boundary guarantees -----------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_eps_zero_returns_x_exactly(name, norm, tiny_model, batch, generator):
    x, y = batch
    out = run(name, tiny_model, x, y, norm, eps=0.0, generator=generator)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()  # a copy: writing into it cannot corrupt the caller's x


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_output_feasible_and_raises_loss(name, norm, tiny_model, batch, generator):
    x, y = batch
    x_adv = run(name, tiny_model, x, y, norm, generator=generator)
    assert_feasible(x_adv, x, norm, EPS[norm])
    assert not torch.equal(x_adv, x)
    assert ce(tiny_model, x_adv, y).mean() > ce(tiny_model, x, y).mean()


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_inputs_and_model_untouched(name, norm, tiny_model, batch, generator):
    x, y = batch
    x0, y0 = x.clone(), y.clone()
    state0 = {k: v.clone() for k, v in tiny_model.state_dict().items()}  # includes BatchNorm buffers
    run(name, tiny_model, x, y, norm, generator=generator)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, state0[k]), k
    assert all(p.grad is None for p in tiny_model.parameters())  # no parameter gradients accumulated


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_input_requiring_grad_is_fine(name, norm, make_model, batch, generator):
    model = make_model("linear")
    x, y = batch
    x = x.requires_grad_(True)
    x_adv = run(name, model, x, y, norm, generator=generator)
    assert_feasible(x_adv, x.detach(), norm, EPS[norm])
    assert x.grad is None


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_same_seed_same_output(name, norm, tiny_model, batch, make_generator):
    x, y = batch
    a = run(name, tiny_model, x, y, norm, generator=make_generator(5))
    b = run(name, tiny_model, x, y, norm, generator=make_generator(5))
    assert torch.equal(a, b)
    if name in ("pgd", "so", "so_l2step"):  # randomised attacks: another seed gives another point
        c = run(name, tiny_model, x, y, norm, generator=make_generator(6))
        assert not torch.equal(a, c)


@pytest.mark.parametrize("start", ["train", "eval"])
@pytest.mark.parametrize("name", ATTACKS)
def test_model_mode_and_grad_flags_restored(name, start, make_model, batch, generator):
    model = make_model("cnn")
    model.train(start == "train")
    model[1].train(start != "train")  # the BatchNorm in the opposite mode (e.g. a frozen BN while fine-tuning)
    model[0].bias.requires_grad_(False)  # mixed requires_grad flags
    before = module_state(model)
    seen = []

    def hook(module, inputs, output):  # what the model looks like while the attack runs
        seen.append((any(m.training for m in module.modules()), any(p.requires_grad for p in module.parameters())))

    handle = model.register_forward_hook(hook)
    try:
        for norm in NORMS:
            run(name, model, *batch, norm, generator=generator)
    finally:
        handle.remove()
    assert seen and all(s == (False, False) for s in seen)  # eval mode, parameters frozen, inside
    assert module_state(model) == before  # and restored, module by module, after
    assert all(p.grad is None for p in model.parameters())


def test_model_state_restored_when_attack_raises(make_model, batch):
    model = make_model("cnn").train()
    x, y = batch
    def failing(logits, target):  # a loss that fails inside the attack's loop
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="loss failed"):
        pgd(model, x, y, norm="linf", steps=2, loss=failing)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_chunked_result_is_valid(name, norm, tiny_model, batch, generator):
    x, y = batch
    full = run(name, tiny_model, x, y, norm, generator=generator)
    chunked = run(name, tiny_model, x, y, norm, generator=generator, batch_size=3)  # 8 = 3 + 3 + 2
    assert_feasible(chunked, x, norm, EPS[norm])
    assert ce(tiny_model, chunked, y).mean() > ce(tiny_model, x, y).mean()
    if name == "fgsm":  # deterministic: chunking must not change the answer (up to rare sign flips)
        assert (chunked - full).abs().gt(1e-5).float().mean() < 0.01


def test_default_chunking_covers_large_batches(make_model, mnist_batch):
    model = make_model("linear")
    assert attacks.default_batch_size(torch.device("cpu")) == 500
    assert attacks.default_batch_size(torch.device("cuda")) == 10_000
    x, y = mnist_batch
    x, y = x.repeat(9, 1, 1, 1)[:520], y.repeat(9)[:520]  # 520 > 500: two chunks
    x_adv = pgd(model, x, y, norm="linf", eps=0.1, steps=2, step_size=0.05, random_start=False)
    assert_feasible(x_adv, x, "linf", 0.1)
    # rows 64.. repeat rows 0..; without a random start the chunk boundary must not matter
    torch.testing.assert_close(x_adv[512:520], x_adv[:8], rtol=0, atol=1e-6)


def test_draws_per_pass_batches_all_draws_on_a_gpu_and_moderate_passes_on_a_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert attacks.draws_per_pass(cuda, 500, 20) == 20  # one big batch
    assert attacks.draws_per_pass(cpu, 25, 20) == 10  # the default CPU chunk: two passes of 250 images
    assert attacks.draws_per_pass(cpu, 200, 20) == 1  # one draw per pass, the authors' shape
    assert attacks.draws_per_pass(cpu, 10_000, 3) == 1  # at least one draw, however many examples
    assert attacks.draws_per_pass(cpu, 1, 1) == 1
    for examples in (1, 7, 12, 25, 64, 256, 257, 500):
        for samples in (1, 2, 3, 19, 20, 100):
            d = attacks.draws_per_pass(cpu, examples, samples)
            assert 1 <= d <= samples
            assert d * examples <= attacks.CPU_PASS_IMAGES or d == 1
            passes = -(-samples // d)
            assert passes == 1 or (passes - 1) * d < samples  # no empty pass; draws spread evenly


def test_smoothed_gradient_in_passes_makes_the_draws_of_one_batch(tiny_model, batch, make_generator):
    """The draws are the old all-at-once estimator's (x repeated, one randn); passes change only summation order."""
    x, y = batch
    sigma, samples = 0.3, 7
    noisy = x.repeat(samples, 1, 1, 1)
    noisy = noisy + sigma * torch.randn(noisy.shape, generator=make_generator(3))
    old = attacks.input_gradient(tiny_model, noisy, y.repeat(samples))[0].view(samples, *x.shape).mean(0)
    whole = attacks.smoothed_gradient(tiny_model, x, y, sigma=sigma, samples=samples, generator=make_generator(3))
    assert torch.equal(whole, old)
    for draws in (1, 2, 3, 6, 7, 50):  # 7 = 3 + 3 + 1 with draws=3
        new = attacks.smoothed_gradient(tiny_model, x, y, sigma=sigma, samples=samples, generator=make_generator(3),
                                        draws=draws)
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("norm", NORMS)
def test_second_order_in_passes_matches_all_draws_at_once(norm, monkeypatch, make_model, batch, make_generator):
    model = make_model("cnn").eval()
    x, y = batch
    spec = AttackSpec.so(norm, eps=EPS[norm], steps=6, samples=5)
    monkeypatch.setattr(attacks, "CPU_PASS_IMAGES", 10**9)  # every draw in one forward/backward (a GPU's choice)
    whole = run_attack(spec, model, x, y, generator=make_generator(5))
    monkeypatch.setattr(attacks, "CPU_PASS_IMAGES", 1)  # one draw per forward/backward
    passes = run_attack(spec, model, x, y, generator=make_generator(5))
    assert (passes - whole).abs().max() < 1e-5
    with torch.no_grad():
        assert torch.equal(model(passes).argmax(1), model(whole).argmax(1))
    assert not torch.equal(run_attack(spec, model, x, y, generator=make_generator(6)), whole)  # the draws matter


def test_run_attack_tunes_the_allocator_once_on_a_cpu(monkeypatch, make_model, batch):
    calls = []
    monkeypatch.setattr(attacks.runtime, "tune_allocator", lambda: calls.append(1) or True)
    x, y = batch
    run_attack(AttackSpec.fgsm("linf", eps=0.1), make_model("linear"), x, y)
    assert calls == [1]


@pytest.mark.parametrize("norm", NORMS)
def test_zero_steps_and_an_explicit_start(norm, make_model, batch, generator):
    model = make_model("linear")
    x, y = batch
    eps = EPS[norm]
    out = pgd(model, x, y, norm=norm, eps=eps, steps=0, step_size=eps, random_start=False)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()  # a copy, never a view of the input
    start = pgd(model, x, y, norm=norm, eps=eps, steps=0, step_size=eps, generator=generator)  # the random start
    assert_feasible(start, x, norm, eps)
    assert not torch.equal(start, x)
    # an explicit start is projected onto the feasible set before use
    far = x + 10.0 * torch.randn(x.shape, generator=generator)
    zero = AttackSpec.pgd(norm, eps=eps, steps=0, step_size=0.1, random_start=False)
    out = run_attack(zero, model, x, y, start=far)
    assert torch.equal(out, lp.project_feasible(far, x, norm, eps))
    assert_feasible(out, x, norm, eps)
    two = AttackSpec.pgd(norm, eps=eps, steps=2, step_size=eps / 4, random_start=False)
    moved = run_attack(two, model, x, y, start=start)
    assert not torch.equal(moved, run_attack(two, model, x, y))


# ---------------------------------------------------------------- reference oracles -------------------

def hand_pgd(model, x, y, norm, eps, steps, step_size, step_norm=None):
    """A from-scratch projected ascent (no advlib code) without random start, stepping along sign(g) or
    g/‖g‖₂ (``step_norm``, default ``norm``) and projecting onto the ``norm`` ball and [0,1]."""
    # independent oracle: plain torch, written from Madry et al. 2018 / the S-O paper, not from advlib
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        with torch.no_grad():
            if (step_norm or norm) == "linf":
                x_adv = x_adv + step_size * g.sign()
            else:
                x_adv = x_adv + step_size * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            if norm == "linf":
                delta = (x_adv - x).clamp(-eps, eps)
            else:
                delta = x_adv - x
                dn = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                delta = delta * torch.clamp(eps / dn, max=1.0)
            x_adv = (x + delta).clamp(0, 1)
    return x_adv


def assert_nearly_equal(ours, ref):
    assert (ours - ref).abs().gt(1e-5).float().mean() < 1e-3  # identical up to float rounding


@pytest.mark.parametrize("norm", NORMS)
def test_pgd_and_fgsm_match_hand_written_loop(norm, natural_linear, mnist_batch):
    x, y = mnist_batch[0][:16], mnist_batch[1][:16]
    eps = EPS[norm]
    ours = pgd(natural_linear, x, y, norm=norm, eps=eps, steps=4, step_size=eps / 3, random_start=False)
    assert_nearly_equal(ours, hand_pgd(natural_linear, x, y, norm, eps, 4, eps / 3))
    ours = fgsm(natural_linear, x, y, eps=eps, norm=norm)
    assert_nearly_equal(ours, hand_pgd(natural_linear, x, y, norm, eps, 1, eps))


def test_custom_loss_is_used(natural_linear, batch):
    """A callable loss is maximised: -CE makes the attack *lower* the cross-entropy."""
    x, y = batch
    x_adv = pgd(natural_linear, x, y, norm="linf", eps=0.1, steps=5, step_size=0.03, random_start=False,
                loss=lambda logits, t: -F.cross_entropy(logits, t, reduction="none"))
    assert ce(natural_linear, x_adv, y).mean() < ce(natural_linear, x, y).mean()
    x_cw = pgd(natural_linear, x, y, norm="linf", eps=0.1, steps=5, step_size=0.03, random_start=False, loss="cw")
    margin = lambda z: z.gather(1, y[:, None]).squeeze(1) - z.masked_fill(F.one_hot(y, 10).bool(), -1e9).amax(1)
    with torch.no_grad():
        assert margin(natural_linear(x_cw)).mean() < margin(natural_linear(x)).mean()


# ---------------------------------------------------------------- S-O reduces to PGD ------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("samples", [1, 4])
def test_second_order_without_noise_is_pgd(norm, samples, natural_linear, make_model, mnist_batch):
    x, y = mnist_batch[0][:16], mnist_batch[1][:16]
    for model in (natural_linear, make_model("cnn").eval()):
        kw = dict(norm=norm, eps=EPS[norm], steps=6, step_size=EPS[norm] / 5)
        so = second_order(model, x, y, sigma=0.0, samples=samples, **kw)
        ref = pgd(model, x, y, random_start=False, **kw)
        assert torch.equal(so, ref)
        assert not torch.equal(so, x)


def test_second_order_l2_step_without_noise_is_l2_projected_ascent(natural_linear, mnist_batch):
    x, y = mnist_batch[0][:16], mnist_batch[1][:16]
    kw = dict(norm="linf", eps=0.3, steps=6)
    so = second_order(natural_linear, x, y, sigma=0.0, samples=1, linf_step="l2", **kw)
    # default: the ℓ2 length (×√784 = 28) of the step rule's sign step, 2.5·0.3/6 (0.28 at 40 steps of 0.01)
    assert_nearly_equal(so, hand_pgd(natural_linear, x, y, "linf", 0.3, 6, 28 * 2.5 * 0.3 / 6, step_norm="l2"))
    so = second_order(natural_linear, x, y, sigma=0.0, samples=1, linf_step="l2", step_size=0.1, **kw)
    assert_nearly_equal(so, hand_pgd(natural_linear, x, y, "linf", 0.3, 6, 0.1, step_norm="l2"))
    spec = AttackSpec.so("linf", steps=6, samples=1, sigma=0.0, step_size=0.1, linf_step="l2")
    assert torch.equal(so, run_attack(spec, natural_linear, x, y))
    # and the ℓ2 step really is a different rule from the sign step
    sign = second_order(natural_linear, x, y, sigma=0.0, samples=1, linf_step="sign", step_size=0.1, **kw)
    assert not torch.equal(so, sign)


# ---------------------------------------------------------------- the one runner ----------------------

SPECS = {
    "pgd-l2": AttackSpec.pgd("l2", eps=2.0, steps=3, step_size=0.8),
    "pgd-linf": AttackSpec.pgd("linf", eps=0.1, steps=3, step_size=0.04),
    "so-l2": AttackSpec.so("l2", eps=2.0, steps=2, samples=2, step_size=1.0),
    "so-linf-l2step": AttackSpec.so("linf", eps=0.1, steps=2, samples=2, linf_step="l2"),
    "fgsm-linf": AttackSpec.fgsm("linf", eps=0.1),
    "pgd-l2-end": AttackSpec.pgd("l2", eps=2.0, steps=3, step_size=0.8, random_start=False, clamp="end"),
    "so-l2-end": AttackSpec.so("l2", eps=2.0, steps=2, samples=2, step_size=1.0, clamp="end"),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_run_attack_stays_feasible_for_every_kind(name, natural_linear, batch, make_generator):
    x, y = batch
    spec = SPECS[name]
    x_adv = run_attack(spec, natural_linear, x, y, generator=make_generator(0))
    assert_feasible(x_adv, x, spec.norm, spec.eps)
    assert ce(natural_linear, x_adv, y).mean() > ce(natural_linear, x, y).mean()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_replay_on_a_cpu_changes_nothing(name, make_model, batch, make_generator):
    x, y = batch
    model = make_model("cnn").eval()
    eager = run_attack(SPECS[name], model, x, y, generator=make_generator(3))
    replayed = run_attack(SPECS[name], model, x, y, generator=make_generator(3), replay=True)
    assert torch.equal(eager, replayed)


@pytest.mark.parametrize("spec, graphed", [
    (AttackSpec.pgd("linf", steps=3), True),
    (AttackSpec.pgd("l2", steps=3), True),
    (AttackSpec.so("l2", steps=3, samples=2), False),  # σ > 0: averaged gradients are not recorded
    (AttackSpec.so("linf", steps=3, samples=1, sigma=0.0, linf_step="l2"), False),  # the graph steps by sign only
    (AttackSpec.pgd("l2", steps=3, random_start=False, clamp="end"), False),  # the graph clamps every step
])
def test_replay_routes_only_plain_pgd_steps_to_the_cuda_graph(spec, graphed, monkeypatch, natural_linear, batch,
                                                              make_generator):
    """With graphs "enabled" (patched: no GPU here), ``replay=True`` sends exactly the σ = 0 specs whose step
    direction is their own norm's to ``graphs.replay_ascent``; everything else, and every traced run, stays eager."""
    x, y = batch
    calls = []

    def spy(model, xs, target, start, **kw):
        calls.append(kw)
        return graphs.ascent_loop(model, xs, target, start, kw["eps"], kw["step_size"], norm=kw["norm"],
                                  steps=kw["steps"], loss=kw["loss"])

    monkeypatch.setattr(graphs, "enabled", lambda device: True)
    monkeypatch.setattr(graphs, "replay_ascent", spy)
    replayed = run_attack(spec, natural_linear, x, y, generator=make_generator(1), replay=True)
    assert len(calls) == (1 if graphed else 0)
    if graphed:
        assert (calls[0]["eps"], calls[0]["step_size"], calls[0]["norm"], calls[0]["steps"]) == (
            spec.eps, spec.step_size, spec.norm, spec.steps)
    assert torch.equal(replayed, run_attack(spec, natural_linear, x, y, generator=make_generator(1)))
    traced_attack(spec, natural_linear, x, y, generator=make_generator(1))
    run_attack(spec, natural_linear, x, y, generator=make_generator(1))  # replay=False
    assert len(calls) == (1 if graphed else 0)


def test_an_explicit_start_replaces_the_random_start(natural_linear, batch, make_generator):
    x, y = batch
    spec = AttackSpec.pgd("l2", eps=2.0, steps=3, step_size=0.5)  # random_start=True, overridden by start
    start = x + 0.01 * torch.randn(x.shape, generator=make_generator(0))
    a = run_attack(spec, natural_linear, x, y, start=start, generator=make_generator(1))
    b = run_attack(spec, natural_linear, x, y, start=start, generator=make_generator(2))
    assert torch.equal(a, b)  # no random numbers drawn: the start is given
    assert not torch.equal(a, run_attack(spec, natural_linear, x, y, generator=make_generator(1)))
    from_x = run_attack(spec, natural_linear, x, y, start=x.clone())
    assert torch.equal(from_x, run_attack(AttackSpec.pgd("l2", eps=2.0, steps=3, step_size=0.5, random_start=False),
                                          natural_linear, x, y))
    with pytest.raises(ValueError, match=r"start has shape \(7, 1, 28, 28\) but x has \(8, 1, 28, 28\)"):
        run_attack(spec, natural_linear, x, y, start=start[:7])


def test_a_callable_loss_replaces_the_specs_loss(natural_linear, batch):
    x, y = batch
    neg_ce = lambda logits, t: -F.cross_entropy(logits, t, reduction="none")
    as_ce = run_attack(AttackSpec.pgd("linf", eps=0.1, steps=5, step_size=0.03, random_start=False),
                       natural_linear, x, y, loss=neg_ce)
    as_cw = run_attack(AttackSpec.pgd("linf", eps=0.1, steps=5, step_size=0.03, random_start=False, loss="cw"),
                       natural_linear, x, y, loss=neg_ce)
    assert torch.equal(as_ce, as_cw)  # the spec's own loss plays no part
    assert ce(natural_linear, as_cw, y).mean() < ce(natural_linear, x, y).mean()
    cw = run_attack(AttackSpec.pgd("linf", eps=0.1, steps=5, step_size=0.03, random_start=False, loss="cw"),
                    natural_linear, x, y)
    assert not torch.equal(cw, as_cw)


def test_soft_targets_go_to_a_callable_loss(natural_linear, batch):
    """TRADES' use: the target is a probability matrix, not labels."""
    x, _ = batch
    with torch.no_grad():
        p = F.softmax(natural_linear(x), 1)
    kl = lambda logits, q: F.kl_div(F.log_softmax(logits, 1), q, reduction="none").sum(1)
    x_adv = run_attack(AttackSpec.pgd("l2", eps=1.0, steps=3, step_size=0.4), natural_linear, x, p, loss=kl,
                       start=x + 0.001)
    with torch.no_grad():
        assert (kl(natural_linear(x_adv), p) > 1e-4).all()
    assert_feasible(x_adv, x, "l2", 1.0)


def test_validate_checks_the_pixels_unless_told_not_to(natural_linear, batch):
    x, y = batch
    x = x.clone()
    x[0, 0, 0, 0] = 1.5
    spec = AttackSpec.pgd("linf", eps=0.1, steps=2, step_size=0.05, random_start=False)
    with pytest.raises(ValueError, match=r"x has pixels in \[.*, 1\.5\]; valid range is \[0,1\]"):
        run_attack(spec, natural_linear, x, y)
    with pytest.raises(ValueError, match="valid range is"):
        run_attack(spec, natural_linear, x, y, validate=True)
    out = run_attack(spec, natural_linear, x, y, validate=False)  # the training loop checked its data once
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("spec", [{"kind": "pgd", "norm": "linf"}, "pgd", None])
def test_a_spec_that_is_not_an_attack_spec_is_rejected(spec, natural_linear, batch):
    with pytest.raises(ValueError, match=f"spec must be an advlib.specs.AttackSpec, got {type(spec).__name__}"):
        run_attack(spec, natural_linear, *batch)


def test_target_rows_must_match(natural_linear, batch):
    x, y = batch
    with pytest.raises(ValueError, match="target has 3 rows but x has 8; they must match"):
        run_attack(AttackSpec.fgsm("l2", eps=1.0), natural_linear, x, y[:3])


@pytest.mark.parametrize("norm", NORMS)
def test_the_functional_attacks_are_run_attack_of_their_spec(norm, natural_linear, batch, make_generator):
    x, y = batch
    eps = EPS[norm]
    assert torch.equal(
        pgd(natural_linear, x, y, norm=norm, eps=eps, steps=3, step_size=eps / 4, generator=make_generator(7)),
        run_attack(AttackSpec.pgd(norm, eps=eps, steps=3, step_size=eps / 4), natural_linear, x, y,
                   generator=make_generator(7)))
    assert torch.equal(  # the defaults too: 40 steps by the step rule
        pgd(natural_linear, x, y, norm=norm, generator=make_generator(8)),
        run_attack(AttackSpec.pgd(norm), natural_linear, x, y, generator=make_generator(8)))
    assert torch.equal(
        second_order(natural_linear, x, y, norm=norm, steps=3, samples=2, generator=make_generator(9)),
        run_attack(AttackSpec.so(norm, steps=3, samples=2), natural_linear, x, y, generator=make_generator(9)))
    assert torch.equal(
        second_order(natural_linear, x, y, norm=norm, steps=2, samples=2, linf_step="l2", loss="cw",
                      generator=make_generator(10)),
        run_attack(AttackSpec.so(norm, steps=2, samples=2, linf_step="l2", loss="cw"), natural_linear, x, y,
                   generator=make_generator(10)))
    assert torch.equal(fgsm(natural_linear, x, y, eps=eps, norm=norm),
                       run_attack(AttackSpec.fgsm(norm, eps=eps), natural_linear, x, y))


def test_only_eps_given_follows_the_step_rule(natural_linear, batch, make_generator):
    """The documented behaviour change of issue 8: with only ε given, the step is 2.5·ε/steps."""
    x, y = batch
    ours = pgd(natural_linear, x, y, norm="linf", eps=0.1, steps=4, random_start=False)
    assert_nearly_equal(ours, hand_pgd(natural_linear, x, y, "linf", 0.1, 4, 2.5 * 0.1 / 4))


# ---------------------------------------------------------------- the authors' clamp at the end -------

def hand_l2_clamp_at_end(model, x, y, eps, steps, step_size):
    """The authors' ℓ2 loop without noise (Bai-Li/TRADES pgd_attack_mnist_l2.py L64-90), from scratch: start at x,
    step along g/‖g‖₂, rescale δ onto the ℓ2 ball if it is longer, no [0,1] clamp until after the last step."""
    # independent oracle: plain torch, written from the authors' script, not from advlib
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        with torch.no_grad():
            x_adv = x_adv + step_size * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta = x_adv - x
            dn = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x_adv = x + delta * torch.clamp(eps / dn, max=1.0)
    return x_adv.clamp(0, 1)


def end_and_step(spec_end, model, x, y, seed=0, batch_size=None):
    """The same spec run with clamp "end" and with clamp "step", from equal generators."""
    spec_step = replace(spec_end, clamp="step")
    return (run_attack(spec_end, model, x, y, generator=torch.Generator().manual_seed(seed), batch_size=batch_size),
            run_attack(spec_step, model, x, y, generator=torch.Generator().manual_seed(seed), batch_size=batch_size))


def test_clamp_at_end_matches_the_hand_written_authors_loop(natural_linear, mnist_batch):
    x, y = mnist_batch[0][:16], mnist_batch[1][:16]
    spec = AttackSpec.pgd("l2", eps=4.0, steps=8, step_size=1.0, random_start=False, clamp="end")
    ours = run_attack(spec, natural_linear, x, y)
    assert_nearly_equal(ours, hand_l2_clamp_at_end(natural_linear, x, y, 4.0, 8, 1.0))
    assert_feasible(ours, x, "l2", 4.0)
    # and the per-step clamp is the other hand-written loop
    assert_nearly_equal(run_attack(replace(spec, clamp="step"), natural_linear, x, y),
                        hand_pgd(natural_linear, x, y, "l2", 4.0, 8, 1.0))


@pytest.mark.parametrize("spec", [
    AttackSpec.pgd("l2", eps=0.2, steps=5, step_size=0.1, random_start=False, clamp="end"),
    AttackSpec.so("l2", eps=0.2, steps=5, sigma=0.1, samples=3, clamp="end"),
])
def test_clamp_at_end_equals_the_step_clamp_when_no_iterate_leaves_the_unit_box(spec, make_model, batch):
    x, y = batch
    x = 0.3 + 0.4 * x  # pixels in [0.3, 0.7]; with ε = 0.2 in ℓ2 no coordinate moves by more than 0.2
    end, step = end_and_step(spec, make_model("cnn").eval(), x, y, seed=3, batch_size=6)  # chunks of 6 (PGD), 2 (S-O)
    assert torch.equal(end, step)
    assert not torch.equal(end, x)


@pytest.mark.parametrize("spec", [
    AttackSpec.pgd("l2", eps=4.0, steps=10, random_start=False, clamp="end"),
    AttackSpec.so("l2", eps=4.0, steps=6, samples=2, clamp="end"),
])
def test_clamp_at_end_differs_measurably_on_mnist_and_stays_feasible(spec, natural_linear, mnist_batch):
    x, y = mnist_batch[0][:32], mnist_batch[1][:32]  # black backgrounds: steps push pixels below 0
    end, step = end_and_step(spec, natural_linear, x, y, seed=1)
    assert_feasible(end, x, "l2", spec.eps)
    assert (end - step).flatten(1).norm(dim=1).mean() > 0.1 * spec.eps
    # clamped once at the end, the perturbation loses what left [0,1]: shorter than the per-step clamp's
    assert lp.norm_of(end - x, "l2").mean() < lp.norm_of(step - x, "l2").mean()


def test_clamp_at_end_leaves_inputs_and_model_state_alone(tiny_model, batch, make_generator):
    x, y = batch
    x0 = x.clone()
    tiny_model.train()
    out = run_attack(AttackSpec.so("l2", eps=1.0, steps=2, samples=2, clamp="end"), tiny_model, x, y,
                     generator=make_generator())
    assert torch.equal(x, x0) and tiny_model.training and not out.requires_grad
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_clamp_at_end_refuses_a_given_start(natural_linear, batch):
    x, y = batch
    with pytest.raises(ValueError, match="clamp='end' .* starts at x itself; a given start is not supported"):
        run_attack(AttackSpec.pgd("l2", random_start=False, clamp="end"), natural_linear, x, y, start=x.clone())


def test_clamp_at_end_traces_its_returned_point(natural_linear, mnist_batch):
    x, y = mnist_batch[0][:16], mnist_batch[1][:16]
    traced = traced_attack(AttackSpec.pgd("l2", eps=4.0, steps=6, random_start=False, clamp="end"), natural_linear,
                           x, y)
    assert traced.trace.loss[-1] == pytest.approx(ce(natural_linear, traced.x_adv, y).mean().item(), rel=1e-5)


# ---------------------------------------------------------------- trace -------------------------------

@pytest.mark.parametrize("norm", NORMS)
def test_trace_records_every_iterate(norm, natural_linear, mnist_batch):
    x, y = mnist_batch
    steps = 7
    spec = AttackSpec.pgd(norm, eps=EPS[norm], steps=steps, step_size=EPS[norm] / 5, random_start=False)
    traced = traced_attack(spec, natural_linear, x, y)
    trace, x_adv = traced.trace, traced.x_adv
    assert isinstance(traced, Traced)
    assert len(trace.grad_norm) == len(trace.loss) == steps + 1
    # independent oracle: first entry at x, last at the returned x_adv, by plain torch cross-entropy and autograd
    assert trace.loss[0] == pytest.approx(ce(natural_linear, x, y).mean().item(), rel=1e-5)
    assert trace.loss[-1] == pytest.approx(ce(natural_linear, x_adv, y).mean().item(), rel=1e-5)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(natural_linear(xg), y, reduction="sum"), xg)
    assert trace.grad_norm[0] == pytest.approx(g.flatten(1).norm(dim=1).mean().item(), rel=1e-5)
    # chunked runs report the same batch means
    chunked = traced_attack(spec, natural_linear, x, y, batch_size=10).trace
    assert chunked.loss == pytest.approx(trace.loss, rel=1e-4)
    assert chunked.grad_norm == pytest.approx(trace.grad_norm, rel=1e-4)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_traced_attack_returns_what_run_attack_returns(name, natural_linear, batch, make_generator):
    x, y = batch
    spec = SPECS[name]
    traced = traced_attack(spec, natural_linear, x, y, generator=make_generator(4))
    assert len(traced.trace.loss) == len(traced.trace.grad_norm) == spec.steps + 1
    assert torch.equal(traced.x_adv, run_attack(spec, natural_linear, x, y, generator=make_generator(4)))


def test_traced_attack_at_eps_zero_still_traces(natural_linear, batch):
    x, y = batch
    traced = traced_attack(AttackSpec.pgd("l2", eps=0.0, steps=3, step_size=0.0), natural_linear, x, y)
    assert torch.equal(traced.x_adv, x) and len(traced.trace.loss) == 4
    assert traced.trace.loss == pytest.approx([ce(natural_linear, x, y).mean().item()] * 4, rel=1e-6)


@pytest.mark.parametrize("norm", NORMS)
def test_loss_increases_along_pgd_on_natural_model(norm, natural_linear, mnist_batch, generator):
    x, y = mnist_batch
    spec = AttackSpec.pgd(norm, eps=EPS[norm], steps=10, step_size=EPS[norm] / 8)
    loss = traced_attack(spec, natural_linear, x, y, generator=generator).trace.loss
    assert len(loss) == 11
    assert loss[-1] > 2 * loss[0] and loss[-1] > loss[0] + 1.0
    assert all(b >= a - 1e-4 for a, b in zip(loss, loss[1:])), loss  # non-decreasing, step by step


def test_second_order_trace(natural_linear, batch, generator):
    spec = AttackSpec.so("l2", eps=2.0, steps=3, sigma=0.1, samples=2)
    trace = traced_attack(spec, natural_linear, *batch, generator=generator).trace
    assert len(trace.loss) == len(trace.grad_norm) == 4
    assert all(v > 0 for v in trace.grad_norm)


# ---------------------------------------------------------------- strength ----------------------------

@pytest.mark.slow
def test_pgd_breaks_naturally_trained_madry_cnn(load_quiet, record_property):
    """MadryCNN, trained naturally for ~5 s, is accurate on clean images and near 0% under ℓ∞ PGD ε=0.3."""
    start = time.perf_counter()
    x, y = load_quiet("train", limit=2000)
    x_test, y_test = load_quiet("test", limit=300)
    torch.manual_seed(0)
    model = train_naturally(MadryCNN(), x, y, epochs=2, batch_size=50, lr=1e-3)
    with torch.no_grad():
        natural = (model(x_test).argmax(1) == y_test).float().mean().item()
    # 20 steps of 0.0375 instead of Madry's 40 of 0.01: same reach (2.5 ε), half the time
    x_adv = pgd(model, x_test, y_test, norm="linf", eps=0.3, steps=20, step_size=0.0375,
                generator=torch.Generator().manual_seed(1))
    assert_feasible(x_adv, x_test, "linf", 0.3)
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y_test).float().mean().item()
    seconds = time.perf_counter() - start
    print(f"\nMadryCNN natural training (2,000 images, 2 epochs): natural acc {natural:.1%}, "
          f"PGD-linf eps=0.3 acc {robust:.1%} on {len(y_test)} test images ({seconds:.1f} s)")
    record_property("natural_accuracy", natural)
    record_property("pgd_linf_accuracy", robust)
    assert natural > 0.85
    assert robust < 0.10

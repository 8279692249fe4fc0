"""``advlib.training`` defenses (natural, madry, trades, ensemble, atda): their losses against hand-computed
values, how each calls ``training_attack``, and one optimisation step of each defense.

Oracles are written independently of advlib: explicit Python loops over a 3-example batch in float64
(``math.exp``/``math.log``), or the closed forms of the anchors (protocols.md §2.1, §3.3, §4.2-4.3).
"""
from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlib.specs import AttackSpec
from advlib.training import ATDA, EnsembleAT, MadryAT, Natural, Trades, training_norm
from advlib.training import atda as atda_mod
from advlib.training import ensemble as ensemble_mod
from advlib.training import madry as madry_mod
from advlib.training import trades as trades_mod
from conftest import mlp

# ---------------------------------------------------------------------------------------------- helpers
# independent oracle: _softmax … _hand_update below are plain-Python (math module) formulas from the anchors' code


def _rows(seed: int, n: int = 3, k: int = 10, scale: float = 2.0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.uniform(-scale, scale) for _ in range(k)] for _ in range(n)]


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def _log_softmax(row: list[float]) -> list[float]:
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def _ce_mean(rows: list[list[float]], labels: list[int]) -> float:
    return sum(-_log_softmax(r)[y] for r, y in zip(rows, labels)) / len(rows)


def _kl(p: list[float], q_logits: list[float]) -> float:
    """Σ_c p_c log(p_c / q_c), with 0·log 0 = 0 (nn.KLDivLoss's convention)."""
    log_q = _log_softmax(q_logits)
    return sum(pc * (math.log(pc) - lq) for pc, lq in zip(p, log_q) if pc > 0)


def _hand_coral(s: list[list[float]], t: list[list[float]]) -> float:
    def scatter(rows):
        n, k = len(rows), len(rows[0])
        mean = [sum(r[j] for r in rows) / n for j in range(k)]
        return [[sum((r[a] - mean[a]) * (r[b] - mean[b]) for r in rows) for b in range(k)] for a in range(k)]
    cs, ct = scatter(s), scatter(t)
    k = len(cs)
    return sum(abs(cs[a][b] - ct[a][b]) for a in range(k) for b in range(k)) / (k * k)


def _hand_mmd(s, t) -> float:
    n, k = len(s), len(s[0])
    return sum(abs(sum(r[j] for r in s) / n - sum(r[j] for r in t) / len(t)) for j in range(k)) / k


def _softplus(v: float) -> float:
    return math.log1p(math.exp(-abs(v))) + max(v, 0.0)


def _hand_margin(features, labels, centres) -> float:
    n, K = len(features), len(centres)
    total = 0.0
    for f, y in zip(features, labels):
        dist = [sum(abs(a - b) for a, b in zip(f, c)) for c in centres]
        for j in range(K):
            if j != y:
                total += _softplus(dist[y] - dist[j])
    return total / (n * (K - 1))


def _hand_update(centres, features, labels, alpha):
    out = [list(c) for c in centres]
    for j in range(len(centres)):
        members = [f for f, y in zip(features, labels) if y == j]
        n_j = len(members)
        for f in members:
            for d in range(len(f)):
                out[j][d] -= alpha * (centres[j][d] - f[d]) / (1 + n_j)
    return out


class Fixed(nn.Module):
    """A model whose logits are a fixed linear map of the flattened image (float64, deterministic)."""

    def __init__(self, seed: int = 0, dtype=torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(0.05 * torch.randn(784, 10, generator=g, dtype=dtype))
        self.b = nn.Parameter(0.1 * torch.randn(10, generator=g, dtype=dtype))

    def forward(self, x):
        return x.flatten(1).to(self.w.dtype) @ self.w + self.b


def _images(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed), dtype=dtype)


ATTACKS = {"l2": AttackSpec("pgd", "l2", 4.0, 3, 1.0), "linf": AttackSpec("pgd", "linf", 0.3, 3, 0.1)}


class TrainingSpy:
    """Replaces ``training_attack(source, x, target, spec, eps_scale, generator, **kwargs)`` in a defense module:
    records the attack it would run (``spec`` at ``eps_scale``) and returns a fixed x_adv (or x itself)."""

    def __init__(self, x_adv: torch.Tensor | None = None) -> None:
        self.calls: list[dict] = []
        self.x_adv = x_adv

    def __call__(self, source, x, target, spec, eps_scale, generator, **kwargs):
        scaled = spec.scaled(eps_scale)
        self.calls.append({"model": source, "norm": scaled.norm, "eps": scaled.eps, "steps": scaled.steps,
                           "step_size": scaled.step_size, "random_start": scaled.random_start, "target": target,
                           "generator": generator, **kwargs})
        return (x if self.x_adv is None else self.x_adv).detach().clone()


# ---------------------------------------------------------------------------------------------- TRADES


def test_kl_per_example_matches_hand_sum_p_log_p_over_q():
    clean, adv = _rows(1), _rows(2)
    p = [_softmax(r) for r in clean]
    got = trades_mod.kl_per_example(_t(adv), _t(p))
    want = [_kl(pi, qi) for pi, qi in zip(p, adv)]
    assert got.shape == (3,)
    assert torch.allclose(got, _t(want), rtol=0, atol=1e-12)
    assert all(w > 0 for w in want)


def test_kl_direction_is_kl_clean_given_adv_not_reverse():
    clean, adv = _rows(3), _rows(4)
    p = [_softmax(r) for r in clean]
    got = trades_mod.kl_per_example(_t(adv), _t(p))
    reverse = [_kl(_softmax(a), c) for a, c in zip(adv, clean)]  # KL(q ‖ p)
    assert not torch.allclose(got, _t(reverse), atol=1e-6)


def test_kl_zero_probability_terms_contribute_zero():
    p = [[0.5, 0.5] + [0.0] * 8, [1.0] + [0.0] * 9, [0.1] * 10]
    adv = _rows(5)
    got = trades_mod.kl_per_example(_t(adv), _t(p))
    want = [_kl(pi, qi) for pi, qi in zip(p, adv)]
    assert torch.isfinite(got).all()
    assert torch.allclose(got, _t(want), rtol=0, atol=1e-12)
    # identical distributions: KL = 0
    same = trades_mod.kl_per_example(_t(adv), _t([_softmax(r) for r in adv]))
    assert torch.allclose(same, torch.zeros(3, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("beta", [1.0, 6.0])
def test_trades_loss_is_ce_mean_plus_beta_mean_kl(beta):
    model = Fixed(0)
    x, x_adv = _images(3, 10, torch.float64), _images(3, 11, torch.float64)
    y = torch.tensor([3, 0, 7])
    loss, logits, logits_adv = trades_mod.trades_loss(model, x, y, x_adv, beta)
    clean_rows, adv_rows = model(x).tolist(), model(x_adv).tolist()
    ce = _ce_mean(clean_rows, y.tolist())
    kl = sum(_kl(_softmax(c), a) for c, a in zip(clean_rows, adv_rows)) / 3
    assert loss.item() == pytest.approx(ce + beta * kl, rel=1e-12, abs=1e-12)
    assert torch.equal(logits, model(x)) and torch.equal(logits_adv, model(x_adv))


def test_trades_loss_gradient_flows_through_both_clean_terms():
    """TRADES does not detach softmax(f(x)) in the KL (trades.py L73-83): the parameter gradient must match
    the autograd gradient of the hand formula with p = softmax(f(x)) attached, not the detached one."""
    x, x_adv, y = _images(3, 12, torch.float64), _images(3, 13, torch.float64), torch.tensor([1, 2, 3])

    def grads(fn):
        m = Fixed(1)
        fn(m).backward()
        return m.w.grad.clone()

    lib = grads(lambda m: trades_mod.trades_loss(m, x, y, x_adv, 6.0)[0])

    def hand(m, detach):
        lc, la = m(x), m(x_adv)
        p = torch.exp(lc - torch.logsumexp(lc, 1, keepdim=True))
        p = p.detach() if detach else p
        log_q = la - torch.logsumexp(la, 1, keepdim=True)
        kl = (p * (torch.log(p) - log_q)).sum(1).mean()
        ce = -(lc - torch.logsumexp(lc, 1, keepdim=True)).gather(1, y[:, None]).mean()
        return ce + 6.0 * kl

    attached, detached = grads(lambda m: hand(m, False)), grads(lambda m: hand(m, True))
    assert torch.allclose(lib, attached, atol=1e-12)
    assert not torch.allclose(lib, detached, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_trades_adversary_matches_reference_loop(norm):
    """The inner maximisation against a plain re-implementation of yaodongyu/TRADES trades.py: start at
    x + 0.001·N(0,I) (clamped, as advlib projects the start), then sign steps (ℓ∞) or g/‖g‖₂ steps (ℓ2),
    projection onto the ball and [0,1] after every step; KL summed (nn.KLDivLoss(size_average=False))."""
    model = Fixed(2)
    x = _images(3, 14, torch.float64) * 0.8  # some zero-ish pixels are clamped
    x[0, 0, :5] = 0.0
    spec = AttackSpec("pgd", norm, {"linf": 0.3, "l2": 2.0}[norm], 4, {"linf": 0.05, "l2": 0.5}[norm])
    got = trades_mod.trades_adversary(model, x, spec, torch.Generator().manual_seed(7))

    # independent oracle: the loop of yaodongyu/TRADES trades.py in plain torch, no advlib code
    g = torch.Generator().manual_seed(7)
    p = F.softmax(model(x), 1).detach()
    x_adv = (x + 0.001 * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)
    for _ in range(spec.steps):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), 1), p, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        if norm == "linf":
            x_adv = x_adv.detach() + spec.step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - spec.eps), x + spec.eps).clamp(0, 1)
        else:
            gn = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x_adv = x_adv.detach() + spec.step_size * grad / gn
            eta = x_adv - x
            en = eta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            eta = torch.where(en > spec.eps, eta * spec.eps / en, eta)
            x_adv = (x + eta).clamp(0, 1)
    assert torch.allclose(got, x_adv, atol=1e-9)
    kl_after = trades_mod.kl_per_example(model(got), p)
    assert (kl_after > 1e-4).all()


def test_trades_adversary_eps_scale_zero_returns_x():
    x = _images(3, 15)
    spec = ATTACKS["linf"]
    out = trades_mod.trades_adversary(mlp(), x, spec, torch.Generator().manual_seed(0), eps_scale=0.0)
    assert torch.equal(out, x)


# ---------------------------------------------------------------------------------------------- ATDA


def test_coral_is_l1_mean_of_unnormalised_scatter_difference():
    s, t = _rows(20), _rows(21, scale=3.0)
    got = atda_mod.coral(_t(s), _t(t))
    assert got.item() == pytest.approx(_hand_coral(s, t), rel=1e-12)
    # neither 1/(m−1)-normalised nor squared Frobenius/(4d²)
    cs, ct = torch.cov(_t(s).T), torch.cov(_t(t).T)
    assert got.item() != pytest.approx((cs - ct).abs().mean().item(), rel=1e-3)
    assert got.item() != pytest.approx(((cs - ct) ** 2).sum().item() / 400, rel=1e-3)


def test_coral_is_translation_invariant_and_zero_for_shifted_copies():
    s = _rows(22)
    shifted = [[v + 5.0 for v in r] for r in s]
    assert atda_mod.coral(_t(s), _t(shifted)).item() == pytest.approx(0.0, abs=1e-12)


def test_mmd_is_l1_mean_of_mean_difference():
    s, t = _rows(23), _rows(24)
    assert atda_mod.mmd(_t(s), _t(t)).item() == pytest.approx(_hand_mmd(s, t), rel=1e-12)
    shifted = [[v + 0.5 for v in r] for r in s]
    assert atda_mod.mmd(_t(s), _t(shifted)).item() == pytest.approx(0.5, rel=1e-12)


def test_margin_softplus_of_l1_distances_over_n_times_k_minus_1():
    feats = _rows(25, n=6)
    labels = [4, 0, 9, 4, 0, 9]
    centres = _rows(26, n=10, scale=1.0)
    got = atda_mod.margin(_t(feats), torch.tensor(labels), _t(centres))
    assert got.item() == pytest.approx(_hand_margin(feats, labels, centres), rel=1e-12)


def test_margin_with_zero_centres_is_log2():
    """Zero (initial) centres: every distance is ‖f‖₁, so every term is softplus(0) = log 2."""
    feats = _rows(27, n=6)
    got = atda_mod.margin(_t(feats), torch.tensor([1, 2, 3, 1, 2, 3]), torch.zeros(10, 10, dtype=torch.float64))
    assert got.item() == pytest.approx(math.log(2), rel=1e-12)


def test_update_centres_accumulates_duplicate_labels():
    feats = _rows(28, n=6)
    labels = [2, 2, 5, 2, 2, 5]  # class 2 four times, class 5 twice: scatter_sub accumulates
    centres = _rows(29, n=10, scale=1.0)
    got = atda_mod.update_centres(_t(centres), _t(feats), torch.tensor(labels), alpha=0.1)
    want = _hand_update(centres, feats, labels, 0.1)
    assert torch.allclose(got, _t(want), rtol=0, atol=1e-12)
    untouched = [j for j in range(10) if j not in labels]
    assert torch.equal(got[untouched], _t(centres)[untouched])
    # closed form per class: c_j −= α·n_j·(c_j − mean_j f)/(1 + n_j)
    c2, mean2 = _t(centres)[2], _t([f for f, y in zip(feats, labels) if y == 2]).mean(0)
    assert torch.allclose(got[2], c2 - 0.1 * 4 * (c2 - mean2) / 5, atol=1e-12)


def test_update_centres_default_alpha_is_0_1():
    feats, labels = _rows(30, n=2), [1, 1]
    got = atda_mod.update_centres(torch.zeros(10, 10, dtype=torch.float64), _t(feats), torch.tensor(labels))
    want = _hand_update([[0.0] * 10] * 10, feats, labels, 0.1)
    assert atda_mod.ALPHA == 0.1
    assert torch.allclose(got, _t(want), atol=1e-12)


def test_atda_loss_total_is_ce_plus_ce_plus_third_of_domain_terms():
    clean, adv = _rows(31), _rows(32)
    y = [1, 8, 1]
    centres = _rows(33, n=10, scale=1.0)
    got = atda_mod.atda_loss(_t(clean), _t(adv), torch.tensor(y), _t(centres))
    domain = _hand_coral(clean, adv) + _hand_mmd(clean, adv) + _hand_margin(clean + adv, y + y, centres)
    want = _ce_mean(clean, y) + _ce_mean(adv, y) + domain / 3
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_atda_defense_uses_old_centres_then_updates_them(monkeypatch):
    model = Fixed(3)
    x, x_adv, y = _images(3, 34, torch.float64), _images(3, 35, torch.float64), torch.tensor([0, 5, 5])
    monkeypatch.setattr(atda_mod, "training_attack", TrainingSpy(x_adv))
    defense = ATDA("linf", ATTACKS)
    start = _rows(36, n=10, scale=1.0)
    defense.load_state_dict({"centres": _t(start)})
    loss, stats = defense.loss(model, x, y, step=0, generator=torch.Generator().manual_seed(0))
    clean, adv = model(x).tolist(), model(x_adv).tolist()
    want = (_ce_mean(clean, y.tolist()) + _ce_mean(adv, y.tolist())
            + (_hand_coral(clean, adv) + _hand_mmd(clean, adv) + _hand_margin(clean + adv, y.tolist() * 2, start)) / 3)
    assert loss.item() == pytest.approx(want, rel=1e-10)
    new = _hand_update(start, clean + adv, y.tolist() * 2, 0.1)
    assert torch.allclose(defense.state_dict()["centres"], _t(new), atol=1e-10)
    assert not defense.centres.requires_grad
    assert set(stats) == {"acc", "adv_acc"}


@pytest.mark.parametrize("labels", ["true", "predicted"])
def test_atda_attacks_the_true_or_the_predicted_labels(monkeypatch, labels):
    model = Fixed(3, dtype=torch.float32)
    x, y = _images(3, 37, torch.float32), torch.tensor([0, 5, 5])
    spy = TrainingSpy()
    monkeypatch.setattr(atda_mod, "training_attack", spy)
    ATDA("linf", ATTACKS, attack_labels=labels).loss(model, x, y, step=0, generator=torch.Generator().manual_seed(0))
    want = y if labels == "true" else model(x).argmax(1)
    assert not torch.equal(model(x).argmax(1), y)  # the two choices differ here
    assert torch.equal(spy.calls[0]["target"], want)


def test_atda_rejects_unknown_attack_labels():
    with pytest.raises(ValueError, match="guessed"):
        ATDA("linf", ATTACKS, attack_labels="guessed")


def test_atda_initial_centres_are_zero_10x10():
    d = ATDA("l2", ATTACKS)
    assert torch.equal(d.centres, torch.zeros(10, 10))


# ---------------------------------------------------------------------------------------------- Ensemble


def test_draw_source_is_uniform_over_static_models_and_self():
    g = torch.Generator().manual_seed(0)
    n_static, draws = 3, 8000
    counts = [0] * (n_static + 1)
    for _ in range(draws):
        k = ensemble_mod.draw_source(n_static, g)
        assert isinstance(k, int)
        counts[k] += 1  # IndexError if k is out of range
    expected = draws / (n_static + 1)
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 16.27, counts  # χ²(3 dof) 99.9 % quantile
    assert all(c > 0 for c in counts)


def test_draw_source_without_static_models_is_always_self():
    g = torch.Generator().manual_seed(1)
    assert {ensemble_mod.draw_source(0, g) for _ in range(50)} == {0}


class Counting(nn.Module):
    """Wraps a model and counts forward calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def _zero_model() -> nn.Module:
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.zeros_(m[1].weight)
    nn.init.zeros_(m[1].bias)
    return m


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_ensemble_uses_drawn_static_model(monkeypatch, norm):
    """A static model with zero input gradient crafts x_adv == x (no random start); the model's own PGD does not.
    The source the defense uses must be the one draw_source picks with the same generator."""
    attacks = {n: AttackSpec("pgd", n, s.eps, 3, s.step_size, random_start=False) for n, s in ATTACKS.items()}
    statics = [Counting(_zero_model()) for _ in range(3)]
    defense = EnsembleAT(norm, attacks, statics)
    model = Counting(mlp(1))
    x, y = _images(4, 40), torch.tensor([0, 1, 2, 3])
    captured = {}
    real_attack = ensemble_mod.training_attack

    def spy(source, x_, y_, *args):
        captured["source"] = source
        captured["x_adv"] = real_attack(source, x_, y_, *args)
        return captured["x_adv"]

    monkeypatch.setattr(ensemble_mod, "training_attack", spy)
    seen = set()
    for seed in range(12):
        expected = ensemble_mod.draw_source(3, torch.Generator().manual_seed(seed))
        before, model_before = [s.calls for s in statics], model.calls
        _, stats = defense.loss(model, x, y, step=0, generator=torch.Generator().manual_seed(seed))
        seen.add(expected)
        after = [s.calls for s in statics]
        if expected < 3:
            assert captured["source"] is statics[expected]
            assert torch.equal(captured["x_adv"], x)  # zero gradient: no movement
            assert [a > b for a, b in zip(after, before)] == [i == expected for i in range(3)]
            assert model.calls == model_before + 2  # only f(x) and f(x_adv)
            assert stats["self_source"].item() == 0.0
        else:
            assert captured["source"] is model
            assert not torch.equal(captured["x_adv"], x)
            assert after == before
            assert model.calls > model_before + 2
            assert stats["self_source"].item() == 1.0
    assert seen == {0, 1, 2, 3}


def test_ensemble_static_models_are_frozen_and_in_eval_mode():
    statics = [nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))]
    EnsembleAT("linf", ATTACKS, statics)
    assert not statics[0].training
    assert not any(p.requires_grad for p in statics[0].parameters())


def test_ensemble_loss_is_half_clean_plus_half_adversarial_ce(monkeypatch):
    model = Fixed(4)
    x, x_adv, y = _images(3, 41, torch.float64), _images(3, 42, torch.float64), torch.tensor([2, 9, 4])
    monkeypatch.setattr(ensemble_mod, "training_attack", TrainingSpy(x_adv))
    loss, _ = EnsembleAT("l2", ATTACKS, [Fixed(5)]).loss(model, x, y, 0, torch.Generator().manual_seed(0))
    want = 0.5 * _ce_mean(model(x).tolist(), y.tolist()) + 0.5 * _ce_mean(model(x_adv).tolist(), y.tolist())
    assert loss.item() == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------------------------------------- Madry, natural, and how each defense attacks


def test_madry_loss_is_ce_on_adversarial_examples_only(monkeypatch):
    model = Fixed(6)
    x, x_adv, y = _images(3, 43, torch.float64), _images(3, 44, torch.float64), torch.tensor([7, 7, 1])
    monkeypatch.setattr(madry_mod, "training_attack", TrainingSpy(x_adv))
    loss, stats = MadryAT("linf", ATTACKS).loss(model, x, y, 0, torch.Generator())
    assert loss.item() == pytest.approx(_ce_mean(model(x_adv).tolist(), y.tolist()), rel=1e-12)
    assert loss.item() != pytest.approx(_ce_mean(model(x).tolist(), y.tolist()), rel=1e-6)
    assert set(stats) == {"adv_acc"}


def test_natural_loss_is_clean_ce():
    model, x, y = Fixed(7), _images(3, 45, torch.float64), torch.tensor([0, 1, 2])
    loss, stats = Natural().loss(model, x, y, 0, torch.Generator())
    assert loss.item() == pytest.approx(_ce_mean(model(x).tolist(), y.tolist()), rel=1e-12)
    acc = sum(max(range(10), key=lambda c: r[c]) == t for r, t in zip(model(x).tolist(), y.tolist())) / 3
    assert stats["acc"].item() == pytest.approx(acc)


def _spec_of(call: dict) -> tuple:
    return call["norm"], call["eps"], call["steps"], call["step_size"], call["random_start"]


@pytest.mark.parametrize("norm", ["mix", "l2", "linf"])
def test_madry_uses_the_attack_spec_of_the_step_norm(monkeypatch, norm):
    spy = TrainingSpy()
    monkeypatch.setattr(madry_mod, "training_attack", spy)
    defense, model = MadryAT(norm, ATTACKS), mlp()
    x, y = _images(2, 46), torch.tensor([0, 1])
    for step in range(4):
        defense.loss(model, x, y, step, torch.Generator(), 0.5)
    want = [training_norm(norm, s) for s in range(4)]
    for call, n in zip(spy.calls, want):
        s = ATTACKS[n]
        assert _spec_of(call) == (n, s.eps * 0.5, s.steps, s.step_size * 0.5, s.random_start)
        assert call["model"] is model


@pytest.mark.parametrize("defense_name", ["trades", "ensemble", "atda"])
def test_other_defenses_follow_the_mix_alternation(monkeypatch, defense_name):
    spy = TrainingSpy()
    module = {"trades": trades_mod, "ensemble": ensemble_mod, "atda": atda_mod}[defense_name]
    monkeypatch.setattr(module, "training_attack", spy)
    if defense_name == "trades":
        defense = Trades("mix", ATTACKS, beta=6.0)
    elif defense_name == "ensemble":
        defense = EnsembleAT("mix", ATTACKS, [])
    else:
        defense = ATDA("mix", ATTACKS)
    x, y = _images(2, 47), torch.tensor([0, 1])
    for step in range(4):
        defense.loss(mlp(), x, y, step, torch.Generator(), 1.0)
    norms = [c["norm"] for c in spy.calls]
    eps = [c["eps"] for c in spy.calls]
    assert norms == ["l2", "linf", "l2", "linf"]
    assert eps == [4.0, 0.3, 4.0, 0.3]


def test_trades_attacks_its_kl_from_x_plus_small_noise(monkeypatch):
    """TRADES calls ``training_attack`` with the KL to the clean prediction and the start x + 0.001·N(0, I)."""
    spy = TrainingSpy()
    monkeypatch.setattr(trades_mod, "training_attack", spy)
    model, x, y = mlp(2), _images(3, 48), torch.tensor([4, 5, 6])
    Trades("l2", ATTACKS, beta=6.0).loss(model, x, y, 0, torch.Generator().manual_seed(1), 0.5)
    (call,) = spy.calls
    assert call["loss"] is trades_mod.kl_per_example
    assert torch.allclose(call["target"], F.softmax(model(x), 1)) and call["target"].shape == (3, 10)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(call["start"], x + trades_mod.INIT_STD * noise) and trades_mod.INIT_STD == 0.001
    assert (call["eps"], call["step_size"]) == (2.0, 0.5)  # ATTACKS["l2"] at the warm-up's half


@pytest.mark.parametrize("defense_name", ["madry", "ensemble", "atda"])
def test_the_other_defenses_attack_with_true_labels_and_the_specs_own_loss(monkeypatch, defense_name):
    spy = TrainingSpy()
    module = {"madry": madry_mod, "ensemble": ensemble_mod, "atda": atda_mod}[defense_name]
    monkeypatch.setattr(module, "training_attack", spy)
    defense = {"madry": lambda: MadryAT("linf", ATTACKS), "ensemble": lambda: EnsembleAT("linf", ATTACKS, []),
               "atda": lambda: ATDA("linf", ATTACKS)}[defense_name]()
    x, y = _images(2, 49), torch.tensor([3, 8])
    generator = torch.Generator()
    defense.loss(mlp(), x, y, 0, generator, 1.0)
    (call,) = spy.calls
    assert call["target"] is y and call["generator"] is generator
    assert "loss" not in call and "start" not in call


# ---------------------------------------------------------------------------------------------- one step lowers the loss


def _defense(name: str, norm: str):
    if name == "natural":
        return Natural()
    if name == "madry":
        return MadryAT(norm, ATTACKS)
    if name == "trades":
        return Trades(norm, ATTACKS, beta=6.0)
    if name == "ensemble":
        return EnsembleAT(norm, ATTACKS, [mlp(11), mlp(12)])
    d = ATDA(norm, ATTACKS)
    d.centres = torch.randn(10, 10, generator=torch.Generator().manual_seed(3))  # non-trivial margin term
    return d


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", ["natural", "madry", "trades", "ensemble", "atda"])
def test_one_adam_step_lowers_the_loss_on_a_fixed_batch(name, norm, load_quiet):
    x, y = load_quiet("train", 32)
    model, defense = mlp(0), _defense(name, norm)
    state = defense.state_dict() if hasattr(defense, "state_dict") else None
    saved = {k: v.clone() for k, v in state.items()} if state else None

    def loss_now():
        if saved is not None:
            defense.load_state_dict({k: v.clone() for k, v in saved.items()})
        return defense.loss(model, x, y, 0, torch.Generator().manual_seed(5), 1.0)[0]

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = loss_now()
    opt.zero_grad()
    before.backward()
    grad_norm = sum(p.grad.norm() ** 2 for p in model.parameters()).sqrt()
    assert grad_norm > 0
    opt.step()
    after = loss_now()
    assert after.item() < before.item() - 1e-4, (before.item(), after.item())

"""``advlib.strong``: AutoAttack's spec, its cascade per example, and the in-ball check of what it returns.

The oracle is pyautoattack itself: ``AutoAttack(version="custom")`` run over the whole cascade in one call, with
the same seed, restarts and target classes, must flag exactly the points ``advlib.strong.autoattack`` keeps.
"""
from __future__ import annotations

import pytest
import torch

from advlib import lp, runtime, strong
from advlib.evaluation import predict
from advlib.strong import ATTACKS, AutoAttackSpec, autoattack
from conftest import linear_model

# A cheap but complete cascade: every attack of the standard suite, fewer target classes and Square queries.
CHEAP = {"attacks": ATTACKS, "target_classes": 2, "square_queries": 50}


@pytest.fixture(scope="module")
def points(load_quiet):
    x, y = load_quiet("test", 48)
    return x.clone(), y.clone()


# ---------------------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize("kwargs, match", [
    ({"norm": "l0", "eps": 0.3}, "unknown norm 'l0'; valid choices: 'l1', 'l2', 'linf'"),
    ({"norm": "l1", "eps": -12.0}, "-12.0"),
    ({"norm": "l1", "eps": 12.0, "restarts": 0}, "restarts"),
    ({"norm": "linf", "eps": -0.1}, "-0.1"),
    ({"norm": "linf", "eps": float("nan")}, "nan"),
    ({"norm": "l2", "eps": 1.0, "attacks": ("apgd-ce", "apgd-dlr")}, "'apgd-dlr'"),
    ({"norm": "l2", "eps": 1.0, "attacks": ()}, "at least one attack"),
    ({"norm": "l2", "eps": 1.0, "target_classes": 0}, "target_classes"),
    ({"norm": "l2", "eps": 1.0, "square_queries": 0}, "square_queries"),
])
def test_spec_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoAttackSpec(**kwargs)


def test_spec_defaults_config_and_with_eps():
    spec = AutoAttackSpec("linf", 0.3)
    assert spec.attacks == ("apgd-ce", "apgd-t") and spec.kind == "autoattack"
    assert (spec.target_classes, spec.square_queries) == (9, 5_000)  # AutoAttack's standard version
    assert AutoAttackSpec("l2", 4, attacks=["apgd-ce"]).attacks == ("apgd-ce",)  # lists become tuples
    assert isinstance(AutoAttackSpec("l2", 4).eps, float)
    config = spec.config()
    assert config["kind"] == "autoattack" and config["attacks"] == ["apgd-ce", "apgd-t"]
    assert config["package"] == strong.package_version() == "0.2.0"
    moved = spec.with_eps(0.1)
    assert moved.eps == 0.1 and moved.attacks == spec.attacks and spec.eps == 0.3
    assert spec.restarts == 1 and config["restarts"] == 1
    # the new field at its default is in no key: an existing record's AutoAttack row keeps its identity
    from advlib import identity
    assert "restarts" not in identity.spec_config(spec)
    assert identity.spec_config(AutoAttackSpec("l1", 12.0, restarts=5))["restarts"] == 5


def test_standard_versions():
    """AutoAttack's ``_set_version("standard")``: ℓ∞/ℓ2 1 restart and 9 target classes; ℓ1 5 and 5."""
    assert AutoAttackSpec.standard("linf", 0.3) == AutoAttackSpec("linf", 0.3, ATTACKS, 9, 5_000, 1)
    assert AutoAttackSpec.standard("l2", 2.0) == AutoAttackSpec("l2", 2.0, ATTACKS, 9, 5_000, 1)
    assert AutoAttackSpec.standard("l1", 12.0) == AutoAttackSpec("l1", 12.0, ATTACKS, 5, 5_000, 5)
    assert AutoAttackSpec.standard("l1", 12.0, ("apgd-ce",)).attacks == ("apgd-ce",)


# ---------------------------------------------------------------------------------------------- the cascade


def _oracle(model, x, y, spec: AutoAttackSpec, seed: int, batch_size: int = 500) -> torch.Tensor:
    """Robust flags from pyautoattack's own cascade, configured here independently of ``strong._configured``."""
    from pyautoattack import AutoAttack
    attack = AutoAttack(model, norm={"l1": "L1", "l2": "L2", "linf": "Linf"}[spec.norm], eps=spec.eps,
                        version="custom", attacks=list(spec.attacks), seed=seed, device=x.device)
    attack.verbose = False
    attack.apgd.n_restarts = spec.restarts
    if spec.norm == "l1":  # AutoAttack's standard ℓ1 version (autoattack.py, _set_version)
        attack.apgd.use_largereps = attack.apgd_targeted.use_largereps = True
    attack.apgd_targeted.n_restarts = 1
    attack.fab.n_restarts = 1
    attack.apgd_targeted.n_target_classes = spec.target_classes
    attack.fab.n_target_classes = spec.target_classes
    attack.square.n_queries = spec.square_queries
    with torch.no_grad():
        _, y_adv = attack.run_standard_evaluation(x, y, batch_size=batch_size)
    return y_adv == y


@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 1.0), ("l1", 3.0)])
def test_cascade_is_nested_and_ends_at_autoattacks_own_robust_flags(natural_linear, points, norm, eps):
    x, y = points
    spec = AutoAttackSpec(norm, eps, **CHEAP)
    out = autoattack(natural_linear, x, y, spec, seed=3)
    assert list(out) == list(ATTACKS)
    clean = predict(natural_linear, x) == y
    previous = clean
    for name, mask in out.items():
        assert mask.dtype == torch.bool and mask.shape == y.shape
        assert not (mask & ~previous).any(), f"{name} keeps a point that an earlier attack broke"
        previous = mask
    final = out[ATTACKS[-1]]
    assert 0 < final.sum() < out["apgd-ce"].sum() <= clean.sum() < len(y)  # a non-trivial cascade
    assert torch.equal(final, _oracle(natural_linear, x, y, spec, seed=3))
    for k in (1, 2):  # each entry is AutoAttack's result after the attacks up to it
        prefix = AutoAttackSpec(norm, eps, attacks=ATTACKS[:k], target_classes=2, square_queries=50)
        assert torch.equal(out[ATTACKS[k - 1]], _oracle(natural_linear, x, y, prefix, seed=3)), ATTACKS[k - 1]
    # deterministic for a seed
    again = autoattack(natural_linear, x, y, spec, seed=3)
    assert all(torch.equal(out[k], again[k]) for k in out)


def test_a_single_attack_spec_returns_one_mask(natural_linear, points):
    x, y = points
    spec = AutoAttackSpec("linf", 0.05, attacks=("apgd-ce",))
    out = autoattack(natural_linear, x, y, spec, seed=0, batch_size=7)
    assert list(out) == ["apgd-ce"]
    assert torch.equal(out["apgd-ce"], _oracle(natural_linear, x, y, spec, seed=0, batch_size=7))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_eps_zero_keeps_the_clean_mask(natural_linear, points, norm):
    x, y = points
    out = autoattack(natural_linear, x[:16], y[:16], AutoAttackSpec(norm, 0.0, attacks=("apgd-ce",)))
    assert torch.equal(out["apgd-ce"], predict(natural_linear, x[:16]) == y[:16])


def test_nothing_left_to_attack_skips_the_attack(points, monkeypatch):
    """A model that is wrong everywhere: every mask is all False and AutoAttack is never built."""
    x, y = points
    model = linear_model(0)
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].bias[0] = 1.0  # always predicts class 0
    keep = y != 0
    monkeypatch.setattr(strong, "_configured", lambda *a: pytest.fail("AutoAttack built with no point left"))
    out = autoattack(model, x[keep], y[keep], AutoAttackSpec("linf", 0.3, attacks=("apgd-ce", "apgd-t")))
    assert list(out) == ["apgd-ce", "apgd-t"] and not any(m.any() for m in out.values())


def test_bad_inputs_raise(natural_linear, points):
    x, y = points
    with pytest.raises(ValueError, match="int64"):
        autoattack(natural_linear, x, y.float(), AutoAttackSpec("linf", 0.1))
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        autoattack(natural_linear, x * 2, y, AutoAttackSpec("linf", 0.1))


# ---------------------------------------------------------------------------------------------- the in-ball check


class FakeAttack:
    """Stands in for pyautoattack: returns ``move(x)`` as the adversarial points, the true labels as predictions."""

    def __init__(self, move):
        self.move, self.calls = move, 0

    def run_standard_evaluation(self, x, y, batch_size=250):
        self.calls += 1
        return self.move(x), y.clone()


def _patch(monkeypatch, move) -> FakeAttack:
    fake = FakeAttack(move)
    monkeypatch.setattr(strong, "_configured", lambda model, spec, device, seed: fake)
    return fake


def _interior(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.full((n, 1, 28, 28), 0.5)
    return x, predict(linear_model(0), x)  # the labels the model gives: every point is clean-correct


@pytest.mark.parametrize("norm, eps, move", [
    ("linf", 0.1, lambda x: x + 0.2),                                        # ℓ∞ distance 0.2 > 0.1
    ("l1", 1.0, lambda x: x + 2.0 / 784),                                    # ℓ1 distance 2.0 > 1.0
    ("l2", 1.0, lambda x: x + 2.0 / 28),                                     # ℓ2 distance 2.0 > 1.0
    ("linf", 0.1, lambda x: torch.where(torch.arange(784).view(1, 28, 28) == 0, x - 0.6, x)),  # pixel < 0
    ("linf", 0.1, lambda x: x + torch.nan),                                   # NaN is not in any ball
])
def test_points_outside_the_ball_or_the_box_raise(monkeypatch, norm, eps, move):
    x, y = _interior()
    fake = _patch(monkeypatch, move)
    with pytest.raises(RuntimeError, match=f"outside the {norm} ball of radius {eps:g}"):
        autoattack(linear_model(0), x, y, AutoAttackSpec(norm, eps, attacks=("apgd-ce",)))
    assert fake.calls == 1


def test_a_point_below_zero_within_the_ball_raises(monkeypatch):
    x, y = _interior()
    x = x.clone()
    x[:, :, 0, 0] = 0.0
    y = predict(linear_model(0), x)
    _patch(monkeypatch, lambda z: z - 0.01)  # within ε = 0.1, but pixel (0, 0) goes to -0.01
    with pytest.raises(RuntimeError, match=r"\[0,1\]"):
        autoattack(linear_model(0), x, y, AutoAttackSpec("linf", 0.1, attacks=("apgd-ce",)))


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_points_on_the_sphere_pass(monkeypatch, norm):
    x, y = _interior()
    eps = {"l1": 12.0, "l2": 1.0, "linf": 0.1}[norm]
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    delta = eps * direction / lp.norm_of(direction, norm).view(-1, 1, 1, 1)
    _patch(monkeypatch, lambda z: z + delta[: z.shape[0]])
    out = autoattack(linear_model(0), x, y, AutoAttackSpec(norm, eps, attacks=("apgd-ce",)))
    assert out["apgd-ce"].all()  # the fake returns the true labels: nothing broken


# ---------------------------------------------------------------------------------------------- ℓ1


def test_l1_mode_returns_points_in_the_l1_ball_and_the_box(natural_linear, points, monkeypatch):
    """Every attack of the cascade in AutoAttack's ℓ1 mode (APGD with its 3ε-2ε-ε schedule): what pyautoattack returns
    lies within ℓ1 distance ε of x and in [0,1], checked here on the raw output, beside the wrapper's own check."""
    x, y = points
    x, y = x[:24], y[:24]
    seen = []
    configured = strong._configured

    def spy(model, spec, device, seed):
        attack = configured(model, spec, device, seed)
        assert attack.norm == "L1" and attack.apgd.use_largereps and attack.apgd_targeted.use_largereps
        run = attack.run_standard_evaluation

        def recorded(xs, ys, batch_size=250):
            x_adv, y_adv = run(xs, ys, batch_size=batch_size)
            seen.append((spec.attacks[0], xs.clone(), x_adv.clone()))
            return x_adv, y_adv

        attack.run_standard_evaluation = recorded
        return attack

    monkeypatch.setattr(strong, "_configured", spy)
    eps = 3.0
    out = autoattack(natural_linear, x, y, AutoAttackSpec("l1", eps, **CHEAP), seed=1)
    assert [name for name, _, _ in seen] == list(ATTACKS[:len(seen)]) and seen
    for name, xs, x_adv in seen:
        distance = (x_adv - xs).flatten(1).abs().sum(1)
        assert (distance <= eps * (1 + 1e-5)).all(), (name, distance.max())
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    moved = torch.cat([(x_adv - xs).flatten(1).abs().sum(1) for _, xs, x_adv in seen])
    assert moved.max() > 0.9 * eps  # the attack used the budget
    assert out["square"].sum() < (predict(natural_linear, x) == y).sum()  # and broke some points


class _Lookup(torch.nn.Module):
    """Predicts ``labels[i]`` for the image whose first pixel is i/100 (a model whose every answer is chosen)."""

    def __init__(self, labels: list[int]) -> None:
        super().__init__()
        self.labels, self.w = torch.tensor(labels), torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = (x[:, 0, 0, 0] * 100).round().long()
        return torch.nn.functional.one_hot(self.labels[index], 10).float() + 0 * self.w


class _Unchanged:
    """Stands in for AutoAttack: returns the points unchanged, as its model labels them; logs who searched what."""

    calls: list = []

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def run_standard_evaluation(self, x, y, batch_size):
        _Unchanged.calls.append((self.model, len(x)))
        return x.clone(), self.model(x).argmax(1)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_the_fp32_model_judges_and_searches_what_the_bf16_search_skipped(monkeypatch, precision):
    """The searcher misclassifies point 2 clean, so AutoAttack would leave it alone: the fp32 model, which classifies
    it correctly, searches it itself, and judges every point."""
    x = torch.zeros(4, 1, 28, 28)
    x[:, 0, 0, 0] = torch.arange(4) / 100
    y = torch.tensor([1, 2, 3, 4])
    model, searcher = _Lookup([1, 2, 3, 4]), _Lookup([1, 2, 9, 4])
    monkeypatch.setattr(runtime, "search_model", lambda m, p: searcher if p == "bf16" else m)
    monkeypatch.setattr(strong, "_configured", lambda m, spec, device, seed: _Unchanged(m))
    _Unchanged.calls = []
    out = autoattack(model, x, y, AutoAttackSpec("linf", 0.1, attacks=("apgd-ce",)), precision=precision)
    assert out["apgd-ce"].all()  # the searcher's wrong answer on point 2 is not the verdict
    want = [(searcher, 4), (model, 1)] if precision == "bf16" else [(model, 4)]
    assert _Unchanged.calls == want


def test_a_bf16_search_runs_autoattack_for_real(natural_linear, points):
    x, y = points
    spec = AutoAttackSpec("linf", 0.05, **CHEAP)
    out = autoattack(natural_linear, x, y, spec, seed=3, precision="bf16")
    clean = predict(natural_linear, x) == y
    assert not (out[ATTACKS[-1]] & ~clean).any() and out[ATTACKS[-1]].sum() < clean.sum()


def test_an_unknown_precision_raises(natural_linear, points, monkeypatch):
    x, y = points
    with pytest.raises(ValueError, match="fp16.*choose one of"):
        autoattack(natural_linear, x, y, AutoAttackSpec("linf", 0.1), precision="fp16")
    monkeypatch.setenv(runtime.SEARCH_PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="half"):
        autoattack(natural_linear, x, y, AutoAttackSpec("linf", 0.1))


def test_the_speed_benchmark_runs_autoattacks_cascade_attack_by_attack(natural_linear, points):
    """benchmarks/aa_speed.py times each attack by running the cascade one attack at a time: same masks."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "aa_speed.py"
    module_spec = importlib.util.spec_from_file_location("aa_speed", path)
    bench = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(bench)
    x, y = points
    spec = AutoAttackSpec("linf", 0.05, **CHEAP)
    mask, seconds = bench.cascade(natural_linear, x, y, spec, "fp32")
    assert torch.equal(mask, autoattack(natural_linear, x, y, spec)[ATTACKS[-1]])
    assert list(seconds) == list(ATTACKS) and all(s >= 0 for s in seconds.values())


def _benchmark(name: str):
    """A module of benchmarks/ by name, importable as the scripts import each other (their folder on sys.path)."""
    import importlib
    import sys
    from pathlib import Path
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def test_the_model_clock_changes_no_output_or_gradient_and_times_only_the_model(natural_linear, points):
    """benchmarks/aa_profile.py's ModelClock: the wrapped model's logits and input gradients, and its time."""
    clock = _benchmark("aa_profile").ModelClock(natural_linear)
    x, y = points
    grads = []
    for model in (natural_linear, clock):
        xg = x.clone().requires_grad_()
        out = model(xg)
        torch.nn.functional.cross_entropy(out, y).backward()
        grads.append((out.detach(), xg.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    assert clock.images == len(y) and clock.forward_s > 0 and clock.backward_s > 0
    with torch.no_grad():
        clock(x)
    assert clock.images == 2 * len(y)


def test_the_profile_benchmark_runs_the_cascade_and_splits_each_attacks_time(natural_linear, points):
    bench = _benchmark("aa_profile")
    x, y = points
    spec = AutoAttackSpec("linf", 0.05, **CHEAP)
    found = bench.profile(bench.ModelClock(natural_linear), x, y, spec)
    assert found["accuracy"] == pytest.approx(float(autoattack(natural_linear, x, y, spec)[ATTACKS[-1]].float().mean()))
    assert list(found["attacks"]) == list(ATTACKS)
    for attack in found["attacks"].values():
        assert 0 <= attack["forward_s"] + attack["backward_s"] <= attack["seconds"] and 0 <= attack["model_share"] <= 1

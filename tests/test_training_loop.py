"""``advlib.training.loop``: the shared loop ``fit`` (batching, schedules, metrics, resume-after-kill), the ε warm-up,
the mix alternation of norms, and ``training_attack``, the one way every defense attacks.

"Same numbers after a kill" is checked exactly (``torch.equal`` on every weight, the optimiser-independent
defense state, and the per-epoch history except its wall-clock ``seconds``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from advlib.attacks import run_attack
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec
from advlib.training import ATDA, EnsembleAT, MadryAT, Natural, Trades, fit, training_norm
from advlib.training import loop as loop_mod
from advlib.training.loop import eps_scale, make_optimizer, training_attack
from conftest import Killed, KillAt, mlp, strip_seconds

ATTACKS = {"l2": AttackSpec("pgd", "l2", 4.0, 2, 2.0), "linf": AttackSpec("pgd", "linf", 0.3, 2, 0.15)}
N, BS = 22, 4  # 6 batches per epoch, the last one of 2 examples
PER_EPOCH = 6
SPEC = TrainSpec(epochs=3, batch_size=BS, checkpoint_every=2, eps_hold=0.1, eps_ramp=0.5, lr_milestones=(2,))


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(N, 1, 28, 28, generator=g), torch.randint(0, 10, (N,), generator=g)


def make_defense(name: str):
    if name == "natural":
        return Natural()
    if name == "madry-mix":
        return MadryAT("mix", ATTACKS)
    if name == "trades-l2":
        return Trades("l2", ATTACKS, beta=6.0)
    if name == "ensemble-linf":
        return EnsembleAT("linf", ATTACKS, [mlp(7), mlp(8)])
    if name == "atda-mix":
        return ATDA("mix", ATTACKS)
    raise AssertionError(name)


DEFENSES = ["natural", "madry-mix", "trades-l2", "ensemble-linf", "atda-mix"]


def assert_same_model(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def reference_run(name, data, tmp_path: Path, spec=SPEC, seed=3):
    model, defense = mlp(0), make_defense(name)
    history = fit(model, *data, defense, spec, seed=seed, checkpoint=tmp_path / "ref.pt", quiet=True)
    return model, defense, history


# ---------------------------------------------------------------------------------------------- resume-after-kill


@pytest.mark.parametrize("name", DEFENSES)
@pytest.mark.parametrize("kill_after", [3, 7, PER_EPOCH, 2 * PER_EPOCH])  # mid-epoch, mid-epoch, epoch boundaries
def test_resume_after_stop_equals_uninterrupted_run(name, kill_after, data, tmp_path):
    ref_model, ref_defense, ref_history = reference_run(name, data, tmp_path)
    ckpt = tmp_path / "killed.pt"
    partial = fit(mlp(0), *data, make_defense(name), SPEC, seed=3, checkpoint=ckpt, quiet=True,
                  stop_after_steps=kill_after)
    assert len(partial) == (kill_after - 1) // PER_EPOCH  # the epoch a kill ends is not yet in the history
    assert ckpt.exists()
    torch.manual_seed(987)  # a new process: global RNG elsewhere, a fresh model and defense
    model, defense = mlp(42), make_defense(name)
    history = fit(model, *data, defense, SPEC, seed=3, checkpoint=ckpt, quiet=True)
    assert_same_model(model, ref_model)
    assert strip_seconds(history) == strip_seconds(ref_history)
    if hasattr(defense, "state_dict"):
        for k, v in ref_defense.state_dict().items():
            assert torch.equal(defense.state_dict()[k], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.pt", "ref.pt"]  # no .tmp left behind


@pytest.mark.parametrize("name", ["atda-mix", "ensemble-linf"])
@pytest.mark.parametrize("kill_at", [4, 6, 9, 14])
def test_resume_after_hard_kill_from_last_periodic_checkpoint(name, kill_at, data, tmp_path):
    """A kill raised inside a step: nothing is saved then, so the run restarts from the last periodic
    (every ``checkpoint_every`` steps) or epoch-end checkpoint and must still end identical."""
    ref_model, ref_defense, ref_history = reference_run(name, data, tmp_path)
    ckpt = tmp_path / "killed.pt"
    with pytest.raises(Killed):
        fit(mlp(0), *data, KillAt(make_defense(name), kill_at), SPEC, seed=3, checkpoint=ckpt, quiet=True)
    saved = torch.load(ckpt, weights_only=False)["loop"]
    done = saved["epoch"] * PER_EPOCH + saved["position"]
    assert done <= kill_at - 1  # at most the steps completed before the kill; kill_at=4: only 2 (last save)
    assert done == {4: 2, 6: 4, 9: 8, 14: 12}[kill_at]
    torch.manual_seed(555)
    model, defense = mlp(1), make_defense(name)
    history = fit(model, *data, defense, SPEC, seed=3, checkpoint=ckpt, quiet=True)
    assert_same_model(model, ref_model)
    assert strip_seconds(history) == strip_seconds(ref_history)
    for k, v in ref_defense.state_dict().items() if hasattr(ref_defense, "state_dict") else []:
        assert torch.equal(defense.state_dict()[k], v)


def test_several_kills_in_a_row_still_equal(data, tmp_path):
    ref_model, _, ref_history = reference_run("atda-mix", data, tmp_path)
    ckpt = tmp_path / "killed.pt"
    for k in (2, 5, 1, 4):
        fit(mlp(0), *data, make_defense("atda-mix"), SPEC, seed=3, checkpoint=ckpt, quiet=True, stop_after_steps=k)
    model = mlp(9)
    history = fit(model, *data, make_defense("atda-mix"), SPEC, seed=3, checkpoint=ckpt, quiet=True)
    assert_same_model(model, ref_model)
    assert strip_seconds(history) == strip_seconds(ref_history)


def test_finished_checkpoint_is_loaded_without_training(data, tmp_path):
    ref_model, _, ref_history = reference_run("madry-mix", data, tmp_path)
    never = KillAt(make_defense("madry-mix"), 1)  # any loss call raises
    model = mlp(5)
    history = fit(model, *data, never, SPEC, seed=3, checkpoint=tmp_path / "ref.pt", quiet=True)
    assert never.calls == 0
    assert_same_model(model, ref_model)
    assert history == ref_history  # identical, seconds included: read back, not recomputed
    assert not model.training


def _with_foreign_generator(path: Path) -> None:
    """Rewrite a checkpoint's data-order generator state as another device kind writes it (a CUDA
    generator's state is 16 bytes, a CPU one's 5,056)."""
    state = torch.load(path, weights_only=False)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, path)


def test_finished_checkpoint_from_another_device_kind_loads(data, tmp_path):
    """A model trained on one device kind (the large profile's, on the CPU) is evaluated on another (a GPU)."""
    ref_model, _, ref_history = reference_run("madry-mix", data, tmp_path)
    _with_foreign_generator(tmp_path / "ref.pt")
    model = mlp(5)
    history = fit(model, *data, make_defense("madry-mix"), SPEC, seed=3, checkpoint=tmp_path / "ref.pt", quiet=True)
    assert_same_model(model, ref_model)
    assert history == ref_history


def test_unfinished_checkpoint_from_another_device_kind_is_a_clear_error(data, tmp_path):
    ckpt = tmp_path / "c.pt"
    fit(mlp(0), *data, Natural(), SPEC, seed=3, checkpoint=ckpt, quiet=True, stop_after_steps=2)
    _with_foreign_generator(ckpt)
    with pytest.raises(ValueError, match="another kind of device"):
        fit(mlp(0), *data, Natural(), SPEC, seed=3, checkpoint=ckpt, quiet=True)


def test_checkpoint_write_is_atomic(data, tmp_path, monkeypatch):
    """A crash while writing the checkpoint leaves the previous one intact and loadable."""
    ckpt = tmp_path / "c.pt"
    fit(mlp(0), *data, Natural(), SPEC, seed=3, checkpoint=ckpt, quiet=True, stop_after_steps=2)
    before = ckpt.read_bytes()

    def broken_save(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(loop_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fit(mlp(0), *data, Natural(), SPEC, seed=3, checkpoint=ckpt, quiet=True)
    assert ckpt.read_bytes() == before
    monkeypatch.undo()
    state = torch.load(ckpt, weights_only=False)
    assert state["loop"]["position"] == 2 and state["loop"]["epoch"] == 0


def test_checkpoint_holds_everything_needed(data, tmp_path):
    ckpt = tmp_path / "c.pt"
    fit(mlp(0), *data, make_defense("atda-mix"), SPEC, seed=3, checkpoint=ckpt, quiet=True, stop_after_steps=3)
    state = torch.load(ckpt, weights_only=False)
    assert {"model", "optimizer", "generator", "defense", "loop"} <= set(state)
    assert state["defense"]["centres"].shape == (10, 10)
    assert state["loop"]["epoch"] == 0 and state["loop"]["position"] == 3
    assert sorted(state["loop"]["perm"].tolist()) == list(range(N))


def test_resume_with_dropout_model_equals_uninterrupted_run(data, tmp_path):
    """Regression: dropout draws from the global torch RNG, so fit must seed and checkpoint it too (the
    ensemble's static Tramèr A/C/D models have dropout). The old fit failed this."""
    torch.manual_seed(0)
    ref = mlp(0, dropout=0.5)
    fit(ref, *data, Natural(), SPEC, seed=3, checkpoint=tmp_path / "ref.pt", quiet=True)
    model = mlp(0, dropout=0.5)
    torch.manual_seed(1)
    fit(model, *data, Natural(), SPEC, seed=3, checkpoint=tmp_path / "k.pt", quiet=True, stop_after_steps=7)
    assert "torch_rng" in torch.load(tmp_path / "k.pt", weights_only=False)
    torch.manual_seed(2)  # the resumed process starts from some other global RNG state
    fit(model, *data, Natural(), SPEC, seed=3, checkpoint=tmp_path / "k.pt", quiet=True)
    assert_same_model(model, ref)


def test_fit_with_dropout_is_a_function_of_its_seed(data):
    """Regression: training must not depend on the caller's global RNG state, and must leave it untouched."""
    runs = []
    for global_seed in (1, 2):
        model = mlp(0, dropout=0.5)
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        fit(model, *data, Natural(), SPEC, seed=3, quiet=True)
        assert torch.equal(torch.get_rng_state(), before)
        runs.append(model)
    assert_same_model(*runs)
    other = mlp(0, dropout=0.5)
    fit(other, *data, Natural(), SPEC, seed=4, quiet=True)
    assert not torch.equal(other[1].weight, runs[0][1].weight)


# ---------------------------------------------------------------------------------------------- loop mechanics


class Recorder:
    """A defense that records what fit passes it; loss = a known constant per step (differentiable)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def loss(self, model, x, y, step, generator, eps_scale):
        self.calls.append({"y": y.clone(), "step": step, "scale": eps_scale, "n": len(y)})
        value = float(step + 1)
        loss = model(x).sum() * 0 + value
        return loss, {"stat": torch.tensor(2.0 * value)}


def one_class_per_example() -> nn.Module:
    """A model with N classes, so that labels 0 … N-1 can name the examples."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, N))


def test_each_epoch_visits_every_example_once_in_a_seeded_order(tmp_path):
    x, y = torch.rand(N, 1, 28, 28), torch.arange(N)
    rec = Recorder()
    fit(one_class_per_example(), x, y, rec, SPEC, seed=11, quiet=True)
    assert len(rec.calls) == SPEC.epochs * PER_EPOCH
    orders = []
    for e in range(SPEC.epochs):
        calls = rec.calls[e * PER_EPOCH:(e + 1) * PER_EPOCH]
        assert [c["n"] for c in calls] == [4, 4, 4, 4, 4, 2]
        order = torch.cat([c["y"] for c in calls]).tolist()
        assert sorted(order) == list(range(N))
        orders.append(order)
    assert orders[0] != orders[1] != orders[2]
    assert orders[0] != list(range(N))  # shuffled
    again = Recorder()
    fit(one_class_per_example(), x, y, again, SPEC, seed=11, quiet=True)
    assert [c["y"].tolist() for c in again.calls] == [c["y"].tolist() for c in rec.calls]
    other = Recorder()
    fit(one_class_per_example(), x, y, other, SPEC, seed=12, quiet=True)
    assert [c["y"].tolist() for c in other.calls] != [c["y"].tolist() for c in rec.calls]


def test_global_step_and_eps_warm_up_passed_to_the_defense():
    x, y = torch.rand(N, 1, 28, 28), torch.zeros(N, dtype=torch.long)
    rec = Recorder()
    fit(mlp(), x, y, rec, SPEC, seed=0, quiet=True)
    total = SPEC.epochs * PER_EPOCH
    assert [c["step"] for c in rec.calls] == list(range(total))  # global: mix alternation continues across epochs
    # hand schedule: 0 until 10 % of 18 steps, then linear to 1 at 50 %
    want = [min(1.0, max(0.0, (s / total - 0.1) / 0.4)) for s in range(total)]
    assert [c["scale"] for c in rec.calls] == pytest.approx(want, abs=1e-12)
    assert [c["scale"] for c in rec.calls] == [eps_scale(SPEC, s, total) for s in range(total)]


def test_history_rows_are_example_weighted_epoch_means():
    x, y = torch.rand(N, 1, 28, 28), torch.zeros(N, dtype=torch.long)
    history = fit(mlp(), x, y, Recorder(), SPEC, seed=0, quiet=True)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for e, row in enumerate(history):
        steps = range(e * PER_EPOCH, (e + 1) * PER_EPOCH)
        sizes = [4, 4, 4, 4, 4, 2]
        want = sum((s + 1) * n for s, n in zip(steps, sizes)) / N
        assert row["loss"] == pytest.approx(want, rel=1e-6)
        assert row["stat"] == pytest.approx(2 * want, rel=1e-6)
        assert row["seconds"] >= 0
    assert [r["lr"] for r in history] == pytest.approx([1e-3, 1e-3, 1e-4])  # ×0.1 from epoch index 2


def test_lr_milestones_reach_the_optimizer(monkeypatch):
    seen = []
    real = loop_mod.make_optimizer

    def spy(model, spec):
        opt = real(model, spec)
        seen.append(opt)
        return opt

    monkeypatch.setattr(loop_mod, "make_optimizer", spy)
    spec = TrainSpec(epochs=3, batch_size=BS, optimizer="sgd", lr=0.5, momentum=0.9, lr_milestones=(1, 2))
    x, y = torch.rand(N, 1, 28, 28), torch.zeros(N, dtype=torch.long)
    history = fit(mlp(), x, y, Natural(), spec, seed=0, quiet=True)
    assert [r["lr"] for r in history] == pytest.approx([0.5, 0.05, 0.005])
    assert seen[0].param_groups[0]["lr"] == pytest.approx(0.005)
    assert isinstance(seen[0], torch.optim.SGD) and seen[0].param_groups[0]["momentum"] == 0.9


def test_make_optimizer_choices():
    model = mlp()
    assert isinstance(make_optimizer(model, TrainSpec(epochs=1, batch_size=1)), torch.optim.Adam)
    opt = make_optimizer(model, TrainSpec(epochs=1, batch_size=1, optimizer="sgd", lr=0.1, momentum=0.5))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.5
    with pytest.raises(ValueError, match="valid choices"):
        make_optimizer(model, TrainSpec(epochs=1, batch_size=1, optimizer="rmsprop"))


def test_training_changes_weights_deterministically(data):
    a, b, c = mlp(0), mlp(0), mlp(0)
    fit(a, *data, make_defense("madry-mix"), SPEC, seed=3, quiet=True)
    fit(b, *data, make_defense("madry-mix"), SPEC, seed=3, quiet=True)
    fit(c, *data, make_defense("madry-mix"), SPEC, seed=4, quiet=True)
    assert_same_model(a, b)
    assert not torch.equal(a[1].weight, c[1].weight)
    assert not torch.equal(a[1].weight, mlp(0)[1].weight)
    assert not a.training  # fit leaves the model in eval mode


def test_quiet_switch(data, capsys):
    fit(mlp(), *data, Natural(), TrainSpec(epochs=1, batch_size=BS), seed=0, quiet=True)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    fit(mlp(), *data, Natural(), TrainSpec(epochs=1, batch_size=BS), seed=0, quiet=False, desc="demo")
    out = capsys.readouterr()
    assert "demo epoch 1" in out.out + out.err
    assert "loss=" in out.out + out.err


@pytest.mark.parametrize("bad", [
    {"spec": TrainSpec(epochs=-1, batch_size=4)},
    {"spec": TrainSpec(epochs=1, batch_size=0)},
    {"x": torch.full((N, 1, 28, 28), 2.0)},
    {"y": torch.zeros(N, dtype=torch.int32)},
    {"y": torch.zeros(N - 1, dtype=torch.long)},
])
def test_fit_rejects_bad_inputs(bad, data):
    x, y = data
    kwargs = {"x": x, "y": y, "spec": TrainSpec(epochs=1, batch_size=4), **bad}
    with pytest.raises(ValueError):
        fit(mlp(), kwargs["x"], kwargs["y"], Natural(), kwargs["spec"], seed=0, quiet=True)


def test_zero_epochs_returns_empty_history(data, tmp_path):
    model = mlp()
    before = model[1].weight.clone()
    assert fit(model, *data, Natural(), TrainSpec(epochs=0, batch_size=4), seed=0, quiet=True) == []
    assert torch.equal(model[1].weight, before)


# ---------------------------------------------------------------------------------------------- the ε warm-up


def test_eps_scale_warm_up_schedule_values():
    spec = TrainSpec(epochs=1, batch_size=1, eps_hold=0.1, eps_ramp=0.5)
    total = 100
    want = {0: 0.0, 5: 0.0, 10: 0.0, 20: 0.25, 30: 0.5, 40: 0.75, 49: 0.975, 50: 1.0, 99: 1.0}
    for step, value in want.items():
        assert eps_scale(spec, step, total) == pytest.approx(value, abs=1e-12), step
    # no warm-up: always full ε
    plain = TrainSpec(epochs=1, batch_size=1)
    assert [eps_scale(plain, s, 10) for s in range(10)] == [1.0] * 10
    # monotone and within [0, 1]
    values = [eps_scale(spec, s, total) for s in range(total)]
    assert values == sorted(values) and min(values) == 0.0 and max(values) == 1.0


def test_eps_scale_profiles_ramp_to_full_eps():
    from advlib.protocols import MEDIUM, QUICK
    for prof in (QUICK, MEDIUM):
        spec = prof.defenses["madry"]
        assert eps_scale(spec, 0, 1000) == 0.0
        assert eps_scale(spec, int(1000 * spec.eps_ramp), 1000) == 1.0


def test_eps_scale_step_warm_up_when_hold_equals_ramp():
    """Regression: eps_hold == eps_ramp > 0 (a step warm-up) used to raise ZeroDivisionError."""
    spec = TrainSpec(epochs=1, batch_size=1, eps_hold=0.2, eps_ramp=0.2)
    assert [eps_scale(spec, s, 10) for s in range(4)] == [0.0, 0.0, 1.0, 1.0]


def test_training_norm_mix_alternates_l2_even_linf_odd():
    assert [training_norm("mix", s) for s in range(7)] == ["l2", "linf"] * 3 + ["l2"]
    assert training_norm("mix", 1001) == "linf"
    assert {training_norm("l2", s) for s in range(5)} == {"l2"}
    assert {training_norm("linf", s) for s in range(5)} == {"linf"}
    with pytest.raises(ValueError, match="valid choices"):
        training_norm("l1", 0)


# ---------------------------------------------------------------------------------------------- training_attack


@pytest.mark.parametrize("spec", [AttackSpec("pgd", "l2", 4.0, 7, 0.5, random_start=False),
                                  AttackSpec.pgd("linf", steps=3), AttackSpec.so("l2", steps=2, samples=2)])
@pytest.mark.parametrize("scale", [0.25, 1.0])
def test_training_attack_is_run_attack_of_the_scaled_spec(spec, scale, data):
    x, y = data[0][:6], data[1][:6]
    model = mlp(0).eval()
    ours = training_attack(model, x, y, spec, scale, torch.Generator().manual_seed(4))
    ref = run_attack(spec.scaled(scale), model, x, y, generator=torch.Generator().manual_seed(4))
    assert torch.equal(ours, ref)
    if scale != 1.0:
        assert not torch.equal(ours, run_attack(spec, model, x, y, generator=torch.Generator().manual_seed(4)))


def test_training_attack_scales_eps_and_step_size_only(monkeypatch, data):
    seen = []
    monkeypatch.setattr(loop_mod, "run_attack", lambda spec, *a, **k: seen.append((spec, k)) or a[1])
    spec = AttackSpec("pgd", "l2", 4.0, 7, 0.5, random_start=False)
    generator = torch.Generator()
    x, y = data
    training_attack(mlp(0), x, y, spec, 0.25, generator, start=x)
    (called, kwargs), = seen
    assert called == AttackSpec("pgd", "l2", 1.0, 7, 0.125, random_start=False)
    # the batch was validated by fit: no per-call pixel check; graph replay on a GPU; extra arguments pass through
    assert kwargs["validate"] is False and kwargs["replay"] is True
    assert kwargs["generator"] is generator and kwargs["start"] is x


def test_training_attack_at_eps_scale_zero_returns_x(data):
    x, y = data
    out = training_attack(mlp(0), x, y, AttackSpec.pgd("linf", steps=2), 0.0, torch.Generator())
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


"""``advlib.training.multinorm``: MAX, AVG (Tramèr & Boneh 2019) and MSD (Maini, Wong & Kolter 2020) against
independent oracles, their resume-after-kill, and how ``protocols``/``reproduce`` build the multi-norm cells without
changing the identity of any existing model.

Oracles are written independently of advlib: the steepest-ascent candidates of one MSD step by explicit formulas
(sign step and clamp; g/‖g‖₂ step and radial rescaling), and cross-entropies with ``math`` for a model whose logits
are a known function of the mean pixel.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlib import protocols
from advlib import reproduce as rep
from advlib.attacks import run_attack
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec
from advlib.training import MSD, AvgAT, MaxAT, fit
from advlib.training import multinorm as mn
from conftest import Killed, KillAt, mlp, strip_seconds

ATTACKS = {"l2": AttackSpec.pgd("l2", steps=3), "linf": AttackSpec.pgd("linf", steps=3)}


def assert_same_model(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class MeanPixel(nn.Module):
    """Logits ``[s, 0, …, 0]`` with s = scale·(mean pixel − ½): with label 0, CE = log(eᔆ + 9) − s falls as the
    image brightens, so which of two images has the higher loss is known by construction. Records its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0, dtype=torch.float64))
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x):
        self.seen.append((self.training, x.detach().clone()))
        s = self.scale * (x.flatten(1).to(torch.float64).mean(1) - 0.5)
        return torch.cat([s[:, None], torch.zeros(len(s), 9, dtype=s.dtype)], 1)


def _hand_ce(mean_pixel: float, scale: float = 8.0) -> float:
    s = scale * (mean_pixel - 0.5)
    return math.log(math.exp(s) + 9) - s


class FixedAttacks:
    """Replaces ``training_attack`` in ``multinorm``: returns a fixed image per norm, recording what was asked."""

    def __init__(self, images: dict[str, torch.Tensor]) -> None:
        self.images, self.calls = images, []

    def __call__(self, source, x, target, spec, eps_scale, generator, **kwargs):
        self.calls.append((spec.norm, spec.scaled(eps_scale).eps))
        return self.images[spec.norm].clone()


def _flat(values: list[float]) -> torch.Tensor:
    """A batch ``[n,1,28,28]`` whose row i is the constant ``values[i]``."""
    return torch.tensor(values, dtype=torch.float64)[:, None, None, None].expand(-1, 1, 28, 28).clone()


# ---------------------------------------------------------------------------------------------- MSD


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("scale", [1.0, 0.4])
def test_msd_restricted_to_one_norm_is_that_norms_pgd_without_random_start(norm, scale, mnist_batch):
    x, y = mnist_batch[0][:16], mnist_batch[1][:16]
    model = mlp(3).eval()
    spec = AttackSpec.pgd(norm, steps=6)  # its random start does not apply to MSD
    ours, share = mn.msd_attack(model, x, y, [spec], eps_scale=scale)
    pgd = run_attack(replace(spec, random_start=False).scaled(scale), model, x, y)
    assert torch.equal(ours, pgd)
    assert not torch.equal(ours, x)
    assert share.tolist() == [1.0]


def _oracle_candidates(model, x_adv, x, y, specs):
    """One step's candidates by explicit formulas (plain autograd, sign / g/‖g‖₂, clamp / radial rescaling)."""
    z = x_adv.clone().requires_grad_(True)
    F.cross_entropy(model(z), y, reduction="sum").backward()
    g = z.grad
    out = {}
    for s in specs:
        if s.norm == "linf":
            delta = (x_adv + s.step_size * g.sign() - x).clamp(-s.eps, s.eps)
        else:
            step = g / g.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
            delta = x_adv + s.step_size * step - x
            delta = delta * (s.eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1)[:, None, None, None]
        out[s.norm] = (x + delta).clamp(0, 1)
    return out


def test_msd_step_keeps_per_example_the_candidate_of_higher_loss(mnist_batch):
    x, y = mnist_batch[0][:32], mnist_batch[1][:32]
    model = mlp(5).eval().requires_grad_(False)
    # step sizes at which both norms win on some rows of this batch (84 % and 94 % ℓ∞ at the first two steps)
    specs = [AttackSpec.pgd("l2", steps=1, step_size=1.0), AttackSpec.pgd("linf", steps=1, step_size=0.05)]
    start = mn.msd_step(model, x, x, y, specs)[0]  # one step in, so the next one starts away from x
    nxt, choice = mn.msd_step(model, start, x, y, specs)
    cands = _oracle_candidates(model, start, x, y, specs)
    with torch.no_grad():
        losses = {n: F.cross_entropy(model(c), y, reduction="none") for n, c in cands.items()}
    assert set(choice.tolist()) == {0, 1}, "both norms should win somewhere for this test to mean anything"
    for i, k in enumerate(choice.tolist()):
        chosen, other = ("l2", "linf") if k == 0 else ("linf", "l2")
        assert torch.allclose(nxt[i], cands[chosen][i], atol=1e-6)
        assert losses[chosen][i] >= losses[other][i]


def test_msd_iterates_stay_in_the_chosen_norms_ball_and_in_the_unit_box(mnist_batch):
    x, y = mnist_batch[0][:32], mnist_batch[1][:32]
    model = mlp(5).eval()
    # steps large enough that both balls bind within 5 steps, and both norms are chosen (ℓ2 first, then ℓ∞)
    specs = [AttackSpec.pgd("l2", steps=5, step_size=3.0), AttackSpec.pgd("linf", steps=5, step_size=0.1)]
    x_adv, seen = x.clone(), set()
    for _ in range(5):
        x_adv, choice = mn.msd_step(model, x_adv, x, y, specs)
        delta = (x_adv - x).flatten(1)
        for i, k in enumerate(choice.tolist()):
            seen.add(k)
            if specs[k].norm == "l2":
                assert delta[i].norm() <= specs[k].eps * (1 + 1e-5)
            else:
                assert delta[i].abs().max() <= specs[k].eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert seen == {0, 1}
    ours, share = mn.msd_attack(model, x, y, specs)
    assert torch.equal(ours, x_adv)  # msd_attack is these five steps
    assert share.sum().item() == pytest.approx(1.0) and 0 < share[1].item() < 1


def test_msd_scales_both_norms_with_the_warm_up_and_draws_no_random_numbers(mnist_batch):
    x, y = mnist_batch[0][:8].clone(), mnist_batch[1][:8]
    before = x.clone()
    model = mlp(2).train()
    specs = [ATTACKS["l2"], ATTACKS["linf"]]
    half = mn.msd_attack(model, x, y, specs, eps_scale=0.5)[0]
    assert torch.equal(half, mn.msd_attack(model, x, y, [s.scaled(0.5) for s in specs])[0])
    assert torch.equal(mn.msd_attack(model, x, y, specs, eps_scale=0.0)[0], x)
    assert torch.equal(x, before) and model.training  # input untouched, mode restored
    assert all(p.requires_grad for p in model.parameters())
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    MSD(ATTACKS).loss(model, x, y, 0, generator, 1.0)
    assert torch.equal(generator.get_state(), state)


def test_msd_rejects_specs_it_cannot_run():
    with pytest.raises(ValueError, match="'pgd' AttackSpecs"):
        mn.msd_attack(mlp(), torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long), [AttackSpec.so("l2")])
    with pytest.raises(ValueError, match="one spec per norm"):
        mn.msd_attack(mlp(), torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long), [ATTACKS["l2"]] * 2)
    with pytest.raises(ValueError, match="missing: linf"):
        MSD({"l2": ATTACKS["l2"]})


# ---------------------------------------------------------------------------------------------- MAX and AVG


def test_max_trains_per_row_on_the_higher_loss_example(monkeypatch):
    dark_l2 = [True, False, False, True, False]  # rows where the ℓ2 example is the darker one (higher loss)
    l2 = _flat([0.2 if d else 0.7 for d in dark_l2])
    linf = _flat([0.6 if d else 0.3 for d in dark_l2])
    spy = FixedAttacks({"l2": l2, "linf": linf})
    monkeypatch.setattr(mn, "training_attack", spy)
    model, y = MeanPixel().train(), torch.zeros(5, dtype=torch.long)
    loss, stats = MaxAT(ATTACKS).loss(model, l2 * 0, y, 0, torch.Generator(), 0.5)
    assert spy.calls == [("l2", ATTACKS["l2"].eps * 0.5), ("linf", ATTACKS["linf"].eps * 0.5)]
    (mode, trained_on), = [s for s in model.seen if s[0]]  # the one forward pass in training mode
    want = torch.where(torch.tensor(dark_l2)[:, None, None, None], l2, linf)
    assert torch.equal(trained_on, want)
    assert all(not training for training, _ in model.seen[:-1])  # candidates compared in eval mode
    means = [0.2 if d else 0.3 for d in dark_l2]
    assert loss.item() == pytest.approx(sum(_hand_ce(m) for m in means) / 5, rel=1e-12)
    assert stats["linf_chosen"].item() == pytest.approx(3 / 5)


def test_worst_per_example_breaks_ties_towards_the_first_candidate():
    a, b = torch.zeros(3, 2), torch.ones(3, 2)
    out, choice = mn.worst_per_example([a, b], torch.tensor([[1.0, 2.0, 3.0], [1.0, 5.0, 0.0]]))
    assert choice.tolist() == [0, 1, 0]
    assert torch.equal(out, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))


def test_avg_loss_is_the_mean_of_the_two_cross_entropies(monkeypatch):
    l2, linf = _flat([0.1, 0.45, 0.9]), _flat([0.4, 0.35, 0.8])
    monkeypatch.setattr(mn, "training_attack", FixedAttacks({"l2": l2, "linf": linf}))
    loss, stats = AvgAT(ATTACKS).loss(MeanPixel().train(), l2 * 0, torch.zeros(3, dtype=torch.long), 4,
                                      torch.Generator(), 1.0)
    ce_l2 = sum(_hand_ce(m) for m in (0.1, 0.45, 0.9)) / 3
    ce_linf = sum(_hand_ce(m) for m in (0.4, 0.35, 0.8)) / 3
    assert loss.item() == pytest.approx((ce_l2 + ce_linf) / 2, rel=1e-12)
    # accuracy: class 0 wins when s > 0, i.e. mean pixel > 1/2
    assert (stats["adv_acc_l2"].item(), stats["adv_acc_linf"].item()) == pytest.approx((1 / 3, 1 / 3))
    assert stats["adv_acc"].item() == pytest.approx(2 / 6)


# ---------------------------------------------------------------------------------------------- resume


N, BS, PER_EPOCH = 22, 4, 6
SPEC = TrainSpec(epochs=2, batch_size=BS, checkpoint_every=2, eps_hold=0.1, eps_ramp=0.5)
SMALL = {"l2": AttackSpec.pgd("l2", steps=2), "linf": AttackSpec.pgd("linf", steps=2)}
DEFENSES = {"max": lambda: MaxAT(SMALL), "avg": lambda: AvgAT(SMALL), "msd": lambda: MSD(SMALL)}


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(N, 1, 28, 28, generator=g), torch.randint(0, 10, (N,), generator=g)


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_resume_after_a_kill_equals_the_uninterrupted_run(name, data, tmp_path):
    ref = mlp(0)
    ref_history = fit(ref, *data, DEFENSES[name](), SPEC, seed=3, checkpoint=tmp_path / "ref.pt", quiet=True)
    ckpt = tmp_path / "killed.pt"
    fit(mlp(0), *data, DEFENSES[name](), SPEC, seed=3, checkpoint=ckpt, quiet=True, stop_after_steps=7)
    with pytest.raises(Killed):  # then a hard kill inside a step: back to the last periodic checkpoint
        fit(mlp(0), *data, KillAt(DEFENSES[name](), 2), SPEC, seed=3, checkpoint=ckpt, quiet=True)
    torch.manual_seed(987)
    model = mlp(42)
    history = fit(model, *data, DEFENSES[name](), SPEC, seed=3, checkpoint=ckpt, quiet=True)
    assert_same_model(model, ref)
    assert strip_seconds(history) == strip_seconds(ref_history)
    assert not torch.equal(ref[1].weight, mlp(0)[1].weight)
    assert {"loss", "adv_acc"} <= set(history[-1])


# ---------------------------------------------------------------------------------------------- cells


def test_reproduce_builds_the_multi_norm_cells():
    profile = protocols.QUICK
    for defense, cls in (("max", MaxAT), ("avg", AvgAT), ("msd", MSD)):
        built = rep.make_defense(defense, protocols.UNION, profile, [], "cpu")
        assert isinstance(built, cls) and built.attacks is profile.train_attack
        assert [s.norm for s in built.specs] == ["l2", "linf"]
        assert protocols.split_cell(f"{defense}-union") == (defense, "union")
        assert protocols.train_spec(profile, defense) is profile.defenses["madry"]
    assert protocols.train_spec(profile, "trades") is profile.defenses["trades"]


def test_unknown_multi_norm_names_raise_naming_the_valid_choices():
    with pytest.raises(ValueError, match="unknown defense 'mxa'; valid choices: .*'max', 'avg', 'msd'"):
        rep.make_defense("mxa", protocols.UNION, protocols.QUICK, [], "cpu")
    with pytest.raises(ValueError, match="unknown training norm 'l2' for the multi-norm defense 'msd'; valid choices: "
                                         "'union'"):
        rep.make_defense("msd", "l2", protocols.QUICK, [], "cpu")
    with pytest.raises(ValueError, match="unknown cell 'msd-l2'; valid choices: .*'max-union', 'avg-union', "
                                         "'msd-union'"):
        protocols.split_cell("msd-l2")
    with pytest.raises(ValueError, match="unknown cell 'mxa-union'"):
        protocols.parse_cells("max-union,mxa-union")
    with pytest.raises(ValueError, match="unknown defense 'mxa'; valid choices: .*'msd'"):
        protocols.train_spec(protocols.QUICK, "mxa")


def test_train_cell_trains_a_multi_norm_cell_with_madrys_schedule(monkeypatch, tmp_path):
    seen = {}

    def fake_fit(model, x, y, defense, spec, **kwargs):
        seen.update(defense=defense, spec=spec, checkpoint=kwargs["checkpoint"])
        return [{"epoch": e + 1, "seconds": 0.0} for e in range(spec.epochs)]

    monkeypatch.setattr(rep, "fit", fake_fit)
    sources = {split: {"kind": "test", "path": "-", "fingerprint": "0" * 16} for split in ("train", "test")}
    tensors = {"x": torch.rand(4, 1, 28, 28), "y": torch.zeros(4, dtype=torch.long), "sources": sources}
    _, info = rep.train_cell(protocols.QUICK, "msd-union", tensors, tmp_path)
    assert isinstance(seen["defense"], MSD) and seen["spec"] is protocols.QUICK.defenses["madry"]
    assert seen["checkpoint"] == rep.checkpoint_path(tmp_path, protocols.QUICK, "msd-union", tensors["sources"])
    assert len(info["history"]) == protocols.QUICK.defenses["madry"].epochs


@pytest.mark.parametrize("name", ["quick", "medium", "large", "full", "paper"])
def test_the_multi_norm_cells_train_with_madry_s_settings(name):
    """REPRO CHOICE "multi-norm training settings": each profile's max/avg/msd entry is Madry's TrainSpec, so a
    multi-norm model's identity is what it was when the cells borrowed Madry's entry (their records stay current)."""
    profile = protocols.get_profile(name)
    for defense in protocols.MULTI_NORM:
        assert protocols.train_spec(profile, defense) == profile.defenses["madry"]

"""``advlib.evaluation``: per-example masks, the worst case over attacks, determinism, and ``predict``."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advlib import evaluation
from advlib.attacks import run_attack
from advlib.evaluation import Evaluation, evaluate, predict
from advlib.specs import AttackSpec
from conftest import linear_model


def masks(**columns) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([c == "1" for c in v]) for k, v in columns.items()}


# ---------------------------------------------------------------------------------------------- Evaluation


def test_worst_case_is_per_example_and_not_min_of_accuracies():
    ev = Evaluation(correct=masks(Natural="11111110", A="11110000", B="00111111", C="11111111"))
    assert ev.accuracy() == {"Natural": 7 / 8, "A": 4 / 8, "B": 6 / 8, "C": 1.0}
    # examples 2 and 3 survive everything (index 7 fails Natural)
    assert ev.worst_case() == pytest.approx(2 / 8)
    assert ev.worst_case(["A", "B"]) == pytest.approx(2 / 8)
    assert ev.worst_case(["A", "C"]) == pytest.approx(4 / 8)
    assert ev.worst_case(["B"]) == pytest.approx(6 / 8)
    assert ev.worst_case(["Natural", "B"]) == pytest.approx(5 / 8)
    assert ev.worst_case(("C",)) == 1.0
    assert ev.worst_case() < min(ev.accuracy().values())


def test_worst_case_hand_loop_on_random_masks():
    g = torch.Generator().manual_seed(0)
    correct = {k: torch.rand(101, generator=g) < p for k, p in (("Natural", 0.95), ("x", 0.6), ("y", 0.7))}
    ev = Evaluation(correct=correct)
    # independent oracle: a plain Python loop over examples
    survived = sum(all(bool(correct[k][i]) for k in correct) for i in range(101))
    assert ev.worst_case() == pytest.approx(survived / 101)
    assert ev.accuracy()["x"] == pytest.approx(sum(bool(v) for v in correct["x"]) / 101)


def test_worst_case_unknown_entry_lists_the_valid_ones():
    ev = Evaluation(correct=masks(Natural="10", A="11"))
    with pytest.raises(ValueError, match="'Natural', 'A'"):
        ev.worst_case(["B"])


ATTACKS = {
    "PGD-l2": AttackSpec("pgd", "l2", 2.0, 3, 0.8),
    "PGD-linf": AttackSpec("pgd", "linf", 0.1, 3, 0.04),
    "SO-l2": AttackSpec("so", "l2", 2.0, 2, 1.0, random_start=False, sigma=0.15, samples=2),
    "SO-linf": AttackSpec("so", "linf", 0.1, 2, 0.05, random_start=False, sigma=0.1, samples=2),
}


@pytest.fixture(scope="module")
def trained_linear(load_quiet):
    x, y = load_quiet("train", 500)
    model = linear_model(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_evaluate_returns_masks_traces_and_times(trained_linear, load_quiet):
    x, y = load_quiet("test", 40)
    ev = evaluate(trained_linear, x, y, ATTACKS, seed=1)
    assert list(ev.correct) == ["Natural", *ATTACKS]
    for name, mask in ev.correct.items():
        assert mask.dtype == torch.bool and mask.shape == (40,), name
    nat = (trained_linear(x).argmax(1) == y)
    assert torch.equal(ev.correct["Natural"], nat)
    assert ev.accuracy()["Natural"] > 0.6
    for name, spec in ATTACKS.items():
        assert len(ev.traces[name].grad_norm) == spec.steps + 1 == len(ev.traces[name].loss)
        assert ev.seconds[name] >= 0
        assert ev.accuracy()[name] <= ev.accuracy()["Natural"] + 0.1
    assert ev.accuracy()["PGD-linf"] < ev.accuracy()["Natural"]  # the attacks do something
    survived = torch.stack(list(ev.correct.values())).all(0).float().mean().item()
    assert ev.worst_case() == pytest.approx(survived)


def test_evaluate_is_deterministic_given_the_seed(trained_linear, load_quiet):
    x, y = load_quiet("test", 40)
    a = evaluate(trained_linear, x, y, ATTACKS, seed=3)
    b = evaluate(trained_linear, x, y, ATTACKS, seed=3)
    for name in a.correct:
        assert torch.equal(a.correct[name], b.correct[name])
    assert a.traces["SO-l2"].grad_norm == b.traces["SO-l2"].grad_norm
    assert a.traces["PGD-l2"].loss == b.traces["PGD-l2"].loss
    c = evaluate(trained_linear, x, y, ATTACKS, seed=4)
    assert c.traces["PGD-l2"].loss != a.traces["PGD-l2"].loss  # random start and S-O noise follow the seed


def test_each_attack_is_seeded_independently_of_the_others(trained_linear, load_quiet):
    x, y = load_quiet("test", 20)
    alone = evaluate(trained_linear, x, y, {"SO-l2": ATTACKS["SO-l2"]}, seed=5)
    together = evaluate(trained_linear, x, y, ATTACKS, seed=5)
    assert alone.traces["SO-l2"].loss == together.traces["SO-l2"].loss
    assert torch.equal(alone.correct["SO-l2"], together.correct["SO-l2"])


def test_evaluate_runs_each_spec_with_its_own_seeded_generator(trained_linear, load_quiet):
    """Each row is ``run_attack(spec)`` from a fresh generator seeded with ``seed``: the masks say so."""
    x, y = load_quiet("test", 20)
    ev = evaluate(trained_linear, x, y, ATTACKS, seed=2)
    for name, spec in ATTACKS.items():
        x_adv = run_attack(spec, trained_linear, x, y, generator=torch.Generator().manual_seed(2))
        assert torch.equal(ev.correct[name], trained_linear(x_adv).argmax(1) == y), name
    assert not hasattr(evaluation, "run_attack")  # one home: advlib.attacks


def test_predict_restores_the_mode_and_chunks():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(784, 10)).train()
    x = torch.rand(7, 1, 28, 28)
    out = predict(model, x, batch_size=3)
    assert model.training
    model.eval()
    assert torch.equal(out, model(x).argmax(1))


def test_predict_restores_every_submodule_mode_and_requires_grad_flag():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.Linear(32, 10))
    model.train()
    model[3].eval()  # a frozen BatchNorm inside a training model
    model[2].weight.requires_grad_(False)
    modes, flags = [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append((any(s.training for s in m.modules()),
                                                             any(p.requires_grad for p in m.parameters()))))
    x = torch.rand(5, 1, 28, 28)
    out = predict(model, x)
    assert seen == [(False, False)]  # eval mode and frozen while predicting
    assert [m.training for m in model.modules()] == modes and [p.requires_grad for p in model.parameters()] == flags
    assert out.dtype == torch.int64 and out.shape == (5,)
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_rejects_bad_labels(trained_linear):
    with pytest.raises(ValueError):
        evaluate(trained_linear, torch.rand(3, 1, 28, 28), torch.zeros(3, dtype=torch.int32), {})

"""Evaluation (per-example masks, worst case, determinism) and the Table 1 frames (ours, paper, Δ)."""
from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from advlib import table
from advlib.evaluation import Evaluation, evaluate, predict, run_attack
from advlib.protocols import CELLS, DEFENSES, ROWS, TRAIN_NORMS, AttackSpec
from advlib.records import pack_mask

REFERENCE_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "table1_paper.csv"  # beside the checkout


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
    survived = sum(all(bool(correct[k][i]) for k in correct) for i in range(101))
    assert ev.worst_case() == pytest.approx(survived / 101)
    assert ev.accuracy()["x"] == pytest.approx(sum(bool(v) for v in correct["x"]) / 101)


def test_worst_case_unknown_entry_lists_the_valid_ones():
    ev = Evaluation(correct=masks(Natural="10", A="11"))
    with pytest.raises(ValueError, match="'Natural', 'A'"):
        ev.worst_case(["B"])


def lin(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


ATTACKS = {
    "PGD-l2": AttackSpec("pgd", "l2", 2.0, 3, 0.8),
    "PGD-linf": AttackSpec("pgd", "linf", 0.1, 3, 0.04),
    "SO-l2": AttackSpec("so", "l2", 2.0, 2, 1.0, random_start=False, sigma=0.15, samples=2),
    "SO-linf": AttackSpec("so", "linf", 0.1, 2, 0.05, random_start=False, sigma=0.1, samples=2),
}


@pytest.fixture(scope="module")
def trained_linear(load_quiet):
    x, y = load_quiet("train", 500)
    model = lin(0)
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


def test_run_attack_dispatches_on_kind(trained_linear, load_quiet):
    x, y = load_quiet("test", 10)
    for spec in ATTACKS.values():
        x_adv = run_attack(spec, trained_linear, x, y, generator=torch.Generator().manual_seed(0))
        delta = (x_adv - x).flatten(1)
        size = delta.norm(dim=1) if spec.norm == "l2" else delta.abs().amax(1)
        assert (size <= spec.eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    with pytest.raises(ValueError, match="'pgd', 'so'"):
        run_attack(AttackSpec("cw", "l2", 1.0, 1, 1.0), trained_linear, x, y)


def test_predict_restores_the_mode_and_chunks():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(784, 10)).train()
    x = torch.rand(7, 1, 28, 28)
    out = predict(model, x, batch_size=3)
    assert model.training
    model.eval()
    assert torch.equal(out, model(x).argmax(1))


def test_evaluate_rejects_bad_labels(trained_linear):
    with pytest.raises(ValueError):
        evaluate(trained_linear, torch.rand(3, 1, 28, 28), torch.zeros(3, dtype=torch.int32), {})


# ---------------------------------------------------------------------------------------------- tables


def test_paper_table_has_the_60_shipped_numbers():
    paper = table.paper_table()
    assert paper.shape == (5, 12)
    assert list(paper.index) == list(ROWS)
    assert list(paper.columns) == [(d, n) for d in DEFENSES for n in TRAIN_NORMS]
    assert paper.notna().all().all()
    assert paper.loc["PGD-linf", ("madry", "linf")] == 92.5
    assert paper.loc["SO-l2", ("madry", "linf")] == 0.0
    assert paper.loc["Natural", ("trades", "linf")] == 99.5
    assert paper.loc["PGD-l2", ("ensemble", "mix")] == 58.2
    assert paper.loc["SO-linf", ("atda", "mix")] == 83.4
    assert ((paper >= 0) & (paper <= 100)).all().all()


def test_shipped_paper_csv_matches_the_reference_copy():
    if not REFERENCE_CSV.is_file():
        pytest.skip(f"{REFERENCE_CSV} not present")
    with resources.files("advlib").joinpath("resources/table1_paper.csv").open() as f:
        shipped = sorted(tuple(r) for r in csv.reader(f))
    with REFERENCE_CSV.open() as f:
        reference = sorted(tuple(r) for r in csv.reader(f))
    assert shipped == reference and len(shipped) == 61


def record(cell: str, acc: dict[str, float], profile: str = "synthetic", agnostic: float = 0.1) -> dict:
    return {"cell": cell, "profile": profile, "accuracy": acc, "norm_agnostic": agnostic,
            "masks": {k: pack_mask(torch.ones(4, dtype=torch.bool)) for k in acc}}


SYNTH = {
    "madry-linf": record("madry-linf", {"Natural": 0.99, "PGD-l2": 0.5, "PGD-linf": 0.9, "SO-l2": 0.0125,
                                        "SO-linf": 0.875}, agnostic=0.0),
    "trades-l2": record("trades-l2", {"Natural": 0.98, "PGD-l2": 0.9}, agnostic=0.25),
}


def test_ours_table_places_records_and_leaves_nan_elsewhere():
    ours = table.ours_table(SYNTH)
    assert ours.shape == (5, 12)
    assert ours.loc["PGD-linf", ("madry", "linf")] == pytest.approx(90.0)
    assert ours.loc["SO-l2", ("madry", "linf")] == pytest.approx(1.25)
    assert ours.loc["PGD-l2", ("trades", "l2")] == pytest.approx(90.0)
    assert math.isnan(ours.loc["PGD-linf", ("trades", "l2")])  # row missing from that record
    assert ours.notna().sum().sum() == 7


def test_comparison_delta_is_ours_minus_paper():
    comp = table.comparison(SYNTH)
    assert list(comp.columns) == ["attack", "defense", "train_norm", "profile", "ours", "paper", "delta"]
    assert len(comp) == 7
    row = comp[(comp.attack == "PGD-linf") & (comp.defense == "madry") & (comp.train_norm == "linf")].iloc[0]
    assert (row.ours, row.paper) == (pytest.approx(90.0), 92.5)
    assert row.delta == pytest.approx(-2.5)
    assert (comp.delta == comp.ours - comp.paper).all()
    assert set(comp.profile) == {"synthetic"}


def test_side_by_side_strings_and_dashes():
    frame = table.side_by_side(SYNTH)
    assert frame.shape == (5, 12)
    assert list(frame.index) == [table.LABELS[r] for r in ROWS]
    assert frame.loc["PGD (ℓ∞)", ("madry", "ℓ∞")] == "90.0 / 92.5 (-2.5)"
    assert frame.loc["S-O (ℓ2)", ("madry", "ℓ∞")] == "1.2 / 0.0 (+1.2)" or \
        frame.loc["S-O (ℓ2)", ("madry", "ℓ∞")] == "1.3 / 0.0 (+1.3)"
    assert frame.loc["Natural", ("trades", "ℓ2")] == "98.0 / 99.4 (-1.4)"
    assert frame.loc["PGD (ℓ∞)", ("trades", "ℓ2")] == "—"
    assert frame.loc["Natural", ("atda", "Mix")] == "—"
    assert table.side_by_side(SYNTH, decimals=2).loc["PGD (ℓ2)", ("madry", "ℓ∞")] == "50.00 / 92.80 (-42.80)"


def test_side_by_side_with_all_12_cells_has_no_dashes():
    recs = {c: record(c, {r: 0.5 for r in ROWS}) for c in CELLS}
    frame = table.side_by_side(recs)
    assert not (frame == "—").any().any()
    paper = table.paper_table()
    ours_vs = table.comparison(recs)
    assert len(ours_vs) == 60 and ours_vs.paper.notna().all()
    assert ours_vs.delta.sum() == pytest.approx(60 * 50 - paper.sum().sum())


def test_norm_agnostic_series():
    series = table.norm_agnostic(SYNTH)
    assert len(series) == 12
    assert series[("madry", "linf")] == 0.0
    assert series[("trades", "l2")] == pytest.approx(25.0)
    assert series.isna().sum() == 10


def test_ours_long_empty_records():
    assert table.ours_long({}).empty
    assert table.ours_table({}).isna().all().all()
    assert isinstance(table.paper_long(), pd.DataFrame) and len(table.paper_long()) == 60

"""``advlib.table``: Table 1 as frames — ours from records, the paper's shipped numbers, Δ, and the CLI layouts."""
from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import torch

from advlib import protocols, table
from advlib.protocols import CELLS, DEFENSES, ROWS, TRAIN_NORMS
from advlib.records import pack_mask

REFERENCE_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "table1_paper.csv"  # beside the checkout


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
    return {"cell": cell, "profile": profile, "n_test": 4, "accuracy": acc, "norm_agnostic": agnostic,
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


def test_compact_has_one_row_per_recorded_cell_with_the_protocols_norm_labels():
    frame = table.compact(SYNTH)
    assert list(frame.index) == ["madry ℓ∞", "trades ℓ2"]
    assert list(frame.columns) == ["profile", "n_test", *[table.LABELS[r] for r in ROWS], "norm-agnostic"]
    assert frame.loc["madry ℓ∞", "PGD (ℓ∞)"] == "90.0/92.5" and frame.loc["madry ℓ∞", "norm-agnostic"] == "0.0"
    assert frame.loc["trades ℓ2", "S-O (ℓ∞)"] == "—" and frame.loc["trades ℓ2", "n_test"] == 4


def test_table_labels_come_from_protocols_norm_labels(monkeypatch):
    """One set of norm labels: relabelling ``protocols.NORM_LABELS`` relabels every table."""
    assert protocols.NORM_LABELS == {"l2": "ℓ2", "linf": "ℓ∞", "mix": "Mix"}
    monkeypatch.setitem(protocols.NORM_LABELS, "linf", "Linf")
    monkeypatch.setitem(protocols.NORM_LABELS, "mix", "both")
    assert list(table.compact(SYNTH).index) == ["madry Linf", "trades ℓ2"]
    columns = set(table.side_by_side(SYNTH).columns)
    assert ("madry", "Linf") in columns and ("atda", "both") in columns and ("madry", "ℓ∞") not in columns

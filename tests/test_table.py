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
    assert list(comp.columns) == ["attack", "defense", "train_norm", "profile", "n", "ours", "ours_low", "ours_high",
                                  "paper", "delta"]
    assert len(comp) == 7
    assert (comp.ours_low <= comp.ours).all() and (comp.ours <= comp.ours_high).all()
    from advlib import stats
    first = comp.iloc[0]
    low, high = stats.binomial_interval(round(first.ours * first.n / 100), int(first.n))
    assert (first.ours_low, first.ours_high) == (pytest.approx(100 * low), pytest.approx(100 * high))
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
    assert protocols.NORM_LABELS == {"l2": "ℓ2", "linf": "ℓ∞", "mix": "Mix", "l1": "ℓ1"}
    monkeypatch.setitem(protocols.NORM_LABELS, "linf", "Linf")
    monkeypatch.setitem(protocols.NORM_LABELS, "mix", "both")
    assert list(table.compact(SYNTH).index) == ["madry Linf", "trades ℓ2"]
    columns = set(table.side_by_side(SYNTH).columns)
    assert ("madry", "Linf") in columns and ("atda", "both") in columns and ("madry", "ℓ∞") not in columns


# ---------------------------------------------------------------------------------------------- beyond Table 1


from advlib import extended, records  # noqa: E402
from advlib.__main__ import main  # noqa: E402
from conftest import acc, full_record, make_record  # noqa: E402

#: The extended rows at nested masks: every derived row is the minimum of its parts.
EXT = {"AA-l2": 40.0, "AA-linf": 50.0, "PGD-l2@2": 70.0, "SO-l2@2": 65.0, "AA-l2@2": 60.0}


def test_table1_keeps_table_1_cells_only():
    recs = {"madry-linf": SYNTH["madry-linf"], "max-union": make_record("max-union", acc(40, 60, 40, 55)),
            "msd-union": make_record("msd-union", acc(30, 50, 30, 45)), "trades-l2": SYNTH["trades-l2"]}
    assert table.table1(recs) == {"madry-linf": SYNTH["madry-linf"], "trades-l2": SYNTH["trades-l2"]}
    assert table.table1({"max-union": recs["max-union"]}) == {}


def test_table_1_frames_ignore_multi_norm_records():
    recs = {**SYNTH, "max-union": make_record("max-union", acc(40, 60, 40, 55)),
            "avg-union": make_record("avg-union", acc(45, 55, 42, 50))}
    assert table.compact(recs).equals(table.compact(SYNTH))
    assert table.ours_table(recs).equals(table.ours_table(SYNTH))
    assert table.side_by_side(recs).equals(table.side_by_side(SYNTH))
    assert table.comparison(recs).equals(table.comparison(SYNTH))
    assert table.norm_agnostic(recs).equals(table.norm_agnostic(SYNTH))
    assert len(table.ours_long(recs)) == 7


def test_union_summary_without_and_with_the_extended_block():
    plain = make_record("max-union", acc(40, 60, 35, 55, natural=98), n=200)
    with_block = full_record("msd-union", acc(40, 60, 35, 55, natural=98), extended=EXT)
    frame = table.union_summary({"max-union": plain, "msd-union": with_block})
    assert list(frame.index) == ["max-union", "msd-union"]
    assert list(frame.columns) == ["profile", "n_test", "natural", "PGD ∪ S-O", "all attacks",
                                   "all attacks, ℓ2 ε=2"]
    row = frame.loc["max-union"]
    assert row["natural"] == pytest.approx(98.0) and row["PGD ∪ S-O"] == pytest.approx(35.0)
    assert math.isnan(row["all attacks"]) and math.isnan(row["all attacks, ℓ2 ε=2"])
    assert row["n_test"] == 200 and row["profile"] == "synthetic"
    row = frame.loc["msd-union"]
    assert row["all attacks"] == pytest.approx(35.0)  # nested masks: min(PGD/S-O both norms, AA both norms)
    assert row["all attacks, ℓ2 ε=2"] == pytest.approx(50.0)  # min(70, 65, 60, and ℓ∞: 60, 55, 50)


def test_extended_rows_of_a_multi_norm_record():
    rec = full_record("max-union", acc(40, 60, 35, 55), extended={**EXT, "AA-l2": 20.0})
    frame = table.extended_rows({"max-union": rec, "madry-l2": make_record("madry-l2", acc(1, 2, 3, 4))})
    assert list(frame.columns) == ["max-union", "madry-l2"] and frame["madry-l2"].isna().all()
    column = frame["max-union"]
    assert column["AutoAttack (ℓ2)"] == pytest.approx(20.0) and column["AutoAttack (ℓ∞)"] == pytest.approx(50.0)
    assert column["worst case (ℓ2)"] == pytest.approx(20.0) and column["worst case (ℓ∞)"] == pytest.approx(50.0)
    assert column["norm-agnostic, all attacks"] == pytest.approx(20.0)
    assert column["worst case (ℓ2, ε=2)"] == pytest.approx(60.0)
    assert column["norm-agnostic (ℓ2 ε=2, ℓ∞)"] == pytest.approx(50.0)
    assert set(extended.derived_rows(rec)) == {"Worst-l2", "Worst-linf", "Worst-l2@2", "Union", "Union@2"}


def _write(folder: Path, *recs: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rec in recs:
        records.write_record(folder / f"{rec['cell']}.json", rec)
    return folder


def test_table_cli_prints_the_multi_norm_and_extended_sections(tmp_path, capsys):
    folder = _write(tmp_path / "res", full_record("madry-linf", acc(7, 80, 1, 77)),
                    full_record("max-union", acc(40, 60, 35, 55), extended=EXT),
                    full_record("avg-union", acc(45, 55, 42, 50)))
    assert main(["table", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "1 of 12 cells" in out and "madry ℓ∞" in out
    assert "Beyond Table 1 (multi-norm training), accuracy in %:" in out
    section = out.split("Beyond Table 1")[1].split("Extended rows")[0]
    lines = {line.split()[0]: line for line in section.splitlines() if line.strip()}
    assert lines["max-union"].split()[-2:] == ["35.0", "50.0"]  # all attacks: min of the parts (nested masks)
    assert lines["avg-union"].split()[-2:] == ["NaN", "NaN"]  # no extended block
    assert "madry-linf" not in section
    extended_section = out.split("Extended rows")[1]
    assert "max-union" in extended_section and "avg-union" not in extended_section
    assert "norm-agnostic, all attacks" in extended_section and "AutoAttack (ℓ2, ε=2)" in extended_section


def test_table_cli_without_multi_norm_records_prints_no_extra_section(tmp_path, capsys):
    folder = _write(tmp_path / "res", full_record("madry-linf", acc(7, 80, 1, 77)))
    assert main(["table", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "1 of 12 cells" in out and "Beyond Table 1" not in out and "Extended rows" not in out


def test_table_cli_on_an_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["table", str(tmp_path / "empty")]) == 2
    assert "no valid records" in capsys.readouterr().err


def test_table_cli_with_multi_norm_records_only(tmp_path, capsys):
    folder = _write(tmp_path / "res", full_record("max-union", acc(40, 60, 35, 55), extended=EXT))
    assert main(["table", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "ours/paper" not in out and "Beyond Table 1" in out and "max-union" in out


def test_diagnostics_frame_flags_and_leaves_out_cells_without_a_block():
    rec = full_record("max-union", acc(40, 60, 35, 55), extended=EXT)
    rec["extended"]["diagnostics"] = {
        "monotone in ε": {"value": 0.15, "threshold": 0.01, "flag": True, "n": 40, "what": "rise"},
        "zero gradient": {"value": 0.0, "threshold": 0.05, "flag": False, "n": 40, "what": "share"}}
    frame = table.diagnostics({"max-union": rec, "madry-l2": make_record("madry-l2", acc(1, 2, 3, 4))})
    assert list(frame.columns) == ["max-union"]
    assert frame.loc["monotone in ε", "max-union"] == "FLAG (0.15)"
    assert frame.loc["zero gradient", "max-union"] == "pass (0)"
    assert table.diagnostics({"madry-l2": make_record("madry-l2", acc(1, 2, 3, 4))}).empty


@pytest.mark.parametrize("version, radii", [("final", (0.3, 2.0, 10)), ("v1", (0.3, 1.5, 12))])
def test_multinorm_literature_is_cited_data_with_worst_case_below_each_norm(version, radii):
    lit = table.multinorm_literature(version)
    assert {"MSD", "Worst-PGD (MAX)", "PGD Aug (AVG)", "P_1 (ℓ1 PGD training)"} <= set(lit.index)
    assert lit["source"].str.contains("robust_union").all() and (lit["version"] == version).all()
    assert all((lit[column] == eps).all() for column, eps in zip(("eps_linf", "eps_l2", "eps_l1"), radii))
    norms = lit[["linf", "l2", "l1"]]
    assert (lit["all_attacks"] <= norms.min(axis=1) + 1e-9).all(), "a union cannot beat its weakest norm"


def test_multinorm_literature_names_the_valid_versions():
    with pytest.raises(ValueError, match="'final', 'v1'"):
        table.multinorm_literature("v2")


def test_so_vs_autoattack_l2_counts_per_example():
    from advlib.records import pack_mask
    bits = lambda t: pack_mask(torch.tensor([c == "1" for c in t]))
    rec = {"n_test": 6, "masks": {"PGD-l2": bits("111100"), "SO-l2": bits("110000")},
           "extended": {"masks": {"AA-l2": bits("101000"), "PGD-l2@2": bits("111111"), "SO-l2@2": bits("111110"),
                                  "AA-l2@2": bits("111111")}}}
    frame = table.so_vs_autoattack_l2({"m": rec})
    at4, at2 = frame.loc[("m", "ℓ2 ε = 4.0")], frame.loc[("m", "ℓ2 ε = 2.0")]
    assert at4["S-O (%)"] == pytest.approx(100 * 2 / 6) and at4["AutoAttack (%)"] == pytest.approx(100 * 2 / 6)
    assert (at4["S-O breaks, AutoAttack not"], at4["AutoAttack breaks, S-O not"]) == (1, 1)  # images 2 and 1
    assert (at2["S-O breaks, AutoAttack not"], at2["AutoAttack breaks, S-O not"]) == (1, 0)
    assert at4["n"] == 6


# ---------------------------------------------------------------------------------------------- the runs and findings


def run_record(cell: str, percent: dict[str, float], *, device: str = "cpu (x86_64, 2 threads)",
               train: float = 120.0, evaluate: dict[str, float] | None = None, profile: str = "large") -> dict:
    """``full_record`` with what a real run writes about itself: config, data sizes, device, wall times, history."""
    rec = full_record(cell, percent, profile=profile)
    rec.update({"device": device, "data": {"n_train": 600},
                "config": {"defenses": {protocols.split_cell(cell)[0]: {"epochs": 3}},
                           "train_attack": {"linf": {"steps": 10}},
                           "evaluation": {"PGD-l2": {"steps": 40}, "SO-l2": {"steps": 40, "samples": 20}}},
                "wall_time": {"train": train, "evaluate": evaluate or {"PGD-l2": 30.0, "SO-l2": 90.0}},
                "training": [{"loss": 2.0, "adv_acc": 0.1}, {"loss": 0.51234, "adv_acc": 0.877}]})
    return rec


def test_at_a_glance_rounds_every_percentage_and_keeps_its_columns_without_records():
    frame = table.at_a_glance(SYNTH)
    assert list(frame.columns) == ["profile", "n_test", *table.LABELS.values(), "norm-agnostic"]
    assert frame.loc["madry-linf", "S-O (ℓ2)"] == 1.2 and frame.loc["trades-l2", "norm-agnostic"] == 25.0  # 1.25 → 1.2
    assert math.isnan(frame.loc["trades-l2", "PGD (ℓ∞)"])
    assert table.at_a_glance(SYNTH, decimals=2).loc["madry-linf", "S-O (ℓ2)"] == 1.25
    assert table.at_a_glance({}).empty and list(table.at_a_glance({}).columns) == list(frame.columns)


def test_own_norm_vs_paper_reads_each_cells_own_norm_and_skips_mix():
    recs = {**SYNTH, "madry-mix": record("madry-mix", {r: 0.5 for r in ROWS})}
    frame = table.own_norm_vs_paper(recs)
    assert list(frame.index) == ["madry-linf", "trades-l2"]
    paper = table.paper_table()
    row = frame.loc["madry-linf"]
    assert row["own-norm PGD, ours (%)"] == 90.0
    assert row["own-norm PGD, paper (%)"] == paper.loc["PGD-linf", ("madry", "linf")]
    assert frame.loc["trades-l2", "own-norm PGD, ours (%)"] == 90.0  # PGD-l2 for an ℓ2-trained model
    assert frame.loc["trades-l2", "natural, paper (%)"] == paper.loc["Natural", ("trades", "l2")]
    assert set(frame["profile"]) == {"synthetic"} and set(frame["n_test"]) == {4}


def test_delta_by_attack_summarises_the_comparison_per_row():
    frame = table.delta_by_attack(SYNTH)
    assert list(frame.columns) == ["mean", "min", "max", "count"]
    assert list(frame.index) == list(table.comparison(SYNTH)["attack"].unique())
    natural = table.comparison(SYNTH).query("attack == 'Natural'")["delta"]
    assert frame.loc["Natural", "count"] == 2 and frame.loc["Natural", "mean"] == pytest.approx(natural.mean())
    assert frame.loc["PGD-linf", "min"] == frame.loc["PGD-linf", "max"] == pytest.approx(-2.5)


def test_norm_agnostic_vs_paper_uses_the_papers_smallest_number_per_column():
    from advlib import claims
    bound = table.paper_bound()
    assert bound[("madry", "mix")] == pytest.approx(100 * claims.paper_records()["madry-mix"]["norm_agnostic"])
    frame = table.norm_agnostic_vs_paper(SYNTH)
    assert len(frame) == 12 and list(frame.columns) == ["ours (%)", "paper, upper bound (%)", "profile"]
    assert frame.loc[("trades", "l2"), "ours (%)"] == pytest.approx(25.0)
    assert frame.loc[("trades", "l2"), "paper, upper bound (%)"] == table.paper_table()[("trades", "l2")].min()
    assert frame.loc[("madry", "linf"), "profile"] == "synthetic" and frame.loc[("atda", "mix"), "profile"] == "—"
    assert frame["ours (%)"].isna().sum() == 10


def test_norm_agnostic_sources_put_ours_then_the_paper_bound_per_recorded_cell():
    frame = table.norm_agnostic_sources({**SYNTH, "max-union": make_record("max-union", acc(1, 1, 1, 1))})
    assert list(frame["cell"]) == ["madry-linf", "trades-l2"] * 2  # multi-norm cells are not in Table 1
    ours, paper = frame.iloc[:2], frame.iloc[2:]
    assert set(ours["source"]) == {"ours (synthetic, n=4)"} and list(ours["accuracy"]) == pytest.approx([0.0, 25.0])
    assert list(paper["accuracy"]) == [table.paper_bound()[("madry", "linf")], table.paper_bound()[("trades", "l2")]]


def test_runs_and_wall_seconds_describe_the_run_behind_each_record():
    rec = run_record("madry-linf", acc(40, 90, 5, 85), train=100.4, evaluate={"PGD-l2": 20.0, "SO-l2": 30.0})
    assert table.wall_seconds(rec) == {"training": 100.4, "evaluation": 50.0}
    row = table.runs({"madry-linf": rec}).loc["madry-linf"]
    assert (row["n_train"], row["epochs"], row["training PGD steps"], row["PGD steps (eval)"]) == (600, 3, 10, 40)
    assert row["S-O steps × draws"] == "40 × 20" and row["train + eval time (s)"] == 150 and row["profile"] == "large"


def test_training_summary_reads_the_last_epoch():
    row = table.training_summary({"trades-l2": run_record("trades-l2", acc(1, 1, 1, 1), train=99.6)}).loc["trades-l2"]
    assert (row["epochs"], row["final loss"], row["final adv_acc (%)"]) == (2, 0.512, 87.7)
    assert row["training time (s)"] == 100


def test_accuracy_and_cost_in_percent_and_minutes():
    recs = {"madry-linf": run_record("madry-linf", acc(40, 90, 5, 85), train=600.0),
            "atda-mix": run_record("atda-mix", acc(50, 60, 45, 55), device="NVIDIA H100 80GB HBM3", train=30.0)}
    frame = table.accuracy_and_cost(recs)
    assert list(frame.index) == ["madry-linf", "atda-mix"] and frame["n_test"].dtype.kind == "i"
    assert frame.loc["madry-linf", "PGD (ℓ∞) (%)"] == pytest.approx(90.0)
    assert frame.loc["madry-linf", "norm-agnostic (%)"] == pytest.approx(5.0)
    assert (frame.loc["madry-linf", "training (min)"], frame.loc["madry-linf", "evaluation (min)"]) == (10.0, 2.0)
    assert list(frame["device"]) == ["CPU", "H100"]


def test_released_vs_paper_puts_the_trades_linf_column_beside_the_record():
    rec = make_record("trades-linf", acc(60, 90, 5, 88), n=200, profile="full")
    frame = table.released_vs_paper(rec)
    assert list(frame.columns) == ["released model, ours (full, n = 200)", "paper, TRADES ℓ∞", "Δ (points)"]
    assert list(frame.index) == [table.LABELS[r] for r in ROWS]
    paper = table.paper_table()[("trades", "linf")]
    assert frame.loc["S-O (ℓ2)", "paper, TRADES ℓ∞"] == paper["SO-l2"]
    assert frame.loc["S-O (ℓ2)", "Δ (points)"] == pytest.approx(5.0 - paper["SO-l2"])


def test_extension_cost_lists_each_stage_in_seconds():
    rec = run_record("madry-linf", acc(1, 1, 1, 1), train=500.0, evaluate={"PGD-l2": 100.0, "SO-l2": 200.0})
    block = {"autoattack": 900.0, "curves": 300.0, "total": 1200.0}
    sample = {"n_test": 1000, "extended_wall_time_extrapolated": block}
    cost = table.extension_cost(rec, sample)
    assert cost.name == "seconds (n = 1,000)"
    assert cost.to_dict() == {"training": 500.0, "the paper's five rows": 300.0, "extended: autoattack": 900.0,
                              "extended: curves": 300.0, "extended block, total": 1200.0}


def test_effort_flags_count_the_more_steps_and_restart_checks():
    checks = ["zero gradient", "4x steps l2", "5 restarts l2"]
    flags = pd.DataFrame({"a": ["FLAG (0.2)", "FLAG (0.03)", "pass (0)"], "b": ["FLAG (0.1)", "pass (0)", "FLAG (0.02)"]},
                         index=checks)
    assert table.effort_flags(flags) == (2, 4)  # the zero-gradient flags are not effort checks
    assert table.effort_flags(flags.drop(index=["4x steps l2", "5 restarts l2"])) == (0, 0)


def test_worst_cases_read_the_extended_rows_or_nan():
    with_block = full_record("msd-union", acc(40, 60, 35, 55, natural=95), extended=EXT)
    frame = table.worst_cases({"msd-union": with_block, "max-union": make_record("max-union", acc(1, 1, 1, 1))})
    assert list(frame.columns) == ["clean", "ℓ∞ ε=0.3, worst case", "ℓ2 ε=2, worst case",
                                   "norm-agnostic (ℓ2 ε=2, ℓ∞), all attacks"]
    assert list(frame.loc["msd-union"]) == pytest.approx([95.0, 50.0, 60.0, 50.0])  # nested masks: minima
    assert frame.loc["max-union", "clean"] == pytest.approx(99.0) and frame.loc["max-union"].iloc[1:].isna().all()


def test_best_norm_agnostic_names_the_best_model_of_each_group():
    recs = {"best": {"madry-linf": make_record("madry-linf", acc(40, 90, 5, 85)),
                     "trades-linf": make_record("trades-linf", acc(40, 90, 20, 85))},
            "multi": {"msd-union": full_record("msd-union", acc(40, 60, 35, 55, natural=95), extended=EXT),
                      "max-union": make_record("max-union", acc(30, 60, 25, 55))}}
    summary = pd.concat({g: table.union_summary(r) for g, r in recs.items()}, names=["group", "cell"])
    wide = table.extended_rows(recs["multi"])
    best = table.best_norm_agnostic(summary, wide, "multi")
    assert list(best.index) == ["paper's defenses", "multi-norm", "all attacks", "all attacks, ℓ2 ε=2", "every model"]
    assert best.loc["paper's defenses", "accuracy"] == pytest.approx(20.0)
    assert best.loc["paper's defenses", "where"] == "trades-linf, best"
    assert (best.loc["multi-norm", "where"], best.loc["multi-norm", "natural"]) == ("msd-union", pytest.approx(95.0))
    assert best.loc["all attacks", "models"] == 1 and best.loc["all attacks, ℓ2 ε=2", "accuracy"] == pytest.approx(50.0)
    assert (best.loc["every model", "accuracy"], best.loc["every model", "models"]) == (pytest.approx(35.0), 4)
    only_paper = table.best_norm_agnostic(summary.loc[["best"]], wide.iloc[:0], "multi")
    assert list(only_paper.index) == ["paper's defenses", "every model"]


def test_against_bound_sets_every_attack_cell_against_the_data_s_bound():
    from advlib import bounds
    recs = {"trades-linf": full_record("trades-linf", acc(90, 60, 10, 55), n=1000, profile="large"),
            "madry-l2": full_record("madry-l2", acc(30, 60, 35, 55), n=1000, profile="large")}
    for rec in recs.values():
        rec["config"] = {"evaluation": {a: {"eps": {"l2": 4.0, "linf": 0.3}[n]} for a, n in table.ATTACK_NORMS.items()}}
    frame = table.against_bound(recs)
    assert len(frame) == 4 * len(table.CELLS)
    limit = bounds.upper_bound("l2", 4.0, 1000)  # the first 1,000 images' bound at ℓ2 ε = 4
    assert frame.loc[("trades-linf", "PGD-l2"), "ours above"] == (0.9 > limit)
    assert frame.loc[("trades-linf", "PGD-l2"), "above"] == "both" and frame.loc[("madry-l2", "PGD-linf"), "above"] == "—"
    assert not frame.loc[("madry-l2", "PGD-l2"), "ours above"] and frame.loc[("madry-l2", "PGD-l2"), "n"] == 1000
    assert frame.loc[("madry-l2", "PGD-l2"), "bound, our n (%)"] == pytest.approx(100 * limit)
    paper = table.paper_long()
    whole = bounds.upper_bound("l2", 4.0, 10_000)
    above = paper[paper["attack"].isin(["PGD-l2", "SO-l2"]) & (paper["accuracy_percent"] / 100 > whole + 0.5e-4)]
    assert frame["paper above"].sum() == len(above)  # the ℓ∞ bound is 100 %: no ℓ∞ cell is above it
    assert frame.loc[("atda-mix", "PGD-linf"), "ours (%)"] != frame.loc[("atda-mix", "PGD-linf"), "ours (%)"]  # NaN


def _speed_doc() -> dict:
    seconds = {"fp32": {"apgd-ce": 2.0, "square": 8.0}, "bf16": {"apgd-ce": 1.0, "square": 2.0}}
    return {"n": 4, "rows": {"AA-linf": {"seconds": seconds, "total_seconds": {"fp32": 10.0, "bf16": 3.0},
                                         "accuracy": {"fp32": 0.5, "bf16": 0.75}, "robust_only_in_bf16": 1}}}


def test_search_precision_cost_gives_seconds_per_attack_and_the_speed_up():
    frame = table.search_precision_cost(_speed_doc())
    assert list(frame.index) == [("AA-linf", "apgd-ce"), ("AA-linf", "square"), ("AA-linf", "total")]
    assert frame.loc[("AA-linf", "square"), "speed-up"] == 4.0
    assert frame.loc[("AA-linf", "total"), "fp32 search (s)"] == 10.0


def test_search_precision_check_gives_the_difference_and_the_missed_images():
    row = table.search_precision_check(_speed_doc()).loc["AA-linf"]
    assert (row["fp32 search (%)"], row["bf16 search (%)"], row["Δ (points)"], row["missed by bf16"]) == \
        (50.0, 75.0, 25.0, 1)


def test_search_time_split_gives_each_attacks_time_inside_and_outside_the_model():
    attacks = {"apgd-ce": {"points": 4, "seconds": 10.0, "forward_s": 3.0, "backward_s": 5.0},
               "square": {"points": 2, "seconds": 30.0, "forward_s": 6.0, "backward_s": 0.0}}
    frame = table.search_time_split({"n": 4, "rows": {"AA-linf": {"attacks": attacks}}})
    assert list(frame.index) == [("AA-linf", "apgd-ce"), ("AA-linf", "square"), ("all rows", "total")]
    assert frame.loc[("AA-linf", "apgd-ce"), "attack's own code (s)"] == 2.0
    assert frame.loc[("AA-linf", "square"), "model share (%)"] == 20.0
    total = frame.loc[("all rows", "total")]
    assert (total["points"], total["seconds"], total["attack's own code (s)"], total["model share (%)"]) == \
        (4, 40.0, 26.0, 35.0)

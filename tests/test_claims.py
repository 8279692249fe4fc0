"""``advlib.claims``: the paper's six claims checked against records, and the paper's own table as records.

The claim checks run on synthetic records whose per-example masks are built to give chosen accuracies
(``conftest.make_record``), and on the paper's own Table 1 (every claim must come out "supported" there: the
criteria encode the paper's statements).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from advlib import claims, protocols
from advlib.verdict import VERDICTS, provenance
import torch

from advlib.records import pack_mask
from conftest import acc, make_record


def test_every_claim_is_supported_by_the_papers_own_table():
    table = claims.verdicts(claims.paper_records())
    assert list(table.claim) == [1, 2, 3, 4, 5, 6]
    assert list(table.columns) == ["claim", "statement", "verdict", "evidence"]
    assert list(table.statement) == [claims.STATEMENTS[k] for k in range(1, 7)]
    assert set(table.verdict) == {"supported"}, table[["claim", "verdict", "evidence"]].to_string()
    assert all("paper-table" in e for e in table.evidence)  # every verdict names where its numbers come from


def test_paper_records_use_the_minimum_over_rows_as_the_norm_agnostic_bound():
    recs = claims.paper_records()
    assert set(recs) == set(protocols.CELLS)
    assert recs["madry-mix"]["norm_agnostic"] == pytest.approx(0.183)
    assert recs["trades-linf"]["accuracy"]["SO-l2"] == pytest.approx(0.032)
    assert all(r["profile"] == "paper-table" and r["n_test"] == 10_000 and r["masks"] == {} for r in recs.values())


@pytest.mark.parametrize("k", sorted(claims.CLAIMS))
def test_no_records_gives_no_records_verdicts(k):
    frame, verdict = claims.CLAIMS[k]({})
    assert verdict.verdict == "no records" and frame.empty and verdict.claim == k


def test_verdicts_are_always_one_of_the_four_words():
    records = {c: make_record(c, acc(50, 50, 40, 40)) for c in protocols.CELLS}
    assert set(claims.verdicts(records).verdict) <= set(VERDICTS)


def test_the_thresholds_are_the_documented_criteria():
    assert (claims.ROBUST, claims.HOLDS, claims.BREAK_DROP, claims.UNSATISFYING, claims.BARELY, claims.FIX_GAIN,
            claims.SIMILAR) == (80.0, 50.0, 20.0, 50.0, 30.0, 10.0, 5.0)
    assert (claims.RELEASED_GAP, claims.AUTOATTACK_SLACK, claims.KEEPS_HALF) == (50.0, 5, 50.0)


def test_the_papers_own_released_column_clears_the_released_gap():
    assert claims.released_gap_holds(claims.paper_records()["trades-linf"])  # the criterion encodes the paper


def test_every_threshold_is_a_documented_module_constant():
    """Each threshold constant carries a ``#:`` comment right above it (its reason or source)."""
    source = Path(claims.__file__).read_text(encoding="utf-8").splitlines()
    names = ("ROBUST", "HOLDS", "BREAK_DROP", "UNSATISFYING", "BARELY", "FIX_GAIN", "SIMILAR", "RELEASED_GAP",
             "AUTOATTACK_SLACK", "KEEPS_HALF")
    for name in names:
        line = next(i for i, text in enumerate(source) if text.startswith(f"{name} = "))
        assert source[line - 1].startswith("#:"), f"{name} has no #: comment saying why"


def test_claim1_grades_own_norm_robustness():
    good = {c: make_record(c, acc(95, 95, 95, 95)) for c in ("madry-l2", "madry-linf", "trades-l2", "trades-linf")}
    assert claims.claim1(good)[1].verdict == "supported"
    mixed = {**good, "madry-l2": make_record("madry-l2", acc(60, 5, 60, 5))}
    assert claims.claim1(mixed)[1].verdict == "partly supported"
    bad = {c: make_record(c, acc(10, 10, 10, 10)) for c in good}
    frame, verdict = claims.claim1(bad)
    assert verdict.verdict == "not supported" and not frame.robust.any()
    assert "synthetic, n=200" in verdict.evidence


def test_claim2_separates_s_o_breaking_from_pgd_already_breaking():
    holds_then_breaks = acc(pgd_l2=90, pgd_linf=90, so_l2=5, so_linf=90)
    both_break = acc(pgd_l2=7, pgd_linf=80, so_l2=1, so_linf=78)
    recs = {"madry-linf": make_record("madry-linf", holds_then_breaks),
            "trades-linf": make_record("trades-linf", holds_then_breaks)}
    assert claims.claim2(recs)[1].verdict == "supported"
    recs["trades-linf"] = make_record("trades-linf", both_break)
    assert claims.claim2(recs)[1].verdict == "partly supported"
    frame, verdict = claims.claim2({"madry-linf": make_record("madry-linf", both_break)})
    assert verdict.verdict == "not supported" and "PGD-ℓ2 already breaks it" in verdict.evidence
    assert "only 1 of the 2 cells" in verdict.evidence and list(frame.cell) == ["madry-linf"]


def test_claim3_compares_mix_with_the_better_single_norm_model():
    recs = {"madry-l2": make_record("madry-l2", acc(90, 0, 90, 0)),
            "madry-linf": make_record("madry-linf", acc(5, 90, 0, 90)),
            "madry-mix": make_record("madry-mix", acc(40, 40, 20, 20))}
    frame, verdict = claims.claim3(recs)
    row = frame.set_index("defense").loc["madry"]
    assert row.mix == pytest.approx(20.0) and row.gain == pytest.approx(20.0) and row.barely_helps
    assert row.weakest_attack == "SO-l2" and row.weakest == pytest.approx(20.0) and row.not_zero
    assert verdict.verdict == "supported" and "only 1 of the 2 cells" in verdict.evidence
    recs["madry-mix"] = make_record("madry-mix", acc(85, 85, 80, 80))
    assert claims.claim3(recs)[1].verdict == "not supported"
    alone = claims.claim3({"trades-mix": make_record("trades-mix", acc(40, 40, 20, 20))})[1]
    assert alone.verdict == "supported" and "not recorded" in alone.evidence and "gain unknown" in alone.evidence


def test_claim3_fails_when_an_attack_reduces_mix_to_almost_zero():
    """The paper's other half: mixing means no attack takes Mix to almost zero. A Mix model that still barely helps
    norm-agnostic robustness but falls to one attack is "not supported" (both Mix cells), "partly" (one)."""
    zeroed = {"madry-mix": make_record("madry-mix", acc(40, 60, 5, 55)),
              "trades-mix": make_record("trades-mix", acc(60, 40, 55, 3))}
    frame, verdict = claims.claim3(zeroed)
    assert verdict.verdict == "not supported" and not frame["not_zero"].any() and frame["barely_helps"].all()
    assert f"every attack row > {claims.ALMOST_ZERO:.0f} %" in verdict.evidence
    zeroed["madry-mix"] = make_record("madry-mix", acc(40, 60, 15, 55))
    assert claims.claim3(zeroed)[1].verdict == "partly supported"


def test_claim4_needs_both_groups_and_a_real_gain():
    weak, strong = acc(5, 90, 0, 90), acc(60, 80, 60, 80)
    recs = {"madry-linf": make_record("madry-linf", weak), "ensemble-linf": make_record("ensemble-linf", strong)}
    frame, verdict = claims.claim4(recs)
    assert verdict.verdict == "supported" and set(frame.group) == {"ensemble/ATDA", "Madry/TRADES"}
    recs["ensemble-linf"] = make_record("ensemble-linf", weak)
    assert claims.claim4(recs)[1].verdict == "not supported"
    assert claims.claim4({"madry-linf": recs["madry-linf"]})[1].verdict == "no records"
    assert claims.claim4({"madry-l2": make_record("madry-l2", weak)})[0].empty  # ℓ2 training is not judged


def test_claim5_counts_similar_pairs_on_ensemble_cells_only():
    close, far = acc(60, 80, 58, 79), acc(60, 80, 30, 79)
    assert claims.claim5({"ensemble-linf": make_record("ensemble-linf", close)})[1].verdict == "supported"
    frame, verdict = claims.claim5({"ensemble-linf": make_record("ensemble-linf", far),
                                    "madry-linf": make_record("madry-linf", far)})
    assert verdict.verdict == "partly supported" and set(frame.cell) == {"ensemble-linf"}
    assert claims.claim5({"ensemble-l2": make_record("ensemble-l2", acc(60, 80, 30, 50))})[1].verdict == "not supported"


def test_claim5_writes_norms_with_the_protocols_labels(monkeypatch):
    monkeypatch.setitem(protocols.NORM_LABELS, "linf", "Linf")
    evidence = claims.claim5({"ensemble-linf": make_record("ensemble-linf", acc(60, 80, 58, 79))})[1].evidence
    assert "ensemble-linf Linf: PGD 80.0 % vs S-O 79.0 %" in evidence and "ℓ∞" not in evidence


def test_verdict_table_has_one_column_per_group_after_the_statements():
    weak = {c: make_record(c, acc(10, 10, 10, 10)) for c in protocols.CELLS}
    frame = claims.verdict_table({"paper": claims.paper_records(), "weak": weak, "none": {}})
    assert list(frame.columns) == ["statement", "paper", "weak", "none"] and list(frame.index) == [1, 2, 3, 4, 5, 6]
    assert list(frame.statement) == [claims.STATEMENTS[k] for k in range(1, 7)]
    assert set(frame.paper) == {"supported"} and set(frame["none"]) == {"no records"}
    assert list(frame.weak) == list(claims.verdicts(weak).verdict)


def test_brief_lists_the_verdicts_in_one_line():
    assert claims.brief(claims.paper_records()) == "; ".join(f"claim {k} supported" for k in range(1, 7))
    assert claims.brief({}).count("no records") == 6


def _with_l2_2(cell: str, so: float, pgd: float, n: int = 1000) -> dict:
    rec = make_record(cell, acc(50, 90, 10, 85), n=n, profile="large")
    rec["extended"] = {"accuracy": {"SO-l2@2": so / 100, "PGD-l2@2": pgd / 100}}
    return rec


def test_claim6_judges_s_o_at_l2_2_on_trades_and_can_fail():
    frame, verdict = claims.claim6({"trades-released": _with_l2_2("trades-released", 31.2, 94.1),
                                    "trades-linf": _with_l2_2("trades-linf", 14.4, 88.1)})
    assert verdict.verdict == "supported" and list(frame.cell) == ["trades-released", "trades-linf"]
    assert not frame["matches_paper"].any() and "inside the interval of 0 of 2" in verdict.evidence
    robust = {"trades-linf": _with_l2_2("trades-linf", 80.0, 90.0)}  # S-O at ε = 2 barely moves it
    assert claims.claim6(robust)[1].verdict == "not supported"
    close_to_pgd = {"trades-linf": _with_l2_2("trades-linf", 40.0, 50.0)}  # low, but PGD does as much
    assert claims.claim6(close_to_pgd)[1].verdict == "not supported"
    matches = claims.claim6({"trades-linf": _with_l2_2("trades-linf", 41.0, 90.0)})[0]
    assert matches["matches_paper"].all()


def test_released_gap_compares_pgd_and_s_o_in_l2():
    breaks = make_record("trades-linf", acc(pgd_l2=75, pgd_linf=90, so_l2=0, so_linf=90))
    assert claims.released_gap_holds(breaks)
    assert not claims.released_gap_holds(breaks, gap=75.0)  # a 75-point gap is not more than 75
    assert not claims.released_gap_holds(make_record("trades-linf", acc(75, 90, 25, 90)))  # 50 points: not more


def test_autoattack_at_least_as_strong_allows_a_few_images():
    cross = pd.DataFrame({"n": [1000, 1000], "S-O (%)": [10.0, 20.0], "AutoAttack (%)": [9.0, 20.4]})
    assert claims.autoattack_at_least_as_strong(cross)  # 4 images above S-O on the second pair
    assert not claims.autoattack_at_least_as_strong(cross, slack=3)
    cross.loc[0, "AutoAttack (%)"] = 10.6  # 6 images above
    assert not claims.autoattack_at_least_as_strong(cross)


def test_keeps_half_asks_whether_any_model_reaches_the_threshold():
    assert not claims.keeps_half(pd.Series([12.0, 49.9, float("nan")]))
    assert claims.keeps_half(pd.Series([12.0, 50.0]))
    assert claims.keeps_half(pd.Series([30.0]), threshold=25.0) and not claims.keeps_half(pd.Series(dtype=float))


def _strong(cell: str, worst_l2: float, *, suffix: str = "", n: int = 100) -> dict:
    """A record whose every ℓ2 attack at the radius ``suffix`` leaves exactly the first ``worst_l2`` % correct."""
    rec = make_record(cell, acc(90, 90, 90, 90), n=n, profile="large")
    first = pack_mask(torch.arange(n) < round(n * worst_l2 / 100))
    rows = {f"{a}-l2{suffix}": first for a in ("PGD", "SO", "AA")}
    rec["extended"] = {"masks": {**({} if suffix else {}), **rows, "AA-linf": rec["masks"]["PGD-linf"]},
                       "accuracy": {k: worst_l2 / 100 for k in rows}}
    if suffix:
        rec["masks"].update({f"{a}-l2": first for a in ("PGD", "SO")})
    return rec


def test_the_thesis_of_claim_2_holds_when_every_l2_attack_together_breaks_both_models_and_can_fail():
    broken = {c: _strong(c, 3.0) for c in ("madry-linf", "trades-linf")}
    assert claims.thesis(2, broken).verdict == "supported"
    robust = {"madry-linf": _strong("madry-linf", 3.0), "trades-linf": _strong("trades-linf", 70.0)}
    assert claims.thesis(2, robust).verdict == "partly supported"
    assert claims.thesis(2, {c: _strong(c, 60.0) for c in ("madry-linf", "trades-linf")}).verdict == "not supported"
    assert claims.thesis(2, {}).verdict == "no records"


def test_the_thesis_of_claim_6_reads_the_l2_radius_2_rows():
    assert claims.thesis(6, {"trades-linf": _strong("trades-linf", 12.0, suffix="@2")}).verdict == "supported"
    assert claims.thesis(6, {"trades-linf": _strong("trades-linf", 60.0, suffix="@2")}).verdict == "not supported"


def test_headlines_give_one_row_per_claim_and_a_reason_where_the_attacks_change_the_verdict():
    best = {c: make_record(c, acc(95, 95, 5, 90), profile="full", n=100) for c in ("madry-linf", "trades-linf")}
    strong = {c: _strong(c, 2.0) for c in ("madry-linf", "trades-linf")}
    frame = claims.headlines(best, strong)
    assert list(frame["claim"]) == ["1", "2: thesis", "2: as stated", "3", "4", "5", "6: thesis", "6: as stated"]
    two = frame.set_index("claim").loc["2: as stated"]
    assert two["paper's attacks, largest test sets"] == "supported" and two["verdict"] != "supported"
    assert two["why they differ"] == claims.WHY_STRONGER[2]
    assert frame.set_index("claim").loc["2: thesis", "verdict"] == "supported"
    same = frame[frame["verdict"] == frame["paper's attacks, largest test sets"]]
    assert (same["why they differ"] == "").all()


def test_every_threshold_keyword_of_every_claim_has_a_value_and_a_reason():
    import inspect
    for check in claims.CLAIMS.values():
        for name, param in inspect.signature(check).parameters.items():
            if name != "records":
                value, reason = claims.THRESHOLDS[name]
                assert value == param.default and len(reason) > 20, name


def test_flip_points_find_where_a_verdict_changes():
    recs = {"madry-linf": make_record("madry-linf", acc(30, 85, 5, 80), n=200),
            "trades-linf": make_record("trades-linf", acc(30, 90, 5, 85), n=200)}
    frame = claims.flip_points(recs).set_index(["claim", "threshold"])
    holds = frame.loc[(2, "holds")]  # PGD-ℓ2 at 30 %: "already broken" until holds drops to 30
    assert holds["verdict"] == "not supported" and holds["flips below"] == 30.0 and holds["to"] == "supported"
    robust = frame.loc[(1, "robust")]  # own-norm PGD-ℓ∞ 85 / 90 %: all robust up to 85
    assert robust["verdict"] == "supported" and robust["flips above"] == 86.0

"""Tests of what chapters 04-07 of the book added to advlib: ``advlib.claims`` and the new ``advlib.plots``.

The claim checks run on synthetic records whose per-example masks are built to give chosen accuracies,
and on the paper's own Table 1 (every claim must come out "supported" there: the criteria encode the
paper's statements).
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advlib import claims, plots, protocols  # noqa: E402
from advlib.records import pack_mask  # noqa: E402
from advlib.training import training_norm  # noqa: E402
from advlib.training.loop import eps_scale  # noqa: E402

N = 200


def make_record(cell: str, percent: dict[str, float], *, n: int = N, profile: str = "synthetic",
                masks: bool = True) -> dict:
    """A record whose entry e is correct on exactly the first round(n·percent[e]/100) examples (nested masks)."""
    correct = {k: torch.arange(n) < round(n * v / 100) for k, v in percent.items()}
    correct.setdefault("Natural", torch.ones(n, dtype=torch.bool))
    return {"cell": cell, "profile": profile, "n_test": n,
            "accuracy": {k: v.float().mean().item() for k, v in correct.items()},
            "norm_agnostic": torch.stack(list(correct.values())).all(0).float().mean().item(),
            "masks": {k: pack_mask(v) for k, v in correct.items()} if masks else {}, "training": []}


def acc(pgd_l2: float, pgd_linf: float, so_l2: float, so_linf: float, natural: float = 99.0) -> dict[str, float]:
    return {"Natural": natural, "PGD-l2": pgd_l2, "PGD-linf": pgd_linf, "SO-l2": so_l2, "SO-linf": so_linf}


# --- the paired sign test -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("b", "c", "p"), [(0, 0, 1.0), (5, 0, 2 / 32), (0, 5, 2 / 32), (10, 0, 2 / 1024),
                                           (3, 3, 1.0), (6, 1, 2 * 8 / 128)])
def test_sign_test_matches_hand_computed_binomial_tails(b, c, p):
    assert claims.sign_test(b, c) == pytest.approx(p)


def test_sign_test_is_small_only_for_lopsided_counts():
    assert claims.sign_test(60, 0) < 1e-15
    assert claims.sign_test(510, 490) > 0.5


# --- S-O vs PGD ----------------------------------------------------------------------------------------------


def test_so_vs_pgd_counts_discordant_examples_from_the_masks():
    rec = make_record("madry-linf", acc(pgd_l2=60, pgd_linf=90, so_l2=20, so_linf=90))
    frame = claims.so_vs_pgd({"madry-linf": rec}).set_index("attack_norm")
    l2, linf = frame.loc["l2"], frame.loc["linf"]
    assert (l2.pgd, l2.so, l2.delta) == pytest.approx((60.0, 20.0, -40.0))
    assert (l2.so_only, l2.pgd_only) == (80, 0)  # nested masks: S-O breaks the 80 examples 120..199 PGD missed
    assert l2.p == pytest.approx(claims.sign_test(80, 0)) and l2.so_stronger and l2.cross_norm
    assert (linf.so_only, linf.pgd_only, linf.p) == (0, 0, 1.0)
    assert not linf.so_stronger and not linf.cross_norm
    assert set(frame.profile) == {"synthetic"} and set(frame.n_test) == {N}


def test_so_vs_pgd_needs_significance_not_just_a_lower_number():
    rec = make_record("trades-l2", acc(pgd_l2=90, pgd_linf=10, so_l2=90, so_linf=9))  # 2 examples of 200
    row = claims.so_vs_pgd({"trades-l2": rec}).set_index("attack_norm").loc["linf"]
    assert row.delta == pytest.approx(-1.0) and row.p > 0.05 and not row.so_stronger


def test_so_vs_pgd_without_masks_uses_the_margin():
    rec = make_record("atda-l2", acc(pgd_l2=90, pgd_linf=10, so_l2=89.5, so_linf=5), masks=False)
    frame = claims.so_vs_pgd({"atda-l2": rec}).set_index("attack_norm")
    assert math.isnan(frame.loc["l2"].p) and not frame.loc["l2"].so_stronger  # 0.5 points < margin 1.0
    assert frame.loc["linf"].so_stronger


def test_mix_cells_are_never_cross_norm_and_summary_says_so():
    frame = claims.so_vs_pgd({"madry-mix": make_record("madry-mix", acc(50, 50, 10, 10))})
    assert not frame.cross_norm.any()
    assert claims.so_vs_pgd_summary(frame).startswith("No cross-norm cell")


def test_summary_states_wins_and_losses_plainly():
    records = {"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90)),
               "madry-l2": make_record("madry-l2", acc(90, 5, 90, 5))}
    text = claims.so_vs_pgd_summary(claims.so_vs_pgd(records))
    assert "1 of 2" in text and "madry-linf in ℓ2" in text and "does not on madry-l2 in ℓ∞" in text
    only_losses = claims.so_vs_pgd_summary(claims.so_vs_pgd({"madry-l2": records["madry-l2"]}))
    assert only_losses.startswith("S-O does not beat PGD on any") and "PGD is the stronger" not in only_losses
    weaker = {"atda-linf": make_record("atda-linf", acc(pgd_l2=10, pgd_linf=70, so_l2=40, so_linf=70))}
    frame = claims.so_vs_pgd(weaker).set_index("attack_norm")
    assert frame.loc["l2"].pgd_stronger and not frame.loc["l2"].so_stronger and not frame.loc["linf"].pgd_stronger
    summary = claims.so_vs_pgd_summary(claims.so_vs_pgd(weaker))
    assert summary.endswith("PGD is the stronger attack on atda-linf in ℓ2.")


# --- the five claims -----------------------------------------------------------------------------------------


def test_every_claim_is_supported_by_the_papers_own_table():
    table = claims.verdicts(claims.paper_records())
    assert list(table.claim) == [1, 2, 3, 4, 5]
    assert set(table.verdict) == {"supported"}, table[["claim", "verdict", "evidence"]].to_string()
    assert all("paper-table" in e or "paper-table" in claims.provenance(claims.paper_records()) for e in table.evidence)


def test_paper_records_use_the_minimum_over_rows_as_the_norm_agnostic_bound():
    recs = claims.paper_records()
    assert set(recs) == set(protocols.CELLS)
    assert recs["madry-mix"]["norm_agnostic"] == pytest.approx(0.183)
    assert recs["trades-linf"]["accuracy"]["SO-l2"] == pytest.approx(0.032)


@pytest.mark.parametrize("k", sorted(claims.CLAIMS))
def test_no_records_gives_no_records_verdicts(k):
    frame, verdict = claims.CLAIMS[k]({})
    assert verdict.verdict == "no records" and frame.empty and verdict.claim == k


def test_verdicts_are_always_one_of_the_four_words():
    records = {c: make_record(c, acc(50, 50, 40, 40)) for c in protocols.CELLS}
    assert set(claims.verdicts(records).verdict) <= set(claims.VERDICTS)


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
    assert verdict.verdict == "supported" and "only 1 of the 2 cells" in verdict.evidence
    recs["madry-mix"] = make_record("madry-mix", acc(85, 85, 80, 80))
    assert claims.claim3(recs)[1].verdict == "not supported"
    alone = claims.claim3({"trades-mix": make_record("trades-mix", acc(40, 40, 20, 20))})[1]
    assert alone.verdict == "supported" and "not recorded" in alone.evidence and "gain unknown" in alone.evidence


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


def test_provenance_names_profiles_and_test_sizes():
    recs = {"madry-l2": make_record("madry-l2", acc(1, 1, 1, 1), profile="medium", n=1000),
            "madry-linf": make_record("madry-linf", acc(1, 1, 1, 1), profile="full", n=10000)}
    text = claims.provenance(recs)
    assert text.startswith("2 of 12 cells") and "medium, n=1000: 1 cell" in text and "full, n=10000: 1 cell" in text
    assert claims.provenance({}) == "no records (0 of 12 cells)"


def test_repro_choices_table_lists_every_choice_and_the_training_subset():
    everything = claims.repro_choices()
    assert list(everything.choice) == list(protocols.REPRO_CHOICES)
    assert set(claims.TRAINING_CHOICES) < set(protocols.REPRO_CHOICES)
    subset = claims.repro_choices(claims.TRAINING_CHOICES)
    assert len(subset) == len(claims.TRAINING_CHOICES) and subset.iloc[0, 1] == protocols.REPRO_CHOICES["model init"]
    with pytest.raises(ValueError, match="unknown REPRO CHOICE"):
        claims.repro_choices(("no such choice",))


# --- plots ---------------------------------------------------------------------------------------------------


def test_training_schedule_plot():
    spec = protocols.QUICK.defenses["madry"]
    eps = pd.DataFrame([{"progress": s / 100, "eps_scale": eps_scale(spec, s, 100), "profile": "quick"}
                        for s in range(101)])
    fig = plots.training_schedule(eps, [training_norm("mix", s) for s in range(8)])
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    plt.close(fig)


@pytest.mark.parametrize("records", [{}, {"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90))}])
def test_attack_scatter_draws_any_subset(records):
    fig = plots.attack_scatter(claims.so_vs_pgd(records))
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes[0].collections) == (2 if records else 0)  # one ℓ2 cross-norm, one ℓ∞ same-norm point
    plt.close(fig)


@pytest.mark.parametrize("rows", [0, 2])
def test_norm_agnostic_bars_draw_any_subset_without_warnings(rows, recwarn):
    frame = pd.DataFrame({"cell": ["madry-l2", "madry-l2"], "source": ["ours", "paper"], "accuracy": [10.0, 0.0]})
    fig = plots.norm_agnostic_bars(frame.iloc[:rows])
    assert isinstance(fig, plt.Figure) and not [w for w in recwarn if "legend" in str(w.message)]
    plt.close(fig)


def test_attack_union_is_the_per_example_worst_case():
    n = 8
    pgd = torch.tensor([1, 1, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    so = torch.tensor([1, 0, 1, 1, 1, 0, 0, 0], dtype=torch.bool)
    rec = make_record("madry-linf", acc(50, 50, 50, 50), n=n)
    rec["masks"]["PGD-l2"], rec["masks"]["SO-l2"] = pack_mask(pgd), pack_mask(so)
    row = claims.attack_union({"madry-linf": rec}).set_index("attack_norm").loc["l2"]
    assert (row.pgd, row.so, row.either, row.gain) == pytest.approx((62.5, 50.0, 37.5, 25.0))
    assert claims.attack_union({"madry-linf": make_record("madry-linf", acc(1, 1, 1, 1), masks=False)}).empty


def test_format_p_never_prints_an_underflowed_p_value_as_zero():
    from advlib import claims
    assert claims.format_p(0.0) == "< 1e-300"
    assert claims.format_p(0.0123) == "= 0.012"
    assert claims.sign_test(5206, 0) == 0.0  # the madry-linf full record's discordant pairs underflow

"""``advlib.comparisons``: PGD vs S-O per example on result records (paired sign test, summary), their union, and one
cell run twice.

The records are synthetic: per-example masks built to give chosen accuracies (``conftest.make_record``).
"""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from advlib import comparisons, protocols
from advlib.records import pack_mask
from advlib.stats import sign_test
from conftest import acc, make_record

N = 200


def test_percent_and_discordant_read_a_record():
    rec = make_record("madry-linf", acc(pgd_l2=60, pgd_linf=90, so_l2=20, so_linf=90))
    assert comparisons.accuracy_percent(rec, "PGD-l2") == pytest.approx(60.0)
    assert math.isnan(comparisons.accuracy_percent(rec, "PGD-l3"))
    assert comparisons.discordant(rec, "PGD-l2", "SO-l2") == (80, 0)
    assert comparisons.discordant(rec, "SO-l2", "PGD-l2") == (0, 80)
    assert comparisons.discordant(make_record("madry-linf", acc(1, 1, 1, 1), masks=False), "PGD-l2", "SO-l2") is None
    assert (comparisons.ALPHA, comparisons.MARGIN, comparisons.NORMS) == (0.05, 1.0, ("l2", "linf"))


def test_so_vs_pgd_counts_discordant_examples_from_the_masks():
    rec = make_record("madry-linf", acc(pgd_l2=60, pgd_linf=90, so_l2=20, so_linf=90))
    frame = comparisons.so_vs_pgd({"madry-linf": rec}).set_index("attack_norm")
    l2, linf = frame.loc["l2"], frame.loc["linf"]
    assert (l2.pgd, l2.so, l2.delta) == pytest.approx((60.0, 20.0, -40.0))
    assert (l2.so_only, l2.pgd_only) == (80, 0)  # nested masks: S-O breaks the 80 examples 120..199 PGD missed
    assert l2.p == pytest.approx(sign_test(80, 0)) and l2.so_stronger and l2.cross_norm
    assert (linf.so_only, linf.pgd_only, linf.p) == (0, 0, 1.0)
    assert not linf.so_stronger and not linf.cross_norm
    assert set(frame.profile) == {"synthetic"} and set(frame.n_test) == {N}


def test_so_vs_pgd_needs_significance_not_just_a_lower_number():
    rec = make_record("trades-l2", acc(pgd_l2=90, pgd_linf=10, so_l2=90, so_linf=9))  # 2 examples of 200
    row = comparisons.so_vs_pgd({"trades-l2": rec}).set_index("attack_norm").loc["linf"]
    assert row.delta == pytest.approx(-1.0) and row.p > 0.05 and not row.so_stronger


def test_so_vs_pgd_without_masks_uses_the_margin():
    rec = make_record("atda-l2", acc(pgd_l2=90, pgd_linf=10, so_l2=89.5, so_linf=5), masks=False)
    frame = comparisons.so_vs_pgd({"atda-l2": rec}).set_index("attack_norm")
    assert math.isnan(frame.loc["l2"].p) and not frame.loc["l2"].so_stronger  # 0.5 points < margin 1.0
    assert frame.loc["linf"].so_stronger


def test_mix_cells_are_never_cross_norm_and_summary_says_so():
    frame = comparisons.so_vs_pgd({"madry-mix": make_record("madry-mix", acc(50, 50, 10, 10))})
    assert not frame.cross_norm.any()
    assert comparisons.so_vs_pgd_summary(frame).startswith("No cross-norm cell")


def test_summary_states_wins_and_losses_plainly():
    records = {"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90)),
               "madry-l2": make_record("madry-l2", acc(90, 5, 90, 5))}
    text = comparisons.so_vs_pgd_summary(comparisons.so_vs_pgd(records))
    assert "1 of 2" in text and "madry-linf in ℓ2" in text and "does not on madry-l2 in ℓ∞" in text
    only_losses = comparisons.so_vs_pgd_summary(comparisons.so_vs_pgd({"madry-l2": records["madry-l2"]}))
    assert only_losses.startswith("S-O does not beat PGD on any") and "PGD is the stronger" not in only_losses
    weaker = {"atda-linf": make_record("atda-linf", acc(pgd_l2=10, pgd_linf=70, so_l2=40, so_linf=70))}
    frame = comparisons.so_vs_pgd(weaker).set_index("attack_norm")
    assert frame.loc["l2"].pgd_stronger and not frame.loc["l2"].so_stronger and not frame.loc["linf"].pgd_stronger
    summary = comparisons.so_vs_pgd_summary(comparisons.so_vs_pgd(weaker))
    assert summary.endswith("PGD is the stronger attack on atda-linf in ℓ2.")


def test_summary_writes_norms_with_the_protocols_labels(monkeypatch):
    monkeypatch.setitem(protocols.NORM_LABELS, "l2", "L2")
    text = comparisons.so_vs_pgd_summary(comparisons.so_vs_pgd(
        {"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90))}))
    assert "madry-linf in L2" in text and "ℓ2" not in text


def test_attack_union_is_the_per_example_worst_case():
    n = 8
    pgd = torch.tensor([1, 1, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    so = torch.tensor([1, 0, 1, 1, 1, 0, 0, 0], dtype=torch.bool)
    rec = make_record("madry-linf", acc(50, 50, 50, 50), n=n)
    rec["masks"]["PGD-l2"], rec["masks"]["SO-l2"] = pack_mask(pgd), pack_mask(so)
    row = comparisons.attack_union({"madry-linf": rec}).set_index("attack_norm").loc["l2"]
    assert (row.pgd, row.so, row.either, row.gain) == pytest.approx((62.5, 50.0, 37.5, 25.0))
    assert comparisons.attack_union({"madry-linf": make_record("madry-linf", acc(1, 1, 1, 1), masks=False)}).empty


def test_two_runs_counts_the_images_whose_outcome_differs():
    first = make_record("madry-linf", acc(50, 90, 10, 80), n=100)
    second = make_record("madry-linf", acc(40, 90, 10, 80), n=100)
    twice = comparisons.two_runs(first, second)
    assert list(twice.index) == list(protocols.ROWS)
    assert twice.loc["PGD-l2", "outcome differs"] == 10 and twice.loc["PGD-l2", "Δ (points)"] == -10.0
    assert twice.loc["PGD-linf", "outcome differs"] == 0 and twice.loc["PGD-linf", "sign test p"] == 1.0
    assert twice.loc["PGD-l2", "sign test p"] < 0.01
    with pytest.raises(ValueError, match="madry-l2"):
        comparisons.two_runs(first, make_record("madry-l2", acc(50, 90, 10, 80), n=100))


def test_accuracy_across_lists_each_cell_in_every_group_that_records_it():
    groups = {"medium": {"madry-l2": make_record("madry-l2", acc(20, 1, 1, 1), profile="medium", n=100)},
              "large": {"madry-l2": make_record("madry-l2", acc(30, 1, 1, 1), profile="large"),
                        "trades-l2": make_record("trades-l2", acc(40, 1, 1, 1), profile="large")}}
    frame = comparisons.accuracy_across(groups, "PGD-l2", ["trades-l2", "madry-l2", "atda-l2"])
    assert list(zip(frame.cell, frame.group)) == [("trades-l2", "large"), ("madry-l2", "medium"), ("madry-l2", "large")]
    assert list(frame.accuracy) == pytest.approx([40.0, 20.0, 30.0])
    assert list(frame.n_test) == [N, 100, N] and list(frame.profile) == ["large", "medium", "large"]
    assert comparisons.accuracy_across(groups, "PGD-l2", []).empty


def test_so_vs_autoattack_totals_sum_the_per_example_counts():
    cross = pd.DataFrame({"S-O breaks, AutoAttack not": [3.0, 0.0, 7.0],
                          "AutoAttack breaks, S-O not": [10.0, 2.0, 0.0]})
    assert comparisons.so_vs_autoattack_totals(cross) == {"pairs": 3, "so_only": 10, "so_only_max": 7,
                                                          "autoattack_only": 12}
    empty = cross.iloc[:0]
    assert comparisons.so_vs_autoattack_totals(empty) == {"pairs": 0, "so_only": 0, "so_only_max": 0,
                                                          "autoattack_only": 0}

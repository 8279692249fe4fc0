"""``advlib.masking``: the reader's pass/flag summary of the gradient-masking checklist, on hand-made records whose
stored diagnostics must flag or must pass."""
from __future__ import annotations

import math

import pytest

from advlib import masking


def entry(value: float, n: int = 1000) -> dict:
    # the stored "flag" and "threshold" are advlib.extended's; masking must ignore them, so they say the opposite
    return {"value": value, "threshold": 0.0, "flag": None, "n": n, "what": "hand-made"}


def record(**overrides) -> dict:
    """A record of 1,000 test images with PGD accuracies 30 % (ℓ2) and 60 % (ℓ∞) whose diagnostics all pass."""
    diagnostics = {"zero gradient": entry(0.0), "large radius l2": entry(0.0), "large radius linf": entry(0.0),
                   "monotone in ε": entry(-0.02),
                   "4x steps l2": entry(0.005), "5 restarts l2": entry(0.008),
                   "4x steps linf": entry(0.0), "5 restarts linf": entry(0.004),
                   "black box l2": entry(0.0, n=200), "black box linf": entry(0.0, n=500),
                   "S-O σ=0 = PGD l2": entry(0.0), "S-O σ=0 = PGD linf": entry(0.0)}
    diagnostics.update(overrides)
    return {"cell": "hand-made", "profile": "test", "n_test": 1000,
            "accuracy": {"Natural": 0.98, "PGD-l2": 0.30, "PGD-linf": 0.60, "SO-l2": 0.2, "SO-linf": 0.55},
            "extended": {"diagnostics": diagnostics, "accuracy": {"AA-l2": 0.10, "AA-linf": 0.50}}}


def flags(rec: dict) -> dict[tuple[str, str | None], bool]:
    return {(r.check, r.norm): r.flag for r in masking.assess(rec)}


def test_resolution_is_two_binomial_standard_errors():
    assert masking.resolution(0.3, 1000) == pytest.approx(2 * math.sqrt(0.21 / 1000))
    assert masking.resolution(0.5, 10_000) == pytest.approx(0.01)
    assert masking.resolution(0.0, 50) == 0.0
    with pytest.raises(ValueError):
        masking.resolution(0.5, 0)


def test_a_clean_record_passes_every_check_and_converges():
    assert not any(flags(record()).values())
    row = masking.summary({"m": record()}).loc["m"]
    assert list(row) == ["pass"] * 4 + ["yes", "yes"]


def test_a_drop_within_what_n_images_resolve_is_not_a_flag_but_a_larger_one_is():
    # PGD-ℓ2 at 30 % on 1,000 images is known to ±2.9 points: a 2-point drop from 4× the steps cannot be told from
    # noise (although advlib.extended's fixed 1-point threshold flags it); a 5-point drop says PGD-40 has not converged
    assert not flags(record(**{"4x steps l2": entry(0.02)}))[("steps", "l2")]
    found = flags(record(**{"4x steps l2": entry(0.05)}))
    assert found[("steps", "l2")] and not found[("restarts", "l2")]
    row = masking.summary({"m": record(**{"4x steps l2": entry(0.05)})}).loc["m"].str.replace(masking.NBSP, " ")
    assert row["PGD-40 ℓ2 converged"] == "no: −5.0 pt" and row["PGD-40 ℓ∞ converged"] == "yes"
    assert row["Square"] == "pass", "a convergence failure is not a masking flag"


def test_on_many_images_the_one_point_floor_decides():
    rec = record(**{"5 restarts linf": entry(0.009)})
    rec["n_test"] = 100_000  # resolution 0.3 points: below the one-point floor
    assert not flags(rec)[("restarts", "linf")]
    rec["extended"]["diagnostics"]["5 restarts linf"] = entry(0.012)
    assert flags(rec)[("restarts", "linf")]


def test_square_flags_above_autoattack_alpha_in_whole_images():
    # 2 of 500 white-box-robust images = 0.2 points of 1,000: AutoAttack's check_square_sr needs strictly more
    assert not flags(record(**{"black box linf": entry(2 / 500, n=500)}))[("black box", "linf")]
    rec = record(**{"black box linf": entry(3 / 500, n=500)})
    assert flags(rec)[("black box", "linf")]
    assert masking.summary({"m": rec}).loc["m", "Square"] == "FLAG ℓ∞: 0.3 pt".replace(" ", masking.NBSP)


def test_each_masking_check_flags_on_its_own_value():
    assert flags(record(**{"large radius linf": entry(0.15)}))[("large radius", "linf")]
    assert not flags(record(**{"large radius linf": entry(0.09)}))[("large radius", "linf")]
    assert flags(record(**{"monotone in ε": entry(0.03)}))[("monotone", None)]
    assert not flags(record(**{"monotone in ε": entry(0.005)}))[("monotone", None)]
    # zero gradients: flagged above the resolution of the smaller PGD accuracy's (ℓ2 30 %: 2.9 points)
    assert not flags(record(**{"zero gradient": entry(0.01)}))[("zero gradient", None)]
    assert flags(record(**{"zero gradient": entry(0.05)}))[("zero gradient", None)]


def test_the_s_o_identity_is_an_implementation_check_kept_out_of_the_summary():
    rec = record(**{"S-O σ=0 = PGD l2": entry(0.4)})
    result = {(r.check, r.norm): r for r in masking.assess(rec)}[("S-O σ=0", "l2")]
    assert result.flag and result.meaning == "implementation"
    assert list(masking.summary({"m": rec}).loc["m"]) == ["pass"] * 4 + ["yes", "yes"]
    assert masking.values({"m": rec}, "implementation").loc["m", "S-O σ = 0 is PGD ℓ2"] == 0.4


def test_counts_values_and_worst_case():
    recs = {"a": record(), "b": record(**{"4x steps linf": entry(0.2)})}
    assert masking.counts(recs)["steps"] == (1, 2) and masking.counts(recs)["black box"] == (0, 2)
    conv = masking.values(recs, "convergence")
    assert list(conv.columns) == ["4× steps ℓ2", "5 restarts ℓ2", "flags above ℓ2",
                                  "4× steps ℓ∞", "5 restarts ℓ∞", "flags above ℓ∞"]
    assert conv.loc["b", "4× steps ℓ∞"] == pytest.approx(20.0)
    # AutoAttack ℓ∞ leaves 50 %: above PGD-40's 60 % minus the 20-point drop, so the worst case misses what 4× finds
    assert masking.worst_case_below_more_effort(recs["b"]) == {"l2": True, "linf": False}


def test_a_record_without_the_block_is_refused_or_skipped():
    bare = {"cell": "x", "profile": "p", "n_test": 10, "accuracy": {}}
    with pytest.raises(ValueError, match="no extended block"):
        masking.assess(bare)
    assert masking.summary({"x": bare}).empty


def test_every_rule_names_its_source_and_meaning():
    table = masking.rules_table()
    assert set(table["meaning"]) == {"masking", "convergence", "implementation"}
    assert all("Carlini" in s or "AutoAttack" in s or "advlib" in s for s in table["source"])

"""``advlib.union``: the union leaderboard from per-example masks, checked on hand-made records whose union is known
by hand, and on the committed records."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from advlib import discovery, union
from advlib.records import pack_mask
from advlib.specs import EPS, L1_LITERATURE_EPS, L2_LITERATURE_EPS


def record(rows: dict[str, list[int]], extended: dict[str, list[int]] | None = None, *, cell: str = "madry-mix",
           profile: str = "synthetic", added: dict[str, list[int]] | None = None) -> dict:
    """A record whose row r is correct exactly where ``rows[r]`` (or ``extended[r]``, in the extended block, or
    ``added[r]``, a row added later) is 1."""
    n = len(next(iter(rows.values())))
    packed = lambda found: {k: pack_mask(torch.tensor(v, dtype=torch.bool)) for k, v in found.items()}  # noqa: E731
    rec = {"cell": cell, "profile": profile, "n_test": n, "masks": packed(rows)}
    if extended is not None:
        rec["extended"] = {"masks": packed(extended)}
    if added is not None:
        rec["added_rows"] = {k: {"mask": m} for k, m in packed(added).items()}
    return rec


#: Six test images; ℓ∞ attacks break image 4 (PGD) and 5 (AutoAttack), ℓ2 attacks break 2 (S-O) and 3 (AutoAttack);
#: image 1 is misclassified clean. By hand: natural 5/6, ℓ∞ 3/6, ℓ2 3/6, union 1/6 (only image 0 survives all).
ALL = 1, 1, 1, 1, 1, 1
HAND = record({"Natural": [1, 0, 1, 1, 1, 1], "PGD-linf": [1, 0, 1, 1, 0, 1], "SO-linf": list(ALL),
               "PGD-l2": list(ALL), "SO-l2": list(ALL)},
              {"AA-linf": [1, 1, 1, 1, 1, 0], "PGD-l2@2": list(ALL), "SO-l2@2": [1, 1, 0, 1, 1, 1],
               "AA-l2@2": [1, 1, 1, 0, 1, 1], "AA-l2": list(ALL)})


def test_union_is_the_per_example_worst_case_strictly_below_both_norms():
    row = union.model_row(HAND, union.threat(L2_LITERATURE_EPS))
    assert row["natural"] == pytest.approx(100 * 5 / 6)
    assert row["ℓ∞"] == pytest.approx(100 * 3 / 6) and row["ℓ2"] == pytest.approx(100 * 3 / 6)
    assert row["union"] == pytest.approx(100 * 1 / 6)
    assert row["union"] < min(row["ℓ∞"], row["ℓ2"]), "here no norm's failures cover the other's"
    assert row["attacks"] == "PGD+S-O+AA" and row["flags"] == ""


def test_a_fine_tuned_model_is_flagged_with_its_start_because_its_training_time_is_the_fine_tuning_alone():
    tuned = {**HAND, "config": {**HAND.get("config", {}), "start": "large-madry-linf"}}
    row = union.model_row(tuned, union.threat(L2_LITERATURE_EPS))
    assert row["flags"] == "fine-tuned from large-madry-linf (train: the fine-tuning alone)"
    assert row["union"] == pytest.approx(100 * 1 / 6)


def test_each_radius_reads_its_own_l2_rows():
    row = union.model_row(HAND, union.threat(EPS["l2"]))  # ℓ2 ε 4: PGD-l2, SO-l2, AA-l2 all keep every image
    assert row["ℓ2"] == pytest.approx(100 * 5 / 6) and row["union"] == pytest.approx(100 * 3 / 6)
    assert row["ℓ2 ε"] == EPS["l2"]


def test_a_record_without_autoattack_is_shown_with_what_it_has_and_flagged():
    no_aa = record({"Natural": [1, 1, 1, 1], "PGD-linf": [1, 1, 0, 1], "SO-linf": [1, 0, 1, 1],
                    "PGD-l2": [1, 1, 1, 0], "SO-l2": [1, 1, 1, 1]})
    row = union.model_row(no_aa, union.threat(EPS["l2"]))
    assert row["union"] == pytest.approx(25.0) and row["attacks"] == "PGD+S-O"
    assert "no AutoAttack" in row["flags"]
    at_two = union.model_row(no_aa, union.threat(L2_LITERATURE_EPS))  # no ℓ2 ε 2 rows at all: no union, flagged
    assert math.isnan(at_two["ℓ2"]) and math.isnan(at_two["union"]) and at_two["ℓ∞"] == pytest.approx(50.0)
    assert "no ℓ2 ε 2 rows" in at_two["flags"] and at_two["attacks"] == "ℓ∞ PGD+S-O; ℓ2 none"
    board = union.leaderboard(L2_LITERATURE_EPS, {"hand (a)": HAND, "no-aa (b)": no_aa}, literature=False)
    assert list(board.index) == ["hand (a)", "no-aa (b)"], "a model without the rows is kept, ranked last"
    assert list(board["source"]) == ["a", "b"]


def test_leaderboard_ranks_by_union_and_appends_the_cited_rows_only_at_their_radius():
    low = record({"Natural": list(ALL), "PGD-linf": [0] * 6, "SO-linf": list(ALL), "PGD-l2": list(ALL),
                  "SO-l2": list(ALL)}, {"AA-linf": list(ALL), "PGD-l2@2": list(ALL), "SO-l2@2": list(ALL),
                                        "AA-l2@2": list(ALL), "AA-l2": list(ALL)})
    board = union.leaderboard(L2_LITERATURE_EPS, {"low (x)": low, "hand (x)": HAND})
    ours = board[board["kind"] == "ours"]
    assert list(ours.index) == ["hand (x)", "low (x)"]
    cited = board[board["kind"] == "literature"]
    assert len(cited) == 6 and (cited["n"] == 1000).all() and cited["flags"].str.contains("not AutoAttack").all()
    assert (cited["ℓ2 ε"] == 2.0).all(), "published rows: the current table, at the literature's ℓ2 radius"
    assert cited["flags"].str.contains("ℓ1 in their union").all() and cited["ℓ1"].isna().all()
    assert board["union"].dropna().is_monotonic_decreasing
    assert (union.leaderboard(EPS["l2"], {"hand (x)": HAND})["kind"] == "ours").all()
    assert union.best(board).name == "hand (x)"
    no_aa = record({"Natural": list(ALL), "PGD-linf": list(ALL), "SO-linf": list(ALL)},
                   {"PGD-l2@2": list(ALL), "SO-l2@2": list(ALL)})
    both = union.leaderboard(L2_LITERATURE_EPS, {"no-aa (y)": no_aa, "hand (x)": HAND}, literature=False)
    assert union.best(both).name == "no-aa (y)" and union.best(both, autoattack=True).name == "hand (x)"
    with pytest.raises(ValueError, match="under AutoAttack"):
        union.best(both.drop(index="hand (x)"), autoattack=True)


@pytest.mark.parametrize("bad", [3.0, "2.0", True, None])
def test_an_unknown_radius_is_a_value_error_naming_it_and_the_choices(bad):
    with pytest.raises(ValueError, match=rf"{bad!r}.*{L2_LITERATURE_EPS}.*{EPS['l2']}.*l1_eps={L1_LITERATURE_EPS}"):
        union.leaderboard(bad, {"hand (x)": HAND})
    with pytest.raises(ValueError, match="l1_eps 12.0"):
        union.threat(L2_LITERATURE_EPS, 12.0)


#: ``HAND`` with ℓ1 rows (added later): PGD-ℓ1 breaks image 0, the one image that survives both other norms, and
#: AutoAttack-ℓ1 image 3. By hand: ℓ1 3/6 (images 0, 1 lost, 3 lost), three-norm union 0/6.
HAND_L1 = {**HAND, "added_rows": record({"x": list(ALL)}, added={"PGD-l1@10": [0, 1, 1, 1, 1, 1],
                                                                  "AA-l1@10": [1, 1, 1, 0, 1, 1]})["added_rows"]}


def test_the_three_norm_union_reads_the_l1_rows_added_beside_a_record():
    three = union.threat(L2_LITERATURE_EPS, L1_LITERATURE_EPS)
    assert three is union.THREATS["three norms"] and three.name == "ℓ∞ ε 0.3 ∪ ℓ2 ε 2.0 ∪ ℓ1 ε 10"
    row = union.model_row(HAND_L1, three)
    assert row["ℓ1"] == pytest.approx(100 * 3 / 6) and row["ℓ1 ε"] == L1_LITERATURE_EPS
    assert row["ℓ∞"] == pytest.approx(100 * 3 / 6) and row["union"] == 0.0
    assert row["attacks"] == "ℓ∞ PGD+S-O+AA; ℓ2 PGD+S-O+AA; ℓ1 PGD+AA" and row["flags"] == ""
    two = union.model_row(HAND_L1, union.threat(L2_LITERATURE_EPS))
    assert math.isnan(two["ℓ1"]) and two["union"] == pytest.approx(100 * 1 / 6), "ℓ1 rows change no two-norm union"
    without = union.model_row(HAND, three)
    assert math.isnan(without["union"]) and "no ℓ1 ε 10 rows" in without["flags"]
    board = union.leaderboard(L2_LITERATURE_EPS, {"l1 (x)": HAND_L1, "hand (x)": HAND}, l1_eps=L1_LITERATURE_EPS)
    cited = board[board["kind"] == "literature"]
    assert (cited["ℓ1 ε"] == 10).all() and cited["ℓ1"].notna().all() and not cited["flags"].str.contains("ℓ1").any()
    assert cited.loc[f"MSD ({union.LITERATURE})", "union"] == pytest.approx(58.4)
    assert "ℓ1" in union.shown(board).columns
    assert "ℓ1" not in union.shown(union.leaderboard(EPS["l2"], {"hand (x)": HAND})).columns


def test_added_rows_are_the_l1_rows_at_the_literature_radius_with_the_profile_steps():
    from advlib.protocols import MEDIUM
    from advlib.strong import AutoAttackSpec
    rows = union.added_rows(MEDIUM)
    assert list(rows) == ["PGD-l1@10", "AA-l1@10"]
    assert rows["PGD-l1@10"].norm == "l1" and rows["PGD-l1@10"].eps == L1_LITERATURE_EPS
    assert rows["PGD-l1@10"].steps == MEDIUM.evaluation["PGD-linf"].steps
    assert rows["AA-l1@10"] == AutoAttackSpec.standard("l1", L1_LITERATURE_EPS)
    assert union.added_rows(MEDIUM, union.threat(EPS["l2"])) == {}


def test_a_missing_folder_is_a_value_error_listing_the_folders(tmp_path):
    (tmp_path / "large").mkdir()
    with pytest.raises(ValueError, match=r"nope.*large"):
        union.collect(("nope",), tmp_path)
    assert union.collect(None, tmp_path) == {}


def test_a_record_without_a_natural_mask_is_a_value_error():
    with pytest.raises(ValueError, match="Natural"):
        union.model_row(record({"PGD-linf": [1, 0]}), union.threat(EPS["l2"]))


def test_committed_records_rank_large_madry_mix_with_union_below_its_weakest_norm():
    board = union.leaderboard(L2_LITERATURE_EPS)
    row = board.loc["madry-mix (large)"]
    assert row["n"] >= 1000 and row["attacks"] == "PGD+S-O+AA" and row["flags"] == ""
    assert 0 < row["union"] <= min(row["ℓ∞"], row["ℓ2"]) + 1e-9
    # the same number as the extended block's own derived row (advlib.extended.derived_rows)
    from advlib import extended
    rec = discovery.folder_records("large")["madry-mix"]
    assert row["union"] == pytest.approx(100 * extended.row_accuracies(rec)["Union@2"])
    paper = union.leaderboard(EPS["l2"])
    above = paper["ℓ2"] > paper["ℓ2 bound"] + 50 / paper["n"]  # the data's bound, compared at each row's own n
    assert (above == paper["flags"].str.contains("above the data's bound")).all()
    assert paper["ℓ2 bound"].notna().all()
    assert isinstance(union.best(board), pd.Series)


def test_a_row_carries_the_records_training_time_and_device():
    timed = {**HAND, "wall_time": {"train": 90.0}, "device": "cpu (x86_64, 2 threads)"}
    row = union.model_row(timed, union.threat(L2_LITERATURE_EPS))
    assert row["train (min)"] == pytest.approx(1.5) and row["device"] == "cpu (x86_64, 2 threads)"
    untimed = union.model_row(HAND, union.threat(L2_LITERATURE_EPS))
    assert math.isnan(untimed["train (min)"]) and untimed["device"] == ""
    loaded = union.model_row({**timed, "wall_time": {"train": 0.0}}, union.threat(L2_LITERATURE_EPS))
    assert math.isnan(loaded["train (min)"]), "a released model or a loaded checkpoint trained nothing here"


def _goal_frame(*rows: tuple[str, float, float, int, str, str]) -> pd.DataFrame:
    """A leaderboard of (name, union, natural, n, flags, kind) rows."""
    return pd.DataFrame([{"union": u, "natural": nat, "n": n, "flags": f, "kind": k} for _, u, nat, n, f, k in rows],
                        index=[r[0] for r in rows])


def test_the_goal_needs_union_natural_accuracy_n_and_autoattack_all_at_once():
    frame = _goal_frame(("met", 66.0, 97.5, 1000, "", "ours"), ("low clean", 80.0, 96.9, 1000, "", "ours"),
                        ("few images", 90.0, 99.0, 500, "", "ours"),
                        ("no AA", 90.0, 99.0, 1000, "no AutoAttack", "ours"),
                        ("cited", 95.0, 99.0, 1000, "cited; not AutoAttack", "literature"))
    met, top = union.goal(frame)
    assert met and top.name == "met"
    met, top = union.goal(frame.drop(index="met"))
    assert not met and top is None
    met, top = union.goal(frame.assign(union=frame["union"] - 2))  # 64.0: the best that qualifies, short of 65
    assert not met and top.name == "met" and top["union"] == 64.0

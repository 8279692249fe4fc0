"""``advlib.protocols``: profiles and cells as data, the one set of norm labels and cell splitter, and the attack
settings every profile takes from ``advlib.specs``."""
from __future__ import annotations

import json

import pytest

from advlib import lp, protocols, specs
from advlib.protocols import CELLS, ROWS
from advlib.specs import AttackSpec


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'nope'; valid choices: 'quick', 'medium', 'tour', 'large', 'full', 'paper'"):
        protocols.get_profile("nope")


def test_unknown_cell_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown cell 'madry-l1'") as info:
        protocols.parse_cells("madry-linf,madry-l1")
    assert all(repr(c) in str(info.value) for c in CELLS)
    with pytest.raises(ValueError, match="valid choices"):
        protocols.split_cell("madry")
    with pytest.raises(ValueError, match="unknown cell 'madry-l1'"):
        protocols.split_cell("madry-l1")


def test_parse_cells_and_split_cell():
    assert protocols.parse_cells(None) == list(protocols.CELL_ORDER) == protocols.parse_cells("all")
    assert sorted(protocols.CELL_ORDER) == sorted(CELLS)
    assert protocols.CELL_ORDER[:2] == ("madry-linf", "trades-linf")  # the cells that carry the central claim
    assert len(CELLS) == 12
    assert protocols.parse_cells(" madry-linf , trades-l2,") == ["madry-linf", "trades-l2"]
    assert protocols.split_cell("trades-mix") == ("trades", "mix")
    assert protocols.split_cell("ensemble-linf") == ("ensemble", "linf")
    assert [protocols.split_cell(c) for c in CELLS] == [(d, n) for d in protocols.DEFENSES for n in protocols.TRAIN_NORMS]


def test_profiles_are_registered_and_consistent():
    assert list(protocols.PROFILES) == ["quick", "medium", "tour", "large", "full", "paper"]
    tour, medium = protocols.TOUR, protocols.MEDIUM  # the first run: medium's training, fewer test images
    assert (tour.n_test, tour.defenses, tour.train_attack, tour.evaluation) == (
        500, medium.defenses, medium.train_attack, medium.evaluation)
    for prof in protocols.PROFILES.values():
        assert set(prof.train_attack) == {"l2", "linf"}
        assert set(prof.defenses) == set(protocols.DEFENSES + protocols.MULTI_NORM)
        assert set(prof.evaluation) == set(ROWS[1:])
        assert prof.defenses["trades"].beta == 6.0  # REPRO CHOICE β = 6 (§2.3)
        assert prof.defenses["ensemble"].static_models == ("tramer_a", "tramer_c", "tramer_d")
        for name, spec in prof.evaluation.items():
            assert spec.eps == {"l2": 4.0, "linf": 0.3}[spec.norm]  # the paper's ε (§5)
            assert spec.kind == ("pgd" if name.startswith("PGD") else "so")
            assert name.endswith(spec.norm)
        for norm, spec in prof.train_attack.items():
            assert (spec.kind, spec.norm, spec.eps, spec.random_start) == ("pgd", norm, {"l2": 4.0, "linf": 0.3}[norm],
                                                                           True)
    paper = protocols.PAPER
    assert paper.defenses["madry"].lr == 1e-4 and paper.defenses["madry"].batch_size == 50
    assert paper.defenses["trades"].optimizer == "sgd" and paper.defenses["trades"].lr_milestones == (55, 75, 90)
    assert protocols.FULL.train_attack["linf"].steps == 40 and protocols.FULL.train_attack["linf"].step_size == 0.01
    large = protocols.LARGE  # all 60k images, PGD-10 training, the paper's attack settings on 1k test images
    assert (large.n_train, large.n_test, large.train_attack["linf"].steps) == (None, 1000, 10)
    assert large.evaluation == protocols.FULL.evaluation


def test_the_full_profile_evaluates_with_the_papers_attacks():
    """The paper's own settings are the spec defaults: PGD 40 steps (ℓ∞ 0.01, ℓ2 0.25), S-O 40 × 20 with the
    authors' σ."""
    assert protocols.FULL.evaluation == {"PGD-l2": AttackSpec.pgd("l2"), "PGD-linf": AttackSpec.pgd("linf"),
                                         "SO-l2": AttackSpec.so("l2"), "SO-linf": AttackSpec.so("linf")}
    assert protocols.FULL.train_attack == {"l2": AttackSpec.pgd("l2"), "linf": AttackSpec.pgd("linf")}
    quick = protocols.QUICK.evaluation  # reduced steps: 2.5·ε/steps
    assert quick["PGD-linf"] == AttackSpec.pgd("linf", steps=20)
    assert quick["SO-l2"] == AttackSpec.so("l2", steps=10, samples=4)
    assert quick["SO-linf"].step_size == pytest.approx(2.5 * 0.3 / 10)
    assert protocols.MEDIUM.train_attack["l2"].step_size == pytest.approx(2.5 * 4.0 / 5)


def test_norm_labels_are_the_one_set_of_norm_labels():
    assert protocols.NORM_LABELS == {"l2": "ℓ2", "linf": "ℓ∞", "mix": "Mix", "l1": "ℓ1"}
    assert set(protocols.NORM_LABELS) == set(protocols.TRAIN_NORMS) | set(lp.ALL_NORMS)  # ℓ1: attacks only


def test_attack_settings_are_re_exported_from_their_home():
    assert protocols.AttackSpec is specs.AttackSpec and protocols.EPS is specs.EPS
    assert not hasattr(protocols, "pgd_spec") and not hasattr(protocols, "so_spec")


def test_profile_config_is_plain_data():
    config = protocols.QUICK.config()
    assert json.loads(json.dumps(config))["evaluation"] == config["evaluation"]  # JSON-able
    assert config["evaluation"]["PGD-l2"] == AttackSpec.pgd("l2", steps=20).config()
    assert all(spec["loss"] == "ce" for group in ("train_attack", "evaluation") for spec in config[group].values())
    assert config["defenses"]["madry"]["batch_size"] == 50 and config["name"] == "quick"


def test_repro_choices_name_the_documented_settings():
    text = " ".join(protocols.REPRO_CHOICES.values())
    assert "2.5·ε/steps" in text and "0.28" in text and "β=6" in text


# ---------------------------------------------------------------------------------------------- multi-norm cells


def test_multi_norm_cells_are_named_but_not_part_of_table_1():
    assert protocols.MULTI_NORM == ("max", "avg", "msd") and protocols.UNION == "union"
    assert protocols.MULTI_NORM_CELLS == ("max-union", "avg-union", "msd-union")
    assert not set(protocols.MULTI_NORM_CELLS) & (set(CELLS) | set(protocols.CELL_ORDER))
    assert len(protocols.parse_cells(None)) == 12  # `reproduce` without --cells trains Table 1 only
    assert [protocols.split_cell(c) for c in protocols.MULTI_NORM_CELLS] == [(d, "union") for d in protocols.MULTI_NORM]


def test_parse_cells_takes_multi_norm_cells_and_the_multi_keyword():
    assert protocols.parse_cells("multi") == list(protocols.MULTI_NORM_CELLS)
    assert protocols.parse_cells("msd-union, madry-linf") == ["msd-union", "madry-linf"]
    assert protocols.parse_cells("all,multi") == list(protocols.CELL_ORDER + protocols.MULTI_NORM_CELLS)
    assert protocols.parse_cells("max-union,multi,max-union") == ["max-union", "avg-union", "msd-union"]  # once each
    with pytest.raises(ValueError, match="unknown cell 'multy'; valid choices: .*'msd-union', 'all', 'multi'"):
        protocols.parse_cells("multy")


def test_multi_norm_defenses_train_with_madrys_spec_and_their_choices_are_recorded():
    for prof in protocols.PROFILES.values():
        for defense in protocols.MULTI_NORM:
            assert protocols.train_spec(prof, defense) == prof.defenses["madry"]
        for defense in protocols.DEFENSES:
            assert protocols.train_spec(prof, defense) is prof.defenses[defense]
    with pytest.raises(ValueError, match="unknown defense 'union'"):
        protocols.train_spec(protocols.QUICK, "union")
    text = " ".join(protocols.REPRO_CHOICES.values())
    assert "max(steps)" in text and "msd_v0" in text and "as Madry's cells" in text

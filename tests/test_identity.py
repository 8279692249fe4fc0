"""``advlib.identity``: keys from what a result depends on — prose, other defenses, other rows and fields at their
default change no key; every dependency does."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from advlib import identity, protocols
from advlib.protocols import LARGE, MEDIUM, QUICK, TrainSpec
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec

FP = {"train": "a" * 16, "test": "b" * 16}


def ids(profile: protocols.Profile, cell: str = "madry-linf") -> dict:
    return identity.record_identity(json.loads(json.dumps(profile.config())), cell, FP)


@pytest.mark.parametrize("profile", [QUICK, MEDIUM, LARGE], ids=lambda p: p.name)
def test_prose_is_in_no_identity(profile):
    words = replace(profile, description="about an hour, or forty minutes", notes=("REPRO CHOICE: other words",))
    for cell in protocols.CELLS + protocols.MULTI_NORM_CELLS:
        assert ids(words, cell) == ids(profile, cell)


def test_a_new_defense_or_cell_leaves_every_other_model_and_row_alone():
    mart = replace(MEDIUM, defenses={**MEDIUM.defenses, "mart": TrainSpec(epochs=7, batch_size=64)})
    more_rows = replace(MEDIUM, evaluation={**MEDIUM.evaluation, "PGD-l1": AttackSpec.pgd("l2", eps=9.0)})
    for cell in protocols.CELLS:
        assert ids(mart, cell) == ids(MEDIUM, cell)
        same = ids(more_rows, cell)
        assert same["model"] == ids(MEDIUM, cell)["model"]
        assert {k: v for k, v in same["rows"].items() if k != "PGD-l1"} == ids(MEDIUM, cell)["rows"]


def test_a_model_depends_on_its_own_defense_and_norms_only():
    other_trades = replace(MEDIUM, defenses={**MEDIUM.defenses, "trades": replace(MEDIUM.defenses["trades"], beta=1.0)})
    assert ids(other_trades, "madry-linf") == ids(MEDIUM, "madry-linf")
    assert ids(other_trades, "trades-linf")["model"] != ids(MEDIUM, "trades-linf")["model"]
    l2_longer = replace(MEDIUM, train_attack={**MEDIUM.train_attack, "l2": AttackSpec.pgd("l2", steps=9)})
    assert ids(l2_longer, "madry-linf")["model"] == ids(MEDIUM, "madry-linf")["model"]
    for cell in ("madry-l2", "madry-mix", "msd-union"):  # the cells that train with ℓ2 steps
        assert ids(l2_longer, cell)["model"] != ids(MEDIUM, cell)["model"]


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"init": "tf"}, {"start": "medium-madry-linf"},
    {"defenses": {**MEDIUM.defenses, "madry": replace(MEDIUM.defenses["madry"], epochs=6)}},
    {"train_attack": {**MEDIUM.train_attack, "linf": AttackSpec.pgd("linf", steps=7)}},
])
def test_every_training_dependency_changes_the_model_key(change):
    assert ids(replace(MEDIUM, **change))["model"]["key"] != ids(MEDIUM)["model"]["key"]


def test_a_fine_tuned_model_names_its_start_and_no_other_model_does():
    assert ids(replace(MEDIUM, start="medium-madry-linf"))["model"]["depends"]["start"] == "medium-madry-linf"
    assert "start" not in ids(MEDIUM)["model"]["depends"]
    assert "start" not in ids(replace(MEDIUM, start="medium-madry-linf"), identity.NATURAL)["model"]["depends"]
    older = json.loads(json.dumps(MEDIUM.config()))  # a configuration stored before the two fields existed
    del older["start"]
    for spec in older["defenses"].values():
        del spec["attack_labels"]
    assert identity.record_identity(older, "atda-linf", FP) == ids(MEDIUM, "atda-linf")


def test_data_and_seed_are_dependencies_of_models_and_rows():
    base = identity.record_identity(MEDIUM.config(), "madry-linf", FP)
    other_train = identity.record_identity(MEDIUM.config(), "madry-linf", {**FP, "train": "c" * 16})
    other_test = identity.record_identity(MEDIUM.config(), "madry-linf", {**FP, "test": "c" * 16})
    assert other_train["model"]["key"] != base["model"]["key"] and other_train["rows"] == base["rows"]
    assert other_test["model"] == base["model"]
    assert all(other_test["rows"][r]["key"] != base["rows"][r]["key"] for r in base["rows"])


def test_the_ensemble_depends_on_its_static_models_and_the_others_do_not():
    static = replace(MEDIUM, static=TrainSpec(epochs=9, batch_size=50))
    assert ids(static, "ensemble-l2")["model"] != ids(MEDIUM, "ensemble-l2")["model"]
    assert ids(static, "madry-l2")["model"] == ids(MEDIUM, "madry-l2")["model"]


def test_fields_at_their_default_are_left_out_so_new_fields_change_no_key():
    pgd = AttackSpec.pgd("linf")
    assert identity.spec_config(pgd) == {"kind": "pgd", "norm": "linf", "eps": 0.3, "steps": 40, "step_size": 0.01}
    stored = {**pgd.config(), "loss": "ce", "clamp": "step"}  # written out, or a field added later at its default
    assert identity.spec_config({**pgd.config(), "loss": "ce"}) == identity.spec_config(pgd)
    assert "clamp" not in identity.spec_config(stored)  # a field added later, at its default: left out
    assert identity.spec_config({**pgd.config(), "new": 1})["new"] == 1  # a field the code does not know is kept
    assert identity.spec_config(AttackSpec.pgd("linf", loss="cw"))["loss"] == "cw"
    assert identity.train_config(TrainSpec(epochs=2, batch_size=8, checkpoint_every=5)) == {"epochs": 2,
                                                                                           "batch_size": 8}
    assert identity.train_config(TrainSpec(epochs=2, batch_size=8, lr=1)) == \
        identity.train_config(TrainSpec(epochs=2, batch_size=8, lr=1.0))  # an int where a float is meant
    aa = identity.spec_config(AutoAttackSpec("l2", 2.0))
    assert aa["kind"] == "autoattack" and "target_classes" not in aa and "package" in aa


def test_keys_are_stable_hex_digests():
    deps = {"b": [1, 2], "a": {"x": 0.5}}
    assert identity.key(deps) == identity.key({"a": {"x": 0.5}, "b": [1, 2]})
    assert len(identity.key(deps)) == identity.KEY_LENGTH and int(identity.key(deps), 16) >= 0
    assert identity.key(deps) != identity.key({**deps, "b": [2, 1]})


def test_versions_are_dependencies(monkeypatch):
    before = ids(MEDIUM)
    monkeypatch.setattr(identity, "TRAINING_VERSION", identity.TRAINING_VERSION + 1)
    after = ids(MEDIUM)
    assert after["model"]["key"] != before["model"]["key"] and after["rows"] == before["rows"]
    monkeypatch.setattr(identity, "ATTACK_VERSION", identity.ATTACK_VERSION + 1)
    assert ids(MEDIUM)["rows"]["PGD-l2"]["key"] != before["rows"]["PGD-l2"]["key"]
    assert ids(MEDIUM)["rows"]["Natural"] == before["rows"]["Natural"]  # the clean row runs no attack


def test_compare_says_current_stale_or_missing_with_reasons():
    made = ids(MEDIUM)
    assert identity.compare(made, made) == ("current", [], [])
    state, reasons, missing = identity.compare(made, ids(replace(MEDIUM, seed=4)))
    assert state == "stale" and "model seed: 0 → 4" in reasons and missing == []
    more = replace(MEDIUM, evaluation={**MEDIUM.evaluation, "PGD-l2-x0": AttackSpec.pgd("l2", random_start=False)})
    assert identity.compare(made, ids(more)) == ("current", [], ["PGD-l2-x0"])
    fewer = replace(MEDIUM, evaluation={k: v for k, v in MEDIUM.evaluation.items() if k != "SO-l2"})
    assert identity.compare(made, ids(fewer)) == ("current", [], [])  # a row the code dropped: ignored


def test_differences_name_the_changed_leaves():
    assert identity.differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4}) == [
        "b.c: 2 → 3", "d: (absent) → 4"]
    assert identity.differences([1], [1]) == []


def test_an_unknown_defense_in_a_stored_configuration_is_a_clear_error():
    config = json.loads(json.dumps(MEDIUM.config()))
    del config["defenses"]["trades"]
    with pytest.raises(ValueError, match="no training settings for defense 'trades'"):
        identity.model_dependencies(config, "trades-l2", "a" * 16)
    legacy = {**config, "defenses": {k: v for k, v in config["defenses"].items() if k not in protocols.MULTI_NORM}}
    assert identity.model_dependencies(legacy, "msd-union", "a" * 16) == \
        identity.model_dependencies(config, "msd-union", "a" * 16)  # before profiles had multi-norm entries

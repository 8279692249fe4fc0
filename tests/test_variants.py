"""``advlib.variants`` (profile variants for ablations and seed spread) and their runner
``advlib.experiments.variant_runs`` (``python -m advlib variants``), the latter on a tiny base profile."""
from __future__ import annotations

import warnings
from dataclasses import asdict, replace

import pytest
import torch

from advlib import protocols, records, reproduce, verify
from advlib import variants as var
from advlib.__main__ import main
from advlib.experiments import variant_runs
from advlib.protocols import MEDIUM
from advlib.specs import AttackSpec
from advlib.training import training_norm
from conftest import full_mnist_root, tiny_profile


def _differences(a: protocols.Profile, b: protocols.Profile) -> set[str]:
    left, right = asdict(a), asdict(b)
    return {k for k in left if left[k] != right[k]} - {"name", "description"}


@pytest.mark.parametrize("name", sorted(var.VARIANTS))
def test_each_variant_changes_its_base_in_exactly_one_field_and_names_its_cells(name):
    v = var.get(name)
    base = protocols.get_profile(v.base)
    assert protocols.get_profile(name) is v.profile
    assert len(_differences(v.profile, base)) == 1
    assert v.cells and all(c in protocols.CELLS for c in v.cells)
    assert v.change and v.reason and v.change in v.profile.description


def test_the_l2_short_variant_changes_only_the_l2_training_step_to_the_reach_of_40_steps_of_0_01():
    v = var.get("medium-l2-short")
    spec, base = v.profile.train_attack["l2"], MEDIUM.train_attack["l2"]
    assert spec.steps * spec.step_size == pytest.approx(0.4)
    assert replace(spec, step_size=base.step_size) == base
    assert v.profile.train_attack["linf"] == MEDIUM.train_attack["linf"]
    (row,) = v.rows.values()
    assert (row.step_size, row.random_start, row.steps, row.eps) == (0.01, False, 40, 4.0)


def test_the_predicted_labels_variant_is_atda_fgsm_small_with_atdas_own_labels(tmp_path):
    v = var.get("medium-atda-fgsm-small-predicted")
    base = var.get(v.base)
    assert v.profile.defenses["atda"].attack_labels == "predicted"
    assert base.profile.defenses["atda"].attack_labels == "true"
    assert v.profile.train_attack == base.profile.train_attack
    assert var.base_folder(v, tmp_path) == tmp_path / "variants" / base.name
    assert var.base_folder(base, tmp_path) == tmp_path / "medium"


def test_a_training_spec_rejects_unknown_attack_labels():
    with pytest.raises(ValueError, match="guessed"):
        replace(MEDIUM.defenses["atda"], attack_labels="guessed")


def test_the_atda_variant_trains_on_one_step_of_eps_from_x():
    v = var.get("medium-atda-fgsm")
    for norm, spec in v.profile.train_attack.items():
        assert (spec.steps, spec.step_size, spec.random_start) == (1, MEDIUM.train_attack[norm].eps, False)
    assert set(v.cells) <= {c for c in protocols.CELLS if c.startswith("atda-")}


def test_the_mix_variant_alternates_by_epoch_ending_on_l2():
    v = var.get("medium-mix-epochs")
    period = v.profile.defenses["madry"].mix_period
    assert period == MEDIUM.n_train // MEDIUM.defenses["madry"].batch_size
    epochs = v.profile.defenses["madry"].epochs
    assert [training_norm("mix", e * period, period) for e in range(epochs)] == ["l2", "linf", "l2", "linf", "l2"]
    assert training_norm("mix", period - 1, period) == "l2" and training_norm("mix", period, period) == "linf"


def test_a_mix_period_of_zero_is_refused():
    with pytest.raises(ValueError, match="mix period"):
        training_norm("mix", 3, 0)


def test_variant_models_have_other_keys_than_the_base_models():
    for v in var.VARIANTS.values():
        base = protocols.get_profile(v.base)
        sources = reproduce.data_identity(base)
        for cell in v.cells:
            mine = reproduce.expected_identity(v.profile, cell, sources)["model"]["key"]
            theirs = reproduce.expected_identity(base, cell, sources)["model"]["key"]
            assert mine != theirs, (v.name, cell)


def test_every_fine_tuned_variant_starts_from_a_kept_model_of_its_base_profile():
    from advlib import kept
    tuned = [v for v in var.VARIANTS.values() if v.profile.start]
    assert {v.name for v in tuned} >= {"medium-finetuned"}
    for v in tuned:
        assert v.profile.start.startswith(f"{v.base.split('-')[0]}-")  # e.g. medium-madry-linf for medium-finetuned
        assert isinstance(kept.load_named(v.profile.start), torch.nn.Module)


def test_a_row_of_the_extended_block_is_not_missing(monkeypatch, tmp_path):
    rec = {"accuracy": {"Natural": 1.0}, "added_rows": {"A": {}}, "extended": {"accuracy": {"PGD-l2@2": 0.5}}}
    monkeypatch.setattr(variant_runs.records, "assemble", lambda path: rec)
    rows = {name: AttackSpec.pgd("l2") for name in ("Natural", "A", "PGD-l2@2", "B")}
    assert set(variant_runs.missing_rows(tmp_path / "madry-mix.json", rows)) == {"B"}


def test_unknown_variants_and_profiles_are_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="medium-l2-short"):
        var.get("medium-l3")
    with pytest.raises(ValueError, match="medium-seed1"):
        protocols.get_profile("medium-l3")
    with pytest.raises(SystemExit):
        main(["variants", "--names", "medium-l3"])


# ------------------------------------------------------------------------------------ the runner, tiny

TINY = tiny_profile("tiny-variants-base", seed=5)
SHORT = var.Variant(
    replace(TINY, name="tiny-variants-short", train_attack={**TINY.train_attack,
                                                            "l2": AttackSpec.pgd("l2", steps=1, step_size=0.4)}),
    TINY.name, ("madry-l2",), "short ℓ2 steps", "test-only",
    {"PGD-l2 step 0.01": AttackSpec.pgd("l2", steps=2, step_size=0.01, random_start=False)})


@pytest.fixture
def registered(monkeypatch):
    root = full_mnist_root()
    if root is not None:
        monkeypatch.setenv("ADVLIB_DATA", str(root))
    monkeypatch.setattr("advlib.data._download", lambda folder: False)
    monkeypatch.setitem(protocols.PROFILES, TINY.name, TINY)
    monkeypatch.setitem(var.VARIANTS, SHORT.name, SHORT)


def test_the_runner_records_the_variant_and_adds_its_rows_beside_both_models_resumably(registered, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reproduce.reproduce(TINY.name, ["madry-l2"], out=tmp_path / TINY.name, quiet=True)
        variant_runs.run([SHORT.name], tmp_path, log=lambda line: None)
    mine = records.assemble(tmp_path / "variants" / SHORT.name / "madry-l2.json")
    base = records.assemble(tmp_path / TINY.name / "madry-l2.json")
    assert mine["profile"] == SHORT.name and base["profile"] == TINY.name
    assert records.model_key(mine) != records.model_key(base)
    for rec in (mine, base):
        assert set(rec["added_rows"]) == {"PGD-l2 step 0.01"}
        assert 0.0 <= records.added_accuracy(rec, "PGD-l2 step 0.01") <= 1.0
    findings = verify.verify(tmp_path)
    assert findings and {f.state for f in findings} == {"current"}
    before = (tmp_path / "variants" / SHORT.name / "madry-l2.rows.json").read_bytes()
    variant_runs.run([SHORT.name], tmp_path, log=lambda line: None)  # nothing left to do
    assert (tmp_path / "variants" / SHORT.name / "madry-l2.rows.json").read_bytes() == before
    assert torch.equal(records.unpack_mask(mine["masks"]["Natural"], mine["n_test"]),
                       records.unpack_mask(records.assemble(tmp_path / "variants" / SHORT.name / "madry-l2.json")
                                           ["masks"]["Natural"], mine["n_test"]))

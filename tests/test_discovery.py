"""``advlib.discovery``: where the CLI, the claims and the chapters find committed result records."""
from __future__ import annotations

from pathlib import Path

import pytest

from advlib import discovery, protocols
from advlib.records import RecordError, write_record
from conftest import REPO, acc, make_record, synthetic_identity


def write(root: Path, profile: str, cell: str) -> None:
    rec = make_record(cell, acc(50, 50, 50, 50), profile=profile, n=8)
    body = {**rec, "config": {}, "identity": synthetic_identity(cell), "seed": 0, "advlib_version": "0", "git_revision": "x", "torch_version": "t",
            "device": "cpu", "data": {}, "wall_time": {}, "traces": {}, "created": "now"}
    write_record(root / profile / f"{cell}.json", body)


def test_best_extended_records_skip_records_without_the_block(tmp_path):
    assert discovery.EXTENDED_ORDER.index("medium-h100") < discovery.EXTENDED_ORDER.index("medium")
    committed = REPO / "results" / "medium-h100" / "madry-l2.json"
    write(tmp_path, "large", "madry-l2")  # better profile, but no extended block: skipped
    for folder in ("medium-h100", "quick"):
        (tmp_path / folder).mkdir()
        for name in (committed.name, "madry-l2.extended.json"):  # the record and its extended side file
            (tmp_path / folder / name).write_text((committed.parent / name).read_text())
    write(tmp_path, "full", "trades-l2")  # no block anywhere: absent
    best = discovery.best_extended_records(tmp_path)
    assert list(best) == ["madry-l2"]
    assert best["madry-l2"]["profile"] == "medium" and "extended" in best["madry-l2"]
    assert discovery.best_extended_records(tmp_path / "empty") == {}


def test_best_records_prefer_full_then_large_then_medium_then_quick(tmp_path):
    assert discovery.RECORD_ORDER == ("full", "large", "medium", "quick")
    write(tmp_path, "quick", "madry-linf")
    write(tmp_path, "medium", "madry-linf")
    write(tmp_path, "quick", "trades-l2")
    write(tmp_path, "large", "trades-l2")
    write(tmp_path, "medium", "trades-l2")
    write(tmp_path, "full", "atda-mix")
    write(tmp_path, "quick", "atda-mix")
    write(tmp_path, "tour", "madry-l2")  # not a profile the book reads records of
    best = discovery.best_records(tmp_path)
    assert {c: r["profile"] for c, r in best.items()} == {"madry-linf": "medium", "trades-l2": "large",
                                                          "atda-mix": "full"}
    assert list(best) == [c for c in protocols.CELLS if c in best]  # in the table's cell order
    assert discovery.best_records(tmp_path / "empty") == {}


def test_profile_records_read_one_profile_alone_in_table_order(tmp_path):
    assert discovery.profile_records("large", tmp_path) == {}
    write(tmp_path, "large", "atda-mix")
    write(tmp_path, "large", "madry-linf")
    write(tmp_path, "medium", "trades-l2")
    got = discovery.profile_records("large", tmp_path)
    assert list(got) == ["madry-linf", "atda-mix"] and {r["profile"] for r in got.values()} == {"large"}
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        discovery.profile_records("huge", tmp_path)


def test_results_root_follows_the_environment_then_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVLIB_RESULTS", str(tmp_path))
    assert discovery.results_root() == tmp_path
    monkeypatch.delenv("ADVLIB_RESULTS")
    root = discovery.results_root()
    assert root == (REPO / "results" if (REPO / "results").is_dir() else Path("results"))


def test_multinorm_records_reads_the_multi_norm_cells_of_one_profile(tmp_path):
    from conftest import full_record
    for cell in ("msd-union", "madry-linf"):
        write_record(tmp_path / "medium" / f"{cell}.json", full_record(cell, acc(40, 60, 40, 55), profile="medium"))
    assert list(discovery.multinorm_records("medium", root=tmp_path)) == ["msd-union"]
    assert discovery.multinorm_records("quick", root=tmp_path) == {}


def test_profiles_used_lists_the_records_profiles():
    recs = {"madry-l2": make_record("madry-l2", acc(1, 1, 1, 1), profile="medium"),
            "atda-mix": make_record("atda-mix", acc(1, 1, 1, 1), profile="full"),
            "trades-l2": make_record("trades-l2", acc(1, 1, 1, 1), profile="medium")}
    assert discovery.profiles_used(recs) == ["full", "medium"] and discovery.profiles_used({}) == []


def test_records_by_profile_keeps_the_profiles_that_have_records(tmp_path):
    write(tmp_path, "large", "madry-linf")
    write(tmp_path, "medium", "trades-l2")
    write(tmp_path, "quick", "atda-mix")
    got = discovery.records_by_profile(root=tmp_path)
    assert list(got) == ["large", "medium"]  # full has none, quick is left out by default
    assert list(got["large"]) == ["madry-linf"] and list(got["medium"]) == ["trades-l2"]
    assert list(discovery.records_by_profile(("quick", "large"), tmp_path)) == ["quick", "large"]
    assert discovery.records_by_profile(root=tmp_path / "empty") == {}


def test_in_run_order_follows_the_cell_order_and_drops_other_cells():
    recs = {c: make_record(c, acc(1, 1, 1, 1)) for c in ("madry-l2", "atda-mix", "madry-linf", "max-union")}
    ordered = discovery.in_run_order(recs)
    assert list(ordered) == ["madry-linf", "madry-l2", "atda-mix"]
    assert [protocols.CELL_ORDER.index(c) for c in ordered] == sorted(protocols.CELL_ORDER.index(c) for c in ordered)
    assert ordered["madry-l2"] is recs["madry-l2"] and discovery.in_run_order({}) == {}


def test_labelled_extended_records_label_each_record_with_its_folder(tmp_path):
    from conftest import full_record
    block = {"AA-l2": 40.0, "AA-linf": 50.0}
    write_record(tmp_path / "large" / "madry-linf.json", full_record("madry-linf", acc(40, 60, 40, 55), extended=block))
    write_record(tmp_path / "large" / "madry-l2.json", full_record("madry-l2", acc(40, 60, 40, 55)))  # no block
    write_record(tmp_path / "medium" / "madry-linf.json",
                 full_record("madry-linf", acc(40, 60, 40, 55), profile="medium", extended=block))
    got = discovery.labelled_extended_records(("large", "medium-h100", "medium"), tmp_path)
    assert list(got) == ["madry-linf (large)", "madry-linf (medium)"]
    assert got["madry-linf (medium)"]["profile"] == "medium"
    assert discovery.labelled_extended_records(root=tmp_path / "empty") == {}


def test_cell_of_and_select_read_plain_and_labelled_keys():
    assert discovery.cell_of("madry-linf") == "madry-linf" == discovery.cell_of("madry-linf (medium-h100)")
    recs = {k: make_record(discovery.cell_of(k), acc(1, 1, 1, 1))
            for k in ("madry-linf (large)", "trades-l2 (large)", "ensemble-linf (medium)", "max-union (medium)")}
    assert list(discovery.select(recs, train_norm="linf")) == ["madry-linf (large)", "ensemble-linf (medium)"]
    assert list(discovery.select(recs, cells=("trades-l2", "max-union"))) == ["trades-l2 (large)", "max-union (medium)"]
    assert list(discovery.select(recs, cells=("madry-linf", "trades-l2"), train_norm="l2")) == ["trades-l2 (large)"]
    assert discovery.select(recs) == recs


def test_read_and_folder_records_attach_side_files(tmp_path):
    from conftest import full_record
    rec = full_record("madry-linf", acc(40, 60, 40, 55), extended={"AA-l2": 40.0, "AA-linf": 50.0})
    write_record(tmp_path / "medium-h100" / "madry-linf.json", rec)
    assert discovery.read("medium-h100/madry-linf.json", tmp_path)["accuracy"] == rec["accuracy"]
    assert "extended" in discovery.read("medium-h100/madry-linf.json", tmp_path)
    assert list(discovery.folder_records("medium-h100", tmp_path)) == ["madry-linf"]  # any folder, not only profiles
    assert discovery.folder_records("large-cpu", tmp_path) == {}
    with pytest.raises(RecordError):
        discovery.read("medium-h100/absent.json", tmp_path)


def test_with_released_adds_the_released_model_s_extended_record(tmp_path):
    from conftest import REPO
    found = discovery.with_released({"madry-linf": {"cell": "madry-linf"}}, REPO / "results")
    assert set(found) == {"madry-linf", "trades-released"} and "extended" in found["trades-released"]
    assert discovery.with_released({"x": {}}, tmp_path) == {"x": {}}  # nothing committed there: unchanged

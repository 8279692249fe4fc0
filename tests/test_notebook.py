"""``advlib.notebook``: the chapters' set-up call and where they find committed result records."""
from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch

from advlib import notebook, protocols
from advlib.records import write_record
from conftest import REPO, acc, make_record



def write(root: Path, profile: str, cell: str) -> None:
    rec = make_record(cell, acc(50, 50, 50, 50), profile=profile, n=8)
    body = {**rec, "config": {}, "seed": 0, "advlib_version": "0", "git_revision": "x", "torch_version": "t",
            "device": "cpu", "data": {}, "wall_time": {}, "traces": {}, "created": "now"}
    write_record(root / profile / f"{cell}.json", body)


def test_best_extended_records_skip_records_without_the_block(tmp_path):
    assert notebook.EXTENDED_ORDER.index("medium-h100") < notebook.EXTENDED_ORDER.index("medium")
    committed = REPO / "results" / "medium-h100" / "madry-l2.json"
    write(tmp_path, "large", "madry-l2")  # better profile, but no extended block: skipped
    for folder in ("medium-h100", "quick"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "madry-l2.json").write_text(committed.read_text())
    write(tmp_path, "full", "trades-l2")  # no block anywhere: absent
    best = notebook.best_extended_records(tmp_path)
    assert list(best) == ["madry-l2"]
    assert best["madry-l2"]["profile"] == "medium" and "extended" in best["madry-l2"]
    assert notebook.best_extended_records(tmp_path / "empty") == {}


def test_best_records_prefer_full_then_large_then_medium_then_quick(tmp_path):
    assert notebook.RECORD_ORDER == ("full", "large", "medium", "quick")
    write(tmp_path, "quick", "madry-linf")
    write(tmp_path, "medium", "madry-linf")
    write(tmp_path, "quick", "trades-l2")
    write(tmp_path, "large", "trades-l2")
    write(tmp_path, "medium", "trades-l2")
    write(tmp_path, "full", "atda-mix")
    write(tmp_path, "quick", "atda-mix")
    write(tmp_path, "tour", "madry-l2")  # not a profile the book reads records of
    best = notebook.best_records(tmp_path)
    assert {c: r["profile"] for c, r in best.items()} == {"madry-linf": "medium", "trades-l2": "large",
                                                          "atda-mix": "full"}
    assert list(best) == [c for c in protocols.CELLS if c in best]  # in the table's cell order
    assert notebook.best_records(tmp_path / "empty") == {}


def test_profile_records_read_one_profile_alone_in_table_order(tmp_path):
    assert notebook.profile_records("large", tmp_path) == {}
    write(tmp_path, "large", "atda-mix")
    write(tmp_path, "large", "madry-linf")
    write(tmp_path, "medium", "trades-l2")
    got = notebook.profile_records("large", tmp_path)
    assert list(got) == ["madry-linf", "atda-mix"] and {r["profile"] for r in got.values()} == {"large"}
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        notebook.profile_records("huge", tmp_path)


def test_results_root_follows_the_environment_then_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVLIB_RESULTS", str(tmp_path))
    assert notebook.results_root() == tmp_path
    monkeypatch.delenv("ADVLIB_RESULTS")
    root = notebook.results_root()
    assert root == (REPO / "results" if (REPO / "results").is_dir() else Path("results"))


@pytest.fixture
def isolated_setup(monkeypatch):
    """``setup`` seeds torch, styles matplotlib and quiets a logger: give all three back afterwards."""
    monkeypatch.setattr(notebook.runtime, "default_device", lambda: torch.device("cpu"))
    level = logging.getLogger("advlib").level
    with torch.random.fork_rng(devices=[]), matplotlib.rc_context():
        yield
    logging.getLogger("advlib").setLevel(level)


def test_setup_reads_the_profile_from_the_environment(monkeypatch, isolated_setup):
    monkeypatch.delenv(notebook.PROFILE_ENV, raising=False)
    chapter = notebook.setup()
    assert chapter.profile is protocols.QUICK and chapter.device == torch.device("cpu")  # quick on a CPU
    assert "profile 'quick' on cpu" in str(chapter)
    monkeypatch.setenv(notebook.PROFILE_ENV, "medium")
    assert notebook.setup().profile is protocols.MEDIUM
    monkeypatch.setenv(notebook.PROFILE_ENV, "nope")
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        notebook.setup()


def test_setup_seeds_torch(monkeypatch, isolated_setup):
    monkeypatch.setenv(notebook.PROFILE_ENV, "quick")
    notebook.setup(seed=3)
    a = torch.rand(3)
    notebook.setup(seed=3)
    assert torch.equal(a, torch.rand(3))


# ---------------------------------------------------------------------------------------------- chapter helpers


def test_a_setups_generator_is_fresh_and_seeded_on_its_device():
    chapter = notebook.Setup(protocols.QUICK, torch.device("cpu"))
    a, b = chapter.generator(5), chapter.generator(5)
    assert a is not b and a.device == torch.device("cpu")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=chapter.generator(0)), torch.rand(4, generator=chapter.generator(5)))


def test_profiles_used_percent_and_significant():
    recs = {"madry-l2": make_record("madry-l2", acc(1, 1, 1, 1), profile="medium"),
            "atda-mix": make_record("atda-mix", acc(1, 1, 1, 1), profile="full"),
            "trades-l2": make_record("trades-l2", acc(1, 1, 1, 1), profile="medium")}
    assert notebook.profiles_used(recs) == ["full", "medium"] and notebook.profiles_used({}) == []
    assert notebook.percent(torch.tensor([True, False, True, True])) == 75.0
    frame = pd.DataFrame({"a": [123456.0, 0.000123456], "b": [1.0, 2.25]})
    rounded = notebook.significant(frame)
    assert rounded["a"].tolist() == [123000.0, 0.000123] and rounded["b"].tolist() == [1.0, 2.25]
    assert notebook.significant(frame, digits=1)["b"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="digits must be at least 1, got 0"):
        notebook.significant(frame, digits=0)


def test_multinorm_records_reads_the_multi_norm_cells_of_one_profile(tmp_path):
    from conftest import full_record
    for cell in ("msd-union", "madry-linf"):
        write_record(tmp_path / "medium" / f"{cell}.json", full_record(cell, acc(40, 60, 40, 55), profile="medium"))
    assert list(notebook.multinorm_records("medium", root=tmp_path)) == ["msd-union"]
    assert notebook.multinorm_records("quick", root=tmp_path) == {}

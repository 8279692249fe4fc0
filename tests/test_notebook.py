"""``advlib.notebook``: the chapters' set-up call."""
from __future__ import annotations

import logging

import matplotlib
import pytest
import torch

from advlib import notebook, protocols


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


def test_a_setups_generator_is_fresh_and_seeded_on_its_device():
    chapter = notebook.Setup(protocols.QUICK, torch.device("cpu"))
    a, b = chapter.generator(5), chapter.generator(5)
    assert a is not b and a.device == torch.device("cpu")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(torch.rand(4, generator=chapter.generator(0)), torch.rand(4, generator=chapter.generator(5)))


def test_running_time_says_what_was_measured_and_where(tmp_path, monkeypatch):
    from conftest import acc, make_record
    monkeypatch.setenv("ADVLIB_RESULTS", str(tmp_path))
    assert "not measured yet" in notebook.running_time("99_x").data
    notebook.record_chapter_time("99_x", 12.3, torch.device("cpu"))
    text = notebook.running_time("99_x").data
    assert "12 s on cpu" in text and "not yet timed on a GPU" in text
    rec = {**make_record("madry-linf", acc(1, 1, 1, 1)), "device": "NVIDIA H100 80GB HBM3",
           "wall_time": {"static_models": 0.0, "train": 150.0, "evaluate": {"PGD-l2": 30.0}}}
    assert "1 on NVIDIA H100 80GB HBM3, 3 min per cell" in notebook.running_time("99_x", {"c": rec}).data

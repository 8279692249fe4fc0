"""``advlib.experiments.large_linf``: chapter 7's ablations refuse to train, run end to end at a tiny size on
stand-in models, store every run under its key and skip what is done."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advlib import load_mnist, protocols, reproduce
from advlib.experiments import large_linf, store
from advlib.models import MadryCNN


def test_defaults_are_chapter_7s_settings():
    s = large_linf.Settings()
    assert (s.n, s.seed, s.eps_l2, s.steps, s.draws, s.restarts) == (1000, 0, 2.0, 40, 20, 20)
    prof = protocols.get_profile(large_linf.PROFILE)
    assert s.so().sigma == prof.evaluation["SO-l2"].sigma and s.so().eps == s.pgd().eps == 2.0
    sign, l2 = s.so_linf("sign"), s.so_linf("l2")
    assert sign.eps == prof.evaluation["SO-linf"].eps and (sign.linf_step, l2.linf_step) == ("sign", "l2")


def test_it_refuses_to_train_the_large_models(tmp_path):
    """Without the large models' checkpoints it says so instead of training them (hours on a CPU)."""
    with pytest.raises(ValueError, match=r"no checkpoint for \['madry-linf', 'trades-linf'\]"):
        large_linf.run(tmp_path / "b.json", n=4, tiny=True, models_from=tmp_path)
    assert not (tmp_path / "b.json").exists()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"\['d'\].*a, b, c"):
        large_linf.run(tmp_path / "b.json", items=("a", "d"), models_from=tmp_path)
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        large_linf.run(tmp_path / "b.json", n=0, models_from=tmp_path)


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """Checkpoints that exist; a random Madry CNN and a model that ignores its input (always class 7, zero gradient)
    in place of the large models."""
    constant = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        constant[1].weight.zero_()
        constant[1].bias.copy_(torch.arange(10) == 7)
    nets = {"madry-linf": MadryCNN().eval(), "trades-linf": constant.eval()}
    monkeypatch.setattr(reproduce, "checkpoint_path", lambda out, prof, cell, sources: tmp_path / "exists")
    monkeypatch.setattr(reproduce, "trained_model", lambda prof, cell, out, device: nets[cell])
    (tmp_path / "exists").touch()
    return tmp_path


def test_every_item_runs_and_resumes(stand_ins):
    torch.manual_seed(0)
    out, lines = stand_ins / "b.json", []
    doc = large_linf.run(out, n=8, tiny=True, models_from=stand_ins, log=lines.append)
    on_disk = store.read(out, store.LARGE_LINF_ABLATIONS)
    assert sorted(on_disk["items"]) == list(large_linf.ITEMS) and on_disk["runs"] == doc["runs"]
    assert on_disk["settings"]["tiny"] and set(on_disk["models"]) == set(large_linf.CELLS)
    s = large_linf.Settings.tiny_for(8)
    for cell in large_linf.CELLS:
        a = on_disk["items"]["a"][cell]
        budget = f"PGD, {s.steps * s.draws} steps"
        assert a["runs"][budget]["gradient_evaluations"] == s.steps * s.draws
        assert a["runs"]["S-O"]["gradient_evaluations"] == s.steps * s.draws
        assert a["union_accuracy"] <= min(r["accuracy"] for r in a["runs"].values())
        so = store.run(on_disk, model=cell, spec=s.so(), n=8)
        assert so["accuracy"] == a["runs"]["S-O"]["accuracy"]
        c = on_disk["items"]["c"][cell]
        assert store.run(on_disk, model=cell, spec=s.so_linf("l2"), n=8)["accuracy"] == c["l2_normalised"]["accuracy"]
    sevens = int((load_mnist("test", limit=8)[1] == 7).sum())  # what the constant model gets right, whatever x is
    b = on_disk["items"]["b"]["trades-linf"]
    assert b["survivors"] == b["below_1e-3"] == sevens and b["grad_norm_quantiles"]["q100"] == 0
    assert all(key == store.entry_key(r) for key, r in on_disk["runs"].items())
    lines.clear()
    again = large_linf.run(out, n=8, tiny=True, models_from=stand_ins, log=lines.append)
    assert sum("already done, skipped" in line for line in lines) == 3 and again["runs"] == doc["runs"]
    lines.clear()
    large_linf.run(out, n=6, items=("c",), tiny=True, models_from=stand_ins, log=lines.append)
    changed = store.read(out, store.LARGE_LINF_ABLATIONS)  # other settings: old items dropped, old runs kept
    assert list(changed["items"]) == ["c"] and changed["items"]["c"]["madry-linf"]["n"] == 6
    assert set(doc["runs"]) < set(changed["runs"])

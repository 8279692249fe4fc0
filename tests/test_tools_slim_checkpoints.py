"""``tools/slim_checkpoints.py`` and the way back (``tools/gpu_collect.py``): a record made on one machine gets its
extended block on another from a slimmed checkpoint, and only that block may come back."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tarfile
import warnings

import pytest
import torch

from advlib import extended, protocols, records
from advlib import reproduce as rep
from advlib.extended import ExtendedSpec
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec
from conftest import REPO
from test_reproduce import TINY


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slim_checkpoints, gpu_collect = _tool("slim_checkpoints"), _tool("gpu_collect")
CHEAP = ExtendedSpec(rows={"AA-linf": AutoAttackSpec("linf", 0.3, attacks=("apgd-ce",)),
                           "PGD-l2@2": AttackSpec.pgd("l2", steps=2, eps=2.0)},
                     pgd_steps=2, so_steps=2, so_samples=2, radii={"l2": (4.0,), "linf": (0.3,)}, so_every=1)


@pytest.fixture
def made_here(tmp_path, monkeypatch, mnist_root):
    """A tiny-profile madry-linf record and its finished checkpoint in ``tmp_path/here/results/tiny``."""
    if mnist_root is not None:
        monkeypatch.setenv("ADVLIB_DATA", str(mnist_root))
    monkeypatch.setattr("advlib.data._download", lambda folder: False)
    monkeypatch.setitem(protocols.PROFILES, "tiny", TINY)
    monkeypatch.setattr(extended, "extended_spec", lambda profile: CHEAP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensors = rep.load_data(TINY, torch.device("cpu"))
    results = tmp_path / "here" / "results"
    rep.run_cell(TINY, "madry-linf", results / "tiny", tensors, quiet=True, revision="test-rev")
    return results, tensors


def test_a_slim_checkpoint_extends_the_record_and_only_the_block_is_filed_back(made_here, tmp_path, capsys):
    results, tensors = made_here
    pending = slim_checkpoints.pending(results, "tiny")
    assert list(pending) == ["madry-linf"]
    ckpt = pending["madry-linf"]
    target = tmp_path / "slim" / ckpt.relative_to(results)
    slim_checkpoints.slim(ckpt, target)
    full, small = (torch.load(p, weights_only=False) for p in (ckpt, target))
    assert small["optimizer"]["state"] == {} and full["optimizer"]["state"]
    assert target.stat().st_size < ckpt.stat().st_size
    assert all(torch.equal(small["model"][k], v) for k, v in full["model"].items())

    # "the GPU machine": the record and only the slim checkpoint, at the same relative path
    there = tmp_path / "there" / "results"
    shutil.copytree(results / "tiny", there / "tiny", ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(tmp_path / "slim", there, dirs_exist_ok=True)
    rec = rep.extend_cell(TINY, "madry-linf", there / "tiny", tensors)
    assert extended.current(rec, TINY) and slim_checkpoints.pending(there, "tiny") == {}

    back = tmp_path / "back"
    back.mkdir()
    with tarfile.open(back / "tiny-records.tgz", "w:gz") as tar:
        tar.add(there, arcname="results", filter=lambda t: None if "checkpoints" in t.name else t)
    assert gpu_collect.collect(back, results) == 0
    assert records.read_record(results / "tiny" / "madry-linf.json") == rec
    assert "ok tiny/madry-linf.json" in capsys.readouterr().out
    assert gpu_collect.collect(back, results) == 0  # the same again: nothing to file
    assert "unchanged tiny/madry-linf.json: the same as here" in capsys.readouterr().out

    # a record whose base evaluation changed on the way is refused, and the one here stays
    tampered = dict(rec, accuracy={**rec["accuracy"], "Natural": 0.0})
    records.write_record(there / "tiny" / "madry-linf.json", tampered)
    with tarfile.open(back / "tiny-records.tgz", "w:gz") as tar:
        tar.add(there / "tiny" / "madry-linf.json", arcname="results/tiny/madry-linf.json")
    assert gpu_collect.collect(back, results) == 1
    assert "base evaluation differs" in capsys.readouterr().out
    assert records.read_record(results / "tiny" / "madry-linf.json") == rec


def test_an_unfinished_checkpoint_beside_a_record_is_an_error(made_here):
    results, _ = made_here
    ckpt = slim_checkpoints.pending(results, "tiny")["madry-linf"]
    saved = torch.load(ckpt, weights_only=False)
    saved["loop"]["epoch"] = 0
    torch.save(saved, ckpt)
    with pytest.raises(ValueError, match="training is not finished"):
        slim_checkpoints.pending(results, "tiny")


def test_a_record_that_has_the_block_needs_no_checkpoint(made_here):
    results, _ = made_here
    path = results / "tiny" / "madry-linf.json"
    rec = json.loads(path.read_text())
    records.write_record(path, {**rec, "extended": {"config": {"hash": CHEAP.hash()}}})
    assert slim_checkpoints.pending(results, "tiny") == {}

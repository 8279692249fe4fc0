"""advlib.experiments.kernels: the same training in separate processes under different kernel settings."""
from __future__ import annotations

import argparse

import pytest
import torch

from advlib import protocols, records
from advlib.experiments import cli, kernels


def test_separate_processes_with_the_same_kernels_train_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    one = {"env": {}, "threads": 1}
    monkeypatch.setattr(kernels, "SETTINGS", {"default": one, "again": one,
                                              "avx2": {**kernels.SETTINGS["avx2"], "threads": 1}})
    lines: list[str] = []
    doc = kernels.run("quick", "madry-l2", (1, 3), tmp_path / "k.json", log=lines.append)
    assert records.read_document(tmp_path / "k.json", kernels.KIND)["cell"] == "madry-l2"
    same, again = doc["results"]["default"], doc["results"]["again"]
    assert same["forward_max_abs_diff"] == 0.0 == again["forward_max_abs_diff"]
    for s in ("1", "3"):
        assert again["steps"][s]["digest"] == same["steps"][s]["digest"]
        assert again["steps"][s]["max_rel_weight_diff"] == 0.0 and again["steps"][s]["outcomes_differing"] == 0
    assert doc["results"]["avx2"]["capability"] in ("AVX2", "DEFAULT")  # capped: never more than AVX2
    assert doc["n_test"] == protocols.get_profile("quick").n_test and doc["record"] == ""  # not a whole training
    assert again["threads"] == 1 and "record_outcomes_differing" not in again
    # each setting's run is kept: a second check runs nothing again and writes the same results
    real = kernels.subprocess.run
    monkeypatch.setattr(kernels.subprocess, "run", lambda argv, *a, **k: pytest.fail("ran a setting again")
                        if "kernels.worker" in " ".join(argv) else real(argv, *a, **k))
    assert kernels.run("quick", "madry-l2", (1, 3), tmp_path / "k2.json", log=lines.append)["results"] == doc["results"]


def test_a_whole_training_is_compared_with_the_committed_record(tmp_path, monkeypatch):
    prof = protocols.get_profile("quick")
    spec = protocols.train_spec(prof, "madry")
    whole = spec.epochs * (prof.n_train // spec.batch_size)
    rec_path = tmp_path / "results" / "quick" / "madry-l2.json"
    monkeypatch.setattr("advlib.discovery.results_root", lambda: tmp_path / "results")
    assert kernels._record_mask(prof, "madry-l2", (1, whole), prof.n_test) == (None, "")  # no record
    rec_path.parent.mkdir(parents=True)
    mask = torch.arange(prof.n_test) % 3 == 0
    monkeypatch.setattr(kernels.records, "read_record", lambda p: {"n_test": prof.n_test, "masks": {
        "Natural": kernels.records.pack_mask(mask)}})
    rec_path.write_text("{}")
    got, name = kernels._record_mask(prof, "madry-l2", (1, whole), prof.n_test)
    assert torch.equal(got, mask) and name == "quick/madry-l2.json"
    assert kernels._record_mask(prof, "madry-l2", (1, whole - 1), prof.n_test) == (None, "")  # not the whole training


def test_bad_steps_are_refused(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        kernels.run("quick", "madry-l2", (0,), tmp_path / "k.json")
    with pytest.raises(ValueError, match="unknown"):
        kernels.run("quick", "nonsense", (1,), tmp_path / "k.json")
    with pytest.raises(argparse.ArgumentTypeError, match="step counts"):
        cli.step_list(" , ")
    assert cli.step_list("1, 10") == (1, 10)


def test_the_whole_training_counts_the_last_smaller_batch_of_each_epoch():
    large = protocols.get_profile("large")  # all 60,000 training images in batches of 128: 469 steps an epoch
    spec = protocols.train_spec(large, "madry")
    assert spec.batch_size == 128 and large.n_train is None
    assert kernels.whole_training(large, "madry-l2") == spec.epochs * 469
    assert kernels.whole_training(protocols.get_profile("medium"), "madry-l2") == 1000


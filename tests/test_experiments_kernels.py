"""advlib.experiments.kernels: the same training in separate processes under different kernel settings."""
from __future__ import annotations

import argparse

import pytest

from advlib import protocols, records
from advlib.experiments import cli, kernels


def test_separate_processes_with_the_same_kernels_train_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "SETTINGS", {"default": {}, "again": {}, "avx2": kernels.SETTINGS["avx2"]})
    doc = kernels.run("quick", "madry-l2", (1, 3), tmp_path / "k.json", threads=1, log=lambda _: None)
    assert records.read_document(tmp_path / "k.json", kernels.KIND)["cell"] == "madry-l2"
    same, again = doc["results"]["default"], doc["results"]["again"]
    assert same["forward_max_abs_diff"] == 0.0 == again["forward_max_abs_diff"]
    for s in ("1", "3"):
        assert again["steps"][s]["digest"] == same["steps"][s]["digest"]
        assert again["steps"][s]["max_rel_weight_diff"] == 0.0 and again["steps"][s]["outcomes_differing"] == 0
    assert doc["results"]["avx2"]["capability"] in ("AVX2", "DEFAULT")  # capped: never more than AVX2
    assert doc["n_test"] == protocols.get_profile("quick").n_test


def test_bad_steps_are_refused(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        kernels.run("quick", "madry-l2", (0,), tmp_path / "k.json")
    with pytest.raises(ValueError, match="unknown"):
        kernels.run("quick", "nonsense", (1,), tmp_path / "k.json")
    with pytest.raises(argparse.ArgumentTypeError, match="step counts"):
        cli.step_list(" , ")
    assert cli.step_list("1, 10") == (1, 10)

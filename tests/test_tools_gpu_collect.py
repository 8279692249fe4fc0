"""``tools/gpu_collect.py``: what comes back from a GPU call is filed only if it is a valid full-profile GPU record."""
from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest

from advlib import protocols, records
from advlib.reproduce import config_hash
from conftest import REPO

spec = importlib.util.spec_from_file_location("gpu_collect", REPO / "tools" / "gpu_collect.py")
gpu_collect = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_collect)


def record(cell: str, device: str, profile: str = "full") -> dict:
    config = {"hash": config_hash(protocols.get_profile(profile))}
    return {"profile": profile, "cell": cell, "config": config, "seed": 0, "advlib_version": "0", "git_revision": "r",
            "torch_version": "t", "device": device, "data": {}, "accuracy": {"Natural": 0.9}, "norm_agnostic": 0.1,
            "n_test": 10_000, "masks": {}, "traces": {}, "training": [], "created": "now",
            "wall_time": {"train": 1.0, "static_models": 0.0, "evaluate": {}, "this_run": 2.0}}


def pack(folder: Path, recs: dict[str, dict], tamper: str | None = None, profile: str = "full") -> Path:
    src = folder / "src" / "results" / profile
    src.mkdir(parents=True)
    for name, rec in recs.items():
        records.write_record(src / name, rec)
    if tamper:
        text = json.loads((src / tamper).read_text())
        text["accuracy"]["Natural"] = 0.99
        (src / tamper).write_text(json.dumps(text))
    out = folder / "back"
    out.mkdir()
    with tarfile.open(out / f"{profile}-records.tgz", "w:gz") as tar:
        tar.add(src.parent, arcname="results")
    (out / "bench.json").write_text(json.dumps({"device": "NVIDIA H100 80GB HBM3"}))
    return out


def test_only_valid_gpu_records_of_the_full_profile_are_filed(tmp_path, capsys):
    back = pack(tmp_path, {
        "madry-linf.json": record("madry-linf", "NVIDIA H100 80GB HBM3"),
        "trades-linf.json": record("trades-linf", "cpu (x86_64, 2 threads)"),
        "madry-l2.json": record("madry-l2", "NVIDIA H100 80GB HBM3", profile="quick"),
        "madry-mix.json": record("madry-mix", "NVIDIA H100 80GB HBM3"),
    }, tamper="madry-mix.json")
    results = tmp_path / "results"
    assert gpu_collect.collect(back, results) == 3
    assert sorted(p.name for p in (results / "full").iterdir()) == ["madry-linf.json"]
    assert (results / "bench" / "nvidia-h100-80gb-hbm3.json").is_file()
    out = capsys.readouterr().out
    assert "not on a GPU" in out and "not a record of the current full profile" in out and "digest" in out


def test_new_cells_of_another_profile_are_filed_beside_the_records_here(tmp_path, capsys):
    """large-records.tgz from CELLS_PROFILE=large: a GPU record of a cell that has none here is filed; one that
    came back as it went is left alone; a CPU record or one of the wrong profile is refused."""
    here = record("madry-linf", "cpu (x86_64, 2 threads)", profile="large")
    results = tmp_path / "results"
    records.write_record(results / "large" / "madry-linf.json", here)
    back = pack(tmp_path, {
        "madry-linf.json": here,
        "atda-linf.json": record("atda-linf", "NVIDIA H100 80GB HBM3", profile="large"),
        "atda-l2.json": record("atda-l2", "cpu (x86_64, 2 threads)", profile="large"),
        "atda-mix.json": record("atda-mix", "NVIDIA H100 80GB HBM3", profile="full"),
    }, profile="large")
    assert gpu_collect.collect(back, results) == 2
    assert sorted(p.name for p in (results / "large").iterdir()) == ["atda-linf.json", "madry-linf.json"]
    assert records.read_record(results / "large" / "madry-linf.json") == records.read_record(
        back.parent / "src" / "results" / "large" / "madry-linf.json")
    out = capsys.readouterr().out
    assert "unchanged large/madry-linf.json" in out and "ok large/atda-linf.json: NVIDIA H100" in out
    assert "not on a GPU" in out and "not a record of the current large profile" in out


@pytest.mark.parametrize("name,slug", [("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"), ("NVIDIA H200", "nvidia-h200")])
def test_device_slug(name, slug):
    assert gpu_collect.device_slug(name) == slug

"""``advlib.released``: the TRADES authors' released SmallCNN evaluated like a Table 1 cell, its record reused, its
extended block added; and ``python -m advlib released``.

The quick profile is replaced (under its own name, as ``evaluate_released`` looks it up) by one with 32 test
images and 2-step attacks, and the extended evaluation by a one-AutoAttack-row spec: the SmallCNN costs ~40 ms a
forward-backward pass on 32 images on the 2 shared cores.
"""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from advlib import extended, models, protocols, records, released
from advlib.__main__ import main
from advlib.extended import ExtendedSpec
from advlib.reproduce import data_identity
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec

CHEAP = replace(
    protocols.QUICK, n_test=32,
    evaluation={"PGD-l2": AttackSpec.pgd("l2", steps=2), "PGD-linf": AttackSpec.pgd("linf", steps=2),
                "SO-l2": AttackSpec.so("l2", steps=2, samples=1), "SO-linf": AttackSpec.so("linf", steps=2, samples=1)},
)
#: One AutoAttack row (APGD-CE alone), one ℓ2 ε = 2 row, and curve points that all reuse the profile's rows.
CHEAP_EXTENDED = ExtendedSpec(
    rows={"AA-linf": AutoAttackSpec("linf", 0.3, attacks=("apgd-ce",)),
          "PGD-l2@2": AttackSpec.pgd("l2", steps=2, eps=2.0)},
    pgd_steps=2, so_steps=2, so_samples=1, radii={"l2": (4.0,), "linf": (0.3,)}, so_every=1,
)


def _patch(mp: pytest.MonkeyPatch, mnist_root) -> None:
    """The cheap quick profile and extended spec; full MNIST from $ADVLIB_DATA when available, never a download."""
    if mnist_root is not None:
        mp.setenv("ADVLIB_DATA", str(mnist_root))
    mp.setattr("advlib.data._download", lambda folder: False)
    mp.setitem(protocols.PROFILES, "quick", CHEAP)
    mp.setattr(extended, "extended_spec", lambda profile: CHEAP_EXTENDED)


@pytest.fixture(autouse=True)
def cheap(monkeypatch, mnist_root):
    _patch(monkeypatch, mnist_root)


@pytest.fixture(scope="module")
def made(tmp_path_factory, mnist_root):
    """A folder with the released model's record (no extended block), made once for the module."""
    folder = tmp_path_factory.mktemp("released")
    with pytest.MonkeyPatch.context() as mp:
        _patch(mp, mnist_root)
        rec = released.evaluate_released("quick", out=folder, device="cpu")
    return folder / f"{released.CELL}.json", rec


@pytest.fixture(scope="module")
def extended_made(made, tmp_path_factory, mnist_root):
    """A copy of ``made``'s record with the extended block added by ``evaluate_released(extend=True)``, which must
    not re-run the paper's rows."""
    folder = tmp_path_factory.mktemp("extended")
    path = folder / f"{released.CELL}.json"
    path.write_bytes(made[0].read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        _patch(mp, mnist_root)
        _forbid(mp, (released, "evaluate"))
        rec = released.evaluate_released("quick", out=folder, device="cpu", extend=True)
    return path, rec


def _forbid(monkeypatch, *targets):
    for module, name in targets:
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail(f"{name} was called"))


def _copy(path, tmp_path):
    """Copy a record and its side files into ``tmp_path``."""
    for kind in records.SIDE_KINDS:
        if records.side_path(path, kind).is_file():
            side = records.side_path(path, kind)
            (tmp_path / side.name).write_bytes(side.read_bytes())
    (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path / path.name


def test_evaluate_released_writes_a_record_naming_the_checkpoint(made):
    path, rec = made
    assert records.read_record(path) == json.loads(json.dumps(rec))
    assert rec["cell"] == "trades-released" and rec["profile"] == "quick" and rec["n_test"] == 32
    assert rec["identity"] == json.loads(json.dumps(released.expected_identity(CHEAP, data_identity(CHEAP))))
    assert rec["identity"]["model"]["depends"] == {"architecture": "smallcnn", "md5": models.TRADES_SMALLCNN_MD5}
    assert rec["config"]["n_test"] == 32
    assert rec["model"] == {"architecture": "smallcnn", "source": released.SOURCE, "md5": models.TRADES_SMALLCNN_MD5}
    assert "Bai-Li/TRADES" in rec["model"]["source"] and rec["model"]["md5"] == "becffe24a6e918e186de07a2b61d4e08"
    assert list(rec["accuracy"]) == ["Natural", *CHEAP.evaluation]
    assert rec["accuracy"]["Natural"] >= 0.9
    assert rec["accuracy"]["PGD-linf"] >= 0.8  # ℓ∞-trained at ε = 0.3: a 2-step PGD does little
    assert rec["training"] == [] and "this_run" in rec["wall_time"] and rec["device"].startswith("cpu")
    assert "extended" not in rec


def test_a_second_call_reuses_the_record(made, tmp_path, monkeypatch):
    path = _copy(made[0], tmp_path)
    before = path.read_bytes()
    _forbid(monkeypatch, (released, "evaluate"), (extended, "extend"))
    again = released.evaluate_released("quick", out=tmp_path, device="cpu")
    assert path.read_bytes() == before and again == records.assemble(path)


def test_extend_adds_the_block_once(made, extended_made, tmp_path, monkeypatch):
    base = records.read_record(made[0])
    path, rec = extended_made
    assert records.assemble(path) == rec and extended.current(rec, CHEAP)
    block = rec["extended"]
    assert block["identity"] == extended.expected_identity(CHEAP, rec)
    assert set(block["accuracy"]) == {"AA-linf", "PGD-l2@2"} and list(block["cascades"]["AA-linf"]) == ["apgd-ce"]
    assert block["accuracy"]["AA-linf"] <= base["accuracy"]["Natural"]
    assert block["curves"]["PGD-linf"] == {"eps": [0.3], "accuracy": [base["accuracy"]["PGD-linf"]]}  # reused
    for key in ("accuracy", "masks", "config", "model", "norm_agnostic"):
        assert rec[key] == base[key], key
    # and once only
    path = _copy(path, tmp_path)
    before = path.read_bytes()
    _forbid(monkeypatch, (released, "evaluate"), (extended, "extend"))
    assert released.evaluate_released("quick", out=tmp_path, device="cpu", extend=True) == rec
    assert path.read_bytes() == before


def test_cli_prints_the_rows_of_the_stored_record(extended_made, tmp_path, monkeypatch, capsys):
    path = _copy(extended_made[0], tmp_path)
    _forbid(monkeypatch, (released, "evaluate"), (extended, "extend"))
    assert main(["released", "--profile", "quick", "--out", str(tmp_path), "--device", "cpu", "--extended",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    rec = records.assemble(path)
    assert "TRADES' released SmallCNN, quick profile's attacks, n = 32" in out
    assert f"Natural {100 * rec['accuracy']['Natural']:.1f}%" in out
    assert f"AA-linf {100 * rec['extended']['accuracy']['AA-linf']:.1f}%" in out


def test_a_record_of_another_configuration_is_recomputed(made, tmp_path, monkeypatch):
    path = _copy(made[0], tmp_path)
    other = replace(CHEAP, seed=CHEAP.seed + 1)
    monkeypatch.setitem(protocols.PROFILES, "quick", other)
    calls = []
    real = released.evaluate
    monkeypatch.setattr(released, "evaluate", lambda *a, **k: calls.append(k.get("seed")) or real(*a, **k))
    rec = released.evaluate_released("quick", out=tmp_path, device="cpu")
    assert calls == [other.seed]
    assert rec["identity"]["rows"]["PGD-l2"]["depends"]["seed"] == other.seed != CHEAP.seed
    assert "extended" not in rec and records.read_record(path) == json.loads(json.dumps(rec))


def test_an_unknown_profile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        released.evaluate_released("nope", out=tmp_path, device="cpu")
    assert not any(tmp_path.iterdir())


def test_released_model_agrees_with_the_record_mask(made):
    """The stored Natural mask is the released model's clean correctness on the profile's first 32 test images."""
    from advlib import data
    rec = records.read_record(made[0])
    x, y = data.load_mnist("test", limit=32, download=False)
    with torch.no_grad():
        natural = models.load_trades_smallcnn("cpu")(x).argmax(1) == y
    assert torch.equal(records.unpack_mask(rec["masks"]["Natural"], 32), natural)


def test_a_row_the_profile_gains_goes_beside_the_record_and_keeps_its_extended_block(extended_made, tmp_path,
                                                                                    monkeypatch):
    path = _copy(extended_made[0], tmp_path)
    before = path.read_bytes()
    more = replace(CHEAP, evaluation={**CHEAP.evaluation, "PGD-l2 x0": AttackSpec.pgd("l2", steps=2,
                                                                                     random_start=False)})
    monkeypatch.setitem(protocols.PROFILES, "quick", more)
    rec = released.evaluate_released("quick", out=tmp_path, device="cpu")
    assert path.read_bytes() == before and records.side_path(path, "extended").is_file()
    assert set(rec["added_rows"]) == {"PGD-l2 x0"} and rec["extended"] == extended_made[1]["extended"]
    _forbid(monkeypatch, (released, "evaluate"), (released, "add_rows"))
    assert released.evaluate_released("quick", out=tmp_path, device="cpu") == rec  # nothing left to do

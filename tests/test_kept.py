"""``advlib.kept``: a recorded model stored as fp16, re-evaluated on the stored weights and loaded by name."""
from __future__ import annotations

import warnings

import pytest
import torch

from advlib import kept, protocols, records, reproduce
from advlib.specs import AttackSpec
from conftest import full_mnist_root, tiny_profile

TINY = tiny_profile("tiny-kept", seed=2)


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    root = full_mnist_root()
    if root is not None:
        monkeypatch.setenv("ADVLIB_DATA", str(root))
    monkeypatch.setattr("advlib.data._download", lambda folder: False)
    monkeypatch.setitem(protocols.PROFILES, TINY.name, TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensors = reproduce.load_data(TINY, torch.device("cpu"))
        reproduce.run_cell(TINY, "madry-linf", tmp_path / "tiny", tensors, revision="test")
        reproduce.add_rows(TINY, "madry-linf", tmp_path / "tiny", tensors,
                           {"PGD-l2 x0": AttackSpec.pgd("l2", steps=2, random_start=False)})
    return tmp_path


def test_a_kept_model_is_fp16_reevaluated_row_by_row_and_loads_by_name(recorded):
    doc = kept.keep(recorded / "tiny" / "madry-linf.json", recorded)
    assert doc["kind"] == kept.KIND and doc["dtype"] == "float16" and doc["n"] == 16
    assert set(doc["differing"]) == {"Natural", "PGD-l2", "PGD-linf", "SO-l2", "SO-linf", "PGD-l2 x0"}
    assert all(0 <= v <= 16 for v in doc["differing"].values())
    assert set(doc["masks"]) == set(doc["differing"]) == set(doc["accuracy"])
    rec = records.assemble(recorded / "tiny" / "madry-linf.json")
    natural = records.unpack_mask(doc["masks"]["Natural"], 16) != records.unpack_mask(rec["masks"]["Natural"], 16)
    assert int(natural.sum()) == doc["differing"]["Natural"]
    model = kept.load(TINY.name, "madry-linf", recorded)
    stored = torch.load(kept.folder(recorded) / "tiny-kept-madry-linf.pt", weights_only=True)
    assert all(t.dtype == torch.float16 for t in stored.values())
    assert all(torch.equal(p, stored[k].float()) for k, p in model.state_dict().items())
    assert kept.total_bytes(recorded) == doc["bytes"] < kept.BUDGET_BYTES
    rec = records.assemble(recorded / "tiny" / "madry-linf.json")
    assert doc["model_key"] == records.model_key(rec)


def test_an_altered_or_missing_kept_model_is_refused(recorded):
    kept.keep(recorded / "tiny" / "madry-linf.json", recorded)
    path = kept.folder(recorded) / "tiny-kept-madry-linf.pt"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ValueError, match="sha256"):
        kept.load(TINY.name, "madry-linf", recorded)
    with pytest.raises(ValueError, match="no kept model 'tiny-kept-madry-l2'; kept: tiny-kept-madry-linf"):
        kept.load(TINY.name, "madry-l2", recorded)


def test_keeping_needs_the_checkpoint(recorded):
    for f in (recorded / "tiny" / "checkpoints").glob("*.pt"):
        f.unlink()
    with pytest.raises(ValueError, match="no checkpoint"):
        kept.keep(recorded / "tiny" / "madry-linf.json", recorded)


def test_the_checker_judges_kept_models_by_their_file_and_their_record(recorded):
    from advlib import verify
    kept.keep(recorded / "tiny" / "madry-linf.json", recorded)
    doc = kept.folder(recorded) / "tiny-kept-madry-linf.json"
    assert verify.check_document(doc).state == "current"
    weights = doc.with_suffix(".pt")
    weights.write_bytes(weights.read_bytes()[:-1])
    assert verify.check_document(doc).state == "invalid"

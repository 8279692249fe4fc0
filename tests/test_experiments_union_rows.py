"""``advlib.experiments.union_rows`` (``python -m advlib union-rows``) and AutoAttack rows in
``reproduce.add_rows``, on a tiny profile: one cell with its checkpoint, one without."""
from __future__ import annotations

import warnings

import pytest
import torch

from advlib import records, strong, union
from advlib import reproduce as rep
from advlib.__main__ import main
from advlib.experiments import union_rows
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec
from conftest import registered_profile, tiny_profile

TINY = tiny_profile("tiny-union-rows", seed=4)
#: Cheap stand-ins for ``union.added_rows``: 2 PGD-ℓ1 steps, AutoAttack-ℓ1's first attack only.
ROWS = {"PGD-l1@10": AttackSpec.pgd("l1", steps=2, eps=10.0), "AA-l1@10": AutoAttackSpec("l1", 10.0, ("apgd-ce",))}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """madry-linf recorded with its checkpoint, madry-l2 recorded and its checkpoint deleted."""
    with registered_profile(TINY) as mp:
        mp.setattr(union, "added_rows", lambda profile: dict(ROWS))
        out = tmp_path_factory.mktemp("results") / TINY.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tensors = rep.load_data(TINY, torch.device("cpu"))
            for cell in ("madry-linf", "madry-l2"):
                rep.run_cell(TINY, cell, out, tensors, revision="test")
        for path in (out / "checkpoints").glob("madry-l2-*.pt"):
            path.unlink()
        yield out, tensors


def test_rows_are_added_beside_the_record_from_its_checkpoint_and_never_twice(recorded):
    out, tensors = recorded
    lines = []
    done = union_rows.run(TINY.name, None, out, kept_root=out.parent, log=lines.append)
    assert set(done) == {"madry-linf"} and set(done["madry-linf"]) == set(ROWS)
    assert any("madry-l2: no kept model and no checkpoint; skipped" in line for line in lines)
    rec = records.assemble(out / "madry-linf.json")
    natural = records.unpack_mask(rec["masks"]["Natural"], rec["n_test"])
    model = rep.train_cell(TINY, "madry-linf", tensors, out)[0]  # the finished checkpoint, loaded
    expected = strong.autoattack(model, tensors["xt"], tensors["yt"], ROWS["AA-l1@10"], seed=TINY.seed)["apgd-ce"]
    added = records.all_masks(rec)
    assert torch.equal(added["AA-l1@10"], expected), "the row is AutoAttack's verdict on the record's own model"
    assert not (added["PGD-l1@10"] & ~natural).any() and not (added["AA-l1@10"] & ~natural).any()
    side = rec["added_rows"]["AA-l1@10"]
    assert side["spec"]["kind"] == "autoattack" and "autoattack_search" not in side["depends"]
    assert side["accuracy"] == pytest.approx(float(expected.float().mean()))
    lines.clear()
    assert union_rows.run(TINY.name, "madry-linf", out, kept_root=out.parent, log=lines.append) == {}
    assert lines == [f"[{TINY.name}] madry-linf: it has every row; skipped"]
    row = union.model_row(rec, union.THREATS["three norms"])
    assert row["attacks"].endswith("ℓ1 PGD+AA")


def test_a_bf16_search_is_part_of_an_autoattack_row_key(recorded, monkeypatch):
    out, tensors = recorded
    monkeypatch.setenv("ADVLIB_SEARCH_PRECISION", "bf16")
    model = rep.train_cell(TINY, "madry-linf", tensors, out)[0]
    rec = rep.add_rows(TINY, "madry-linf", out, tensors, {"AA-l1@10 bf16": ROWS["AA-l1@10"]}, model=model)
    assert rec["added_rows"]["AA-l1@10 bf16"]["depends"]["autoattack_search"] == "bf16"
    plain = rec["added_rows"].get("AA-l1@10")
    assert plain is None or plain["key"] != rec["added_rows"]["AA-l1@10 bf16"]["key"]


def test_the_cli_names_an_unknown_cell(capsys):
    with pytest.raises(SystemExit):
        main(["union-rows", "--cells", "madry-l3"])
    assert "madry-l3" in capsys.readouterr().err

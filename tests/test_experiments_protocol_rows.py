"""``advlib.experiments.protocol_rows`` (``python -m advlib protocol-rows``) and the protocol rows it adds
(``advlib.protocols.protocol_rows``), on a tiny profile: two Madry cells recorded by ``reproduce``, their
checkpoints deleted, then trained again by the experiment and compared with their records."""
from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace

import pytest
import torch

from advlib import models, protocols, records, runtime, verify
from advlib import reproduce as rep
from advlib.__main__ import main
from advlib.attacks import run_attack
from advlib.evaluation import Evaluation, evaluate, predict
from advlib.experiments import protocol_rows
from advlib.protocols import QUICK, TrainSpec
from advlib.records import RecordError
from advlib.specs import AttackSpec
from conftest import registered_profile

CELLS = ("madry-linf", "madry-l2")
#: Test-only: 80 training images, one epoch of 1-step PGD training, 20 test images, 2-step attacks.
TINY = replace(
    QUICK, name="tiny-protocol-rows", description="test-only", n_train=80, n_test=20, seed=3,
    train_attack={"l2": AttackSpec.pgd("l2", steps=1), "linf": AttackSpec.pgd("linf", steps=1)},
    defenses={**QUICK.defenses, "madry": TrainSpec(epochs=1, batch_size=20, eps_hold=0.1, eps_ramp=0.5)},
    evaluation={"PGD-l2": AttackSpec.pgd("l2", steps=2), "PGD-linf": AttackSpec.pgd("linf", steps=2),
                "SO-l2": AttackSpec.so("l2", steps=2, samples=2), "SO-linf": AttackSpec.so("linf", steps=2, samples=2)},
)


@pytest.fixture(scope="module")
def registered():
    """``TINY`` among the profiles (the experiment and the verifier look profiles up by name), MNIST never
    downloaded."""
    with registered_profile(TINY):
        yield TINY


@pytest.fixture(scope="module")
def tensors(registered):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rep.load_data(TINY, torch.device("cpu"))


@pytest.fixture(scope="module")
def recorded(registered, tensors, tmp_path_factory):
    """A results folder with the records of ``CELLS`` and no checkpoints: the experiment must train again."""
    out = tmp_path_factory.mktemp("results")
    for cell in CELLS:
        rep.run_cell(TINY, cell, out, tensors, revision="test-rev")
    shutil.rmtree(out / "checkpoints")
    return out


@pytest.fixture
def results(recorded, tmp_path):
    """A fresh copy of the recorded folder per test."""
    out = tmp_path / "results"
    shutil.copytree(recorded, out)
    return out


# ---------------------------------------------------------------------------------------------- the rows


@pytest.mark.parametrize("profile", sorted(protocols.PROFILES))
def test_the_protocol_rows_are_the_profiles_pgd_l2_started_at_x_clamped_every_step_and_at_the_end(profile):
    prof = protocols.get_profile(profile)
    rows = protocols.protocol_rows(prof)
    assert tuple(rows) == protocols.PROTOCOL_ROWS == ("PGD-l2 x0", "PGD-l2 x0 end-clamp")
    pgd = prof.evaluation["PGD-l2"]
    at_x, end = rows["PGD-l2 x0"], rows["PGD-l2 x0 end-clamp"]
    assert pgd.random_start and pgd.clamp == "step"
    assert at_x.config() == {**pgd.config(), "random_start": False}
    assert end.config() == {**pgd.config(), "random_start": False, "clamp": "end"}
    assert not set(rows) & set(prof.evaluation)  # Table 1's norm-agnostic accuracy stays over the paper's rows


# ---------------------------------------------------------------------------------------------- comparison


def test_differing_counts_images_whose_outcome_changed_per_row():
    ours = torch.tensor([True, True, False, False, True])
    record = {"profile": "p", "cell": "c", "n_test": 5,
              "masks": {"Natural": records.pack_mask(ours),
                        "PGD-l2": records.pack_mask(torch.tensor([False, True, True, False, False]))}}
    result = Evaluation(correct={"Natural": ours.clone(), "PGD-l2": ours.clone()})
    assert protocol_rows.differing(result, record) == {"Natural": 0, "PGD-l2": 3}
    with pytest.raises(ValueError, match="has no mask for row 'SO-l2'; it has 'Natural', 'PGD-l2'"):
        protocol_rows.differing(Evaluation(correct={"SO-l2": ours}), record)
    with pytest.raises(ValueError, match="evaluated on 4 images, the record on 5"):
        protocol_rows.differing(Evaluation(correct={"Natural": ours[:4]}), record)


# ---------------------------------------------------------------------------------------------- the run


def test_a_retrained_model_matches_its_record_and_gets_the_protocol_rows(results, tensors):
    record_bytes = (results / "madry-linf.json").read_bytes()
    lines: list[str] = []
    doc = protocol_rows.run(TINY.name, "madry-linf", results, log=lines.append)
    assert doc == records.read_document(results / protocol_rows.FILE, protocol_rows.KIND)
    entry = doc["cells"]["madry-linf"]
    assert list(doc["cells"]) == ["madry-linf"] and doc["profile"] == TINY.name
    # trained again (no checkpoint was there), deterministically: every image's outcome as in the record
    assert entry["checkpoint_found"] is False and entry["n"] == TINY.n_test
    assert entry["differing"] == {name: 0 for name in ("Natural", *TINY.evaluation)}
    assert entry["git_revision"] == records.git_revision() and entry["device"].startswith("cpu")
    assert set(entry["seconds"]) == {"train", "evaluate", "protocol_rows"}
    assert (results / "madry-linf.json").read_bytes() == record_bytes  # the record is never rewritten
    side = records.read_document(records.side_path(results / "madry-linf.json", "rows"), "rows")
    assert set(side["rows"]) == set(protocols.PROTOCOL_ROWS)
    # each row's mask is its spec run on the model the checkpoint holds now, seeded as the profile's rows
    model = rep.train_cell(TINY, "madry-linf", tensors, results)[0]
    for name, spec in protocols.protocol_rows(TINY).items():
        assert AttackSpec(**side["rows"][name]["spec"]) == spec
        x_adv = run_attack(spec, model, tensors["xt"], tensors["yt"],
                           generator=torch.Generator().manual_seed(TINY.seed))
        assert side["rows"][name]["mask"] == records.pack_mask(predict(model, x_adv) == tensors["yt"])
        assert entry["protocol_rows"][name] == side["rows"][name]["accuracy"]
    assembled = records.assemble(results / "madry-linf.json")
    assert records.added_accuracy(assembled, "PGD-l2 x0 end-clamp") == entry["protocol_rows"]["PGD-l2 x0 end-clamp"]
    assert "PGD-l2 x0 end-clamp" not in assembled["accuracy"]  # the record's own rows stay Table 1's
    assert any("madry-linf" in line and "PGD-l2 x0 end-clamp" in line for line in lines)
    findings = verify.verify(results)
    assert findings and not verify.failed(findings)
    assert {f.path.name for f in findings if f.state == "current"} >= {"madry-linf.json", "madry-linf.rows.json",
                                                                        protocol_rows.FILE}


def test_a_cell_already_checked_is_skipped_and_the_next_one_runs(results, monkeypatch):
    protocol_rows.run(TINY.name, "madry-linf", results, log=lambda line: None)
    first = json.loads((results / protocol_rows.FILE).read_text())["cells"]["madry-linf"]
    trained = []
    real = rep.train_cell
    monkeypatch.setattr(rep, "train_cell", lambda profile, cell, *a, **k: trained.append(cell) or real(
        profile, cell, *a, **k))
    lines: list[str] = []
    doc = protocol_rows.run(TINY.name, "madry-linf,madry-l2", results, log=lines.append)
    assert trained == ["madry-l2"]  # add_rows is given the model: trained once, and only the new cell
    assert doc["cells"]["madry-linf"] == first and set(doc["cells"]) == {"madry-linf", "madry-l2"}
    assert any("madry-linf: already in" in line for line in lines)
    again = protocol_rows.run(TINY.name, "madry-linf", results, again=True, log=lines.append)
    assert again["earlier"] == {"madry-linf": [first]}  # checked once more, the earlier entry kept
    assert again["cells"]["madry-linf"]["differing"] == first["differing"]
    assert again["cells"]["madry-linf"]["runtime"] == runtime.settings(torch.device("cpu"))


def test_a_model_with_other_clean_predictions_gets_no_rows(results, monkeypatch):
    def untrained(profile, cell, tensors, out, quiet=True, deadline=None):
        torch.manual_seed(11)
        return models.build("madry").eval(), {}
    monkeypatch.setattr(rep, "train_cell", untrained)
    doc = protocol_rows.run(TINY.name, "madry-l2", results, log=lambda line: None)
    entry = doc["cells"]["madry-l2"]
    assert entry["differing"]["Natural"] > 0 and entry["protocol_rows"] == {}
    assert f"differ from the record's on {entry['differing']['Natural']} images" in entry["skipped"]
    assert not records.side_path(results / "madry-l2.json", "rows").exists()
    # the protocol rows are still measured, on the retrained model, and kept in the entry only
    assert set(entry["retrained_protocol_rows"]) == set(protocols.PROTOCOL_ROWS)
    model, tensors = untrained(TINY, "madry-l2", None, None)[0], rep.load_data(TINY, torch.device("cpu"))
    expected = evaluate(model, tensors["xt"], tensors["yt"], protocols.protocol_rows(TINY), seed=TINY.seed)
    assert entry["retrained_protocol_rows"] == {k: expected.accuracy()[k] for k in protocols.PROTOCOL_ROWS}
    assert entry["retrained_protocol_revision"] == entry["git_revision"] == records.git_revision()
    # an entry made before they were measured gets them on the next run, nothing else recomputed
    path = results / protocol_rows.FILE
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("schema", "kind", "digest")}
    del old["cells"]["madry-l2"]["retrained_protocol_rows"]
    old["cells"]["madry-l2"]["git_revision"] = "an older revision"
    records.write_document(path, old, protocol_rows.KIND)
    lines: list[str] = []
    again = protocol_rows.run(TINY.name, "madry-l2", results, log=lines.append)["cells"]["madry-l2"]
    assert again["retrained_protocol_rows"] == entry["retrained_protocol_rows"]
    assert again["git_revision"] == "an older revision"  # the entry's own, and the rows' revision beside it
    assert again["retrained_protocol_revision"] == records.git_revision()
    assert again["written"] == entry["written"] and any("on the retrained model" in line for line in lines)


def test_a_cell_without_a_current_record_is_reported_and_left_out(results):
    (results / "madry-l2.json").unlink()
    lines: list[str] = []
    doc = protocol_rows.run(TINY.name, "madry-l2", results, log=lines.append)
    assert doc["cells"] == {} and any("madry-l2" in line and "is absent" in line for line in lines)


def test_the_document_is_neither_overwritten_when_invalid_nor_shared_between_profiles(results):
    path = results / protocol_rows.FILE
    path.write_text("{}")
    with pytest.raises(RecordError, match="document schema"):
        protocol_rows.run(TINY.name, "madry-linf", results, log=lambda line: None)
    assert path.read_text() == "{}"
    records.write_document(path, {"profile": "medium", "cells": {}}, protocol_rows.KIND)
    with pytest.raises(ValueError, match="holds the 'medium' profile's check, not 'tiny-protocol-rows'"):
        protocol_rows.run(TINY.name, "madry-linf", results, log=lambda line: None)


# ---------------------------------------------------------------------------------------------- command line


def test_the_command_passes_its_options_on(registered, monkeypatch, tmp_path):
    seen, threads = [], []
    monkeypatch.setattr(protocol_rows, "run", lambda *a, **k: seen.append((a, k)))
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert main(["protocol-rows", "--profile", TINY.name, "--cells", "madry-l2,madry-linf",
                 "--results", str(tmp_path)]) == 0
    assert main(["protocol-rows"]) == 0
    assert main(["protocol-rows", "--again"]) == 0
    (args, kw), (defaults, dkw), (_, again) = seen
    assert args == (TINY.name, "madry-l2,madry-linf", tmp_path) and defaults == ("medium", None, None)
    assert kw["again"] is False and dkw["again"] is False and again["again"] is True
    assert threads == [2, 2, 2]  # the medium records were made with 2 threads


@pytest.mark.parametrize("argv, message", [
    (["protocol-rows", "--profile", "huge"], "unknown profile 'huge'; valid: quick, medium"),
    (["protocol-rows", "--cells", "madry-l3"], "unknown cell 'madry-l3'; valid choices: 'madry-l2'"),
    (["protocol-rows", "--threads", "0"], "must be at least 1, got 0"),
])
def test_bad_options_exit_2_naming_the_valid_ones(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(protocol_rows, "run", lambda *a, **k: pytest.fail("ran despite a bad option"))
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err

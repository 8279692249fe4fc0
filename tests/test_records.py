"""Result records: round trip, schema validation, digest, truncation, folder loading, mask packing."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import torch

from advlib import records
from advlib.records import RecordError, load_records, pack_mask, read_record, unpack_mask, validate, write_record


def sample(cell: str = "madry-linf", **changes) -> dict:
    """A complete record body (everything but schema and digest), JSON-native."""
    body = {
        "profile": "quick", "cell": cell, "config": {"name": "quick", "n_train": 2000},
        "identity": {"model": {"key": "0123456789abcdef", "depends": {"seed": 0}}, "rows": {}},
        "seed": 0, "advlib_version": "0.1.0", "git_revision": "deadbeef", "torch_version": torch.__version__,
        "device": "cpu (x86_64, 1 threads)", "data": {"n_train": 2000, "n_test": 4},
        "wall_time": {"static_models": 0.0, "train": 1.5, "evaluate": {"PGD-l2": 0.5}, "this_run": 2.0},
        "accuracy": {"Natural": 1.0, "PGD-l2": 0.75, "PGD-linf": 0.25, "SO-l2": 0.5, "SO-linf": 0.0},
        "norm_agnostic": 0.0, "n_test": 4,
        "masks": {"Natural": "f0"}, "traces": {"PGD-l2": {"grad_norm": [1.0, 2.0], "loss": [0.1, 0.2]}},
        "training": [{"epoch": 1, "loss": 0.5}], "created": "2019-05-15T00:00:00+00:00",
    }
    body.update(changes)
    return body


def hand_digest(record: dict) -> str:
    # independent oracle: sha256 of the sorted-key JSON body, as the record format specifies
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_raw(path: Path, record: dict, redigest: bool = True) -> Path:
    """Write a record bypassing write_record's validation (a digest is recomputed by hand if asked)."""
    record = dict(record)
    if redigest:
        record["digest"] = hand_digest(record)
    path.write_text(json.dumps(record))
    return path


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "madry-linf.json"
    written = write_record(path, sample())
    assert written["schema"] == records.SCHEMA and len(written["digest"]) == 64
    back = read_record(path)
    assert back == json.loads(json.dumps(written))
    assert back["accuracy"]["PGD-l2"] == 0.75
    assert back["digest"] == hand_digest(back)  # sha256 of the sorted-key JSON body
    assert [p.name for p in path.parent.iterdir()] == ["madry-linf.json"]  # no .tmp left


def test_write_record_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous record intact (tmp file + rename)."""
    path = tmp_path / "madry-linf.json"
    first = write_record(path, sample())
    before = path.read_bytes()
    real = Path.write_text

    def crash(self, text, *args, **kwargs):
        real(self, text[: len(text) // 3], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        write_record(path, sample(seed=5))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_record(path)["digest"] == first["digest"]


def test_write_record_does_not_mutate_its_argument(tmp_path):
    body = sample()
    copy = json.loads(json.dumps(body))
    write_record(tmp_path / "r.json", body)
    assert body == copy


def test_record_error_is_a_value_error():
    assert issubclass(RecordError, ValueError)


@pytest.mark.parametrize("field", sorted(records.FIELDS))
def test_missing_field_is_rejected(field, tmp_path):
    rec = {**sample(), "schema": records.SCHEMA}
    rec.pop(field, None)
    path = write_raw(tmp_path / "r.json", rec, redigest=field != "digest")
    with pytest.raises(RecordError, match=field if field != "digest" else "digest"):
        read_record(path)


@pytest.mark.parametrize("field, value", [
    ("seed", "0"), ("seed", 0.0), ("seed", True), ("profile", 3), ("accuracy", [0.5]), ("training", {}),
    ("norm_agnostic", "0.5"), ("n_test", 4.0), ("config", None), ("schema", "1"),
])
def test_wrong_type_is_rejected(field, value, tmp_path):
    rec = {**sample(), "schema": records.SCHEMA, field: value}
    with pytest.raises(RecordError, match=repr(field)):
        read_record(write_raw(tmp_path / "r.json", rec))
    if field != "schema":  # write_record sets the schema itself
        with pytest.raises(RecordError, match=repr(field)):
            write_record(tmp_path / "w.json", sample(**{field: value}))
        assert not (tmp_path / "w.json").exists()


@pytest.mark.parametrize("value", [1.5, -0.01, float("nan"), "0.5", None])
def test_accuracy_outside_unit_interval_is_rejected(value, tmp_path):
    rec = {**sample(), "schema": records.SCHEMA}
    rec["accuracy"] = {**rec["accuracy"], "PGD-linf": value}
    with pytest.raises(RecordError, match="PGD-linf"):
        read_record(write_raw(tmp_path / "r.json", rec))  # digest is right: the range check itself must fire
    with pytest.raises(RecordError):
        write_record(tmp_path / "w.json", {k: v for k, v in rec.items() if k != "schema"})
    assert not (tmp_path / "w.json").exists()


@pytest.mark.parametrize("value", [0.0, 1.0, 1])
def test_accuracy_bounds_are_inclusive(value, tmp_path):
    rec = sample()
    rec["accuracy"] = {**rec["accuracy"], "Natural": value}
    write_record(tmp_path / "r.json", rec)
    assert read_record(tmp_path / "r.json")["accuracy"]["Natural"] == value


def test_norm_agnostic_outside_unit_interval_is_rejected(tmp_path):
    """Regression: validate() used to range-check only ``accuracy``."""
    with pytest.raises(RecordError, match="norm_agnostic"):
        write_record(tmp_path / "r.json", sample(norm_agnostic=1.5))


def test_other_schema_version_is_rejected(tmp_path):
    rec = {**sample(), "schema": records.SCHEMA + 1}
    with pytest.raises(RecordError, match="schema"):
        read_record(write_raw(tmp_path / "r.json", rec))


@pytest.mark.parametrize("edit", [
    lambda r: r["accuracy"].update({"PGD-linf": 0.26}),
    lambda r: r.update({"seed": 1}),
    lambda r: r["config"].update({"n_train": 2001}),
    lambda r: r["traces"]["PGD-l2"]["loss"].append(0.3),
    lambda r: r.update({"extra": "field"}),
])
def test_tampered_value_fails_the_digest(edit, tmp_path):
    path = tmp_path / "r.json"
    write_record(path, sample())
    rec = json.loads(path.read_text())
    edit(rec)
    path.write_text(json.dumps(rec))
    with pytest.raises(RecordError, match="digest"):
        read_record(path)


@pytest.mark.parametrize("cut", [0, 1, 10, 0.5, -2])
def test_truncated_file_is_rejected(cut, tmp_path):
    path = tmp_path / "r.json"
    write_record(path, sample())
    text = path.read_text()
    n = int(len(text) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(text) + cut)
    path.write_text(text[:n])
    with pytest.raises(RecordError) as info:
        read_record(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"null", b"\"a string\""])
def test_non_record_content_is_rejected(content, tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(RecordError):
        read_record(path)


def test_missing_file_is_a_record_error(tmp_path):
    with pytest.raises(RecordError, match="unreadable"):
        read_record(tmp_path / "absent.json")


def test_validate_returns_the_record():
    rec = {**sample(), "schema": records.SCHEMA}
    rec["digest"] = hand_digest(rec)
    assert validate(rec) is rec
    with pytest.raises(RecordError):
        validate("not a dict")


def test_load_records_skips_invalid_with_a_warning(tmp_path):
    write_record(tmp_path / "madry-linf.json", sample("madry-linf"))
    write_record(tmp_path / "trades-l2.json", sample("trades-l2"))
    write_record(tmp_path / "atda-mix.json", sample("atda-mix"))
    (tmp_path / "atda-mix.json").write_text((tmp_path / "atda-mix.json").read_text()[:50])  # truncated
    tampered = json.loads((tmp_path / "trades-l2.json").read_text())
    tampered["accuracy"]["Natural"] = 0.5
    (tmp_path / "trades-l2.json").write_text(json.dumps(tampered))
    (tmp_path / "notes.txt").write_text("not a record")
    (tmp_path / "checkpoints").mkdir()
    with pytest.warns(UserWarning, match="skipping invalid record") as caught:
        loaded = load_records(tmp_path)
    assert set(loaded) == {"madry-linf"}
    messages = " ".join(str(w.message) for w in caught)
    assert "atda-mix.json" in messages and "trades-l2.json" in messages
    assert loaded["madry-linf"]["cell"] == "madry-linf"


def test_load_records_of_missing_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="reproduce"):
        load_records(tmp_path / "nope")


def test_load_records_empty_folder(tmp_path):
    assert load_records(tmp_path) == {}


@pytest.mark.parametrize("n", [1, 5, 7, 8, 9, 13, 16, 200, 1001])
def test_pack_unpack_mask_round_trip(n):
    g = torch.Generator().manual_seed(n)
    mask = torch.rand(n, generator=g) < 0.5
    text = pack_mask(mask)
    assert isinstance(text, str) and len(text) == 2 * ((n + 7) // 8)
    back = unpack_mask(text, n)
    assert back.dtype == torch.bool and back.shape == (n,)
    assert torch.equal(back, mask)


def test_pack_mask_bit_order_is_msb_first():
    mask = torch.tensor([True, False, False, False, False, False, False, False, False, True])
    assert pack_mask(mask) == "8040"  # 1000 0000 | 01(00 0000)
    assert pack_mask(torch.ones(8, dtype=torch.bool)) == "ff"
    assert unpack_mask("8040", 10).tolist() == mask.tolist()


def test_pack_mask_accepts_int_and_cuda_free_tensors():
    assert torch.equal(unpack_mask(pack_mask(torch.tensor([1, 0, 1])), 3), torch.tensor([True, False, True]))


def test_git_revision_is_a_string_and_unknown_without_git(monkeypatch):
    monkeypatch.delenv("ADVLIB_GIT_REVISION", raising=False)
    rev = records.git_revision()
    assert isinstance(rev, str) and rev

    def no_git(*a, **k):
        raise OSError("no git")

    monkeypatch.setattr(records.subprocess, "run", no_git)
    assert records.git_revision() == "unknown"

    monkeypatch.setattr(records.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 128, "", "not a repo"))
    assert records.git_revision() == "unknown"


def test_a_sent_revision_wins_over_the_copy_s_own_git(monkeypatch):
    """A tree copied to a GPU machine may carry a stale .git; the sender's commit, passed in the environment,
    is what the record must name."""
    monkeypatch.setenv("ADVLIB_GIT_REVISION", "0123abcd")
    monkeypatch.setattr(records.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("git ran")))
    assert records.git_revision() == "0123abcd (sent)"


def test_a_record_without_its_identity_keys_is_rejected(tmp_path):
    for identity in ({}, {"model": {}}, {"model": {"key": "k"}}, {"model": {"key": 3}, "rows": {}}):
        with pytest.raises(RecordError, match="identity lacks"):
            write_record(tmp_path / "madry-linf.json", sample(identity=identity))


def test_sealed_documents_round_trip_and_refuse_edits_and_other_kinds(tmp_path):
    path = tmp_path / "doc.json"
    written = records.write_document(path, {"value": 3, "schema": 99, "digest": "old"}, "bounds")
    assert written["schema"] == records.DOCUMENT_SCHEMA and written["kind"] == "bounds"
    assert records.read_document(path, "bounds") == written and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(RecordError, match="kind 'bounds'; expected 'rows'"):
        records.read_document(path, "rows")
    path.write_text(path.read_text().replace('"value": 3', '"value": 4'))
    with pytest.raises(RecordError, match="digest does not match"):
        records.read_document(path, "bounds")
    with pytest.raises(RecordError, match="unreadable document"):
        records.read_document(tmp_path / "absent.json", "bounds")


def test_side_files_are_named_after_their_record_and_told_apart_from_records(tmp_path):
    record = tmp_path / "madry-linf.json"
    assert records.side_path(record, "extended") == tmp_path / "madry-linf.extended.json"
    assert records.is_record_path(record) and not records.is_record_path(tmp_path / "madry-linf.rows.json")


def test_an_extended_block_is_written_to_its_side_file_and_assembled_back(tmp_path):
    path = tmp_path / "madry-linf.json"
    block = {"accuracy": {"AA-l2": 0.5}, "masks": {"AA-l2": "c0"}}
    written = write_record(path, sample(extended=block))
    assert "extended" not in json.loads(path.read_text()) and written["extended"] == block
    side = records.read_document(records.side_path(path, "extended"), "extended")
    assert side["model"] == "0123456789abcdef" and side["accuracy"] == block["accuracy"]
    assembled = records.assemble(path)
    assert assembled["extended"] == block and load_records(tmp_path)["madry-linf"]["extended"] == block


def test_side_files_of_another_model_are_not_attached(tmp_path):
    path = tmp_path / "madry-linf.json"
    write_record(path, sample())
    records.write_document(records.side_path(path, "extended"), {"model": "another", "accuracy": {}}, "extended")
    with pytest.warns(UserWarning, match="belongs to another model"):
        assert "extended" not in records.assemble(path)


def test_added_rows_are_attached_on_reading_and_never_written_back(tmp_path):
    path = tmp_path / "madry-linf.json"
    write_record(path, sample())
    row = {"key": "r", "depends": {}, "accuracy": 0.25, "mask": "80", "seconds": 1.0}
    records.write_document(records.side_path(path, "rows"), {"model": "0123456789abcdef", "rows": {"PGD-l2-x0": row}},
                           "rows")
    assembled = records.assemble(path)
    assert assembled["added_rows"] == {"PGD-l2-x0": row}
    assert assembled["accuracy"] == sample()["accuracy"]  # the record's own rows only: Table 1 never changes
    assert records.added_accuracy(assembled, "PGD-l2-x0") == 0.25 and records.added_accuracy(assembled, "PGD-l2") == 0.75
    with pytest.raises(KeyError, match="has no row 'nope'; it has Natural, .*PGD-l2-x0"):
        records.added_accuracy(assembled, "nope")
    with pytest.raises(RecordError, match="assembled record"):
        write_record(path, {k: v for k, v in assembled.items() if k not in ("schema", "digest")})


def test_load_records_passes_over_sealed_documents_silently(tmp_path, recwarn):
    write_record(tmp_path / "madry-linf.json", sample())
    records.write_document(tmp_path / "retrain-check.json", {"cells": {}}, "retrain-check")
    assert list(load_records(tmp_path)) == ["madry-linf"] and not recwarn.list


def test_first_images_restricts_masks_accuracies_and_the_worst_case():
    from conftest import acc, make_record
    rec = make_record("madry-linf", acc(50, 90, 10, 80), n=100)  # nested masks: row r correct on its first k images
    first = records.first_images(rec, 20)
    assert first["n_test"] == 20 and first["profile"].endswith("first 20")
    assert first["accuracy"]["PGD-l2"] == 1.0 and first["accuracy"]["SO-l2"] == 0.5  # 10 of the first 20
    assert first["norm_agnostic"] == 0.5
    assert unpack_mask(first["masks"]["SO-l2"], 20).sum() == 10
    assert rec["n_test"] == 100  # untouched
    with pytest.raises(ValueError, match="cannot take the first 200"):
        records.first_images(rec, 200)


def test_all_masks_has_the_rows_the_extended_block_and_the_rows_added_later():
    rows = {"Natural": torch.tensor([True, True, False]), "PGD-l2": torch.tensor([True, False, False])}
    record = {"n_test": 3, "masks": {k: pack_mask(v) for k, v in rows.items()},
              "added_rows": {"PGD-l2@2": {"mask": pack_mask(torch.tensor([False, True, False]))}},
              "extended": {"masks": {"AA-l2": pack_mask(torch.tensor([True, False, False]))}}}
    masks = records.all_masks(record)
    assert set(masks) == {"Natural", "PGD-l2", "PGD-l2@2", "AA-l2"}
    assert masks["PGD-l2@2"].tolist() == [False, True, False] and masks["AA-l2"].tolist() == [True, False, False]

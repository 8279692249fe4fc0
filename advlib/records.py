"""Result records: one JSON file per evaluated model (``<cell>.json``), written atomically, validated and
digest-checked on read, and its sealed side files.

A record that is truncated, fails the schema, or whose digest does not match its content is reported invalid and
is recomputed by ``reproduce``, never used. A record is written once, when its model is evaluated; what is added to
that model later goes into side files beside it, keyed by the model's identity key (``advlib.identity``):
``<cell>.extended.json`` (the extended evaluation, ``advlib.extended``) and ``<cell>.rows.json`` (evaluation rows a
profile gained after the record was made). ``load_records`` and ``assemble`` attach the side files that belong to
the record's model, so readers see one record.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: 2: records carry ``identity`` (``advlib.identity``: keys from what the model and each row depend on), no prose
#: in ``config``, portable data paths, and their extended block in a side file (``advlib.migrations`` moved 1 → 2).
SCHEMA = 2
#: Schema of sealed side files (``seal``): experiments' results, extended blocks, rows added to a model later.
DOCUMENT_SCHEMA = 1
FIELDS: dict[str, type] = {
    "schema": int, "profile": str, "cell": str, "config": dict, "identity": dict, "seed": int, "advlib_version": str,
    "git_revision": str, "torch_version": str, "device": str, "data": dict, "wall_time": dict,
    "accuracy": dict, "norm_agnostic": float, "n_test": int, "masks": dict, "traces": dict,
    "training": list, "created": str, "digest": str,
}


class RecordError(ValueError):
    """A record file that must not be used."""


def pack_mask(mask: Tensor) -> str:
    """Bool ``[N]`` → hex string (8 examples per byte)."""
    return np.packbits(mask.detach().cpu().numpy().astype(bool)).tobytes().hex()


def unpack_mask(text: str, n: int) -> Tensor:
    """Inverse of ``pack_mask``."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n]
    return torch.from_numpy(bits.astype(bool))


def all_masks(record: dict) -> dict[str, Tensor]:
    """Every per-example mask of ``record`` (assembled: its own rows, the rows added later, its extended block's),
    unpacked."""
    n = record["n_test"]
    added = {name: row["mask"] for name, row in record.get("added_rows", {}).items()}
    packed = {**record.get("masks", {}), **added, **record.get("extended", {}).get("masks", {})}
    return {name: unpack_mask(text, n) for name, text in packed.items()}


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def git_revision() -> str:
    """The advlib checkout's commit, with "-dirty" if it has uncommitted changes.

    ``$ADVLIB_GIT_REVISION``, if set, wins (the sender's ``git rev-parse HEAD``, marked "(sent)"): a copy of
    the tree sent to a GPU machine carries a ``.git`` that need not match the files. Outside git: "unknown".
    """
    here = Path(__file__).resolve().parent
    sent = os.environ.get("ADVLIB_GIT_REVISION")
    if sent:  # the copy's own .git may be stale (a GPU machine's copy kept the checkout's first commit)
        return f"{sent} (sent)"
    fallback = "unknown"
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return fallback
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "advlib"], cwd=here.parent,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def validate(record: object) -> dict:
    """Return ``record`` if it has every field with the right type and a matching digest; else raise."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    for key, kind in FIELDS.items():
        if key not in record:
            raise RecordError(f"record lacks field {key!r}")
        if not isinstance(record[key], kind) or (kind is int and isinstance(record[key], bool)):
            raise RecordError(f"record field {key!r} should be {kind.__name__}, got {type(record[key]).__name__}")
    if record["schema"] != SCHEMA:
        raise RecordError(f"record schema {record['schema']} is not the supported schema {SCHEMA}")
    if record["digest"] != _digest(record):
        raise RecordError("record digest does not match its content (edited or corrupt)")
    if not isinstance(record["identity"].get("model", {}).get("key"), str) or not isinstance(
            record["identity"].get("rows"), dict):
        raise RecordError("record identity lacks its model key or its rows (advlib.identity.record_identity)")
    for name, value in {**record["accuracy"], "norm_agnostic": record["norm_agnostic"]}.items():
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise RecordError(f"accuracy {name!r} = {value!r} is not a fraction in [0,1]")
    return record


def write_record(path: str | Path, record: dict) -> dict:
    """Add the schema version and digest, validate, and write atomically (tmp file + rename). An ``extended`` block
    in ``record`` goes to its side file (``side_path``); an assembled record (with ``added_rows`` merged from its
    rows side file) is refused, so that added rows never enter the record itself."""
    if "added_rows" in record:
        raise RecordError("an assembled record (rows merged from its side file) cannot be written back as a record")
    block = record.get("extended")
    record = {k: v for k, v in record.items() if k != "extended"}
    record = {**record, "schema": SCHEMA}
    record["digest"] = _digest(record)
    validate(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    if block is not None:
        write_extended(path, {**record, "extended": block})
        return {**record, "extended": block}
    return record


def write_extended(record_path: str | Path, record: dict) -> dict:
    """Write ``record["extended"]`` to the record's side file (``side_path(record_path, "extended")``), keyed by the
    record's model; the record itself is not rewritten. Returns the sealed side document."""
    side = {"model": model_key(record), "profile": record["profile"], "cell": record["cell"], **record["extended"]}
    return write_document(side_path(record_path, "extended"), side, "extended")


def read_record(path: str | Path) -> dict:
    """Read and validate one record; raise ``RecordError`` if it is unreadable or invalid."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: unreadable record ({err})") from err
    try:
        return validate(data)
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from err


def seal(document: dict, kind: str) -> dict:
    """``document`` with ``schema`` (``DOCUMENT_SCHEMA``), ``kind`` and ``digest`` set: a side file (an experiment's
    results, an extended block, extra rows) that ``read_document`` can later check as strictly as a record."""
    body = {**{k: v for k, v in document.items() if k != "digest"}, "schema": DOCUMENT_SCHEMA, "kind": kind}
    return {**body, "digest": _digest(body)}


def check_document(document: object, kind: str) -> dict:
    """Return ``document`` if it is a sealed document of ``kind`` with a matching digest; else raise."""
    if not isinstance(document, dict):
        raise RecordError(f"a document must be a JSON object, got {type(document).__name__}")
    if document.get("schema") != DOCUMENT_SCHEMA:
        raise RecordError(f"document schema {document.get('schema')!r} is not the supported {DOCUMENT_SCHEMA}")
    if document.get("kind") != kind:
        raise RecordError(f"document kind {document.get('kind')!r}; expected {kind!r}")
    if document.get("digest") != _digest(document):
        raise RecordError("document digest does not match its content (edited or corrupt)")
    return document


def write_document(path: str | Path, document: dict, kind: str) -> dict:
    """Seal ``document`` as ``kind`` and write it atomically (tmp file + rename); returns the sealed document."""
    sealed = seal(document, kind)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(sealed, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return sealed


def read_document(path: str | Path, kind: str) -> dict:
    """Read a sealed document of ``kind``; ``RecordError`` if it is unreadable, of another kind or edited."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: unreadable document ({err})") from err
    try:
        return check_document(data, kind)
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from err


#: Side files of a record, by kind: ``<cell>.<kind>.json``.
SIDE_KINDS = ("extended", "rows")


def side_path(record_path: str | Path, kind: str) -> Path:
    """Where the side file of ``kind`` (``SIDE_KINDS``) of the record at ``record_path`` lives."""
    path = Path(record_path)
    return path.with_name(f"{path.stem}.{kind}.json")


def is_record_path(path: Path) -> bool:
    """Whether ``path`` names a record (``<cell>.json``) rather than a side file (``<cell>.<kind>.json``)."""
    return path.suffix == ".json" and "." not in path.stem


def model_key(record: dict) -> str:
    """The identity key of the model a record (or side file) belongs to."""
    return record["identity"]["model"]["key"]


def read_side(record_path: str | Path, kind: str, record: dict) -> dict | None:
    """The side file of ``kind`` that belongs to ``record``'s model, or None (absent; another model's or invalid:
    warned)."""
    path = side_path(record_path, kind)
    if not path.is_file():
        return None
    try:
        side = read_document(path, kind)
    except RecordError as err:
        warnings.warn(f"skipping invalid side file: {err}", stacklevel=3)
        return None
    if side.get("model") != model_key(record):
        warnings.warn(f"skipping {path}: it belongs to another model ({side.get('model')}) than {record_path} "
                      f"({model_key(record)})", stacklevel=3)
        return None
    return side


#: Fields of a side file that are the file's own, not the block it carries.
SIDE_FIELDS = ("schema", "kind", "digest", "model", "profile", "cell")


def assemble(record_path: str | Path) -> dict:
    """The record at ``record_path`` with its side files attached: ``record["extended"]`` (the extended block) and
    ``record["added_rows"]`` (name → accuracy, packed mask, spec, provenance: rows evaluated on the record's model
    after it was made). The record's own ``accuracy`` and ``masks`` stay the rows it was made with, so Table 1 and
    its norm-agnostic accuracy never change under a reader. ``RecordError`` if the record itself is invalid."""
    record = read_record(record_path)
    extended = read_side(record_path, "extended", record)
    if extended is not None:
        record["extended"] = {k: v for k, v in extended.items() if k not in SIDE_FIELDS}
    rows = read_side(record_path, "rows", record)
    if rows is not None:
        record["added_rows"] = rows["rows"]
    return record


def added_accuracy(record: dict, name: str) -> float:
    """The accuracy of row ``name``: the record's own row, else one added later (``assemble``); ``KeyError`` naming
    the rows it has otherwise."""
    if name in record["accuracy"]:
        return record["accuracy"][name]
    added = record.get("added_rows", {})
    if name not in added:
        raise KeyError(f"{record['profile']}/{record['cell']} has no row {name!r}; it has "
                       f"{', '.join(list(record['accuracy']) + list(added))}")
    return added[name]["accuracy"]


def is_document(path: Path) -> bool:
    """Whether ``path`` holds a sealed document (it has a ``kind``), not a record."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(found, dict) and "kind" in found


def load_records(folder: str | Path) -> dict[str, dict]:
    """All valid records in ``folder`` keyed by cell, each with its side files (``assemble``); invalid ones are
    skipped with a warning, sealed documents beside them (``is_document``) silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"no results folder {folder}; run `python -m advlib reproduce --profile P --out {folder}`")
    out = {}
    for path in sorted(p for p in folder.glob("*.json") if is_record_path(p) and not is_document(p)):
        try:
            record = assemble(path)
        except RecordError as err:
            warnings.warn(f"skipping invalid record: {err}", stacklevel=2)
            continue
        out[record["cell"]] = record
    return out


def first_images(record: dict, n: int) -> dict:
    """A copy of ``record`` restricted to its first ``n`` test images (masks, accuracies, norm-agnostic accuracy;
    rows without a mask are dropped), so that records made on different test-set sizes compare on the same images;
    ``ValueError`` if the record has fewer. The profile gains "first n"."""
    total = record["n_test"]
    if not 1 <= n <= total:
        raise ValueError(f"{record.get('profile')}/{record.get('cell')} has {total} test images; cannot take the "
                         f"first {n}")
    masks = {k: unpack_mask(v, total)[:n] for k, v in record["masks"].items()}
    worst = torch.stack([masks[k] for k in record["accuracy"] if k in masks]).all(0)
    return {**record, "n_test": n, "masks": {k: pack_mask(v) for k, v in masks.items()},
            "accuracy": {k: v.float().mean().item() for k, v in masks.items() if k in record["accuracy"]},
            "norm_agnostic": worst.float().mean().item(), "profile": f"{record['profile']}, first {n}"}

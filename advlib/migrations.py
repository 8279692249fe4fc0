"""Migrations of committed records: the only code that rewrites a record once it is written.

``migrate_folder`` turns schema-1 records into schema 2 **without recomputing anything**: every accuracy, mask,
trace, training history, wall time and provenance field is kept; what changes is

* ``identity`` (``advlib.identity.record_identity``) is derived from the record's *own stored* configuration, so a
  record made with settings that the code no longer has comes out stale in ``python -m advlib check``;
* ``config`` loses its prose (``description``, ``notes``) and the old whole-profile ``hash``;
* ``data`` names a portable source (no absolute path of the machine that made it); records made before data
  fingerprints existed get the fingerprint of the examples they used, computed from the packaged MNIST files
  (``advlib.data.PACKAGED``, never another source), which is legitimate only because those records name the
  genuine MNIST files (kind ``package``, or ``env`` pointing at the project's shared copy of the same IDX files:
  identical MD5s, checked when this was written); a record on other data is refused;
* the extended block moves to its side file ``<cell>.extended.json`` (``advlib.records.side_path``), keyed by the
  model and by its own dependencies (``advlib.extended.extended_dependencies``).
"""
from __future__ import annotations

import json
from pathlib import Path

from advlib import data, extended, identity, records, reproduce

#: Records of these cells evaluate a model that was not trained here; its identity is the file that holds it.
RELEASED_CELLS = ("trades-released",)
#: Data sources whose files were the genuine MNIST IDX files (see the module doc).
GENUINE = ("package", "env")
#: What leaves a stored config: the profile's prose (``reproduce.PROSE``) and the old whole-profile hash.
PROSE = (*reproduce.PROSE, "hash")


def _fingerprints(rec: dict) -> dict[str, str]:
    out = {}
    for split, limit_key in (("train", "n_train"), ("test", "n_test")):
        source = rec["data"].get(split)
        if source is None:
            continue
        if source.get("fingerprint"):
            out[split] = source["fingerprint"]
            continue
        if source["kind"] not in GENUINE:
            raise ValueError(f"{rec['profile']}/{rec['cell']}: {split} data of kind {source['kind']!r} has no "
                             f"fingerprint; only records on the genuine MNIST files ({', '.join(GENUINE)}) migrate")
        out[split] = data.fingerprint(split, limit=rec["config"][limit_key], root=data.PACKAGED, download=False)
    return out


def _portable_data(rec: dict, fingerprints: dict[str, str]) -> dict:
    out = {k: v for k, v in rec["data"].items() if not isinstance(v, dict)}
    for split, fp in fingerprints.items():
        source = rec["data"][split]
        out[split] = {**data.Source(source["kind"], source.get("path", "")).portable(), "fingerprint": fp}
        if not source.get("fingerprint"):
            out[split]["fingerprint_from"] = "migration: the packaged MNIST files (the record predates fingerprints)"
    return out


def record_v2(rec: dict) -> tuple[dict, dict | None]:
    """A schema-1 record as schema 2, and its extended block as a side document (None if it had none)."""
    config = {k: v for k, v in rec["config"].items() if k not in PROSE}
    fingerprints = _fingerprints(rec)
    model = {"architecture": rec["model"]["architecture"], "md5": rec["model"]["md5"]} if rec["cell"] in RELEASED_CELLS \
        else None
    new = {k: v for k, v in rec.items() if k not in ("extended", "digest", "schema")}
    new.update(config=config, data=_portable_data(rec, fingerprints),
               identity=identity.record_identity(config, rec["cell"], fingerprints, model))
    block = rec.get("extended")
    if block is None:
        return new, None
    block_config = {k: v for k, v in block["config"].items() if k != "hash"}
    deps = extended.extended_dependencies(block_config, config["evaluation"], fingerprints["test"], config["seed"])
    side = {"model": new["identity"]["model"]["key"], "profile": rec["profile"], "cell": rec["cell"],
            **{k: v for k, v in block.items() if k != "config"}, "config": block_config,
            "identity": {"key": identity.key(deps), "depends": deps}}
    return new, side


def migrate_file(path: str | Path) -> bool:
    """Migrate one record file in place (and write its extended side file); False if it is already current."""
    path = Path(path)
    rec = json.loads(path.read_text())
    if rec.get("schema") == records.SCHEMA:
        return False
    if rec.get("schema") != 1:
        raise ValueError(f"{path}: no migration from schema {rec.get('schema')!r} (known: 1 → {records.SCHEMA})")
    if rec.get("digest") != records._digest(rec):
        raise ValueError(f"{path}: its digest does not match its content; a corrupt record is not migrated")
    new, side = record_v2(rec)
    if side is not None:
        records.write_document(records.side_path(path, "extended"), side, "extended")
    records.write_record(path, new)
    return True


def migrate_folder(root: str | Path) -> list[Path]:
    """Migrate every schema-1 record under ``root`` (recursively); returns the files migrated."""
    done = []
    for path in sorted(Path(root).rglob("*.json")):
        if not records.is_record_path(path) or "checkpoints" in path.parts:
            continue
        try:
            found = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        is_record = isinstance(found, dict) and "kind" not in found and "cell" in found  # sealed documents have a kind
        if is_record and found.get("schema") == 1 and migrate_file(path):
            done.append(path)
    return done

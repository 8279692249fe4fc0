"""``python -m advlib check [results/]``: every committed result file against the code, like ``dvc status``.

Each record (``<cell>.json``) and sealed side file is listed as

* **current**: valid (schema, digest) and its identity (``advlib.identity``) is the one the code gives now;
* **stale**: valid, but made with other dependencies than the code's now (the reasons name them), or a side file
  of another model than its record's;
* **invalid**: unreadable, failing its schema or digest, or naming an unknown profile or cell;
* **missing** (a record's rows the profile has and nobody computed yet: neither stale nor invalid);
* **unsealed**: a JSON file without schema (benchmark output), listed but not judged.

``verify`` returns the findings; the command prints them and exits non-zero on any stale or invalid file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from advlib import data, extended, identity, protocols, records, released, reproduce
from advlib.records import RecordError

STATES = ("current", "stale", "invalid", "missing", "unsealed")
#: Folders under ``results/`` that hold no committed result (ignored by git; so are ``results/<profile>/models/``,
#: while ``results/models/`` holds the kept models, ``advlib.kept``).
SKIPPED = ("checkpoints", "progress")


@dataclass(frozen=True)
class Finding:
    """One file's state (``STATES``) and why."""

    path: Path
    state: str
    reasons: tuple[str, ...] = field(default_factory=tuple)


@cache
def _sources(profile: str) -> dict[str, dict]:
    return reproduce.data_identity(protocols.get_profile(profile))


def expected_identity(record: dict) -> dict:
    """The identity the code gives now to a record of ``record``'s profile and cell (``ValueError`` if either is
    unknown)."""
    profile = protocols.get_profile(record["profile"])
    if record["cell"] == released.CELL:
        return released.expected_identity(profile, _sources(profile.name))
    protocols.split_cell(record["cell"])
    return reproduce.expected_identity(profile, record["cell"], _sources(profile.name))


def check_record(path: Path) -> list[Finding]:
    """The record at ``path`` and its side files."""
    try:
        rec = records.read_record(path)
        expected = expected_identity(rec)
    except (RecordError, ValueError) as err:
        return [Finding(path, "invalid", (str(err),))]
    state, reasons, missing = identity.compare(rec["identity"], expected)
    out = [Finding(path, state, tuple(reasons))]
    rows_file = records.side_path(path, "rows")
    added: dict = {}
    if rows_file.is_file():
        finding, side = _check_rows(rows_file, rec, expected)
        out.append(finding)
        added = side["rows"] if side is not None and finding.state == "current" else {}
    missing = [name for name in missing if name not in added]
    if missing:
        out.append(Finding(path, "missing", tuple(f"row {name} not computed yet" for name in missing)))
    extended_file = records.side_path(path, "extended")
    if extended_file.is_file():
        out.append(_check_extended(extended_file, rec))
    return out


def _side(path: Path, kind: str, rec: dict) -> tuple[dict | None, Finding | None]:
    try:
        side = records.read_document(path, kind)
    except RecordError as err:
        return None, Finding(path, "invalid", (str(err),))
    if side.get("model") != records.model_key(rec):
        return None, Finding(path, "stale", (f"belongs to model {side.get('model')}, the record's is "
                                             f"{records.model_key(rec)}",))
    return side, None


def _check_rows(path: Path, rec: dict, expected: dict) -> tuple[Finding, dict | None]:
    """The rows side file's finding, and the file itself when it is valid and the record's model's."""
    side, bad = _side(path, "rows", rec)
    if bad is not None:
        return bad, None
    reasons = []
    for name, row in side["rows"].items():
        now = expected["rows"].get(name)
        if now is None and "spec" in row:  # a row beyond the profile's: its own spec, under the code's versions now
            deps = identity.row_dependencies(row["spec"], rec["data"]["test"]["fingerprint"], rec["seed"])
            now = {"key": identity.key(deps), "depends": deps}
        if now is not None and row["key"] != now["key"]:
            lines = identity.differences(row["depends"], now["depends"]) or ["key differs"]
            reasons += [f"row {name}: {line}" for line in lines]
    return Finding(path, "stale" if reasons else "current", tuple(reasons)), side


def _check_extended(path: Path, rec: dict) -> Finding:
    side, bad = _side(path, "extended", rec)
    if bad is not None:
        return bad
    now = extended.expected_identity(protocols.get_profile(rec["profile"]), rec)
    if side["identity"]["key"] == now["key"]:
        return Finding(path, "current")
    return Finding(path, "stale", tuple(identity.differences(side["identity"]["depends"], now["depends"])))


def check_document(path: Path) -> Finding:
    """A sealed document that is no record's side file (an experiment's results, the data's bound, ...)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return Finding(path, "invalid", (f"unreadable ({err})",))
    if not isinstance(found, dict) or "schema" not in found:
        return Finding(path, "unsealed", ("no schema: provenance only (e.g. a benchmark)",))
    try:
        records.check_document(found, found.get("kind", "?"))
    except RecordError as err:
        return Finding(path, "invalid", (str(err),))
    if found["kind"] == "kept-model":  # the weights as stored, and still the model of its record
        return _check_kept(path, found)
    if found["kind"] == "bounds":  # computed on the whole MNIST splits: stale if those are other examples now
        now = _whole_splits()
        changed = [f"data.{split}: {found['data'].get(split)!r} → {fp!r}" for split, fp in now.items()
                   if found["data"].get(split) != fp]
        if changed:
            return Finding(path, "stale", tuple(changed))
    return Finding(path, "current")


def _check_kept(path: Path, doc: dict) -> Finding:
    from advlib import kept
    weights, record = path.with_name(doc["file"]), path.parents[1] / doc["record"]
    if not weights.is_file() or kept.sha256(weights) != doc["sha256"]:
        return Finding(path, "invalid", (f"{weights.name} is missing or not the file its document describes",))
    if not record.is_file() or records.model_key(records.read_record(record)) != doc["model_key"]:
        return Finding(path, "stale", (f"{doc['record']} no longer holds the model that was kept",))
    return Finding(path, "current")


@cache
def _whole_splits() -> dict[str, str]:
    return {split: data.fingerprint(split, download=False) for split in data.SPLITS}


def verify(root: str | Path = "results") -> list[Finding]:
    """Every result file under ``root`` (records, their side files, sealed documents, other JSON)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"no results folder {root}; pass the folder that holds the records, e.g. results/")
    findings: list[Finding] = []
    paths = sorted(p for p in root.rglob("*.json") if not set(p.relative_to(root).parts) & set(SKIPPED)
                   and "models" not in p.relative_to(root).parts[1:-1])  # results/models/ holds kept models
    for path in paths:
        owner = _owner(path)
        if owner is not None:
            if not owner.is_file():
                findings.append(Finding(path, "stale", (f"a side file without its record {owner.name}",)))
            continue  # checked with its record
        if records.is_record_path(path) and _looks_like_record(path):
            findings += check_record(path)
        else:
            findings.append(check_document(path))
    return findings


def _owner(path: Path) -> Path | None:
    """The record a side file ``<cell>.<kind>.json`` belongs to; None for any other file."""
    parts = path.name.split(".")
    if len(parts) == 3 and parts[1] in records.SIDE_KINDS and parts[2] == "json":
        return path.with_name(parts[0] + ".json")
    return None


def _looks_like_record(path: Path) -> bool:
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True  # an unreadable <cell>.json is an invalid record
    return isinstance(found, dict) and "masks" in found and "kind" not in found


def report(findings: list[Finding], root: Path) -> str:
    """One line per finding (reasons indented below), then the counts per state."""
    lines = []
    for f in findings:
        where = f.path.relative_to(root) if f.path.is_relative_to(root) else f.path
        lines.append(f"{f.state:<9} {where}")
        lines += [f"          {reason}" for reason in f.reasons]
    counts = {s: sum(f.state == s for f in findings) for s in STATES}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def failed(findings: list[Finding]) -> bool:
    """Whether any file is stale or invalid."""
    return any(f.state in ("stale", "invalid") for f in findings)

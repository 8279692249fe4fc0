"""The results document of an experiment: attack runs under keys derived from what they depend on.

A document is a sealed JSON object (``advlib.records.write_document``: schema, kind, sha256 digest) with
``"settings"`` (what decided the numbers), ``"runs"`` (one entry per attack run: accuracy, packed correctness
mask, seconds, ...) and ``"items"`` (what each item of the experiment reports). A run's key is built by
``run_key`` from its model, variant, the ``AttackSpec``'s config, n and seed, so a changed setting makes a new
run and never overwrites an old one; ``run`` finds a stored run from the same arguments.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch import Tensor

from advlib import records
from advlib.records import RecordError
from advlib.specs import AttackSpec

#: Document kinds (``advlib.records.seal``).
RELEASED_ABLATIONS = "released-ablations"
LARGE_LINF_ABLATIONS = "large-linf-ablations"
KINDS = (RELEASED_ABLATIONS, LARGE_LINF_ABLATIONS)
#: The spec fields every run key names: ``AttackSpec``'s fields when the first documents were written.
KEY_FIELDS = ("eps", "kind", "linf_step", "norm", "random_start", "samples", "sigma", "step_size", "steps")
#: The variant of a run made by ``advlib.attacks.run_attack`` / ``traced_attack``.
ADVLIB = "advlib"
#: The authors' loop, ``advlib.ablations.so_clamp_at_end``.
CLAMP_AT_END = "clamp-at-end"


def check_kind(kind: str) -> str:
    """``kind`` if it is a known document kind; else a ValueError naming the valid ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown experiment kind {kind!r}; valid: {', '.join(KINDS)}")
    return kind


def restarts_variant(restarts: int) -> str:
    """The variant name of a per-example worst case over ``restarts`` random restarts."""
    return f"worst of {restarts} restarts"


def spec_fields(spec: AttackSpec) -> dict:
    """The spec's fields a run key names: every one of ``KEY_FIELDS``, and a field added to ``AttackSpec`` later
    only where it differs from its default, so that a new field leaves every stored key as it was."""
    defaults = {f.name: f.default for f in fields(spec)}
    return {k: v for k, v in asdict(spec).items() if k in KEY_FIELDS or v != defaults[k]}


def run_key(model: str, variant: str, spec: AttackSpec, n: int, seed: int) -> str:
    """The key of one attack run: model, variant, the spec's fields (``spec_fields``, sorted), the first n test
    images, seed."""
    named = spec_fields(spec)
    body = ",".join(f"{k}={named[k]}" for k in sorted(named))
    return f"{model}|{variant}|{body}|n={n}|seed={seed}"


def entry_key(entry: dict) -> str:
    """The key a stored run belongs under, computed from the run's own fields."""
    return run_key(entry["model"], entry["variant"], AttackSpec(**entry["spec"]), entry["n"], entry["seed"])


def new_document(what: str, settings: dict) -> dict:
    """An empty document: a sentence saying what it holds, its settings, no runs, no items."""
    return {"what": what, "settings": settings, "runs": {}, "items": {}}


def check_layout(doc: dict, where: str | Path) -> dict:
    """``doc`` if it has ``settings``, ``runs`` and ``items`` objects; else ``RecordError``."""
    for field in ("settings", "runs", "items"):
        if not isinstance(doc.get(field), dict):
            raise RecordError(f"{where}: an experiment document needs a {field!r} object")
    return doc


def read(path: str | Path, kind: str) -> dict:
    """The sealed document of ``kind`` at ``path`` (schema, kind and digest checked); ``RecordError`` if invalid."""
    return check_layout(records.read_document(path, check_kind(kind)), path)


def load(path: str | Path, kind: str, what: str, settings: dict) -> dict:
    """The document at ``path`` to resume (its runs are reused), or a new one if there is no file.

    A file that is not a valid document of ``kind`` raises ``RecordError`` rather than being overwritten.
    """
    if not Path(path).exists():
        return new_document(what, settings)
    try:
        doc = dict(read(path, kind))
    except RecordError as err:
        raise RecordError(f"{err}; not overwritten (a file of the scripts before the package: seal it with "
                          f"advlib.experiments.migrate.migrate(path, {kind!r}); otherwise move it away)") from err
    for field in ("schema", "kind", "digest"):
        doc.pop(field, None)
    return doc


def save(path: str | Path, doc: dict, kind: str) -> dict:
    """Seal ``doc`` as ``kind`` and write it atomically; returns the sealed document."""
    return records.write_document(path, check_layout(doc, path), check_kind(kind))


def run(doc: dict, *, model: str, spec: AttackSpec, n: int, variant: str = ADVLIB, seed: int | None = None) -> dict:
    """The stored run of ``spec`` on the first ``n`` images of ``model`` (seed: the document's unless given).

    Raises ValueError naming the key, and the variants and sizes stored for ``model``, if there is no such run.
    """
    seed = doc["settings"]["seed"] if seed is None else seed
    key = run_key(model, variant, spec, n, seed)
    if key not in doc["runs"]:
        stored = sorted({(e["variant"], e["n"]) for e in doc["runs"].values() if e["model"] == model})
        raise ValueError(f"no stored run {key!r}; runs of model {model!r} (variant, n): {stored or 'none'}")
    return doc["runs"][key]


def mask_of(entry: dict) -> Tensor:
    """Which of the run's images stayed correctly classified (bool ``[n]``)."""
    return records.unpack_mask(entry["mask"], entry["n"])


def summary(entry: dict) -> dict:
    """A run as an item reports it: no mask, no trace."""
    return {k: entry[k] for k in ("accuracy", "n", "gradient_evaluations", "mean_l2_perturbation", "seconds")}


def worst_case(entries: list[dict]) -> Tensor:
    """Per image, correct under every one of ``entries`` (runs on the same images): bool ``[n]``."""
    if not entries:
        raise ValueError("worst_case needs at least one run")
    sizes = {e["n"] for e in entries}
    if len(sizes) != 1:
        raise ValueError(f"runs on different numbers of images {sorted(sizes)}; the worst case needs the same n")
    return torch.stack([mask_of(e) for e in entries]).all(0)

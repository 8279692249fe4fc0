"""``python -m advlib protocol-rows``: the paper's PGD-ℓ2 protocol on our own models (issue 22, item 2).

For each cell, the model is trained again on this CPU exactly as ``reproduce`` trains it (``reproduce.train_cell``,
checkpoint in ``<results>/checkpoints/``; training is deterministic on one processor), the profile's four paper
rows are evaluated again and each per-example mask is compared with the committed record's: how many images'
outcome (correct or not) differs, per row, Natural included. If the clean predictions agree, the two protocol rows
(``advlib.protocols.protocol_rows``: PGD-l2 started at x, clamped every step and once at the end) are added to the
record's rows side file (``reproduce.add_rows``, which refuses any other model); otherwise the cell is reported and
its rows are skipped. The record itself is never rewritten.

The comparison goes to a sealed document ``<results>/retrain-check.json`` (kind ``KIND``), written after each cell:
per cell the differing images per row, n, device, the kernels' run-time settings (``runtime.settings``: a model
trained on AVX2 kernels is not the one AVX-512 kernels train, ``advlib.experiments.kernels``), seconds and git
revision. A cell already in it is skipped, so a killed run resumes at the next cell (and a killed training at its
last checkpoint); ``again`` checks such cells once more (e.g. under other kernels: ``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``, with the cell's checkpoint removed), keeping the earlier entries under ``"earlier"``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

import advlib
from advlib import identity, protocols, records, reproduce, runtime
from advlib.evaluation import Evaluation, evaluate
from advlib.protocols import Profile

#: The document's kind (``advlib.records.seal``) and its file name in a profile's results folder.
KIND = "retrain-check"
FILE = "retrain-check.json"
#: The clean row of every record.
CLEAN = identity.CLEAN


def differing(result: Evaluation, record: dict) -> dict[str, int]:
    """Per row of ``result``: the number of images whose outcome (correct or not) differs from ``record``'s own mask
    of that row; ``ValueError`` if the record lacks a row or has another n."""
    n = record["n_test"]
    out = {}
    for name, mask in result.correct.items():
        if name not in record["masks"]:
            raise ValueError(f"{record['profile']}/{record['cell']} has no mask for row {name!r}; it has "
                             f"{', '.join(map(repr, record['masks']))}")
        if mask.numel() != n:
            raise ValueError(f"row {name!r} was evaluated on {mask.numel()} images, the record on {n}")
        out[name] = int((mask.cpu() != records.unpack_mask(record["masks"][name], n)).sum())
    return out


def load(path: Path, profile: Profile) -> dict:
    """The document at ``path`` to resume, or a new one; ``RecordError`` (not overwritten) if it is not a valid
    document of ``KIND``, ``ValueError`` if it belongs to another profile."""
    if not path.exists():
        return {"what": "Table 1 models trained again on a CPU: images whose outcome differs from the committed "
                        "record, per row, and the protocol rows added to the record's rows side file",
                "profile": profile.name, "rows": list(protocols.PROTOCOL_ROWS), "cells": {}}
    doc = {k: v for k, v in records.read_document(path, KIND).items() if k not in ("schema", "kind", "digest")}
    if doc.get("profile") != profile.name:
        raise ValueError(f"{path} holds the {doc.get('profile')!r} profile's check, not {profile.name!r}; pass "
                         f"that profile or another --results folder")
    return doc


def check_cell(profile: Profile, cell: str, out: Path, tensors: dict, revision: str, quiet: bool = True) -> dict:
    """Train ``cell``'s model again (``reproduce.train_cell``), evaluate the profile's rows, compare them with the
    committed record ``<out>/<cell>.json`` and, if the clean predictions agree, add ``protocols.protocol_rows`` to
    its rows side file. Returns the cell's entry of the document."""
    rec = records.assemble(out / f"{cell}.json")
    device = tensors["xt"].device
    found = reproduce.checkpoint_path(out, profile, cell, tensors["sources"]).is_file()
    start = time.perf_counter()
    model, _ = reproduce.train_cell(profile, cell, tensors, out, quiet)
    trained = time.perf_counter() - start
    result = evaluate(model, tensors["xt"], tensors["yt"], profile.evaluation, seed=profile.seed, quiet=quiet)
    diff = differing(result, rec)
    entry = {"differing": diff, "n": int(tensors["xt"].shape[0]), "model": records.model_key(rec),
             "accuracy": result.accuracy(), "record_accuracy": {k: rec["accuracy"][k] for k in diff},
             "checkpoint_found": found, "device": runtime.device_name(device), "record_device": rec["device"],
             "runtime": runtime.settings(device), "torch_version": torch.__version__,
             "advlib_version": advlib.__version__, "git_revision": revision,
             "seconds": {"train": trained, "evaluate": sum(result.seconds.values())}, "protocol_rows": {}}
    if diff[CLEAN] == 0:
        start = time.perf_counter()
        added = reproduce.add_rows(profile, cell, out, tensors, protocols.protocol_rows(profile), quiet, revision,
                                   model=model)
        entry["protocol_rows"] = {name: records.added_accuracy(added, name) for name in protocols.PROTOCOL_ROWS}
        entry["seconds"]["protocol_rows"] = time.perf_counter() - start
    else:
        entry["skipped"] = (f"the retrained model's clean predictions differ from the record's on {diff[CLEAN]} "
                            "images: not the record's model, no rows added")
        entry.update(retrained_rows(profile, model, tensors, revision, quiet))
    entry["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return entry


def retrained_rows(profile: Profile, model: torch.nn.Module, tensors: dict, revision: str,
                   quiet: bool = True) -> dict:
    """The protocol rows measured on a retrained model that is not the record's (compared with that model's own
    PGD-l2, in the entry's ``accuracy``; never written beside the record): ``retrained_protocol_rows``, their
    seconds and the git ``revision`` that measured them (a later run may add them to an older entry)."""
    start = time.perf_counter()
    result = evaluate(model, tensors["xt"], tensors["yt"], protocols.protocol_rows(profile), seed=profile.seed,
                      quiet=quiet)
    return {"retrained_protocol_rows": {name: result.accuracy()[name] for name in protocols.PROTOCOL_ROWS},
            "retrained_protocol_seconds": time.perf_counter() - start, "retrained_protocol_revision": revision}


def summary_line(profile: str, cell: str, entry: dict) -> str:
    """One line per cell: the differing images per row, and the protocol rows next to the committed PGD-l2."""
    diff = ", ".join(f"{k} {v}" for k, v in entry["differing"].items())
    line = f"[{profile}] {cell}: images differing from the record (of {entry['n']}): {diff}"
    if entry["protocol_rows"]:
        rows = ", ".join(f"{k} {100 * v:.1f}%" for k, v in entry["protocol_rows"].items())
        line += f"; PGD-l2 {100 * entry['record_accuracy']['PGD-l2']:.1f}% (record), {rows}"
    else:
        line += f"; {entry['skipped']}"
        if "retrained_protocol_rows" in entry:
            rows = ", ".join(f"{k} {100 * v:.1f}%" for k, v in entry["retrained_protocol_rows"].items())
            line += f"; on the retrained model: PGD-l2 {100 * entry['accuracy']['PGD-l2']:.1f}%, {rows}"
    return line + f" ({sum(entry['seconds'].values()):.0f} s)"


def run(profile: str, cells: str | list[str] | None = None, results: str | Path | None = None, *,
        device: str = "cpu", again: bool = False, quiet: bool = True, log: Callable[[str], None] = print) -> dict:
    """Check every requested cell (default the 12 Table 1 cells) of ``profile`` against its record in ``results``
    (default ``<results root>/<profile>``) and add the protocol rows, as the module says; the document
    ``<results>/retrain-check.json`` is written after each cell and a cell already in it is skipped (with
    ``again``: checked once more, its earlier entry kept under ``"earlier"``). A cell without a current record is
    reported and skipped. Returns the document."""
    from advlib.discovery import results_root
    prof = protocols.get_profile(profile)
    names = protocols.parse_cells(cells if cells is None or isinstance(cells, str) else ",".join(cells))
    out = Path(results) if results is not None else results_root() / prof.name
    path = out / FILE
    doc = load(path, prof)
    todo = [c for c in names if again or c not in doc["cells"]]
    incomplete = [c for c in names if c not in todo and "skipped" in doc["cells"][c]
                  and "retrained_protocol_rows" not in doc["cells"][c]]
    for c in names:
        if c in doc["cells"] and c not in todo:
            log(f"[{prof.name}] {c}: already in {path}; skipped (--again checks it once more)")
    if not todo and not incomplete:
        return records.seal(doc, KIND)
    dev = torch.device(device)
    runtime.tune_allocator()
    runtime.configure(dev)
    sources = reproduce.data_identity(prof)
    tensors = reproduce.load_data(prof, dev, sources)
    revision = records.git_revision()  # the code this process imported, not later edits
    for cell in incomplete:  # checked before the retrained model's own protocol rows were measured
        log(f"[{prof.name}] {cell}: the protocol rows on the retrained model (its checkpoint, else "
            "trained again)")
        model = reproduce.train_cell(prof, cell, tensors, out, quiet)[0]
        doc["cells"][cell].update(retrained_rows(prof, model, tensors, revision, quiet))
        records.write_document(path, doc, KIND)
        log(summary_line(prof.name, cell, doc["cells"][cell]))
    for cell in todo:
        state, reasons, _ = reproduce.status(out / f"{cell}.json", prof, sources)
        if state != "current":
            log(f"[{prof.name}] {cell}: the record {out / f'{cell}.json'} is {state}"
                f"{' (' + '; '.join(reasons) + ')' if reasons else ''}; nothing to compare with, skipped")
            continue
        log(f"[{prof.name}] {cell}: training again, then evaluating {len(prof.evaluation)} rows and "
            f"{len(protocols.PROTOCOL_ROWS)} protocol rows")
        entry = check_cell(prof, cell, out, tensors, revision, quiet)
        if cell in doc["cells"]:
            doc.setdefault("earlier", {}).setdefault(cell, []).append(doc["cells"][cell])
        doc["cells"][cell] = entry
        records.write_document(path, doc, KIND)
        log(summary_line(prof.name, cell, doc["cells"][cell]))
    return records.read_document(path, KIND) if path.exists() else records.seal(doc, KIND)


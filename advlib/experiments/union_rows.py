"""``python -m advlib union-rows``: the rows the union leaderboard reads and no profile evaluates (ℓ1 at the
literature's ε: PGD and AutoAttack, ``advlib.union.added_rows``), added beside records whose model is at hand.

A record's model is its checkpoint in ``<results>/checkpoints/`` if there is one, else its kept fp16 copy
(``advlib.kept``, ``<profile>-<cell>``); training the model again is never started here: a cell with neither is
reported and skipped. ``reproduce.add_rows`` checks that the model reproduces the record's clean predictions and writes each row
to the record's rows side file as soon as it is computed, so a killed run resumes at the next row; a row the side
file holds already is not computed again. The record itself is never rewritten.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from advlib import kept, protocols, records, reproduce, runtime, union
from advlib.experiments.variant_runs import missing_rows
from advlib.strong import AutoAttackSpec


def model_at_hand(profile: protocols.Profile, cell: str, out: Path, sources: dict, device: torch.device,
                  kept_root: Path | None = None) -> torch.nn.Module | str | None:
    """``cell``'s model: "checkpoint" if ``out`` holds its checkpoint (``add_rows`` loads it: the record's own
    weights), else its kept fp16 copy (a module; ``kept_root``: the results root it is kept under, default the
    project's), else None."""
    if reproduce.checkpoint_path(out, profile, cell, sources).is_file():
        return "checkpoint"
    try:
        return kept.load_named(f"{profile.name}-{cell}", kept_root, device=device)
    except ValueError:
        return None


def run(profile: str, cells: str | None = None, results: str | Path | None = None, *, autoattack: bool = True,
        device: str = "cpu", kept_root: Path | None = None, log: Callable[[str], None] = print
        ) -> dict[str, dict[str, float]]:
    """Add ``union.added_rows(profile)`` (without the AutoAttack rows unless ``autoattack``) to the current records
    of ``cells`` (``protocols.parse_cells``; default every record in the folder) in ``results`` (default
    ``<results root>/<profile>``); ``kept_root``: where kept models are looked up (``model_at_hand``). Returns, per
    cell, the accuracy (fraction) of each added row."""
    from advlib.discovery import results_root
    prof = protocols.get_profile(profile)
    out = Path(results) if results is not None else results_root() / prof.name
    names = (protocols.parse_cells(cells) if cells is not None else
             sorted(p.stem for p in out.glob("*.json") if "." not in p.stem and not records.is_document(p)))
    rows = {k: v for k, v in union.added_rows(prof).items() if autoattack or not isinstance(v, AutoAttackSpec)}
    dev = torch.device(device)
    runtime.tune_allocator()
    runtime.configure(dev)
    sources = reproduce.data_identity(prof)
    tensors, revision, done = None, records.git_revision(), {}
    for cell in names:
        path = out / f"{cell}.json"
        state = reproduce.status(path, prof, sources)[0]
        todo = missing_rows(path, rows) if state == "current" else {}
        model = model_at_hand(prof, cell, out, sources, dev, kept_root) if todo else None
        if state != "current" or not todo or model is None:
            why = (f"the record is {state}" if state != "current" else "it has every row" if not todo else
                   "no kept model and no checkpoint")
            log(f"[{prof.name}] {cell}: {why}; skipped")
            continue
        tensors = tensors or reproduce.load_data(prof, dev, sources)
        try:  # add_rows refuses a model whose clean predictions are not the record's (a kept fp16 copy may differ)
            rec = reproduce.add_rows(prof, cell, out, tensors, todo, revision=revision,
                                     model=None if isinstance(model, str) else model)
        except ValueError as err:
            log(f"[{prof.name}] {cell}: {err}; skipped")
            continue
        done[cell] = {name: records.added_accuracy(rec, name) for name in rows}
        log(f"[{prof.name}] {cell}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in done[cell].items()))
    return done

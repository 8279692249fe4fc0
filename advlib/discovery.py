"""Record discovery: where committed result records live and which one stands for each cell.

One module used by the CLI (``tour``, ``check``), the claims and the book's chapters, so that every reader of
``results/`` picks the same record for a cell (the best profile that has one) and names its profile.
"""
from __future__ import annotations

import os
from pathlib import Path

from advlib import protocols, records

#: Profiles in the order their records win: the largest scale first.
RECORD_ORDER = ("full", "large", "medium", "quick")


def results_root() -> Path:
    """The ``results/`` folder: ``$ADVLIB_RESULTS``, else the one beside the advlib checkout, else ./results."""
    if os.environ.get("ADVLIB_RESULTS"):
        return Path(os.environ["ADVLIB_RESULTS"])
    beside = Path(__file__).resolve().parent.parent / "results"
    return beside if beside.is_dir() else Path("results")


def best_records(root: str | Path | None = None) -> dict[str, dict]:
    """One record per cell: the best profile that has one (``RECORD_ORDER``: full, large, medium, quick); each says its profile."""
    root = Path(root) if root is not None else results_root()
    best: dict[str, dict] = {}
    for name in RECORD_ORDER:
        folder = root / name
        if folder.is_dir():
            for cell, rec in records.load_records(folder).items():
                best.setdefault(cell, rec)
    return {c: best[c] for c in protocols.CELLS if c in best}


#: Where records with the extended block live, best first: the GPU re-run of the medium profile sits beside
#: ``results/medium/`` (whose CPU-trained models are gone) and before it.
EXTENDED_ORDER = ("full", "large", "medium-h100", "medium", "quick")


def best_extended_records(root: str | Path | None = None) -> dict[str, dict]:
    """One record per Table 1 cell among those with the extended block (``EXTENDED_ORDER``); each says its profile."""
    root = Path(root) if root is not None else results_root()
    best: dict[str, dict] = {}
    for name in EXTENDED_ORDER:
        if (root / name).is_dir():
            for cell, rec in records.load_records(root / name).items():
                if "extended" in rec:
                    best.setdefault(cell, rec)
    return {c: best[c] for c in protocols.CELLS if c in best}


def profile_records(profile: str, root: str | Path | None = None) -> dict[str, dict]:
    """The records of one profile alone (``results/<profile>/``), in the order of the paper's table; empty if none."""
    folder = (Path(root) if root is not None else results_root()) / protocols.get_profile(profile).name
    found = records.load_records(folder) if folder.is_dir() else {}
    return {c: found[c] for c in protocols.CELLS if c in found}


def multinorm_records(profile: str, root: str | Path | None = None) -> dict[str, dict]:
    """The multi-norm cells' records (``protocols.MULTI_NORM_CELLS``) of one profile; empty if none."""
    folder = (Path(root) if root is not None else results_root()) / protocols.get_profile(profile).name
    found = records.load_records(folder) if folder.is_dir() else {}
    return {c: found[c] for c in protocols.MULTI_NORM_CELLS if c in found}


def profiles_used(records: dict[str, dict]) -> list[str]:
    """The profiles the records come from, sorted by name (empty for no records)."""
    return sorted({rec["profile"] for rec in records.values()})

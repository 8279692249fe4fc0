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


def records_by_profile(profiles: tuple[str, ...] = RECORD_ORDER[:-1],
                       root: str | Path | None = None) -> dict[str, dict[str, dict]]:
    """Each profile's own records (``profile_records``), for the profiles that have any, in the order given
    (default: every profile of ``RECORD_ORDER`` but quick, whose models show the pipeline, not the science)."""
    found = {name: profile_records(name, root) for name in profiles}
    return {name: recs for name, recs in found.items() if recs}


def in_run_order(records: dict[str, dict]) -> dict[str, dict]:
    """The Table 1 records in the order ``reproduce`` runs their cells (``protocols.CELL_ORDER``); others dropped."""
    return {c: records[c] for c in protocols.CELL_ORDER if c in records}


def labelled_extended_records(folders: tuple[str, ...] = EXTENDED_ORDER,
                              root: str | Path | None = None) -> dict[str, dict]:
    """Every record with the extended block in ``folders`` (default ``EXTENDED_ORDER``), keyed ``"<cell> (<folder>)"``:
    one cell may appear once per folder."""
    root = Path(root) if root is not None else results_root()
    return {f"{cell} ({folder})": rec for folder in folders if (root / folder).is_dir()
            for cell, rec in records.load_records(root / folder).items() if "extended" in rec}


def cell_of(key: str) -> str:
    """The cell of a record key: ``"madry-linf"`` for ``"madry-linf"`` or ``"madry-linf (medium-h100)"``."""
    return key.split(" ")[0]


def select(records: dict[str, dict], *, cells: tuple[str, ...] | None = None,
           train_norm: str | None = None) -> dict[str, dict]:
    """The records (keyed by cell, or labelled as by ``labelled_extended_records``) of the given cells and/or
    training norm."""
    return {k: r for k, r in records.items()
            if (cells is None or cell_of(k) in cells)
            and (train_norm is None or protocols.split_cell(cell_of(k))[1] == train_norm)}


def read(path: str, root: str | Path | None = None) -> dict:
    """One committed record by its path under ``results/`` (``"released/trades-released.json"``), with its side files
    attached (``records.assemble``: the extended block, added rows); ``records.RecordError`` if it is invalid."""
    return records.assemble((Path(root) if root is not None else results_root()) / path)


def folder_records(folder: str, root: str | Path | None = None) -> dict[str, dict]:
    """The records of any folder under ``results/`` (a profile's, or a re-run's such as ``medium-h100``), keyed by
    cell, with their side files; empty if the folder does not exist."""
    path = (Path(root) if root is not None else results_root()) / folder
    return records.load_records(path) if path.is_dir() else {}


#: Where the released TRADES model's record with the extended block lives (``advlib.released``, large attacks).
RELEASED_EXTENDED = "released-large/trades-released.json"


def with_released(found: dict[str, dict], root: str | Path | None = None) -> dict[str, dict]:
    """``found`` plus the released TRADES model's extended record under its cell name (claim 6's best evidence),
    when it is committed."""
    path = (Path(root) if root is not None else results_root()) / RELEASED_EXTENDED
    if not path.is_file():
        return dict(found)
    record = records.assemble(path)
    return {**found, record["cell"]: record}

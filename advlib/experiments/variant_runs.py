"""``python -m advlib variants``: train and evaluate every profile variant (``advlib.variants``), resumably.

For each variant, in order: its cells through ``advlib.reproduce.reproduce`` into ``results/variants/<name>/``
(a current record is kept, a checkpoint resumes), then its extra rows beside each of its records and beside the
base profile's record of the same cell (``reproduce.add_rows``; the base model is its checkpoint, or trained again,
which must reproduce the base record's clean predictions). A row already in a rows side file is not recomputed.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from advlib import records, reproduce, runtime, variants
from advlib.discovery import results_root


def missing_rows(path: Path, rows: dict) -> dict:
    """The rows of ``rows`` that the record at ``path`` lacks (neither in it, nor in its rows side file, nor in its
    extended block, whose rows of the same name are the same attacks: ``extended.extended_spec``)."""
    rec = records.assemble(path)
    have = set(rec["accuracy"]) | set(rec.get("added_rows", {})) | set(rec.get("extended", {}).get("accuracy", {}))
    return {name: spec for name, spec in rows.items() if name not in have}


def add_variant_rows(variant: variants.Variant, out: Path, base_out: Path, log: Callable[[str], None],
                     cells: tuple[str, ...] | None = None) -> None:
    """``variant.rows`` beside its records in ``out`` and the base records in ``base_out`` (of ``cells``, default
    the variant's)."""
    if not variant.rows:
        return
    dev = runtime.default_device()
    for profile, folder in ((variant.profile, out), (variants.base_profile(variant), base_out)):
        sources = reproduce.data_identity(profile)
        tensors = None
        for cell in cells or variant.cells:
            path = folder / f"{cell}.json"
            todo = missing_rows(path, variant.rows) if path.exists() else {}
            if not todo:
                continue
            tensors = tensors or reproduce.load_data(profile, dev, sources)
            rec = reproduce.add_rows(profile, cell, folder, tensors, todo)
            log(f"[{profile.name}] {cell}: " + ", ".join(f"{name} {100 * records.added_accuracy(rec, name):.1f}%"
                                                         for name in todo))


def run(names: list[str] | None = None, root: str | Path | None = None, *, cells: list[str] | None = None,
        log: Callable[[str], None] = print) -> None:
    """Run the variants ``names`` (default all, in ``variants.VARIANTS`` order) under ``root`` (default the results
    root); ``cells``: only these of each variant's cells (default all of them)."""
    chosen = [variants.get(n) for n in (names or variants.VARIANTS)]
    root = Path(root) if root is not None else results_root()
    for variant in chosen:
        out = variants.folder(variant.name, root)
        chosen_cells = tuple(c for c in variant.cells if cells is None or c in cells)
        if not chosen_cells:
            continue
        log(f"variant {variant.name}: {variant.change}; cells {', '.join(chosen_cells)} -> {out}")
        reproduce.reproduce(variant.name, list(chosen_cells), out=out, quiet=True)
        add_variant_rows(variant, out, variants.base_folder(variant, root), log, chosen_cells)

"""Slim copies of the checkpoints a GPU call needs to add the extended evaluation to records made here.

    python tools/slim_checkpoints.py [--profile large] [--cells a,b] [--results results] [--out .slim]

For every record in ``<results>/<profile>/`` that lacks the current extended block (``advlib.extended``) and whose
finished training checkpoint is kept, writes that checkpoint without its optimizer state (the extension only
evaluates the model; a third of the size) under ``<out>/results/``, at its path under ``<results>``, and prints
the cells (a GPU call carries at most 64 MiB: about four cells at ≈ 13 MB each; ``--cells`` picks them). The
profile's folder under ``<out>`` is emptied first. Carry ``<out>`` to the GPU machine:
``EXTEND_PROFILE=<profile> bash tools/gpu_session.sh`` there copies it into ``results/`` and extends those cells;
``tools/gpu_collect.py`` files the records that come back."""
from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

import torch

from advlib import extended, protocols, records
from advlib.protocols import split_cell
from advlib.reproduce import checkpoint_dir, data_identity


def slim(checkpoint: Path, target: Path) -> None:
    """``checkpoint`` without the optimizer's per-parameter state, written to ``target`` (loads like the original)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    saved["optimizer"]["state"] = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, target)


def pending(results: Path, profile: str) -> dict[str, Path]:
    """Cell -> finished checkpoint, for the records of ``profile`` that lack the current extended block."""
    prof = protocols.get_profile(profile)
    folder = checkpoint_dir(results / profile, prof, data_identity(prof))
    out = {}
    for path in sorted((results / profile).glob("*.json")):
        try:
            rec = records.read_record(path)
        except records.RecordError as err:
            warnings.warn(f"{err}; skipped", stacklevel=2)
            continue
        ckpt = folder / f"{rec['cell']}.pt"
        if extended.current(rec, prof) or not ckpt.is_file():
            continue
        epochs = rec["config"]["defenses"][split_cell(rec["cell"])[0]]["epochs"]
        if torch.load(ckpt, map_location="cpu", weights_only=False)["loop"]["epoch"] < epochs:
            raise ValueError(f"{ckpt}: training is not finished ({epochs} epochs), yet {path} exists")
        out[rec["cell"]] = ckpt
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="large")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path(".slim"))
    parser.add_argument("--cells", default=None, help="comma-separated cells (default: every pending one)")
    args = parser.parse_args()
    cells = pending(args.results, args.profile)
    if args.cells:
        wanted = protocols.parse_cells(args.cells)
        cells = {c: p for c, p in cells.items() if c in wanted}
    shutil.rmtree(args.out / "results" / args.profile, ignore_errors=True)
    for cell, ckpt in cells.items():
        target = args.out / "results" / ckpt.relative_to(args.results)
        slim(ckpt, target)
        print(f"{cell}: {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    print(f"cells: {','.join(cells) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

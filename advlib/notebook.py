"""The one set-up call every book chapter makes, where chapters find committed result records, and the small
helpers more than one chapter needs (seeded generators, percentages, significant digits)."""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from advlib import protocols, records, runtime
from advlib.protocols import Profile

PROFILE_ENV = "ADVLIB_PROFILE"
RECORD_ORDER = ("full", "large", "medium", "quick")


@dataclass
class Setup:
    """What a chapter runs with: the profile (from ``$ADVLIB_PROFILE``; quick on a CPU, full on a GPU) and device."""

    profile: Profile
    device: torch.device

    def __str__(self) -> str:
        return f"profile {self.profile.name!r} on {runtime.device_name(self.device)}"

    def generator(self, seed: int = 0) -> torch.Generator:
        """A fresh ``torch.Generator`` on the chapter's device, seeded with ``seed`` (one per attack run)."""
        return torch.Generator(device=self.device).manual_seed(seed)


def setup(seed: int = 0) -> Setup:
    """Seed torch, tune the CPU allocator, quiet the data-source warning (chapters print the source), style plots."""
    device = runtime.default_device()
    name = os.environ.get(PROFILE_ENV) or ("full" if device.type == "cuda" else "quick")
    profile = protocols.get_profile(name)
    runtime.tune_allocator()
    torch.manual_seed(seed)
    warnings.filterwarnings("ignore", message="full MNIST not found", category=UserWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets (bars are off)
    logging.getLogger("advlib").setLevel(logging.WARNING)
    import seaborn as sns
    sns.set_theme(context="notebook", style="whitegrid")
    return Setup(profile, device)


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


def percent(mask: Tensor) -> float:
    """The share of True entries of a boolean mask (e.g. ``predict(model, x_adv) == y``), in percent."""
    return 100 * mask.float().mean().item()


def significant(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Every value of a numeric frame rounded to ``digits`` significant digits (for tables spanning magnitudes)."""
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    return frame.map(lambda v: float(f"{v:.{digits}g}"))

"""The one set-up call every book chapter makes: the profile and device it runs with, seeded generators."""
from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from advlib import protocols, runtime
from advlib.protocols import Profile

PROFILE_ENV = "ADVLIB_PROFILE"


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
    """Seed torch, tune the CPU allocator, quiet the data-source warning (chapters print the source), style plots and
    tables."""
    warnings.filterwarnings("ignore", message="full MNIST not found", category=UserWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets (bars are off)
    device = runtime.default_device()
    name = os.environ.get(PROFILE_ENV) or ("full" if device.type == "cuda" else "quick")
    profile = protocols.get_profile(name)  # may import tqdm.auto (through advlib.variants): after the filters
    runtime.tune_allocator()
    torch.manual_seed(seed)
    logging.getLogger("advlib").setLevel(logging.WARNING)
    import pandas as pd
    import seaborn as sns
    sns.set_theme(context="notebook", style="whitegrid")
    pd.set_option("display.max_colwidth", None)  # table cells wrap in the page; never cut a statement short
    return Setup(profile, device)


#: Each chapter's measured wall time per device (``tools/execute_book.py`` writes it), under the results root.
CHAPTER_TIMES = Path("bench") / "chapters.json"


def _times_path() -> Path:
    from advlib.discovery import results_root
    return results_root() / CHAPTER_TIMES


def record_chapter_time(chapter: str, seconds: float, device: torch.device | None = None) -> None:
    """Keep ``chapter``'s wall time (``seconds``) on ``device`` (default the chapters' own) with its profile, date
    and git revision in ``CHAPTER_TIMES``."""
    from advlib import records
    device = device or runtime.default_device()
    path = _times_path()
    times = json.loads(path.read_text()) if path.is_file() else {}
    times.setdefault(chapter, {})[runtime.device_name(device)] = {
        "seconds": round(seconds, 1), "profile": os.environ.get(PROFILE_ENV) or ("full" if device.type == "cuda"
                                                                                  else "quick"),
        "date": datetime.now(timezone.utc).date().isoformat(), "git_revision": records.git_revision()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(times.items())), indent=1, ensure_ascii=False) + "\n")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def running_time(chapter: str, recorded: dict[str, dict] | None = None):
    """The chapter's running-time note, as Markdown, from measurements only: its wall time per device as
    ``tools/execute_book.py`` last measured it, and, for ``recorded`` (records the chapter reads), what making them
    cost per device (their ``wall_time``). A device the chapter was never run on is named as such."""
    from advlib.formatting import prose
    path = _times_path()
    times = json.loads(path.read_text()).get(chapter, {}) if path.is_file() else {}
    parts = [f"{_duration(t['seconds'])} on {device} ({t['profile']} profile, measured {t['date']})"
             for device, t in times.items()]
    text = "**Running time.** " + ("; ".join(parts) if parts else "not measured yet on any device")
    if not any("cuda" in d.lower() or "nvidia" in d.lower() for d in times):
        text += "; not yet timed on a GPU"
    text += "."
    if recorded:
        per_device: dict[str, list[float]] = {}
        for rec in recorded.values():
            wall = rec["wall_time"]
            total = wall.get("static_models", 0.0) + wall.get("train", 0.0) + sum(wall.get("evaluate", {}).values())
            per_device.setdefault(rec["device"], []).append(total)
        made = [f"{len(v)} on {d}, {_duration(sum(v) / len(v))} per cell on average" for d, v in per_device.items()]
        text += f" The records it reads were made ahead of time ({'; '.join(made)}; their `wall_time`)."
    return prose(text)

"""The one set-up call every book chapter makes: the profile and device it runs with, seeded generators."""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

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

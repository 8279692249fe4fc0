"""The REPRO CHOICES (``advlib.protocols.REPRO_CHOICES``) rendered as a table for the book."""
from __future__ import annotations

import pandas as pd

from advlib import protocols

#: The REPRO CHOICES that concern how models are trained (the rest concern evaluation).
TRAINING_CHOICES = ("model init", "ε warm-up", "data split", "PGD-ℓ2 training/eval", "mix", "TRADES β", "TRADES inner start",
                    "TRADES ℓ2 inner step", "TRADES model/optimiser", "ensemble sources", "ensemble attack",
                    "ATDA attack", "ATDA loss", "batch size", "optimiser", "reduced step counts")


def repro_choices(keys: tuple[str, ...] | None = None) -> pd.DataFrame:
    """``advlib.protocols.REPRO_CHOICES`` (or the listed ``keys``) as a two-column table: choice, what advlib does."""
    keys = tuple(protocols.REPRO_CHOICES) if keys is None else keys
    unknown = [k for k in keys if k not in protocols.REPRO_CHOICES]
    if unknown:
        raise ValueError(f"unknown REPRO CHOICE(s) {unknown}; valid: {', '.join(protocols.REPRO_CHOICES)}")
    return pd.DataFrame({"choice": list(keys), "what advlib does": [protocols.REPRO_CHOICES[k] for k in keys]})

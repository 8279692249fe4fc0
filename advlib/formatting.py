"""Small formatting helpers shared by chapters: percentages of boolean masks and significant digits."""
from __future__ import annotations

import pandas as pd
from torch import Tensor


def percent(mask: Tensor) -> float:
    """The share of True entries of a boolean mask (e.g. ``predict(model, x_adv) == y``), in percent."""
    return 100 * mask.float().mean().item()


def significant(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Every value of a numeric frame rounded to ``digits`` significant digits (for tables spanning magnitudes)."""
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    return frame.map(lambda v: float(f"{v:.{digits}g}"))

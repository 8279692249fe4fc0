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


#: What a table shows where nothing was measured.
NOT_EVALUATED = "—"


def prose(text: str):
    """``text`` (Markdown) as a chapter output rendered like the page's own prose: it wraps to the column and
    keeps emphasis, where a printed string would run past the output box."""
    from IPython.display import Markdown
    return Markdown(text)


def table(frame: pd.DataFrame, *, percent: tuple[str, ...] | str = (), names: dict[str, str] | None = None,
          digits: int = 1, scientific: tuple[str, ...] = ()) -> pd.DataFrame:
    """``frame`` ready for a reader: the ``percent`` columns (values already in percent; ``"all"`` for every
    numeric column) as "12.3 %", the ``scientific`` ones as "1.2e-07", other floats to ``digits`` decimals, missing
    values as ``NOT_EVALUATED``, columns and index renamed by ``names`` and no index or column-axis names."""
    names = names or {}
    chosen = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])] if percent == "all" else list(percent)
    unknown = [c for c in (*chosen, *scientific) if c not in frame.columns]
    if unknown:
        raise ValueError(f"no columns {unknown} to format; the frame has {list(frame.columns)}")
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        values = frame[col]
        if col in chosen:
            out[col] = values.map(lambda v: NOT_EVALUATED if pd.isna(v) else f"{v:.{digits}f}\u00a0%")
        elif col in scientific:
            out[col] = values.map(lambda v: NOT_EVALUATED if pd.isna(v) else f"{v:.{digits}e}")
        elif pd.api.types.is_float_dtype(values):
            out[col] = values.map(lambda v: NOT_EVALUATED if pd.isna(v) else f"{v:.{digits}f}")
        else:
            out[col] = values.map(lambda v: NOT_EVALUATED if v is None or (isinstance(v, float) and pd.isna(v)) else v)
    out.columns = frame.columns  # keeps a MultiIndex (e.g. defense × training norm) as it was
    out = out.rename(columns=names, index=names)
    out.index.names = [None] * out.index.nlevels
    out.columns.names = [None] * out.columns.nlevels
    return out

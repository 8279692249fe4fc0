"""``advlib.formatting``: percentages of masks and significant digits."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from advlib import formatting


def test_percent_and_significant():
    assert formatting.percent(torch.tensor([True, False, True, True])) == 75.0
    frame = pd.DataFrame({"a": [123456.0, 0.000123456], "b": [1.0, 2.25]})
    rounded = formatting.significant(frame)
    assert rounded["a"].tolist() == [123000.0, 0.000123] and rounded["b"].tolist() == [1.0, 2.25]
    assert formatting.significant(frame, digits=1)["b"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="digits must be at least 1, got 0"):
        formatting.significant(frame, digits=0)


def test_table_shows_percent_units_missing_values_and_readable_names():
    import math

    import pandas as pd

    from advlib.formatting import NOT_EVALUATED, table
    frame = pd.DataFrame({"acc": [12.345, math.nan], "n": [1000, 200], "gap": [0.25, 1.5], "note": ["a", None]},
                         index=pd.Index(["madry-linf", "trades-l2"], name="cell"))
    shown = table(frame, percent=("acc",), names={"acc": "accuracy", "madry-linf": "Madry ℓ∞"})
    assert list(shown.columns) == ["accuracy", "n", "gap", "note"] and shown.index.name is None
    assert shown.loc["Madry ℓ∞", "accuracy"] == "12.3\u00a0%" and shown.loc["trades-l2", "accuracy"] == NOT_EVALUATED
    assert shown.loc["Madry ℓ∞", "gap"] == "0.2" and shown.loc["trades-l2", "n"] == 200
    assert shown.loc["trades-l2", "note"] == NOT_EVALUATED
    every = table(frame[["acc", "gap"]], percent="all")
    assert every.loc["madry-linf", "gap"] == "0.2\u00a0%"
    with pytest.raises(ValueError, match="no columns"):
        table(frame, percent=("accuracy",))
    tiny = table(frame.assign(gap=[2.5e-7, math.nan]), scientific=("gap",))
    assert tiny.loc["madry-linf", "gap"] == "2.5e-07" and tiny.loc["trades-l2", "gap"] == NOT_EVALUATED
    with pytest.raises(ValueError, match="no columns \\['width'\\] to format"):
        table(frame, scientific=("width",))


def test_table_keeps_a_two_level_header():
    import pandas as pd

    from advlib.formatting import table
    columns = pd.MultiIndex.from_tuples([("madry", "l2"), ("madry", "linf")], names=["defense", "norm"])
    shown = table(pd.DataFrame([[1.0, 2.0]], columns=columns), percent="all", names={"l2": "ℓ2"})
    assert list(shown.columns) == [("madry", "ℓ2"), ("madry", "linf")] and shown.columns.names == [None, None]


def test_prose_is_markdown_that_renders_the_text():
    from advlib.formatting import prose
    shown = prose("**bold** claim")
    assert shown._repr_markdown_() == "**bold** claim"

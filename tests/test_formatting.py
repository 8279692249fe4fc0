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

"""``advlib.experiments.measures``: disagreement of two correctness masks, quantiles."""
from __future__ import annotations

import pytest
import torch

from advlib.experiments.measures import QUANTILES, disagreement, quantiles


def test_disagreement_counts_each_direction():
    first = torch.tensor([True, True, False, False, True])
    second = torch.tensor([True, False, True, False, True])
    d = disagreement(first, second)
    assert d == {"differ": 2, "only_first_fooled": 1, "only_second_fooled": 1, "n": 5}
    assert disagreement(second, first)["only_first_fooled"] == d["only_second_fooled"]
    assert disagreement(first, first)["differ"] == 0
    with pytest.raises(ValueError, match=r"\(5,\) and \(4,\)"):
        disagreement(first, second[:4])


def test_quantiles_against_sorted_values():
    values = torch.arange(101, dtype=torch.float32).flip(0)  # 100 … 0: the q-th quantile is q itself
    q = quantiles(values)
    assert list(q) == [f"q{int(100 * p)}" for p in QUANTILES]
    assert q == pytest.approx({k: float(k[1:]) for k in q})
    with pytest.raises(ValueError, match="empty"):
        quantiles(torch.empty(0))

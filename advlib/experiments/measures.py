"""Small summaries the experiments store: per-example disagreement of two runs, quantiles of a measurement."""
from __future__ import annotations

import torch
from torch import Tensor

#: The quantiles reported for gradient norms (keys ``q0`` … ``q100``).
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def disagreement(first: Tensor, second: Tensor) -> dict:
    """Compare two correctness masks (bool ``[n]``) of the same images: how many differ, and which run fooled which."""
    if first.shape != second.shape:
        raise ValueError(f"masks of different shapes {tuple(first.shape)} and {tuple(second.shape)}")
    return {"differ": int((first != second).sum()), "only_first_fooled": int((~first & second).sum()),
            "only_second_fooled": int((first & ~second).sum()), "n": int(first.numel())}


def quantiles(values: Tensor) -> dict:
    """``QUANTILES`` of ``values`` (any shape, computed in float64) as ``{"q0": …, "q10": …, …, "q100": …}``."""
    if values.numel() == 0:
        raise ValueError("quantiles of an empty tensor")
    q = torch.quantile(values.detach().cpu().double().flatten(), torch.tensor(QUANTILES, dtype=torch.float64))
    return {f"q{int(100 * p)}": float(v) for p, v in zip(QUANTILES, q)}

"""Model hygiene: run a model in eval mode without parameter gradients, then restore it.

Same idea as advertorch's ``ctx_noparamgrad_and_eval``; written for advlib.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode with ``requires_grad=False``; restore mode and flags on exit."""
    saved = [([(mod, mod.training) for mod in m.modules()], [p.requires_grad for p in m.parameters()], m)
             for m in models]  # every submodule's own mode: a model may hold e.g. a frozen BatchNorm
    for m in models:
        m.eval()
        m.requires_grad_(False)
    try:
        yield
    finally:
        for modes, flags, m in saved:
            for mod, training in modes:
                mod.training = training
            for p, flag in zip(m.parameters(), flags):
                p.requires_grad_(flag)

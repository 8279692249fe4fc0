"""Paired significance for per-example outcomes: the exact sign test (McNemar) and how to print its p-value."""
from __future__ import annotations

import math


def sign_test(b: int, c: int) -> float:
    """Two-sided exact sign test (McNemar) p-value for ``b`` vs ``c`` discordant pairs (1.0 when b + c = 0)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


def format_p(p: float, relation: bool = True) -> str:
    """A p-value for text: "= 0.012" (two significant digits), or "< 1e-300" where it underflows a float to 0;
    ``relation=False`` drops the "= " (for a table column of p-values: "0.012", "< 1e-300")."""
    if p == 0:
        return "< 1e-300"
    return f"= {p:.2g}" if relation else f"{p:.2g}"

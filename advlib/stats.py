"""The statistics of per-example outcomes: the exact (Clopper-Pearson) binomial interval of an accuracy, the exact
paired sign test (McNemar), and how to print a p-value."""
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


#: Confidence level of every accuracy interval the book states.
LEVEL = 0.95


def binomial_interval(correct: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact two-sided Clopper-Pearson interval (fractions) of an accuracy of ``correct`` out of ``n`` test
    images: the binomial noise every accuracy measured on a finite test set carries (1,000 images: about ±3 points
    around 50 %)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of test images, got {n!r}")
    if isinstance(correct, bool) or not isinstance(correct, int) or not 0 <= correct <= n:
        raise ValueError(f"correct must be an integer in [0, n={n}], got {correct!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    from scipy.stats import beta
    alpha = 1 - level
    low = 0.0 if correct == 0 else float(beta.ppf(alpha / 2, correct, n - correct + 1))
    high = 1.0 if correct == n else float(beta.ppf(1 - alpha / 2, correct + 1, n - correct))
    return low, high

"""``advlib.stats``: the exact two-sided sign test (McNemar) on discordant pairs, and how p-values are printed."""
from __future__ import annotations

import math

import pytest

from advlib import stats


@pytest.mark.parametrize(("b", "c", "p"), [(0, 0, 1.0), (5, 0, 2 / 32), (0, 5, 2 / 32), (10, 0, 2 / 1024),
                                           (3, 3, 1.0), (6, 1, 2 * 8 / 128)])
def test_sign_test_matches_hand_computed_binomial_tails(b, c, p):
    assert stats.sign_test(b, c) == pytest.approx(p)


def test_sign_test_is_small_only_for_lopsided_counts():
    assert stats.sign_test(60, 0) < 1e-15
    assert stats.sign_test(510, 490) > 0.5


def test_sign_test_is_symmetric_and_never_above_one():
    for b, c in ((0, 1), (1, 2), (7, 3), (20, 19)):
        assert stats.sign_test(b, c) == stats.sign_test(c, b) <= 1.0
    # independent oracle: the two-sided tail by summing binomial probabilities from the top
    n, k = 30, 9
    tail = sum(math.comb(n, j) * 0.5 ** n for j in range(k + 1))
    assert stats.sign_test(k, n - k) == pytest.approx(2 * tail)


def test_format_p_never_prints_an_underflowed_p_value_as_zero():
    assert stats.format_p(0.0) == "< 1e-300"
    assert stats.format_p(0.0123) == "= 0.012"
    assert stats.sign_test(5206, 0) == 0.0  # the madry-linf full record's discordant pairs underflow


def _binomial_cdf(k: int, n: int, p: float) -> float:
    # independent oracle: the binomial tail by summing probabilities
    return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k + 1))


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 10), (500, 1000), (71, 200)])
def test_binomial_interval_is_the_clopper_pearson_interval(k, n):
    low, high = stats.binomial_interval(k, n)
    assert 0 <= low <= k / n <= high <= 1
    if k == 0:
        assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / n))
    if k == n:
        assert high == 1 and low == pytest.approx(0.025 ** (1 / n))
    if 0 < k < n:  # at each end the tail beyond the observation holds exactly α/2
        assert _binomial_cdf(k, n, high) == pytest.approx(0.025, rel=1e-6)
        assert 1 - _binomial_cdf(k - 1, n, low) == pytest.approx(0.025, rel=1e-6)


def test_binomial_interval_narrows_with_n_and_refuses_bad_input():
    wide, narrow = stats.binomial_interval(50, 100), stats.binomial_interval(5000, 10_000)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 5
    for k, n, match in ((3, 0, "n must be"), (11, 10, "correct must be"), (-1, 10, "correct must be"),
                        (1.5, 10, "correct must be")):
        with pytest.raises(ValueError, match=match):
            stats.binomial_interval(k, n)
    with pytest.raises(ValueError, match="level"):
        stats.binomial_interval(1, 10, level=1.0)

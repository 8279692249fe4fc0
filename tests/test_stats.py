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

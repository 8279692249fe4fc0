"""``advlib.experiments.reading``: how chapters word stored accuracies and shares of a gap."""
from __future__ import annotations

import pytest

from advlib.experiments.reading import NEGLIGIBLE_SHARE, model_text, percent_text, share_text


def test_percent_text_has_one_decimal_and_a_spaced_sign():
    assert percent_text(0.1234) == "12.3 %"
    assert percent_text(1.0) == "100.0 %" and percent_text(0.0) == "0.0 %"
    assert percent_text(0.00049) == "0.0 %" and percent_text(0.0051) == "0.5 %"


def test_share_text_calls_a_negligible_share_none():
    assert share_text(0.55) == "55 %" and share_text(1.2) == "120 %"
    assert share_text(NEGLIGIBLE_SHARE / 2) == "none of it" and share_text(-0.3) == "none of it"
    assert share_text(NEGLIGIBLE_SHARE) == f"{100 * NEGLIGIBLE_SHARE:.0f} %"
    assert share_text(0.03, negligible=0.01) == "3 %"
    with pytest.raises(ValueError, match="negligible must be in \\[0, 1\\), got 1.5"):
        share_text(0.5, negligible=1.5)


def test_model_text_names_the_model_key_or_the_old_configuration_hash():
    assert model_text({"profile": "large", "model_key": "c418e0dfcbc43452"}) == "large, model c418e0df"
    assert model_text({"profile": "large", "config_hash": "9ca0e08c"}) == "large, profile config 9ca0e08c"

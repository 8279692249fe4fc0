"""``advlib.choices``: the REPRO CHOICES as the book's table."""
from __future__ import annotations

import pytest

from advlib import choices, protocols


def test_repro_choices_table_lists_every_choice_and_the_training_subset():
    everything = choices.repro_choices()
    assert list(everything.choice) == list(protocols.REPRO_CHOICES)
    assert list(everything.columns) == ["choice", "what advlib does"]
    assert set(choices.TRAINING_CHOICES) < set(protocols.REPRO_CHOICES)
    subset = choices.repro_choices(choices.TRAINING_CHOICES)
    assert len(subset) == len(choices.TRAINING_CHOICES) and subset.iloc[0, 1] == protocols.REPRO_CHOICES["model init"]
    with pytest.raises(ValueError, match="unknown REPRO CHOICE"):
        choices.repro_choices(("no such choice",))

"""``advlib.smoke`` (``python -m advlib smoke``) on the CPU: the same checks a GPU session runs first."""
from __future__ import annotations

import pytest
import torch

from advlib import smoke


@pytest.mark.slow
def test_smoke_check_passes_on_the_cpu_for_every_defense():
    report = smoke.run("cpu", cells=["madry-mix", "trades-linf", "ensemble-l2", "atda-linf"])
    assert report["device"].startswith("cpu")
    assert set(report["cell_seconds"]) == {"madry-mix", "trades-linf", "ensemble-l2", "atda-linf"}
    assert report["attack_agreement_with_cpu"] == 1.0  # the same device twice
    assert report["max_weight_difference"] == {"run_to_run": 0.0, "resumed_vs_uninterrupted": 0.0}
    assert report["graphed_vs_eager"]["max_abs_difference"] == 0.0


def test_a_failed_check_names_what_failed():
    with pytest.raises(smoke.SmokeFailure, match="left the ball"):
        smoke._require(False, "l2 PGD left the ball on cpu")


def test_the_smoke_profile_is_tiny_and_complete():
    assert smoke.SMOKE.n_train <= 256 and smoke.SMOKE.n_test <= 64
    assert set(smoke.SMOKE.defenses) == {"madry", "trades", "ensemble", "atda", "max", "avg", "msd"}
    assert all(spec.epochs == 1 for spec in smoke.SMOKE.defenses.values())

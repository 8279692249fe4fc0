"""``tools/gpu_session.sh``, the recipe a GPU session runs, executed on the CPU with DEVICE=cpu."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO



@pytest.mark.slow
def test_the_recipe_runs_its_smoke_stage_and_stops_cleanly(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "DEVICE": "cpu", "SMOKE_CELLS": "madry-linf", "BENCH": "0", "CELLS": "0",
           "ADVLIB_TEST_THREADS": "1"}
    done = subprocess.run(["bash", "tools/gpu_session.sh", "100"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke check passed on cpu" in (tmp_path / "smoke.log").read_text()
    assert "gpu_session: done" in done.stdout


def test_a_failed_smoke_check_stops_the_call(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "DEVICE": "no-such-device", "BENCH": "0", "CELLS": "0"}
    done = subprocess.run(["bash", "tools/gpu_session.sh", "100"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "smoke check FAILED: stopping" in done.stdout

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


def test_the_extend_stage_needs_carried_checkpoints_and_runs_only_carried_cells(tmp_path):
    """EXTEND_PROFILE without a carried .slim/ stops the call; a requested cell without a carried checkpoint is
    skipped (never trained anew on the GPU), and nothing is packed when nothing was extended."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "SMOKE": "0", "BENCH": "0", "CELLS": "0",
           "EXTEND_PROFILE": "large"}
    script = str(REPO / "tools" / "gpu_session.sh")
    done = subprocess.run(["bash", script, "100"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no .slim/results/large" in done.stdout
    carried = work / ".slim" / "results" / "large" / "checkpoints" / "h"
    carried.mkdir(parents=True)
    (carried / "madry-l2.pt").write_bytes(b"")
    done = subprocess.run(["bash", script, "100"], cwd=work, env={**env, "EXTEND_CELLS": "trades-l2"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(carried: madry-l2)" in done.stdout and "trades-l2: no carried checkpoint, skipped" in done.stdout
    assert (work / "results" / "large" / "checkpoints" / "h" / "madry-l2.pt").is_file()
    assert not (out / "large-records.tgz").exists()

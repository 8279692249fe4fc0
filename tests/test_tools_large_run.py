"""tools/large_run.sh: the large profile's background run (a shell script: syntax and its default cells)."""
from __future__ import annotations

import re
import subprocess

from advlib import protocols
from conftest import REPO

SCRIPT = REPO / "tools" / "large_run.sh"


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_its_default_cells_are_every_cell_central_claim_first():
    cells = re.search(r"CELLS=\$\{CELLS:-([^}]*)\}", SCRIPT.read_text()).group(1)
    parsed = protocols.parse_cells(cells)
    assert sorted(parsed) == sorted(protocols.CELLS)
    assert parsed[:6] == list(protocols.CELL_ORDER[:6])  # the order the issue asks for
    assert "--profile large" in SCRIPT.read_text() and "results/large" in SCRIPT.read_text()


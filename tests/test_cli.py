"""The command line: ``python -m advlib reproduce`` / ``python -m advlib table`` (exit codes, messages, output)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from advlib import protocols, records
from advlib.__main__ import main
from advlib.protocols import CELLS, QUICK, ROWS, TrainSpec
from advlib.records import pack_mask, write_record
from advlib.specs import AttackSpec
from conftest import REPO, synthetic_identity



def python_m_advlib(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "advlib", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def valid_record(folder: Path, cell: str, acc: dict[str, float], profile: str = "synthetic") -> dict:
    n = 8
    body = {
        "profile": profile, "cell": cell, "config": {}, "identity": synthetic_identity(cell), "seed": 0,
        "advlib_version": "0.1.0",
        "git_revision": "x", "torch_version": torch.__version__, "device": "cpu", "data": {}, "wall_time": {},
        "accuracy": acc, "norm_agnostic": 0.125, "n_test": n,
        "masks": {k: pack_mask(torch.ones(n, dtype=torch.bool)) for k in acc}, "traces": {}, "training": [],
        "created": "now",
    }
    return write_record(folder / f"{cell}.json", body)


def test_unknown_profile_exits_2_listing_valid_profiles(tmp_path):
    proc = python_m_advlib("reproduce", "--profile", "nope", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "unknown profile 'nope'" in proc.stderr
    assert "valid choices: 'quick', 'medium', 'tour', 'large', 'full', 'paper'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_cell_exits_2_listing_valid_cells(tmp_path, capsys):
    assert main(["reproduce", "--profile", "quick", "--cells", "madry-linf,madry-l1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown cell 'madry-l1'" in err
    assert all(repr(c) in err for c in CELLS)
    assert not (tmp_path / "o").exists()


def test_missing_subcommand_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_help_lists_both_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "reproduce" in out and "table" in out


def test_table_of_missing_folder_exits_2(tmp_path, capsys):
    assert main(["table", str(tmp_path / "nope")]) == 2
    assert "no results folder" in capsys.readouterr().err


def test_table_of_folder_without_valid_records_exits_2(tmp_path, capsys):
    (tmp_path / "madry-linf.json").write_text("{ truncated")
    with pytest.warns(UserWarning, match="skipping invalid record"):
        assert main(["table", str(tmp_path)]) == 2
    assert "no valid records" in capsys.readouterr().err


def test_table_prints_ours_paper_and_delta(tmp_path, capsys):
    valid_record(tmp_path, "madry-linf", {"Natural": 0.99, "PGD-l2": 0.5, "PGD-linf": 0.9, "SO-l2": 0.0,
                                          "SO-linf": 0.875})
    valid_record(tmp_path, "atda-mix", {r: 0.5 for r in ROWS})
    assert main(["table", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Table 1 — ours/paper, accuracy in %" in out and "profile(s): synthetic" in out and "2 of 12 cells" in out
    assert "n_test = 8" in out
    assert "90.0/92.5" in out  # Madry ℓ∞ under PGD-ℓ∞
    assert "99.0/98.8" in out  # Madry ℓ∞ natural
    assert "50.0/83.4" in out  # ATDA Mix under S-O ℓ∞
    assert "no record yet: trades-linf, madry-l2," in out  # cells without records, in CELL_ORDER
    assert max(len(line) for line in out.splitlines()) <= 120  # fits a 120-column terminal
    for label in ("Natural", "PGD (ℓ2)", "PGD (ℓ∞)", "S-O (ℓ2)", "S-O (ℓ∞)"):
        assert label in out
    assert "norm-agnostic" in out and "12.5" in out


def test_table_saves_the_figure(tmp_path, capsys):
    import matplotlib
    matplotlib.use("Agg")
    valid_record(tmp_path, "trades-l2", {r: 0.25 for r in ROWS})
    fig = tmp_path / "fig" / "table.png"
    fig.parent.mkdir()
    assert main(["table", str(tmp_path), "--figure", str(fig)]) == 0
    assert fig.is_file() and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure saved to {fig}" in capsys.readouterr().out


def test_reproduce_then_table_in_process(tmp_path, capsys, monkeypatch, mnist_root):
    """`reproduce --profile P --cells C --out D` on a tiny registered profile, then `table D`."""
    if mnist_root is not None:
        monkeypatch.setenv("ADVLIB_DATA", str(mnist_root))
    monkeypatch.setattr("advlib.data._download", lambda folder: False)
    spec = TrainSpec(epochs=1, batch_size=25)
    tiny = replace(QUICK, name="clitiny", n_train=50, n_test=20,
                   train_attack={n: AttackSpec.pgd(n, steps=1) for n in ("l2", "linf")},
                   defenses={d: spec for d in protocols.DEFENSES},
                   evaluation={**{f"PGD-{n}": AttackSpec.pgd(n, steps=1) for n in ("l2", "linf")},
                               **{f"SO-{n}": AttackSpec.so(n, steps=1, samples=1) for n in ("l2", "linf")}})
    monkeypatch.setitem(protocols.PROFILES, "clitiny", tiny)
    out = tmp_path / "res"
    assert main(["reproduce", "--profile", "clitiny", "--cells", "madry-l2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "[clitiny] madry-l2: Natural" in printed and "norm-agnostic" in printed
    rec = records.read_record(out / "madry-l2.json")
    assert rec["profile"] == "clitiny" and list(rec["accuracy"]) == list(ROWS)
    assert main(["reproduce", "--profile", "clitiny", "--cells", "madry-l2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[clitiny] madry-l2" not in printed  # skipped
    assert f"python -m advlib table {out}" in printed
    assert main(["table", str(out)]) == 0
    table_out = capsys.readouterr().out
    nat = 100 * rec["accuracy"]["Natural"]
    assert f"{nat:.1f}/98.2" in table_out


def test_union_prints_every_leaderboard_from_the_committed_records(capsys):
    assert main(["union"]) == 0
    out = capsys.readouterr().out
    assert "ℓ∞ ε 0.3 ∪ ℓ2 ε 2.0:" in out and "ℓ∞ ε 0.3 ∪ ℓ2 ε 4.0:" in out and "ℓ∞ ε 0.3 ∪ ℓ2 ε 2.0 ∪ ℓ1 ε 10:" in out
    assert "madry-mix (large)" in out and "MSD (Maini et al. 2020)" in out and "radii 0.3 / 2.0 / 10" in out


def test_union_of_a_folder_without_records_prints_the_published_rows_only(tmp_path, capsys):
    assert main(["union", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MSD (Maini et al. 2020)" in out and "(large)" not in out

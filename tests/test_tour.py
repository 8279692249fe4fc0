"""``advlib.tour`` (``python -m advlib tour``): the committed Table 1 and verdicts, then two live cells, in a
120-column terminal. The live part runs here on a tiny stand-in for the tour profile."""
from __future__ import annotations

from dataclasses import replace

from advlib import protocols, tour
from advlib.__main__ import main
from advlib.protocols import TrainSpec, pgd_spec, so_spec


def test_the_tour_shows_the_committed_table_then_runs_its_two_cells(tmp_path, capsys, monkeypatch):
    spec = TrainSpec(epochs=1, batch_size=25)
    tiny = replace(protocols.TOUR, n_train=50, n_test=20, defenses={d: spec for d in protocols.DEFENSES},
                   train_attack={"l2": pgd_spec("l2", 1), "linf": pgd_spec("linf", 1)},
                   evaluation={"PGD-l2": pgd_spec("l2", 1), "PGD-linf": pgd_spec("linf", 1),
                               "SO-l2": so_spec("l2", 1, 1), "SO-linf": so_spec("linf", 1, 1)})
    monkeypatch.setitem(protocols.PROFILES, "tour", tiny)
    assert main(["tour", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    first, second = out.split("2. Now live on this machine")
    assert "1. What the committed records say" in first and "full, n=10000" in first
    assert "madry ℓ∞" in first and "Claim 2 (" in first and "Claim 5 (" in first
    assert "tour profile" in second and "madry-linf (tour, n_test = 20): PGD-ℓ∞" in second
    assert "trades-linf (tour, n_test = 20)" in second and "Next: python -m advlib table" in second
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["madry-linf.json", "trades-linf.json"]
    assert max(len(line) for line in out.splitlines()) <= 120


def test_the_tour_names_the_cells_of_the_central_claim():
    assert tour.CELLS == ("madry-linf", "trades-linf")
    assert protocols.CELL_ORDER[:2] == tour.CELLS

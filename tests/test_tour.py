"""``advlib.tour`` (``python -m advlib tour``): the committed Table 1 and verdicts, then two live cells, in a
120-column terminal. The live part runs here on a tiny stand-in for the tour profile."""
from __future__ import annotations

from dataclasses import replace

from advlib import protocols, tour
from advlib.__main__ import main
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec


def test_the_tour_shows_the_committed_table_then_runs_its_two_cells(tmp_path, capsys, monkeypatch):
    spec = TrainSpec(epochs=1, batch_size=25)
    tiny = replace(protocols.TOUR, n_train=50, n_test=20, defenses={d: spec for d in protocols.DEFENSES},
                   train_attack={n: AttackSpec.pgd(n, steps=1) for n in ("l2", "linf")},
                   evaluation={**{f"PGD-{n}": AttackSpec.pgd(n, steps=1) for n in ("l2", "linf")},
                               **{f"SO-{n}": AttackSpec.so(n, steps=1, samples=1) for n in ("l2", "linf")}})
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

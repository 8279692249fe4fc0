"""``advlib.experiments.released_ablations`` (with ``released_items``): every item end to end at a tiny size,
the sealed document it writes, resuming, and the printed summary."""
from __future__ import annotations

import pytest
import torch

from advlib import records
from advlib.experiments import released_ablations, store
from advlib.experiments.released_settings import ITEMS, Settings, item_settings, settings_of
from advlib.models import MadryCNN


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run every item at the tiny settings on 8 images, once per module (a random Madry CNN stands in for the
    natural model)."""
    torch.manual_seed(0)
    out, lines = tmp_path_factory.mktemp("released") / "out.json", []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(released_ablations, "natural_model", lambda profile, device: MadryCNN().eval())
        doc = released_ablations.run(out, n=8, tiny=True, log=lines.append)
    return out, doc, lines


def test_every_item_runs_into_a_sealed_document(tiny_run):
    out, doc, _ = tiny_run
    on_disk = store.read(out, store.RELEASED_ABLATIONS)
    assert sorted(on_disk["items"]) == list(ITEMS) and on_disk["runs"] == doc["runs"]
    assert on_disk["provenance"]["torch_version"] == torch.__version__
    assert on_disk["provenance"]["device"].startswith("cpu")
    assert settings_of(on_disk) == Settings.tiny_for(8)
    for name, item in on_disk["items"].items():
        assert item["settings"] == item_settings(Settings.tiny_for(8), name)
        assert item["seconds"] >= 0 and item["git_revision"]
    for key, run in on_disk["runs"].items():
        assert key == store.entry_key(run) and 0 <= run["accuracy"] <= 1
        assert records.unpack_mask(run["mask"], run["n"]).float().mean().item() == pytest.approx(run["accuracy"])
    items = {k: v["results"] for k, v in on_disk["items"].items()}
    assert [(c["sigma"], c["draws"]) for c in items["c"]["cells"]] == [(0.0, "any"), (0.15, 1), (0.15, 2)]
    assert len(items["e"]["traces"]["released SO-l2"]["grad_norm"]) == 3 + 1
    assert len(items["f"]["natural"]["eigenvalue"]) == 4
    assert list(items["g"]["accuracy"]) == ["apgd-ce"]


def test_the_chapters_lookups_find_the_items_runs(tiny_run):
    _, doc, _ = tiny_run
    s, b = settings_of(doc), doc["items"]["b"]["results"]
    spec = s.specs()
    assert store.run(doc, model="released", spec=spec["long"], n=b["n"])["accuracy"] == b["long"]["accuracy"]
    assert store.run(doc, model="released", spec=spec["long, same step"], n=b["n"])["accuracy"] == \
        b["long_same_step"]["accuracy"]
    restarts = store.run(doc, model="released", spec=spec["pgd"], n=b["n"], variant=store.restarts_variant(s.restarts))
    assert restarts["accuracy"] == b["restarts"]["accuracy"]
    assert store.run(doc, model="released", spec=spec["so"], n=b["n"])["accuracy"] == b["so_authors"]["accuracy"]
    d = doc["items"]["d"]["results"]["so"]
    assert store.run(doc, model="released", spec=spec["so"], n=s.n_small, variant=store.CLAMP_AT_END)["accuracy"] \
        == d["clamp_at_end"]["accuracy"]


def test_a_second_run_skips_what_is_done(tiny_run, monkeypatch):
    monkeypatch.setattr(released_ablations, "natural_model", lambda profile, device: MadryCNN().eval())
    out, doc, _ = tiny_run
    lines: list[str] = []
    again = released_ablations.run(out, n=8, items=("a", "c"), tiny=True, log=lines.append)
    assert sum("already done, skipped" in line for line in lines) == 2
    assert not any("run released" in line for line in lines)
    assert again["runs"] == doc["runs"]


def test_the_summary_names_every_item_and_its_n(tiny_run, capsys):
    _, doc, _ = tiny_run
    rows = released_ablations.summary_rows(doc)
    assert {item for item, _, _ in rows} == set(ITEMS)
    assert all("n=" in value for item, _, value in rows if item != "e" or "median" not in value)
    released_ablations.print_summary(doc)
    printed = capsys.readouterr().out
    assert "PGD-l2, worst of 2 restarts" in printed and "seconds per item" in printed


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"\['z'\].*a, b, c, d, e, f, g"):
        released_ablations.run(tmp_path / "x.json", items=("a", "z"))
    with pytest.raises(ValueError, match="n_small must be at least 1, got 0"):
        released_ablations.run(tmp_path / "x.json", n_small=0)
    assert not (tmp_path / "x.json").exists()

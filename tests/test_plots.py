"""``advlib.plots``: every figure draws from what the book and the CLI give it (any subset of records included)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advlib import comparisons, plots, protocols  # noqa: E402
from advlib.training import training_norm  # noqa: E402
from advlib.training.loop import eps_scale  # noqa: E402
from conftest import acc, make_record  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_directions_figure_has_one_row_per_field(mnist_batch):
    x = mnist_batch[0][:3]
    fields = {"a": torch.randn_like(x), "b": -x}
    fig = plots.directions(x, fields)
    assert len(fig.axes) == 3 * 3
    assert fig.axes[3].get_title() == "a"
    titled = plots.directions(x, fields, titles={"a": ["1", "2", "3"], "b": ["", "", "z"]})
    assert titled.axes[3 + 1].get_title() == "2" and titled.axes[8].get_title() == "z"


def test_table_heatmaps_stack_three_legible_panels_within_page_width():
    from advlib.discovery import best_records

    records = best_records()
    if not records:
        pytest.skip("no committed result records under results/")
    fig = plots.table_heatmaps(records)
    width, height = fig.get_size_inches()
    assert width <= 9.0 and height > width, "the three panels must stack vertically within page width"
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["ours (%)", "paper (%)", "Δ = ours − paper (points)"]
    lefts = {round(ax.get_position().x0, 2) for ax in axes}
    tops = [ax.get_position().y0 for ax in axes]
    assert len(lefts) == 1 and tops == sorted(tops, reverse=True), "panels are not one above the other"
    annotations = [t for t in axes[1].texts if t.get_text()]
    assert len(annotations) == 5 * 12 and min(t.get_fontsize() for t in annotations) >= 10


def test_table_heatmap_columns_use_the_protocols_norm_labels(monkeypatch):
    monkeypatch.setitem(protocols.NORM_LABELS, "linf", "Linf")
    fig = plots.table_heatmaps({"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90))})
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 12 and sum(label.startswith("Linf") for label in labels) == 4
    assert not any("ℓ∞" in label for label in labels) and sum(label.startswith("ℓ2") for label in labels) == 4


def test_training_schedule_plot():
    spec = protocols.QUICK.defenses["madry"]
    eps = pd.DataFrame([{"progress": s / 100, "eps_scale": eps_scale(spec, s, 100), "profile": "quick"}
                        for s in range(101)])
    fig = plots.training_schedule(eps, [training_norm("mix", s) for s in range(8)])
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2


@pytest.mark.parametrize("records", [{}, {"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90))}])
def test_attack_scatter_draws_any_subset(records):
    fig = plots.attack_scatter(comparisons.so_vs_pgd(records))
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes[0].collections) == (2 if records else 0)  # one ℓ2 cross-norm, one ℓ∞ same-norm point


def test_attack_scatter_legend_uses_the_protocols_norm_labels(monkeypatch):
    monkeypatch.setitem(protocols.NORM_LABELS, "l2", "L2")
    frame = comparisons.so_vs_pgd({"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90))})
    legend = [t.get_text() for t in plots.attack_scatter(frame).axes[0].get_legend().get_texts()]
    assert legend == ["L2 attacks, cross-norm cells", "ℓ∞ attacks, other cells"]


@pytest.mark.parametrize("rows", [0, 2])
def test_norm_agnostic_bars_draw_any_subset_without_warnings(rows, recwarn):
    frame = pd.DataFrame({"cell": ["madry-l2", "madry-l2"], "source": ["ours", "paper"], "accuracy": [10.0, 0.0]})
    fig = plots.norm_agnostic_bars(frame.iloc[:rows])
    assert isinstance(fig, plt.Figure) and not [w for w in recwarn if "legend" in str(w.message)]


def test_robustness_curves_one_panel_per_norm_and_records_without_a_block_left_out():
    rec = make_record("msd-union", acc(40, 60, 40, 55))
    rec["extended"] = {"curves": {"PGD-l2": {"eps": [1.0, 2.0], "accuracy": [0.6, 0.3]},
                                  "SO-linf": {"eps": [0.1, 0.3], "accuracy": [0.8, 0.5]}}}
    fig = plots.robustness_curves({"msd-union": rec, "madry-l2": make_record("madry-l2", acc(1, 2, 3, 4))})
    assert len(fig.axes) == 2
    assert [len(ax.lines) > 0 for ax in fig.axes] == [True, True]
    assert fig.axes[0].get_xlabel() == "ε (ℓ2)"


def test_tradeoff_labels_every_point_from_a_threshold():
    frame = pd.DataFrame({"natural": [90.0, 80.0], "PGD ∪ S-O": [10.0, 20.0], "group": ["a", "b"]},
                         index=["madry-linf", "msd-union"])
    fig = plots.tradeoff(frame)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["madry-linf", "msd-union"]
    fig = plots.tradeoff(frame, label_from=15.0)
    assert [t.get_text() for t in fig.axes[0].texts] == ["msd-union"]

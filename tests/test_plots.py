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


# --- Figures a reader can read: at most plots.MAX_SERIES series per axes, legends beside the data, labels apart ---

CELLS_19 = [f"{d}-{n} ({p})" for d in ("atda", "ensemble", "madry", "trades") for n in ("l2", "mix")
            for p in ("large", "medium-h100")] + ["avg-union (medium)", "max-union (medium)", "msd-union (medium)"]


def _curves_record(cell: str, k: int) -> dict:
    rec = make_record(cell.split(" ")[0], acc(40, 60, 40, 55))
    eps = {"l2": [0.5 * i for i in range(1, 9)], "linf": [0.05 * i for i in range(1, 9)]}
    rec["extended"] = {"curves": {f"{attack}-{norm}": {"eps": e, "accuracy": [max(0.0, 0.9 - 0.1 * i - 0.01 * k)
                                                                            for i in range(len(e))]}
                                  for attack in ("PGD", "SO") for norm, e in eps.items()}}
    return rec


def _training_record(cell: str) -> dict:
    rec = make_record(cell, acc(40, 60, 40, 55))
    rec["training"] = [{"epoch": e, "loss": 2.0 / (e + 1)} for e in range(3)]
    return rec


def _crowded_comparison() -> pd.DataFrame:
    """A ``so_vs_pgd``-like frame whose named cross-norm points sit close together (as chapter 4's do at S-O 0 %)."""
    rows = [("madry-linf", "l2", 52.1, 0.0), ("trades-linf", "l2", 62.7, 0.0), ("ensemble-linf", "l2", 57.4, 0.0),
            ("atda-linf", "l2", 58.2, 51.4), ("madry-l2", "linf", 43.8, 48.0), ("atda-l2", "linf", 34.1, 60.4),
            ("trades-l2", "linf", 21.3, 15.5), ("ensemble-l2", "linf", 35.2, 28.9)]
    frame = pd.DataFrame(rows, columns=["cell", "attack_norm", "pgd", "so"]).assign(cross_norm=True)
    other = frame.assign(cross_norm=False, pgd=frame["pgd"] + 5, so=frame["so"] + 3)
    return pd.concat([frame, other], ignore_index=True)


def _crowded_tradeoff() -> pd.DataFrame:
    cells = [f"{d}-{n} ({p})" for d in ("madry", "trades", "atda") for n in ("l2", "mix") for p in "fml"]
    return pd.DataFrame({"natural": [88 + 0.4 * i for i in range(len(cells))],
                         "PGD ∪ S-O": [20 - 0.3 * (i % 7) for i in range(len(cells))],
                         "group": [c[-2] for c in cells]}, index=cells)


def _figures(x: torch.Tensor) -> dict:
    """Every figure function of ``advlib.plots`` drawn on small synthetic inputs, with more series than fit one axes
    wherever the function takes a variable number of them."""
    many = [f"model {k}" for k in range(12)]
    radii = torch.linspace(0, 1, 5)
    spec = protocols.QUICK.defenses["madry"]
    return {
        "perturbations": lambda: plots.perturbations(x[:3], {"PGD": x[:3].flip(-1), "S-O": 1 - x[:3]}),
        "adversarial_examples": lambda: plots.adversarial_examples(x[:3], x[:3].flip(-1), [1, 2, 3], [4, 5, 6]),
        "histograms": lambda: plots.histograms({m: torch.rand(50) + k for k, m in enumerate(many)}, "‖∇ₓL‖₂"),
        "traces": lambda: plots.traces({m: [1.0 + k, 0.5 + k, 0.2 + k] for k, m in enumerate(many)}),
        "slices": lambda: plots.slices(radii, {m: torch.rand(5, 4) + k for k, m in enumerate(many[:10])}),
        "surfaces": lambda: plots.surfaces(radii, {"a": torch.rand(5, 5), "b": torch.rand(5, 5)}, "r₁", "r₂"),
        "lines": lambda: plots.lines(pd.DataFrame([{"t": t, "v": t * k, "image": m} for k, m in enumerate(many)
                                                   for t in range(3)]), x="t", y="v", hue="image"),
        "training_curves": lambda: plots.training_curves({c: _training_record(c) for c in
                                                          ("madry-l2", "madry-linf", "madry-mix", "trades-l2",
                                                           "atda-linf")}),
        "table_heatmaps": lambda: plots.table_heatmaps({"madry-linf": make_record("madry-linf", acc(60, 90, 20, 90))}),
        "directions": lambda: plots.directions(x[:3], {"g": torch.randn_like(x[:3])}),
        "training_schedule": lambda: plots.training_schedule(
            pd.DataFrame([{"progress": s / 10, "eps_scale": eps_scale(spec, s, 10), "profile": p}
                          for s in range(11) for p in ("quick", "full")]), [training_norm("mix", s) for s in range(8)]),
        "attack_scatter": lambda: plots.attack_scatter(_crowded_comparison()),
        "norm_agnostic_bars": lambda: plots.norm_agnostic_bars(pd.DataFrame(
            {"cell": ["madry-l2", "madry-l2", "trades-l2", "trades-l2"], "source": ["ours", "paper"] * 2,
             "accuracy": [10.0, 0.0, 12.0, 3.0]})),
        "robustness_curves": lambda: plots.robustness_curves({c: _curves_record(c, k) for k, c in enumerate(CELLS_19)}),
        "tradeoff": lambda: plots.tradeoff(_crowded_tradeoff(), label_from=5.0),
        "figure1": lambda: plots.figure1({f"run {k}": {"grad_norm": [1.0, 0.5, 0.1 * (k + 1)], "loss": [0.1, 0.5, k]}
                                          for k in range(5)}, paper=["run 0", "run 1", "run 2"]),
        "accuracy_grid": lambda: plots.accuracy_grid(pd.DataFrame([[10.0, 20.0], [30.0, None]], index=["a", "b"],
                                                                  columns=["1", "2"])),
        "union_leaderboard": lambda: plots.union_leaderboard(_leaderboard(20)),
        "curvature_scatter": lambda: plots.curvature_scatter(pd.DataFrame(
            [{"model": m, "grad_norm": 10.0 ** (k / 4 + j), "eigenvalue": 10.0 ** (j - k / 5)}
             for k, m in enumerate(many[:10]) for j in range(3)])),
    }


def _figure_functions() -> set[str]:
    import inspect
    return {name for name, f in vars(plots).items() if inspect.isfunction(f) and not name.startswith("_")
            and f.__module__ == plots.__name__ and inspect.signature(f).return_annotation in (plt.Figure, "plt.Figure")}


def _series(ax) -> int:
    """Series drawn in ``ax``: distinct (colour, line style, marker) of its data lines, distinct colours of its point
    clouds, of its bars and of filled areas not drawn around a line of their colour (histogram steps; a band around a
    line and a heatmap's mesh are not series)."""
    from matplotlib.collections import PathCollection, PolyCollection
    from matplotlib.colors import to_hex
    lines = {(to_hex(line.get_color()), line.get_linestyle(), str(line.get_marker())) for line in ax.lines
             if len(line.get_xdata()) > 1 or str(line.get_marker()) not in ("None", "", " ")}
    points = {to_hex(c.get_facecolor()[0] if len(c.get_facecolor()) else c.get_edgecolor()[0]) + str(c.get_paths()[0])
              for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())}
    bars = {to_hex(p.get_facecolor()) for container in ax.containers for p in container.patches}
    line_colours = {colour for colour, _, _ in lines}
    areas = {to_hex(c.get_edgecolor()[0] if len(c.get_edgecolor()) else c.get_facecolor()[0])
             for c in ax.collections if isinstance(c, PolyCollection) and len(c.get_paths())} - line_colours
    return len(lines) + len(points) + len(bars) + len(areas)


def _overlap(a, b, slack: float = 1.0) -> bool:
    return a.x0 < b.x1 - slack and b.x0 < a.x1 - slack and a.y0 < b.y1 - slack and b.y0 < a.y1 - slack


def test_the_series_test_covers_every_figure_function(mnist_batch):
    assert set(_figures(mnist_batch[0])) == _figure_functions()


@pytest.mark.parametrize("name", sorted(_figure_functions()))
def test_every_figure_has_at_most_max_series_per_axes_and_legends_beside_the_data(name, mnist_batch):
    fig = _figures(mnist_batch[0])[name]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    counts = [_series(ax) for ax in axes]
    assert max(counts) <= plots.MAX_SERIES, f"{name}: {counts} series per axes"
    legends = [(ax, ax.get_legend()) for ax in axes if ax.get_legend() is not None]
    legends += [(None, legend) for legend in fig.legends]
    for owner, legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            assert not _overlap(box, ax.get_window_extent(renderer)), f"{name}: a legend covers an axes' data area"


def test_robustness_curves_facet_nineteen_cells_by_defense_keeping_the_old_call():
    records = {c: _curves_record(c, k) for k, c in enumerate(CELLS_19)}
    fig = plots.robustness_curves(records)
    assert len(fig.axes) == 2 * 5  # atda, ensemble, madry, trades (4 cells each) and the three union cells
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert {label.split(",")[0].split("-")[0] for label in labels} == {"atda"} and len(labels) == 8
    assert fig.get_size_inches()[0] <= 9.5
    one = plots.robustness_curves({"madry-linf (large)": _curves_record("madry-linf (large)", 0)}, per_row=2)
    assert len(one.axes) == 2 and [len(ax.lines) for ax in one.axes] == [2, 2]


@pytest.mark.parametrize("name", ["attack_scatter", "tradeoff"])
def test_point_labels_do_not_overlap(name, mnist_batch):
    fig = _figures(mnist_batch[0])[name]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    assert len(texts) >= 8
    boxes = [t.get_window_extent(renderer) for t in texts]
    clashes = [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i)
               if _overlap(boxes[i], boxes[j])]
    assert not clashes, f"overlapping labels: {clashes}"


def test_chunks_split_evenly():
    assert plots.chunks(range(19), 8) == [list(range(7)), list(range(7, 14)), list(range(14, 19))]
    assert plots.chunks([], 8) == [[]] and plots.chunks("ab", 8) == [["a", "b"]]


def _leaderboard(rows: int) -> pd.DataFrame:
    """A ``union.leaderboard``-shaped frame: ``rows`` of ours (every third without AutoAttack, the last without a
    union accuracy) and two published rows."""
    ours = pd.DataFrame({"union": [60.0 - 2 * k for k in range(rows - 1)] + [float("nan")],
                         "natural": [95.0] * rows, "kind": ["ours"] * rows,
                         "flags": ["no AutoAttack" if k % 3 == 2 else "" for k in range(rows)]},
                        index=[f"model {k} (large)" for k in range(rows)])
    cited = pd.DataFrame({"union": [58.7, 1.4], "natural": [98.0, 99.1], "kind": ["literature"] * 2,
                          "flags": ["cited"] * 2}, index=["MSD (Maini et al. 2020)", "P_inf (Maini et al. 2020)"])
    return pd.concat([ours, cited]).sort_values("union", ascending=False, na_position="last")


def test_union_leaderboard_one_bar_per_ranked_model_published_rows_apart_natural_as_markers():
    frame = _leaderboard(6)
    fig = plots.union_leaderboard(frame)
    ax = fig.axes[0]
    bars = {c.get_label(): len(c.patches) for c in ax.containers}
    assert bars == {plots.UNION_STYLES["ours"]["label"]: 4, plots.UNION_STYLES["ours, no AutoAttack"]["label"]: 1,
                    plots.UNION_STYLES["literature"]["label"]: 2}, "the model without a union value has no bar"
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["model 0 (large)", "MSD (Maini et al. 2020)"]
    (natural,) = ax.lines
    assert len(natural.get_xdata()) == 7
    assert len(ax.get_legend().get_texts()) <= plots.MAX_SERIES
    _, given = plt.subplots()
    assert plots.union_leaderboard(frame, ax=given) is given.figure

"""Every figure of the book and the CLI (matplotlib/seaborn); each function returns a Figure."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from torch import Tensor

from advlib import table
from advlib.protocols import NORM_LABELS, split_cell

#: At most this many series (labelled lines, point groups, bar groups) share one axes; more are faceted.
MAX_SERIES = 8

#: Width (inches) of a figure that fills the book's text column (784 px at the inline backend's 100 dpi) with
#: its legend; figures are drawn at most about this wide so that their fonts keep their size on the page.
COLUMN_WIDTH = 7.8


def chunks(levels: Sequence, size: int = MAX_SERIES) -> list[list]:
    """``levels`` in consecutive groups of at most ``size`` (one axes each), as even as possible."""
    levels = list(levels)
    if not levels:
        return [[]]
    parts = -(-len(levels) // size)
    per = -(-len(levels) // parts)
    return [levels[k:k + per] for k in range(0, len(levels), per)]


def legend_outside(ax, *, handles=None, labels=None, title: str | None = None, fontsize: float = 9, **kwargs):
    """The axes' legend to the right of its data area (the book saves figures with a tight bounding box and
    ``tight_layout`` makes room for it), without a frame; ``None`` when there is nothing to show."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
        if ax.get_legend() is not None and title is None:
            title = ax.get_legend().get_title().get_text() or None
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if not handles:
        return None
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "frameon": False,
               "fontsize": fontsize, "title_fontsize": fontsize, "title": title, **kwargs}
    return ax.legend(handles, labels, **options)


def label_points(ax, xs: Sequence[float], ys: Sequence[float], names: Sequence[str], fontsize: float = 8) -> list:
    """Name the points (``xs[i]``, ``ys[i]``) so that no two names overlap each other or a point: adjustText
    moves them apart and draws a thin leader line where a name had to move. Call after the layout is final."""
    from adjustText import adjust_text
    texts = [ax.text(x, y, name, fontsize=fontsize) for x, y, name in zip(xs, ys, names)]
    if texts:
        points = np.concatenate([np.asarray(c.get_offsets(), dtype=float) for c in ax.collections
                                 if len(c.get_offsets())] or [np.empty((0, 2))])
        points = points[np.isfinite(points).all(axis=1)]
        adjust_text(texts, x=points[:, 0], y=points[:, 1], ax=ax, expand=(1.15, 1.4),
                    arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.6})
    return texts


def _img(ax, image: Tensor, title: str = "", cmap: str = "gray", vlim: float | None = None) -> None:
    arr = image.detach().float().cpu().reshape(28, 28).numpy()
    if vlim is None:
        ax.imshow(arr, cmap=cmap, vmin=0, vmax=1)
    else:
        ax.imshow(arr, cmap=cmap, vmin=-vlim, vmax=vlim)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def perturbations(x: Tensor, adversarial: Mapping[str, Tensor], predictions: Mapping[str, Sequence[int]] | None = None) -> plt.Figure:
    """One digit per column: the clean image, then for each named attack x_adv and x_adv − x."""
    n, rows = x.shape[0], 1 + 2 * len(adversarial)
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.7 * rows), squeeze=False)
    for j in range(n):
        _img(axes[0, j], x[j], "clean" if j == 0 else "")
        for k, (name, xa) in enumerate(adversarial.items()):
            pred = f" → {predictions[name][j]}" if predictions else ""
            _img(axes[1 + 2 * k, j], xa[j], f"{name}{pred}")
            delta = xa[j] - x[j]
            _img(axes[2 + 2 * k, j], delta, "δ" if j == 0 else "", cmap="RdBu_r", vlim=max(float(delta.abs().max()), 1e-6))
    fig.tight_layout()
    return fig


def adversarial_examples(x: Tensor, x_adv: Tensor, labels: Sequence[int], predictions: Sequence[int]) -> plt.Figure:
    """The paper's Figure 2 layout: natural digits above, adversarial ones below with the model's predictions."""
    n = x.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.4), squeeze=False)
    for j in range(n):
        _img(axes[0, j], x[j], f"label {labels[j]}")
        _img(axes[1, j], x_adv[j], f"pred {predictions[j]}")
    fig.tight_layout()
    return fig


def histograms(values: Mapping[str, Tensor], xlabel: str, log: bool = True) -> plt.Figure:
    """Overlaid distributions of a per-example quantity (e.g. ‖∇ₓL‖₂ at natural points) per model."""
    groups = chunks(values)
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.4, 3.2 * len(groups)), squeeze=False, sharex=True)
    for ax, names in zip(axes[:, 0], groups):
        frame = pd.concat([pd.DataFrame({"value": values[k].detach().cpu().numpy(), "model": k}) for k in names])
        sns.histplot(frame, x="value", hue="model", log_scale=log, element="step", stat="density", common_norm=False,
                     ax=ax)
        ax.set_xlabel(xlabel)
        legend_outside(ax)
    fig.tight_layout()
    return fig


def traces(curves: Mapping[str, Sequence[float]], ylabel: str = "mean ‖∇ₓL‖₂ over the batch", log: bool = True) -> plt.Figure:
    """Per-iteration curves of attacks (the paper's Figure 1): one line per label."""
    groups = chunks(curves)
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.4, 3.2 * len(groups)), squeeze=False)
    for ax, names in zip(axes[:, 0], groups):
        for name in names:
            ax.plot(np.arange(len(curves[name])), curves[name], label=name)
        ax.set_xlabel("attack iteration t")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        legend_outside(ax)
    fig.tight_layout()
    return fig


def slices(radii: Tensor, curves: Mapping[str, Tensor], xlabel: str = "distance r along the direction (ℓ2)") -> plt.Figure:
    """1-D loss slices: mean loss (± inter-quartile band over examples) against the radius, per direction."""
    groups = chunks(curves)
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.4, 3.2 * len(groups)), squeeze=False)
    r = radii.cpu().numpy()
    for ax, names in zip(axes[:, 0], groups):
        for k, name in enumerate(names):
            arr = curves[name].detach().cpu().numpy()
            ax.plot(r, arr.mean(1), label=name, color=f"C{k}")
            ax.fill_between(r, *np.percentile(arr, [25, 75], axis=1), alpha=0.2, color=f"C{k}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cross-entropy loss")
        legend_outside(ax)
    fig.tight_layout()
    return fig


def surfaces(radii: Tensor, grids: Mapping[str, Tensor], xlabel: str, ylabel: str) -> plt.Figure:
    """2-D loss surfaces side by side (contour maps of the loss on a radii × radii grid)."""
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 3.6), squeeze=False)
    r = radii.cpu().numpy()
    for ax, (name, grid) in zip(axes[0], grids.items()):
        c = ax.contourf(r, r, grid.detach().cpu().numpy().T, levels=20, cmap="viridis")
        fig.colorbar(c, ax=ax)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def lines(frame: pd.DataFrame, x: str, y: str, hue: str, logx: bool = False, title: str = "") -> plt.Figure:
    """A line plot of a tidy frame (ablations, convergence, training curves): one line per ``hue`` level, at most
    ``MAX_SERIES`` per axes (more levels are split over axes stacked vertically), the legend beside the data."""
    groups = chunks(pd.unique(frame[hue]))
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.4, 3.2 * len(groups)), squeeze=False, sharex=True)
    for k, (ax, levels) in enumerate(zip(axes[:, 0], groups)):
        sns.lineplot(frame[frame[hue].isin(levels)], x=x, y=y, hue=hue, hue_order=levels, marker="o", ax=ax)
        if logx:
            ax.set_xscale("log")
        if k == 0:
            ax.set_title(title, fontsize=10)
        legend_outside(ax, title=hue)
    fig.tight_layout()
    return fig


def training_curves(records: Mapping[str, dict], metric: str = "loss") -> plt.Figure:
    """Per-epoch training ``metric`` of each cell, one panel per defense."""
    rows = [{"epoch": r["epoch"], metric: r.get(metric, np.nan), "defense": split_cell(c)[0], "norm": split_cell(c)[1]}
            for c, rec in records.items() for r in rec["training"]]
    frame = pd.DataFrame(rows, columns=["epoch", metric, "defense", "norm"])
    wrap = min(3, max(1, frame["defense"].nunique()))
    grid = sns.relplot(frame, x="epoch", y=metric, hue="norm", col="defense", col_wrap=wrap, kind="line",
                       marker="o", height=2.3, aspect=1.0)
    return grid.figure


def table_heatmaps(records: Mapping[str, dict]) -> plt.Figure:
    """Ours, the paper's, and Δ = ours − paper (percentage points) for Table 1, as three heatmaps stacked
    vertically (one panel per row, so each stays legible at page width)."""
    ours, paper = table.ours_table(dict(records)), table.paper_table()
    labels = [table.LABELS[r] for r in ours.index]
    # the norm under every column, the defense once under the middle column of its group (no overlapping names)
    norms = list(dict.fromkeys(n for _, n in ours.columns))
    cols = [f"{NORM_LABELS[n]}\n{d if n == norms[len(norms) // 2] else ''}" for d, n in ours.columns]
    fig, axes = plt.subplots(3, 1, figsize=(9, 11.5))
    for ax, frame, title, cmap, center in ((axes[0], ours, "ours (%)", "viridis", None),
                                           (axes[1], paper, "paper (%)", "viridis", None),
                                           (axes[2], ours - paper, "Δ = ours − paper (points)", "RdBu", 0)):
        sns.heatmap(pd.DataFrame(frame.to_numpy(), index=labels, columns=cols), annot=True, fmt=".1f", cmap=cmap,
                    center=center, vmin=None if center == 0 else 0, vmax=None if center == 0 else 100, ax=ax,
                    cbar=False, annot_kws={"fontsize": 11})
        ax.set_title(title, fontsize=12)
        ax.tick_params(axis="x", labelsize=10, rotation=0, length=0)
        ax.tick_params(axis="y", labelsize=10, rotation=0)
        for k in range(len(norms), len(cols), len(norms)):  # white gaps between the defenses
            ax.axvline(k, color="white", lw=4)
    fig.tight_layout()
    return fig


def directions(x: Tensor, vectors: Mapping[str, Tensor], titles: Mapping[str, Sequence[str]] | None = None) -> plt.Figure:
    """Digits in the first row, then one row per named direction field (e.g. ∇ₓL, the top Hessian eigenvector).

    Each direction is drawn on a symmetric red–blue scale of its own per image (sign and shape matter, not
    size); ``titles[name][j]``, if given, labels image j of that row.
    """
    n, rows = x.shape[0], 1 + len(vectors)
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.75 * rows), squeeze=False)
    for j in range(n):
        _img(axes[0, j], x[j], "digit" if j == 0 else "")
        for k, (name, v) in enumerate(vectors.items()):
            title = titles[name][j] if titles else (name if j == 0 else "")
            _img(axes[1 + k, j], v[j], title, cmap="RdBu_r", vlim=max(float(v[j].abs().max()), 1e-12))
    fig.tight_layout()
    return fig


def training_schedule(eps: pd.DataFrame, norms: Sequence[str]) -> plt.Figure:
    """Left: the ε warm-up factor against training progress, one line per ``eps["profile"]`` (columns
    progress, eps_scale, profile). Right: the training norm of each optimiser step of a "mix" model."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [3, 2]})
    sns.lineplot(eps, x="progress", y="eps_scale", hue="profile", ax=left)
    legend_outside(left, title="profile")
    left.set_xlabel("fraction of all optimiser steps")
    left.set_ylabel("ε used / ε of the threat model")
    left.set_title("ε warm-up", fontsize=10)
    levels = ["l2", "linf"]
    right.step(np.arange(len(norms)), [levels.index(n) for n in norms], where="mid", marker="o")
    right.set_yticks([0, 1], ["ℓ2", "ℓ∞"])
    right.set_xlabel("optimiser step")
    right.set_title("Mix: norm of each step's adversarial examples", fontsize=10)
    fig.tight_layout()
    return fig


def attack_scatter(frame: pd.DataFrame) -> plt.Figure:
    """PGD vs S-O accuracy (%) per cell and attack norm (a ``comparisons.so_vs_pgd`` frame); below the diagonal,
    S-O is the stronger attack. Cross-norm cells (model trained in the other single norm) are filled and named,
    the names moved apart where points crowd (``label_points``); the legend sits below the axes."""
    fig, ax = plt.subplots(figsize=(5.6, 5.8))
    ax.plot([0, 100], [0, 100], color="gray", lw=1, ls="--")
    named = []
    for norm, marker in (("l2", "o"), ("linf", "s")):
        part = frame[frame["attack_norm"] == norm]
        for cross, face in ((True, None), (False, "none")):
            sub = part[part["cross_norm"] == cross]
            if len(sub):
                ax.scatter(sub["pgd"], sub["so"], marker=marker, facecolors=face, s=42,
                           edgecolors=f"C{0 if norm == 'l2' else 1}", color=f"C{0 if norm == 'l2' else 1}",
                           label=f"{NORM_LABELS[norm]} attacks, {'cross-norm' if cross else 'other'} cells")
        named += [(r.pgd, r.so, f"{r.cell} ({NORM_LABELS[norm]})") for r in part[part["cross_norm"]].itertuples()]
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("PGD accuracy (%)")
    ax.set_ylabel("S-O accuracy (%)")
    if len(frame):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=9,
                  columnspacing=1.0, handletextpad=0.3)
    fig.tight_layout()
    if named:
        label_points(ax, *zip(*named))
    return fig


def norm_agnostic_bars(frame: pd.DataFrame) -> plt.Figure:
    """Norm-agnostic accuracy (%) per cell, one bar per ``frame["source"]`` (columns cell, source, accuracy)."""
    fig, ax = plt.subplots(figsize=(8.6, 3.4))
    sns.barplot(frame, x="cell", y="accuracy", hue="source", ax=ax)
    ax.set_ylim(0, 100)
    ax.set_ylabel("norm-agnostic accuracy (%)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    if len(frame):
        legend_outside(ax, title="source")
    fig.tight_layout()
    return fig


ATTACK_STYLES = {"PGD": {"ls": "-", "marker": "o"}, "S-O": {"ls": "--", "marker": "^"}}


def _facet_rows(cells: Sequence[str], per_row: int) -> list[list[str]]:
    """The cells, grouped by defense and packed into rows of at most ``per_row`` (whole defenses where they fit)."""
    by_defense: dict[str, list[str]] = {}
    for cell in cells:  # "madry-l2 (large)" → madry
        by_defense.setdefault(str(cell).split(" ")[0].split("-")[0], []).append(cell)
    rows: list[list[str]] = []
    for group in by_defense.values():
        for part in chunks(group, per_row):
            if rows and len(rows[-1]) + len(part) <= per_row:
                rows[-1] += part
            else:
                rows.append(list(part))
    return rows


def robustness_curves(records: Mapping[str, dict], per_row: int = MAX_SERIES // 2) -> plt.Figure:
    """Accuracy (%) against ε from each record's extended block, one panel per norm (columns) and one row of panels
    per group of at most ``per_row`` cells (the cells grouped by defense), so that no panel holds more than
    ``2 × per_row`` lines: one per cell (colour) and attack (PGD solid with circles, S-O dashed with crosses).
    Records without the block are left out; each row has its legend to the right."""
    rows = [{"cell": cell, "attack": name.split("-")[0].replace("SO", "S-O"), "norm": name.split("-")[1], "eps": eps,
             "accuracy (%)": 100 * acc}
            for cell, rec in records.items() for name, curve in rec.get("extended", {}).get("curves", {}).items()
            for eps, acc in zip(curve["eps"], curve["accuracy"])]
    frame = pd.DataFrame(rows, columns=["cell", "attack", "norm", "eps", "accuracy (%)"])
    facets = _facet_rows(list(dict.fromkeys(frame["cell"])), per_row) if len(frame) else [[]]
    fig, axes = plt.subplots(len(facets), 2, figsize=(9.4, 2.5 * len(facets) + 0.4), squeeze=False, sharey=True)
    from matplotlib.lines import Line2D
    for r, cells in enumerate(facets):
        for ax, norm in zip(axes[r], ("l2", "linf")):
            for k, cell in enumerate(cells):
                for attack, style in ATTACK_STYLES.items():
                    part = frame[(frame["cell"] == cell) & (frame["norm"] == norm) & (frame["attack"] == attack)]
                    if len(part):
                        part = part.sort_values("eps")
                        ax.plot(part["eps"], part["accuracy (%)"], color=f"C{k}", lw=1.4, ms=4,
                                label=f"{cell}, {attack}", **style)
            ax.set_ylim(0, 100)
            ax.set_xlabel(f"ε ({NORM_LABELS[norm]})" if r == len(facets) - 1 else "")
            ax.set_ylabel("accuracy (%)" if norm == "l2" else "")
            ax.tick_params(labelsize=9)
        if cells:
            handles = [Line2D([], [], color=f"C{k}", lw=2) for k in range(len(cells))]
            handles += [Line2D([], [], color="0.3", lw=1.4, ms=4, **style) for style in ATTACK_STYLES.values()]
            legend_outside(axes[r, 1], handles=handles, labels=list(cells) + list(ATTACK_STYLES), fontsize=8.5)
    for ax, norm in zip(axes[-1], ("l2", "linf")):
        ax.set_xlabel(f"ε ({NORM_LABELS[norm]})")
    fig.tight_layout()
    return fig


def tradeoff(frame: pd.DataFrame, x: str = "natural", y: str = "PGD ∪ S-O", label_from: float = 0.0) -> plt.Figure:
    """Natural against norm-agnostic accuracy (%), one point per row of ``frame`` (index: cell), coloured by its
    ``group`` column (the legend below the axes), labelled with the cell where ``y`` is at least ``label_from`` (a
    crowd near zero stays unlabelled); the labels are moved apart where points crowd (``label_points``)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH - 0.6, 5.4))
    groups = list(dict.fromkeys(frame["group"])) if "group" in frame else []
    for k, group in enumerate(groups):
        part = frame[frame["group"] == group]
        ax.scatter(part[x], part[y], s=40, color=f"C{k}", label=group, zorder=3)
    ax.set_xlabel(f"{x} accuracy (%)")
    ax.set_ylabel(f"{y} accuracy (%)")
    if groups:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False, fontsize=9)
    fig.tight_layout()
    shown = frame[frame[y] >= label_from]
    label_points(ax, shown[x].tolist(), shown[y].tolist(), [str(c) for c in shown.index], fontsize=7.5)
    return fig


def figure1(traces: Mapping[str, Mapping[str, Sequence[float]]], paper: Sequence[str] = ()) -> plt.Figure:
    """The paper's Figure 1, redrawn with the loss beside it: per attack iteration, the batch-mean ‖∇ₓL‖₂ (left,
    log scale) and the mean loss (right) along each named attack (``traces[name]`` has "grad_norm" and "loss" lists,
    as ``advlib.attacks.Trace``). The curves named in ``paper`` are the paper's, drawn solid in its colours
    (blue, orange, green, in that order); the others are drawn dashed."""
    if len(traces) > MAX_SERIES:
        raise ValueError(f"figure1 draws at most {MAX_SERIES} attacks per panel, got {len(traces)}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    extra = 0
    for name, trace in traces.items():
        if name in paper:
            style = {"color": f"C{list(paper).index(name)}", "lw": 2.2}
        else:
            style = {"color": f"C{len(paper) + extra}", "lw": 1.3, "ls": "--"}
            extra += 1
        for ax, key in ((left, "grad_norm"), (right, "loss")):
            ax.plot(np.arange(len(trace[key])), trace[key], label=name, **style)
    left.set_yscale("log")
    left.set_ylabel("batch-mean ‖∇ₓL‖₂")
    right.set_ylabel("mean cross-entropy loss")
    for ax in (left, right):
        ax.set_xlabel("attack iteration t")
    handles, labels = left.get_legend_handles_labels()
    if handles:
        left.legend(handles, labels, loc="upper center", bbox_to_anchor=(1.1, -0.16), ncol=min(3, len(handles)),
                    frameon=False, fontsize=8.5)
    fig.tight_layout()
    return fig


def accuracy_grid(grid: pd.DataFrame, title: str = "") -> plt.Figure:
    """An annotated heatmap of accuracies (%) on a two-way grid (e.g. rows σ, columns draws of S-O); missing
    cells stay blank."""
    fig, ax = plt.subplots(figsize=(1.4 * grid.shape[1] + 2.2, 0.6 * grid.shape[0] + 1.4))
    sns.heatmap(grid.astype(float), annot=True, fmt=".1f", cmap="viridis", vmin=0, vmax=100, cbar=False, ax=ax,
                annot_kws={"fontsize": 10})
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def curvature_scatter(frame: pd.DataFrame) -> plt.Figure:
    """Per clean point, the dominant eigenvalue of ∇²ₓL against ‖∇ₓL‖₂ (log-log), coloured by ``frame["model"]``
    (columns model, grad_norm, eigenvalue): the flatness of the loss around natural images, model by model."""
    groups = chunks(pd.unique(frame["model"]))
    fig, axes = plt.subplots(len(groups), 1, figsize=(5.6, 4 * len(groups)), squeeze=False, sharex=True, sharey=True)
    for ax, models in zip(axes[:, 0], groups):
        sns.scatterplot(frame[frame["model"].isin(models)], x="grad_norm", y="eigenvalue", hue="model",
                        hue_order=models, s=40, ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("‖∇ₓL‖₂ at the clean image")
        ax.set_ylabel("dominant eigenvalue of ∇²ₓL")
        legend_outside(ax, title="model")
    fig.tight_layout()
    return fig


#: Bar styles of ``union_leaderboard``: our models evaluated with AutoAttack, ours without it, published rows.
UNION_STYLES = {"ours": {"color": "C0", "label": "ours (PGD, S-O, AutoAttack)"},
                "ours, no AutoAttack": {"color": "#9ecae1", "label": "ours, no AutoAttack (flagged)"},
                "literature": {"color": "C1", "hatch": "//", "label": "published (cited; other attacks, ℓ1 in union)"}}


def union_leaderboard(frame: pd.DataFrame, ax=None) -> plt.Figure:
    """A ``union.leaderboard`` frame as horizontal bars: union accuracy (%) per model (index), best on top, natural
    accuracy as a marker; published rows (kind "literature") hatched and coloured apart, ours without AutoAttack
    lighter. Rows without a union accuracy are left out (the table shows them). Draws into ``ax`` if given."""
    rows = frame[frame["union"].notna()]
    if ax is None:
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 1.2 + 0.22 * max(len(rows), 1)))
    fig = ax.figure
    style = np.where(rows["kind"] == "literature", "literature",
                     np.where(rows["flags"].str.contains("no AutoAttack"), "ours, no AutoAttack", "ours"))
    y = np.arange(len(rows))
    for name, options in UNION_STYLES.items():
        chosen = style == name
        if chosen.any():
            ax.barh(y[chosen], rows["union"][chosen], height=0.7, edgecolor="0.3", linewidth=0.4, **options)
    if len(rows):
        ax.plot(rows["natural"], y, ls="none", marker="D", ms=4, color="0.15", label="natural accuracy", clip_on=False)
    ax.set_yticks(y, [str(i) for i in rows.index], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%): union (bars), natural (◆)")
    ax.grid(axis="x", alpha=0.3)
    if len(rows):  # above the bars, where it covers none of them
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2, frameon=False, fontsize=8.5)
    fig.tight_layout()
    return fig

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
    frame = pd.concat([pd.DataFrame({"value": v.detach().cpu().numpy(), "model": k}) for k, v in values.items()])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.histplot(frame, x="value", hue="model", log_scale=log, element="step", stat="density", common_norm=False, ax=ax)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def traces(curves: Mapping[str, Sequence[float]], ylabel: str = "mean ‖∇ₓL‖₂ over the batch", log: bool = True) -> plt.Figure:
    """Per-iteration curves of attacks (the paper's Figure 1): one line per label."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ys in curves.items():
        ax.plot(np.arange(len(ys)), ys, label=name)
    ax.set_xlabel("attack iteration t")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def slices(radii: Tensor, curves: Mapping[str, Tensor], xlabel: str = "distance r along the direction (ℓ2)") -> plt.Figure:
    """1-D loss slices: mean loss (± inter-quartile band over examples) against the radius, per direction."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    r = radii.cpu().numpy()
    for name, losses in curves.items():
        arr = losses.detach().cpu().numpy()
        ax.plot(r, arr.mean(1), label=name)
        ax.fill_between(r, *np.percentile(arr, [25, 75], axis=1), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cross-entropy loss")
    ax.legend(fontsize=8)
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
    """A line plot of a tidy frame (ablations, convergence, training curves)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(frame, x=x, y=y, hue=hue, marker="o", ax=ax)
    if logx:
        ax.set_xscale("log")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(records: Mapping[str, dict], metric: str = "loss") -> plt.Figure:
    """Per-epoch training ``metric`` of each cell, one panel per defense."""
    rows = [{"epoch": r["epoch"], metric: r.get(metric, np.nan), "defense": split_cell(c)[0], "norm": split_cell(c)[1]}
            for c, rec in records.items() for r in rec["training"]]
    grid = sns.relplot(pd.DataFrame(rows), x="epoch", y=metric, hue="norm", col="defense", kind="line",
                       marker="o", height=2.6, aspect=1.0)
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
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [3, 2]})
    sns.lineplot(eps, x="progress", y="eps_scale", hue="profile", ax=left)
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
    S-O is the stronger attack. Cross-norm cells (model trained in the other single norm) are filled and named."""
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 100], [0, 100], color="gray", lw=1, ls="--")
    for norm, marker in (("l2", "o"), ("linf", "s")):
        part = frame[frame["attack_norm"] == norm]
        for cross, face in ((True, None), (False, "none")):
            sub = part[part["cross_norm"] == cross]
            if len(sub):
                ax.scatter(sub["pgd"], sub["so"], marker=marker, facecolors=face,
                           edgecolors=f"C{0 if norm == 'l2' else 1}", color=f"C{0 if norm == 'l2' else 1}",
                           label=f"{NORM_LABELS[norm]} attacks, {'cross-norm' if cross else 'other'} cells")
        for r in part[part["cross_norm"]].itertuples():
            ax.annotate(r.cell, (r.pgd, r.so), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("PGD accuracy (%)")
    ax.set_ylabel("S-O accuracy (%)")
    if len(frame):
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def norm_agnostic_bars(frame: pd.DataFrame) -> plt.Figure:
    """Norm-agnostic accuracy (%) per cell, one bar per ``frame["source"]`` (columns cell, source, accuracy)."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    sns.barplot(frame, x="cell", y="accuracy", hue="source", ax=ax)
    ax.set_ylim(0, 100)
    ax.set_ylabel("norm-agnostic accuracy (%)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    if len(frame):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def robustness_curves(records: Mapping[str, dict]) -> plt.Figure:
    """Accuracy (%) against ε from each record's extended block: one panel per norm, one line per cell and attack
    (PGD and S-O told apart by line style and marker); records without the block are left out."""
    rows = [{"cell": cell, "attack": name.split("-")[0].replace("SO", "S-O"), "norm": name.split("-")[1], "eps": eps,
             "accuracy (%)": 100 * acc}
            for cell, rec in records.items() for name, curve in rec.get("extended", {}).get("curves", {}).items()
            for eps, acc in zip(curve["eps"], curve["accuracy"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    frame = pd.DataFrame(rows, columns=["cell", "attack", "norm", "eps", "accuracy (%)"])
    for ax, norm in zip(axes, ("l2", "linf")):
        part = frame[frame["norm"] == norm]
        if len(part):
            sns.lineplot(part, x="eps", y="accuracy (%)", hue="cell", style="attack", markers=True, ax=ax)
            ax.legend(fontsize=7)
        ax.set_xlabel(f"ε ({NORM_LABELS[norm]})")
        ax.set_ylim(0, 100)
    fig.tight_layout()
    return fig


def tradeoff(frame: pd.DataFrame, x: str = "natural", y: str = "PGD ∪ S-O", label_from: float = 0.0) -> plt.Figure:
    """Natural against norm-agnostic accuracy (%), one point per row of ``frame`` (index: cell), coloured by its
    ``group`` column, labelled with the cell where ``y`` is at least ``label_from`` (a crowd near zero stays
    unlabelled)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sns.scatterplot(frame, x=x, y=y, hue="group", s=60, ax=ax)
    for cell, row in frame[frame[y] >= label_from].iterrows():
        ax.annotate(cell, (row[x], row[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{x} accuracy (%)")
    ax.set_ylabel(f"{y} accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure1(traces: Mapping[str, Mapping[str, Sequence[float]]], paper: Sequence[str] = ()) -> plt.Figure:
    """The paper's Figure 1, redrawn with the loss beside it: per attack iteration, the batch-mean ‖∇ₓL‖₂ (left,
    log scale) and the mean loss (right) along each named attack (``traces[name]`` has "grad_norm" and "loss" lists,
    as ``advlib.attacks.Trace``). The curves named in ``paper`` are the paper's, drawn solid in its colours
    (blue, orange, green, in that order); the others are drawn dashed."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
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
    left.legend(fontsize=7)
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
    fig, ax = plt.subplots(figsize=(5.6, 4))
    sns.scatterplot(frame, x="grad_norm", y="eigenvalue", hue="model", s=40, ax=ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("‖∇ₓL‖₂ at the clean image")
    ax.set_ylabel("dominant eigenvalue of ∇²ₓL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

"""The union leaderboard (issue 24): every model ranked by the share of test images it keeps correct under
every attack in both norms at once, computed per example from the committed records' masks.

A model's *union accuracy* at (ℓ∞ ε 0.3 ∪ ℓ2 ε) is the fraction of test images that are classified correctly on
the clean image and under each attack the record holds in either norm: PGD, S-O and AutoAttack (the AutoAttack way
of combining attacks, Croce & Hein 2020; ``fra31/auto-attack``). Two threat models (``THREATS``): the later
multi-norm literature's ℓ2 ε 2.0, and the paper's ℓ2 ε 4.0, where the data's own bound (``advlib.bounds``) caps
any classifier.
A record that lacks some rows (no AutoAttack, no ℓ2 ε 2.0 rows) is shown with what it has and flagged, never dropped.
Published rows (``table.multinorm_literature``) join the literature's table as cited data, flagged with how they
were measured.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from advlib import bounds, discovery, records
from advlib.formatting import percent
from advlib.protocols import NORM_LABELS
from advlib.specs import EPS, L2_LITERATURE_EPS

#: The attacks whose per-example masks make a norm's worst case, as named in records, with their display names.
ATTACKS = {"PGD": "PGD", "SO": "S-O", "AA": "AA"}
#: Where the leaderboard's records live (folders under ``results/``): Table 1 cells (large, the medium re-run with
#: the extended block, medium, full), the multi-norm cells (medium), the released TRADES model (large, full attacks),
#: the fine-tuned Mix model (variant medium-finetuned, E-AT style).
FOLDERS = ("large", "medium-h100", "medium", "full", "released-large", "released", "variants/medium-finetuned")
#: ``source`` of the published rows.
LITERATURE = "Maini et al. 2020"
COLUMNS = ["source", "profile", "n", "natural", "ℓ∞", "ℓ2", "ℓ2 ε", "union", "ℓ2 bound", "attacks", "flags", "kind"]


@dataclass(frozen=True)
class ThreatModel:
    """ℓ∞ ε ``EPS["linf"]`` ∪ ℓ2 ε ``l2_eps``: per norm, the record rows that attack it; ``literature``: whether
    the published multi-norm rows belong in its table."""

    l2_eps: float
    rows: dict[str, tuple[str, ...]]
    literature: bool

    @property
    def name(self) -> str:
        return f"ℓ∞ ε {EPS['linf']:g} ∪ ℓ2 ε {self.l2_eps:.1f}"


def _rows(norm: str, suffix: str = "") -> tuple[str, ...]:
    return tuple(f"{attack}-{norm}{suffix}" for attack in ATTACKS)


#: The leaderboard's threat models by ℓ2 radius: the literature's (rows "PGD-l2@2", ...) and the paper's.
THREATS = {
    L2_LITERATURE_EPS: ThreatModel(L2_LITERATURE_EPS, {"linf": _rows("linf"),
                                                       "l2": _rows("l2", f"@{L2_LITERATURE_EPS:g}")}, True),
    EPS["l2"]: ThreatModel(EPS["l2"], {"linf": _rows("linf"), "l2": _rows("l2")}, False),
}


def threat(l2_eps: float) -> ThreatModel:
    """The threat model of ``THREATS`` at ℓ2 radius ``l2_eps``; ValueError naming the valid radii otherwise."""
    if isinstance(l2_eps, bool) or not isinstance(l2_eps, (int, float)) or float(l2_eps) not in THREATS:
        raise ValueError(f"l2_eps {l2_eps!r} is not a leaderboard radius; choose one of "
                         f"{', '.join(str(k) for k in THREATS)}")
    return THREATS[float(l2_eps)]


def _bound(norm: str, eps: float, n: int, path: Path | None) -> float:
    """The data's bound (a fraction) at this radius for the first ``n`` test images; NaN where none is computed."""
    if not (path if path is not None else bounds.default_path()).is_file():
        return math.nan
    try:
        return bounds.upper_bound(norm, eps, n, path)
    except ValueError:
        return math.nan


def _attack_names(used: dict[str, list[str]]) -> str:
    labels = {norm: "+".join(ATTACKS[row.split("-")[0]] for row in rows) for norm, rows in used.items()}
    if len(set(labels.values())) == 1:
        return next(iter(labels.values())) or "none"
    return "; ".join(f"{NORM_LABELS[norm]} {label or 'none'}" for norm, label in labels.items())


def _flags(masks: dict[str, torch.Tensor], model: ThreatModel, used: dict[str, list[str]]) -> list[str]:
    """What a record lacks under ``model``: AutoAttack, a whole norm's rows, or single rows of a norm it has."""
    flags = ["no AutoAttack"] if any(r not in masks for rows in model.rows.values() for r in rows
                                     if r.startswith("AA-")) else []
    radius = {"linf": EPS["linf"], "l2": model.l2_eps}
    flags += [f"no {NORM_LABELS[norm]} ε {radius[norm]:g} rows" for norm, rows in used.items() if not rows]
    missing = [r for norm, rows in model.rows.items() if used[norm] for r in rows
               if r not in masks and not r.startswith("AA-")]
    return flags + (["missing " + ", ".join(missing)] if missing else [])


def _percent(mask: torch.Tensor | None) -> float:
    return percent(mask) if mask is not None else math.nan


def model_row(record: dict, model: ThreatModel, *, bounds_path: Path | None = None) -> dict:
    """One leaderboard row (accuracies in %) for ``record`` under ``model``: natural, each norm's worst case
    (clean ∧ every attack row of that norm the record holds), the union over both (NaN if a norm has no row), the
    data's bound on the ℓ2 accuracy for the record's n, the attacks used and flags for what is missing."""
    masks, n = records.all_masks(record), record["n_test"]
    if "Natural" not in masks:
        raise ValueError(f"record {record.get('cell')!r} has no 'Natural' mask; masks: {', '.join(sorted(masks))}")
    used = {norm: [r for r in rows if r in masks] for norm, rows in model.rows.items()}
    worst = {norm: torch.stack([masks["Natural"], *(masks[r] for r in rows)]).all(0) if rows else None
             for norm, rows in used.items()}
    both = None if None in worst.values() else torch.stack(list(worst.values())).all(0)
    l2, bound = _percent(worst["l2"]), _bound("l2", model.l2_eps, n, bounds_path)
    flags = _flags(masks, model, used)
    if not (math.isnan(l2) or math.isnan(bound)) and bounds.exceeds(l2 / 100, "l2", model.l2_eps, n, bounds_path):
        flags.append("ℓ2 above the data's bound")
    return {"profile": record["profile"], "n": n, "natural": _percent(masks["Natural"]),
            "ℓ∞": _percent(worst["linf"]), "ℓ2": l2, "ℓ2 ε": model.l2_eps, "union": _percent(both),
            "ℓ2 bound": 100 * bound, "attacks": _attack_names(used), "flags": "; ".join(flags), "kind": "ours"}


def collect(folders: tuple[str, ...] | None = None, root: str | Path | None = None) -> dict[str, dict]:
    """The records of ``folders`` (default ``FOLDERS``, those present) under ``root`` (``results/``), keyed
    ``"<cell> (<folder>)"``; ValueError for a named folder that does not exist, listing those that do."""
    root = Path(root) if root is not None else discovery.results_root()
    if folders is None:
        folders = tuple(f for f in FOLDERS if (root / f).is_dir())
    absent = [f for f in folders if not (root / f).is_dir()]
    if absent:
        present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ValueError(f"no results folder {', '.join(absent)} under {root}; folders: {', '.join(present)}")
    return {f"{cell} ({folder})": rec for folder in folders
            for cell, rec in discovery.folder_records(folder, root).items()}


def source_of(label: str) -> str:
    """The folder of a ``collect`` label: ``"large"`` for ``"madry-mix (large)"``; "" without one."""
    return label[label.index(" (") + 2:-1] if label.endswith(")") and " (" in label else ""


def literature_rows() -> pd.DataFrame:
    """The published rows (``table.multinorm_literature``) in the leaderboard's columns, at the radii their source
    labels them with; flagged as cited, with the ℓ1 ball inside their union and their attacks (not AutoAttack)."""
    from advlib import table
    lit = table.multinorm_literature()
    rows = {f"{method} ({LITERATURE})": {
        "source": LITERATURE, "profile": "cited", "n": int(r["n_test"]), "natural": r["clean"],
        "ℓ∞": r["linf_0.3"], "ℓ2": r["l2_1.5"], "ℓ2 ε": float(r["eps_l2"]), "union": r["all_attacks"],
        "ℓ2 bound": math.nan, "attacks": r["attacks"],
        "flags": f"cited; radii as labelled by the README (ℓ2 {r['eps_l2']:.1f}, ℓ1 {r['eps_l1']:g}; the later "
                 f"code uses ℓ2 {r['eps_l2_code']:.1f}, ℓ1 {r['eps_l1_code']:g}); ℓ1 in the union; not AutoAttack",
        "kind": "literature"} for method, r in lit.iterrows()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)


def leaderboard(l2_eps: float = L2_LITERATURE_EPS, labelled: dict[str, dict] | None = None, *,
                root: str | Path | None = None, folders: tuple[str, ...] | None = None,
                literature: bool = True) -> pd.DataFrame:
    """The union leaderboard at (ℓ∞ ε 0.3 ∪ ℓ2 ``l2_eps``): one row per record (``labelled``, keyed like
    ``collect``; default ``collect(folders, root)``), plus the published rows when the threat model is the
    literature's and ``literature``; ranked by union accuracy (rows without one last). Index: model; columns
    ``COLUMNS`` (accuracies in %; "ℓ2 bound": the data's bound for the row's n)."""
    model = threat(l2_eps)
    found = labelled if labelled is not None else collect(folders, root)
    path = Path(root) / "bounds.json" if root is not None else None
    rows = {label: {"source": source_of(label), **model_row(rec, model, bounds_path=path)}
            for label, rec in found.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
    if literature and model.literature:
        frame = pd.concat([frame, literature_rows()]) if len(frame) else literature_rows()
    frame = frame.sort_values(["union", "natural"], ascending=False, na_position="last", kind="stable")
    frame.index.name = "model"
    return frame


def best(frame: pd.DataFrame, *, autoattack: bool = False) -> pd.Series:
    """The top row of ``frame`` among our models (kind "ours") with a union accuracy, only among those whose record
    holds AutoAttack in both norms if ``autoattack``; ValueError if none qualifies."""
    ours = frame[(frame["kind"] == "ours") & frame["union"].notna()]
    if autoattack:
        ours = ours[~ours["flags"].str.contains("no AutoAttack")]
    if ours.empty:
        raise ValueError(f"no model of ours with a union accuracy{' under AutoAttack' if autoattack else ''} among "
                         f"{len(frame)} rows")
    return ours.loc[ours["union"].idxmax()]


def shown(frame: pd.DataFrame, decimals: int = 1) -> pd.DataFrame:
    """``frame`` for printing: accuracies rounded, the "kind" column dropped (``source`` says it)."""
    return frame.drop(columns=["kind"]).round({c: decimals for c in ("natural", "ℓ∞", "ℓ2", "union", "ℓ2 bound")})


def command(root: str | Path | None = None) -> None:
    """``python -m advlib union``: both leaderboards, the literature's radius first, then the paper's."""
    from advlib import table
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60,
                           "display.max_rows", None):
        for eps in THREATS:
            frame = leaderboard(eps, root=root)
            print(f"\nUnion leaderboard at {THREATS[eps].name}: accuracy (%) under every attack in both norms, "
                  f"per example; ranked by union")
            print(shown(frame).drop(columns=["flags"]).to_string())
            for flags, labels in frame[frame["flags"] != ""].groupby("flags", sort=False).groups.items():
                print(textwrap.fill(f"{flags}: {', '.join(labels)}", width=120, initial_indent="- ",
                                    subsequent_indent="  ", break_on_hyphens=False))
    note = table.multinorm_literature()["radii_note"].iloc[0]
    print("\n" + textwrap.fill(f"Published rows: {note}", width=120))

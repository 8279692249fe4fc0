"""The union leaderboard (issue 24): every model ranked by the share of test images it keeps correct under
every attack in every norm at once, computed per example from the committed records' masks.

A model's *union accuracy* at (ℓ∞ ε 0.3 ∪ ℓ2 ε [∪ ℓ1 ε]) is the fraction of test images that are classified
correctly on the clean image and under each attack the record holds in any of the norms: PGD, S-O and AutoAttack
(the AutoAttack way of combining attacks, Croce & Hein 2020; ``fra31/auto-attack``). Three threat models
(``THREATS``): the later multi-norm literature's ℓ2 ε 2.0; the paper's ℓ2 ε 4.0, where the data's own bound
(``advlib.bounds``) caps any classifier; and the literature's three norms, ℓ1 ε 10 added (``L1_LITERATURE_EPS``),
where Maini et al.'s published union compares directly. ℓ1 rows are not part of any profile: ``added_rows`` names
them, and ``python -m advlib union-rows`` adds them beside a record (its rows side file).
A record that lacks some rows (no AutoAttack, no ℓ2 ε 2.0 or ℓ1 rows) is shown with what it has and flagged, never
dropped. Published rows (``table.multinorm_literature``, its "final" table) join the literature's threat models as
cited data, flagged with how they were measured.
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
from advlib.protocols import NORM_LABELS, Profile
from advlib.specs import EPS, L1_LITERATURE_EPS, L2_LITERATURE_EPS, AttackSpec
from advlib.strong import AutoAttackSpec

#: The attacks whose per-example masks make a norm's worst case, as named in records, with their display names.
ATTACKS = {"PGD": "PGD", "SO": "S-O", "AA": "AA"}
#: Where the leaderboard's records live (folders under ``results/``): Table 1 cells (large, the medium re-run with
#: the extended block, medium, full), the multi-norm cells (medium), the released TRADES model (large, full attacks),
#: the fine-tuned Mix models (variants medium-finetuned and large-finetuned, E-AT style, and medium-finetuned-l2-2,
#: its ℓ2 training at ε 2.0).
FOLDERS = ("large", "medium-h100", "medium", "full", "released-large", "released", "variants/large-finetuned",
           "variants/medium-finetuned", "variants/medium-finetuned-l2-2")
#: ``source`` of the published rows.
LITERATURE = "Maini et al. 2020"
#: Norms in the order a leaderboard shows them.
NORMS = ("linf", "l2", "l1")
COLUMNS = ["source", "profile", "n", "natural", "ℓ∞", "ℓ2", "ℓ1", "ℓ2 ε", "ℓ1 ε", "union", "ℓ2 bound", "attacks",
           "flags", "train (min)", "device", "kind"]
ACCURACIES = ("natural", "ℓ∞", "ℓ2", "ℓ1", "union", "ℓ2 bound")


@dataclass(frozen=True)
class ThreatModel:
    """The union of an ε-ball per norm (``radii``: norm → ε, ℓ∞ and ℓ2 always): per norm, the record rows that
    attack it; ``literature``: whether the published multi-norm rows belong in its table."""

    radii: dict[str, float]
    rows: dict[str, tuple[str, ...]]
    literature: bool

    @property
    def l2_eps(self) -> float:
        return self.radii["l2"]

    @property
    def l1_eps(self) -> float | None:
        return self.radii.get("l1")

    @property
    def name(self) -> str:
        return " ∪ ".join(f"{NORM_LABELS[n]} ε {eps:.1f}" if n == "l2" else f"{NORM_LABELS[n]} ε {eps:g}"
                          for n, eps in self.radii.items())


def _rows(norm: str, suffix: str = "", attacks: tuple[str, ...] = tuple(ATTACKS)) -> tuple[str, ...]:
    return tuple(f"{attack}-{norm}{suffix}" for attack in attacks)


#: ℓ1 rows: PGD and AutoAttack (S-O is the paper's attack, defined for its two norms' rows only).
L1_ATTACKS = ("PGD", "AA")
_L2_AT_2 = _rows("l2", f"@{L2_LITERATURE_EPS:g}")
#: The leaderboard's threat models: the literature's two norms (rows "PGD-l2@2", ...), the paper's, and the
#: literature's three (rows "PGD-l1@10", "AA-l1@10").
THREATS = {
    "literature": ThreatModel({"linf": EPS["linf"], "l2": L2_LITERATURE_EPS},
                              {"linf": _rows("linf"), "l2": _L2_AT_2}, True),
    "paper": ThreatModel({"linf": EPS["linf"], "l2": EPS["l2"]}, {"linf": _rows("linf"), "l2": _rows("l2")}, False),
    "three norms": ThreatModel({"linf": EPS["linf"], "l2": L2_LITERATURE_EPS, "l1": L1_LITERATURE_EPS},
                               {"linf": _rows("linf"), "l2": _L2_AT_2,
                                "l1": _rows("l1", f"@{L1_LITERATURE_EPS:g}", L1_ATTACKS)}, True),
}


def threat(l2_eps: float, l1_eps: float | None = None) -> ThreatModel:
    """The threat model of ``THREATS`` at ℓ2 radius ``l2_eps`` (and ℓ1 radius ``l1_eps``, None for none);
    ValueError naming the valid radii otherwise."""
    for model in THREATS.values():
        if not isinstance(l2_eps, bool) and model.l2_eps == l2_eps and model.l1_eps == l1_eps:
            return model
    valid = "; ".join(f"l2_eps={m.l2_eps}" + (f", l1_eps={m.l1_eps}" if m.l1_eps else "") for m in THREATS.values())
    raise ValueError(f"l2_eps {l2_eps!r}, l1_eps {l1_eps!r} is not a leaderboard threat model; choose one of: "
                     f"{valid}")


def added_rows(profile: Profile, model: ThreatModel = THREATS["three norms"]) -> dict[str, AttackSpec | AutoAttackSpec]:
    """The ℓ1 rows ``model`` reads (name → spec), which no profile evaluates: PGD-ℓ1 with the profile's PGD steps
    (random start, step 2.5·ε/steps) and AutoAttack's standard ℓ1 version, at ``model``'s ℓ1 radius. Empty for a
    threat model without ℓ1."""
    eps = model.l1_eps
    if eps is None:
        return {}
    steps = profile.evaluation["PGD-linf"].steps
    pgd, aa = model.rows["l1"]
    return {pgd: AttackSpec.pgd("l1", steps=steps, eps=eps), aa: AutoAttackSpec.standard("l1", eps)}


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
    flags += [f"no {NORM_LABELS[norm]} ε {model.radii[norm]:g} rows" for norm, rows in used.items() if not rows]
    missing = [r for norm, rows in model.rows.items() if used[norm] for r in rows
               if r not in masks and not r.startswith("AA-")]
    return flags + (["missing " + ", ".join(missing)] if missing else [])


def _percent(mask: torch.Tensor | None) -> float:
    return percent(mask) if mask is not None else math.nan


def _training_minutes(record: dict) -> float:
    """The record's own training time in minutes (``wall_time["train"]``: the run that made it, so a fine-tuned
    model's fine-tuning only, and a training resumed from a checkpoint its last run only); NaN where it has none or
    that run trained nothing (a released model, a finished checkpoint loaded)."""
    seconds = record.get("wall_time", {}).get("train")
    trained = isinstance(seconds, (int, float)) and seconds > 1  # loading a finished model takes well under 1 s
    return seconds / 60 if trained else math.nan


def model_row(record: dict, model: ThreatModel, *, bounds_path: Path | None = None) -> dict:
    """One leaderboard row (accuracies in %) for ``record`` under ``model``: natural, each norm's worst case
    (clean ∧ every attack row of that norm the record holds; NaN for a norm outside ``model``), the union over all
    of ``model``'s norms (NaN if one has no row), the data's bound on the ℓ2 accuracy for the record's n, the
    attacks used, flags for what is missing, and the record's training time (minutes) and device."""
    masks, n = records.all_masks(record), record["n_test"]
    if "Natural" not in masks:
        raise ValueError(f"record {record.get('cell')!r} has no 'Natural' mask; masks: {', '.join(sorted(masks))}")
    used = {norm: [r for r in rows if r in masks] for norm, rows in model.rows.items()}
    worst = {norm: torch.stack([masks["Natural"], *(masks[r] for r in rows)]).all(0) if rows else None
             for norm, rows in used.items()}
    every = None if None in worst.values() else torch.stack(list(worst.values())).all(0)
    l2, bound = _percent(worst["l2"]), _bound("l2", model.l2_eps, n, bounds_path)
    flags = _flags(masks, model, used)
    start = record.get("config", {}).get("start")
    if start:
        flags.append(f"fine-tuned from {start} (train: the fine-tuning alone)")
    if not (math.isnan(l2) or math.isnan(bound)) and bounds.exceeds(l2 / 100, "l2", model.l2_eps, n, bounds_path):
        flags.append("ℓ2 above the data's bound")
    return {"profile": record["profile"], "n": n, "natural": _percent(masks["Natural"]),
            **{NORM_LABELS[norm]: _percent(worst.get(norm)) for norm in NORMS},
            "ℓ2 ε": model.l2_eps, "ℓ1 ε": model.l1_eps if model.l1_eps is not None else math.nan,
            "union": _percent(every), "ℓ2 bound": 100 * bound, "attacks": _attack_names(used),
            "flags": "; ".join(flags), "train (min)": _training_minutes(record), "device": record.get("device", ""),
            "kind": "ours"}


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


def literature_rows(model: ThreatModel = THREATS["literature"]) -> pd.DataFrame:
    """The published rows (``table.multinorm_literature``, its "final" table: ℓ∞ 0.3, ℓ2 2.0, ℓ1 10) in the
    leaderboard's columns for ``model``: flagged as cited, with their attacks (not AutoAttack), and, where ``model``
    has no ℓ1 ball, with the ℓ1 ball inside their union (which is then at most their union over ``model``'s norms).
    ValueError if the table's radii are not ``model``'s."""
    from advlib import table
    lit = table.multinorm_literature("final")
    radii = {"linf": "eps_linf", "l2": "eps_l2", "l1": "eps_l1"}
    for norm, eps in model.radii.items():
        if not (lit[radii[norm]] == eps).all():
            raise ValueError(f"the published rows are at {NORM_LABELS[norm]} ε {lit[radii[norm]].iloc[0]:g}, "
                             f"not {model.name}")
    extra = "" if model.l1_eps is not None else "; ℓ1 in their union"
    rows = {f"{method} ({LITERATURE})": {
        "source": LITERATURE, "profile": "cited", "n": int(r["n_test"]), "natural": r["clean"],
        "ℓ∞": r["linf"], "ℓ2": r["l2"], "ℓ1": r["l1"] if model.l1_eps is not None else math.nan,
        "ℓ2 ε": float(r["eps_l2"]), "ℓ1 ε": float(r["eps_l1"]) if model.l1_eps is not None else math.nan,
        "union": r["all_attacks"], "ℓ2 bound": math.nan, "attacks": r["attacks"],
        "flags": f"cited{extra}; not AutoAttack", "train (min)": math.nan, "device": "", "kind": "literature"}
        for method, r in lit.iterrows()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)


def leaderboard(l2_eps: float = L2_LITERATURE_EPS, labelled: dict[str, dict] | None = None, *,
                l1_eps: float | None = None, root: str | Path | None = None, folders: tuple[str, ...] | None = None,
                literature: bool = True) -> pd.DataFrame:
    """The union leaderboard at (ℓ∞ ε 0.3 ∪ ℓ2 ``l2_eps`` [∪ ℓ1 ``l1_eps``], ``threat``): one row per record
    (``labelled``, keyed like ``collect``; default ``collect(folders, root)``), plus the published rows when the
    threat model is the literature's and ``literature``; ranked by union accuracy (rows without one last). Index:
    model; columns ``COLUMNS`` (accuracies in %; "ℓ2 bound": the data's bound for the row's n)."""
    model = threat(l2_eps, l1_eps)
    found = labelled if labelled is not None else collect(folders, root)
    path = Path(root) / "bounds.json" if root is not None else None
    rows = {label: {"source": source_of(label), **model_row(rec, model, bounds_path=path)}
            for label, rec in found.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
    if literature and model.literature:
        frame = pd.concat([frame, literature_rows(model)]) if len(frame) else literature_rows(model)
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


#: The goal set for a model trained here (issue 24): a union accuracy at (ℓ∞ 0.3 ∪ ℓ2 2.0) above the best published
#: MNIST figure (Maini et al. 2020's MSD, ``LITERATURE``) by a margin no sampling noise at n = 1,000 explains (a 95 %
#: binomial interval there is about ±3 points), at a natural accuracy within about 1 point of the published
#: multi-norm models' (98-99 %), with AutoAttack in both norms on at least 1,000 test images.
GOAL = {"union": 65.0, "natural": 97.0, "n": 1000}


def goal(frame: pd.DataFrame, target: dict[str, float] = GOAL) -> tuple[bool, pd.Series | None]:
    """Whether one of our models in leaderboard ``frame`` meets ``target`` (union and natural accuracy, %, n; its
    record holding AutoAttack in both norms), and the best union among ours that qualify on natural accuracy and n
    (None if none does)."""
    able = frame[(frame["natural"] >= target["natural"]) & (frame["n"] >= target["n"])]
    try:
        top = best(able, autoattack=True)
    except ValueError:  # none of ours qualifies
        return False, None
    return bool(top["union"] >= target["union"]), top


def shown(frame: pd.DataFrame, decimals: int = 1) -> pd.DataFrame:
    """``frame`` for printing: accuracies rounded, the "kind" column dropped (``source`` says it), and the ℓ1 columns
    too where no row has an ℓ1 accuracy."""
    drop = ["kind"] + (["ℓ1", "ℓ1 ε"] if frame["ℓ1"].isna().all() else [])
    return frame.drop(columns=drop).round({**{c: decimals for c in ACCURACIES}, "train (min)": 1})


def command(root: str | Path | None = None) -> None:
    """``python -m advlib union``: the leaderboard of each threat model of ``THREATS``, the literature's first."""
    from advlib import table
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60,
                           "display.max_rows", None):
        for model in THREATS.values():
            frame = leaderboard(model.l2_eps, l1_eps=model.l1_eps, root=root)
            print(f"\nUnion leaderboard at {model.name}: accuracy (%) under every attack in every norm, "
                  f"per example; ranked by union")
            print(shown(frame).drop(columns=["flags"]).to_string())
            for flags, labels in frame[frame["flags"] != ""].groupby("flags", sort=False).groups.items():
                print(textwrap.fill(f"{flags}: {', '.join(labels)}", width=120, initial_indent="- ",
                                    subsequent_indent="  ", break_on_hyphens=False))
    note = table.multinorm_literature("final")["note"].iloc[0]
    print("\n" + textwrap.fill(f"Published rows: {note}", width=120))

"""Attacks compared per example on result records: PGD vs S-O with a paired test, their union, and one cell run twice.

Each record carries one boolean mask per attack (``advlib.records``): which test examples stayed correct.
Two attacks on the same examples are compared by their discordant pairs, and combined as AutoAttack does: an
example counts as robust only if it survives both.
"""
from __future__ import annotations

import pandas as pd

from advlib import protocols, records as _records
from advlib.stats import sign_test

#: Significance level of the paired sign test, and the margin (points) used when records carry no masks.
ALPHA = 0.05
MARGIN = 1.0
NORMS = ("l2", "linf")


def accuracy_percent(record: dict, entry: str) -> float:
    """A record's accuracy under ``entry`` ("Natural", "PGD-l2", …) in percent; NaN if it has none."""
    return 100.0 * record["accuracy"][entry] if entry in record["accuracy"] else float("nan")


def discordant(record: dict, pgd: str, so: str) -> tuple[int, int] | None:
    """(#PGD right & S-O wrong, #S-O right & PGD wrong) from the per-example masks, or None without masks."""
    masks = record.get("masks") or {}
    if pgd not in masks or so not in masks:
        return None
    n = record["n_test"]
    a, b = _records.unpack_mask(masks[pgd], n), _records.unpack_mask(masks[so], n)
    return int((a & ~b).sum()), int((b & ~a).sum())


def so_vs_pgd(records: dict[str, dict], alpha: float = ALPHA, margin: float = MARGIN) -> pd.DataFrame:
    """PGD vs S-O accuracy (%) per cell and attack norm, with a paired test of which is stronger.

    Columns: cell, defense, train_norm, attack_norm, cross_norm (train norm is the other single norm),
    profile, n_test, pgd, so, delta (so − pgd, points), so_only (#examples only S-O breaks), pgd_only
    (#only PGD breaks), p (two-sided sign test on those), so_stronger: S-O accuracy lower and p < ``alpha``
    (without masks: lower by more than ``margin`` points); pgd_stronger: the same test the other way round.
    """
    rows = []
    for cell, rec in records.items():
        defense, train_norm = protocols.split_cell(cell)
        for norm in NORMS:
            pgd_name, so_name = f"PGD-{norm}", f"SO-{norm}"
            if pgd_name not in rec["accuracy"] or so_name not in rec["accuracy"]:
                continue
            pgd, so = accuracy_percent(rec, pgd_name), accuracy_percent(rec, so_name)
            pairs = discordant(rec, pgd_name, so_name)
            so_only, pgd_only = pairs if pairs is not None else (None, None)
            p = sign_test(*pairs) if pairs is not None else float("nan")
            stronger = (so < pgd and p < alpha) if pairs is not None else (so < pgd - margin)
            weaker = (so > pgd and p < alpha) if pairs is not None else (so > pgd + margin)
            rows.append({"cell": cell, "defense": defense, "train_norm": train_norm, "attack_norm": norm,
                         "cross_norm": train_norm in NORMS and train_norm != norm, "profile": rec["profile"],
                         "n_test": rec["n_test"], "pgd": pgd, "so": so, "delta": so - pgd,
                         "so_only": so_only, "pgd_only": pgd_only, "p": p, "so_stronger": bool(stronger),
                         "pgd_stronger": bool(weaker)})
    columns = ["cell", "defense", "train_norm", "attack_norm", "cross_norm", "profile", "n_test", "pgd", "so",
               "delta", "so_only", "pgd_only", "p", "so_stronger", "pgd_stronger"]
    return pd.DataFrame(rows, columns=columns)


def _where(part: pd.DataFrame) -> str:
    """"madry-linf in ℓ2, trades-linf in ℓ2": the cells and attack norms of a ``so_vs_pgd`` frame's rows."""
    return ", ".join(f"{r.cell} in {protocols.NORM_LABELS[r.attack_norm]}" for r in part.itertuples())


def so_vs_pgd_summary(frame: pd.DataFrame) -> str:
    """A plain sentence: on which recorded cross-norm cells S-O beats PGD, from a ``so_vs_pgd`` frame."""
    cross = frame[frame["cross_norm"]]
    if cross.empty:
        return "No cross-norm cell (ℓ2- or ℓ∞-trained model attacked in the other norm) is recorded yet."
    wins = cross[cross["so_stronger"]]
    losses = cross[cross["pgd_stronger"]]
    reverse = f" PGD is the stronger attack on {_where(losses)}." if len(losses) else ""
    if len(wins) == len(cross):
        return f"S-O beats PGD on every recorded cross-norm cell ({len(cross)} of {len(cross)}: {_where(wins)})."
    if wins.empty:
        return f"S-O does not beat PGD on any recorded cross-norm cell (0 of {len(cross)}: {_where(cross)})." + reverse
    return (f"S-O beats PGD on {len(wins)} of {len(cross)} recorded cross-norm cells ({_where(wins)}); "
            f"it does not on {_where(cross[~cross['so_stronger']])}." + reverse)


def attack_union(records: dict[str, dict]) -> pd.DataFrame:
    """Per cell and norm: accuracy (%) under PGD, under S-O, and under *either* (per-example worst case of the two).

    ``gain`` is how many points S-O adds to PGD when both are run and an example counts as robust only if it
    survives both (the AutoAttack way of combining attacks). Needs per-example masks; cells without are skipped.
    """
    rows = []
    for cell, rec in records.items():
        for norm in NORMS:
            pgd_name, so_name = f"PGD-{norm}", f"SO-{norm}"
            masks = rec.get("masks") or {}
            if pgd_name not in masks or so_name not in masks:
                continue
            n = rec["n_test"]
            a, b = _records.unpack_mask(masks[pgd_name], n), _records.unpack_mask(masks[so_name], n)
            pgd, either = 100.0 * a.float().mean().item(), 100.0 * (a & b).float().mean().item()
            rows.append({"cell": cell, "attack_norm": norm, "profile": rec["profile"], "n_test": n, "pgd": pgd,
                         "so": 100.0 * b.float().mean().item(), "either": either, "gain": pgd - either})
    return pd.DataFrame(rows, columns=["cell", "attack_norm", "profile", "n_test", "pgd", "so", "either", "gain"])


def two_runs(first: dict, second: dict) -> pd.DataFrame:
    """One cell trained and evaluated twice (same profile and seed; another device, say): per row of the paper's
    table, each run's accuracy (%), the difference in points, the test images whose outcome differs (right in one
    run, wrong in the other) and the paired sign test's p-value on them."""
    if (first["cell"], first["n_test"]) != (second["cell"], second["n_test"]):
        raise ValueError(f"two_runs needs two records of one cell on the same test images, got "
                         f"{first['cell']} (n={first['n_test']}) and {second['cell']} (n={second['n_test']})")
    n, rows = first["n_test"], {}
    for entry in protocols.ROWS:
        a, b = (_records.unpack_mask(r["masks"][entry], n) for r in (first, second))
        only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
        rows[entry] = {"first (%)": 100.0 * a.float().mean().item(), "second (%)": 100.0 * b.float().mean().item(),
                       "Δ (points)": 100.0 * (only_b - only_a) / n, "outcome differs": only_a + only_b,
                       "sign test p": sign_test(only_a, only_b)}
    return pd.DataFrame(rows).T.astype({"outcome differs": int})


def accuracy_across(groups: dict[str, dict[str, dict]], entry: str, cells: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """One cell measured in several groups of records (profiles, say): per cell (in the order given) and group that
    records it, its profile, n_test and accuracy (%) under ``entry``.

    Columns: cell, group, profile, n_test, accuracy.
    """
    rows = [{"cell": cell, "group": name, "profile": recs[cell]["profile"], "n_test": recs[cell]["n_test"],
             "accuracy": accuracy_percent(recs[cell], entry)}
            for cell in cells for name, recs in groups.items() if cell in recs]
    return pd.DataFrame(rows, columns=["cell", "group", "profile", "n_test", "accuracy"])


def so_vs_autoattack_totals(cross: pd.DataFrame) -> dict[str, int]:
    """From a ``table.so_vs_autoattack_l2`` frame: how many model × radius pairs, the images S-O breaks that AutoAttack
    leaves correct (in all, and at most in one pair), and the images AutoAttack breaks that S-O leaves correct."""
    so_only = cross["S-O breaks, AutoAttack not"].astype(int)
    aa_only = cross["AutoAttack breaks, S-O not"].astype(int)
    return {"pairs": len(cross), "so_only": int(so_only.sum()), "so_only_max": int(so_only.max()) if len(cross) else 0,
            "autoattack_only": int(aa_only.sum())}

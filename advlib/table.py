"""Table 1 as pandas frames: ours from result records, the paper's (shipped as package data), and Δ; and the rows
beyond the paper (``advlib.extended``: AutoAttack, ℓ2 ε = 2, per-example worst cases) for every cell, the
multi-norm cells included. Table 1's functions ignore records of cells outside it (``table1``)."""
from __future__ import annotations

from importlib import resources

import pandas as pd

from advlib import extended
from advlib import records as records_io
from advlib.protocols import CELLS, DEFENSES, NORM_LABELS, ROWS, TRAIN_NORMS, split_cell

LABELS = {"Natural": "Natural", "PGD-l2": "PGD (ℓ2)", "PGD-linf": "PGD (ℓ∞)", "SO-l2": "S-O (ℓ2)",
          "SO-linf": "S-O (ℓ∞)"}
#: The extended rows, in the order the book and the CLI show them, below the paper's five.
EXTENDED_LABELS = {"AA-l2": "AutoAttack (ℓ2)", "AA-linf": "AutoAttack (ℓ∞)", "Worst-l2": "worst case (ℓ2)",
                   "Worst-linf": "worst case (ℓ∞)", "Union": "norm-agnostic, all attacks",
                   "PGD-l2@2": "PGD (ℓ2, ε=2)", "SO-l2@2": "S-O (ℓ2, ε=2)", "AA-l2@2": "AutoAttack (ℓ2, ε=2)",
                   "Worst-l2@2": "worst case (ℓ2, ε=2)", "Union@2": "norm-agnostic (ℓ2 ε=2, ℓ∞)"}
COLUMNS = pd.MultiIndex.from_product([DEFENSES, TRAIN_NORMS], names=["defense", "train_norm"])


def paper_long() -> pd.DataFrame:
    """The paper's 60 Table 1 numbers: columns attack, defense, train_norm, accuracy_percent."""
    with resources.files("advlib").joinpath("resources/table1_paper.csv").open() as f:
        return pd.read_csv(f)


def _wide(long: pd.DataFrame, value: str) -> pd.DataFrame:
    wide = long.pivot_table(index="attack", columns=["defense", "train_norm"], values=value, aggfunc="first")
    return wide.reindex(index=list(ROWS), columns=COLUMNS)


def paper_table() -> pd.DataFrame:
    """The paper's Table 1 in percent: rows Natural, PGD-l2, PGD-linf, SO-l2, SO-linf; columns defense × norm."""
    return _wide(paper_long(), "accuracy_percent")


def table1(records: dict[str, dict]) -> dict[str, dict]:
    """The records of Table 1's cells (``protocols.CELLS``) alone."""
    return {c: r for c, r in records.items() if c in CELLS}


def ours_long(records: dict[str, dict]) -> pd.DataFrame:
    """Our accuracies (percent) from records keyed by cell, in the paper's long layout, plus the profile."""
    rows = []
    for cell, rec in table1(records).items():
        defense, norm = split_cell(cell)
        for attack in ROWS:
            if attack in rec["accuracy"]:
                rows.append({"attack": attack, "defense": defense, "train_norm": norm,
                             "accuracy_percent": 100 * rec["accuracy"][attack], "profile": rec["profile"]})
    return pd.DataFrame(rows, columns=["attack", "defense", "train_norm", "accuracy_percent", "profile"])


def ours_table(records: dict[str, dict]) -> pd.DataFrame:
    """Our Table 1 in percent (NaN where a cell has no record)."""
    return _wide(ours_long(records), "accuracy_percent")


def comparison(records: dict[str, dict]) -> pd.DataFrame:
    """Long frame: attack, defense, train_norm, profile, ours, paper, delta (ours − paper), in points."""
    ours = ours_long(records).rename(columns={"accuracy_percent": "ours"})
    paper = paper_long().rename(columns={"accuracy_percent": "paper"})
    both = ours.merge(paper, on=["attack", "defense", "train_norm"], how="left")
    both["delta"] = both["ours"] - both["paper"]
    return both[["attack", "defense", "train_norm", "profile", "ours", "paper", "delta"]]


def norm_agnostic(records: dict[str, dict]) -> pd.Series:
    """Per-example worst case over the clean image and all four attacks, percent, per cell."""
    values = {split_cell(c): 100 * r["norm_agnostic"] for c, r in table1(records).items()}
    return pd.Series(values, dtype=float).reindex(COLUMNS)


def side_by_side(records: dict[str, dict], decimals: int = 1) -> pd.DataFrame:
    """One frame of strings "ours / paper (Δ)" per cell: the table the CLI prints."""
    ours, paper = ours_table(records), paper_table()
    fmt = f"{{:.{decimals}f}}"
    out = pd.DataFrame(index=[LABELS[r] for r in ROWS], columns=COLUMNS, dtype=object)
    for i, row in enumerate(ROWS):
        for col in COLUMNS:
            o, p = ours.loc[row, col], paper.loc[row, col]
            out.iloc[i, COLUMNS.get_loc(col)] = "—" if pd.isna(o) else f"{fmt.format(o)} / {fmt.format(p)} ({o - p:+.{decimals}f})"
    out.columns = pd.MultiIndex.from_tuples([(d, NORM_LABELS[n]) for d, n in COLUMNS], names=COLUMNS.names)
    return out


def compact(records: dict[str, dict], decimals: int = 1) -> pd.DataFrame:
    """Table 1 with one row per recorded cell, for a terminal (≤ 120 columns): its profile and test-set size,
    "ours/paper" per attack row (percent), and the norm-agnostic (per-example worst case) accuracy."""
    paper = paper_table()
    rows = []
    for cell, rec in table1(records).items():
        defense, norm = split_cell(cell)
        row = {"cell": f"{defense} {NORM_LABELS[norm]}", "profile": rec["profile"], "n_test": rec["n_test"]}
        for attack in ROWS:
            ours = rec["accuracy"].get(attack)
            theirs = paper.loc[attack, (defense, norm)]
            row[LABELS[attack]] = "—" if ours is None else f"{100 * ours:.{decimals}f}/{theirs:.{decimals}f}"
        row["norm-agnostic"] = f"{100 * rec['norm_agnostic']:.{decimals}f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("cell")


def extended_rows(records: dict[str, dict]) -> pd.DataFrame:
    """Percent per extended row (``EXTENDED_LABELS``, index) and cell (columns, any cell); NaN where a record has
    no extended block (made before it existed, or not yet extended)."""
    columns = {}
    for cell, rec in records.items():
        columns[cell] = pd.Series({k: 100 * v for k, v in extended.row_accuracies(rec).items()}, dtype=float)
    return pd.DataFrame(columns, index=list(EXTENDED_LABELS), dtype=float).rename(index=EXTENDED_LABELS)


def union_summary(records: dict[str, dict]) -> pd.DataFrame:
    """One row per cell: profile, n, natural accuracy, the norm-agnostic accuracy over the paper's four attacks
    and, where the record has the extended block, over all attacks (AutoAttack included) at the paper's radii
    and at ℓ2 ε = 2 (percent; NaN where missing)."""
    rows = []
    for cell, rec in records.items():
        rows_of = extended.row_accuracies(rec)
        share = lambda name: 100 * rows_of.get(name, float("nan"))
        rows.append({"cell": cell, "profile": rec["profile"], "n_test": rec["n_test"],
                     "natural": 100 * rec["accuracy"]["Natural"], "PGD ∪ S-O": 100 * rec["norm_agnostic"],
                     "all attacks": share("Union"), "all attacks, ℓ2 ε=2": share("Union@2")})
    return pd.DataFrame(rows).set_index("cell")


def so_vs_autoattack_l2(records: dict[str, dict]) -> pd.DataFrame:
    """Per record with the extended block and ℓ2 radius (ε 4.0 and 2.0): n, PGD, S-O and AutoAttack accuracy (%) and
    the images each of S-O and AutoAttack breaks that the other leaves correct (per example, same images)."""
    rows = {}
    for name, rec in records.items():
        masks = {**rec["masks"], **rec["extended"]["masks"]}
        for eps, suffix in ((4.0, ""), (2.0, "@2")):
            pgd, so, aa = (records_io.unpack_mask(masks[f"{a}-l2{suffix}"], rec["n_test"]) for a in ("PGD", "SO", "AA"))
            rows[(name, f"ℓ2 ε = {eps}")] = {
                "n": rec["n_test"], "PGD (%)": 100 * pgd.float().mean().item(), "S-O (%)": 100 * so.float().mean().item(),
                "AutoAttack (%)": 100 * aa.float().mean().item(), "S-O breaks, AutoAttack not": int((~so & aa).sum()),
                "AutoAttack breaks, S-O not": int((so & ~aa).sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def diagnostics(records: dict[str, dict]) -> pd.DataFrame:
    """The gradient-masking checklist (``advlib.extended.diagnose``) per cell (columns): "pass" or "FLAG", with the
    measured value; cells without an extended block are left out."""
    columns = {}
    for cell, rec in records.items():
        found = rec.get("extended", {}).get("diagnostics", {})
        if found:
            columns[cell] = {name: f"{'FLAG' if d['flag'] else 'pass'} ({d['value']:.3g})" for name, d in found.items()}
    return pd.DataFrame(columns)


def multinorm_literature() -> pd.DataFrame:
    """Published MNIST accuracies (%) of single- and multi-norm training (``resources/multinorm_literature.csv``):
    Maini, Wong & Kolter 2020 (MAX = "Worst-PGD", AVG = "PGD Aug", MSD), first 1,000 test images, 10 restarts per
    attack, ℓ∞ ε = 0.3, ℓ2 ε = 1.5, ℓ1 ε = 12; "all attacks" is the per-example worst case over all three norms."""
    with resources.files("advlib").joinpath("resources/multinorm_literature.csv").open() as f:
        return pd.read_csv(f).set_index("method")

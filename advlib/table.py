"""Table 1 as pandas frames: ours from result records, the paper's (shipped as package data), and Δ; and the rows
beyond the paper (``advlib.extended``: AutoAttack, ℓ2 ε = 2, per-example worst cases) for every cell, the
multi-norm cells included. Table 1's functions ignore records of cells outside it (``table1``). Also the frames the
book shows about the runs behind the records: their settings, training, wall time and cost."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from advlib import _checks, extended, stats
from advlib import records as records_io
from advlib.protocols import CELLS, DEFENSES, NORM_LABELS, ROWS, TRAIN_NORMS, split_cell
from advlib.verdict import device_label, label

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
    """Long frame: attack, defense, train_norm, profile, n, ours with its exact 95 % binomial interval (ours_low,
    ours_high; ``advlib.stats.binomial_interval`` on the record's n test images), paper, delta (ours − paper), in
    points."""
    ours = ours_long(records).rename(columns={"accuracy_percent": "ours"})
    ours["n"] = [records[f"{d}-{t}"]["n_test"] for d, t in zip(ours["defense"], ours["train_norm"])]
    bounds = [stats.binomial_interval(round(o * n / 100), n) for o, n in zip(ours["ours"], ours["n"])]
    ours["ours_low"], ours["ours_high"] = [100 * b[0] for b in bounds], [100 * b[1] for b in bounds]
    paper = paper_long().rename(columns={"accuracy_percent": "paper"})
    both = ours.merge(paper, on=["attack", "defense", "train_norm"], how="left")
    both["delta"] = both["ours"] - both["paper"]
    return both[["attack", "defense", "train_norm", "profile", "n", "ours", "ours_low", "ours_high", "paper", "delta"]]


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
        rows.append({"cell": cell, "profile": rec["profile"], "n_test": rec["n_test"],
                     "natural": 100 * rec["accuracy"]["Natural"], "PGD ∪ S-O": 100 * rec["norm_agnostic"],
                     "all attacks": 100 * rows_of.get("Union", float("nan")),
                     "all attacks, ℓ2 ε=2": 100 * rows_of.get("Union@2", float("nan"))})
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


#: The versions of Maini et al.'s MNIST table in ``resources/multinorm_literature.csv``: "final", the current
#: README's (ℓ∞ 0.3, ℓ2 2.0, ℓ1 10; it cites the ICML 2020 paper), and "v1", the earlier README's (ℓ2 1.5, ℓ1 12).
LITERATURE_VERSIONS = ("final", "v1")


def multinorm_literature(version: str = "final") -> pd.DataFrame:
    """Published MNIST accuracies (%) of single- and multi-norm training (``resources/multinorm_literature.csv``):
    Maini, Wong & Kolter 2020 (P∞, P2, P1; MAX = "Worst-PGD", AVG = "PGD Aug", MSD), first 1,000 test images
    (``n_test``), 10 restarts per attack (``attacks``: PGD and Foolbox, not AutoAttack), in the table ``version``
    (``LITERATURE_VERSIONS``) at its radii (``eps_linf``, ``eps_l2``, ``eps_l1``; provenance in ``note``). Columns
    ``linf``, ``l2``, ``l1``: each norm's accuracy; ``all_attacks``: the per-example worst case over all three."""
    _checks.choice("version", version, LITERATURE_VERSIONS)
    with resources.files("advlib").joinpath("resources/multinorm_literature.csv").open() as f:
        frame = pd.read_csv(f)
    return frame[frame["version"] == version].set_index("method")


def at_a_glance(records: dict[str, dict], decimals: int = 1) -> pd.DataFrame:
    """One row per record (index cell): profile, n_test, the paper's five rows and the norm-agnostic accuracy, in
    percent rounded to ``decimals``; the columns exist even without records."""
    columns = ["profile", "n_test", *LABELS.values(), "norm-agnostic"]
    rows = [{"cell": cell, "profile": rec["profile"], "n_test": rec["n_test"],
             **{LABELS[k]: round(100 * v, decimals) for k, v in rec["accuracy"].items() if k in LABELS},
             "norm-agnostic": round(100 * rec["norm_agnostic"], decimals)} for cell, rec in records.items()]
    return pd.DataFrame(rows, columns=["cell", *columns]).set_index("cell")


def own_norm_vs_paper(records: dict[str, dict], decimals: int = 1) -> pd.DataFrame:
    """Per ℓ2- or ℓ∞-trained Table 1 cell: profile, n_test, and its own-norm PGD and natural accuracy (%), ours and
    the paper's, rounded to ``decimals``: how close our models come to the paper's where they were trained."""
    paper = paper_table()
    rows = {}
    for cell, rec in table1(records).items():
        defense, norm = split_cell(cell)
        if norm == "mix":
            continue
        rows[cell] = {"profile": rec["profile"], "n_test": rec["n_test"],
                      "own-norm PGD, ours (%)": round(100 * rec["accuracy"][f"PGD-{norm}"], decimals),
                      "own-norm PGD, paper (%)": round(float(paper.loc[f"PGD-{norm}", (defense, norm)]), decimals),
                      "natural, ours (%)": round(100 * rec["accuracy"]["Natural"], decimals),
                      "natural, paper (%)": round(float(paper.loc["Natural", (defense, norm)]), decimals)}
    return pd.DataFrame(rows).T


def delta_by_attack(records: dict[str, dict]) -> pd.DataFrame:
    """Per attack row (index, the paper's order): mean, min and max of Δ = ours − paper over the recorded cells (points),
    and their count."""
    return comparison(records).groupby("attack", sort=False)["delta"].agg(["mean", "min", "max", "count"])


def paper_bound() -> pd.Series:
    """The paper's norm-agnostic upper bound per column (percent): the smallest of its five numbers there."""
    return paper_table().min()


def norm_agnostic_vs_paper(records: dict[str, dict]) -> pd.DataFrame:
    """Per Table 1 column: our norm-agnostic accuracy (%; NaN where unrecorded), the paper's upper bound
    (``paper_bound``) and the profile of our record ("—" where none)."""
    frame = pd.DataFrame({"ours (%)": norm_agnostic(records), "paper, upper bound (%)": paper_bound()})
    frame["profile"] = [records[f"{d}-{n}"]["profile"] if f"{d}-{n}" in records else "—" for d, n in frame.index]
    return frame


def norm_agnostic_sources(records: dict[str, dict]) -> pd.DataFrame:
    """Long frame (cell, source, accuracy %) of our norm-agnostic accuracy per recorded Table 1 cell, the source naming
    every record's profile and n_test, followed by the paper's upper bound for the same cells."""
    records = table1(records)
    sources = "; ".join(sorted({label(r) for r in records.values()}))
    bound = paper_bound()
    return pd.concat([
        pd.DataFrame({"cell": list(records), "source": f"ours ({sources})",
                      "accuracy": [100 * r["norm_agnostic"] for r in records.values()]}),
        pd.DataFrame({"cell": list(records), "source": "paper (min over rows, an upper bound)",
                      "accuracy": [float(bound[split_cell(c)]) for c in records]}),
    ])


def wall_seconds(record: dict) -> dict[str, float]:
    """A record's wall time in seconds: "training", and "evaluation" summed over its attacks."""
    return {"training": record["wall_time"]["train"], "evaluation": sum(record["wall_time"]["evaluate"].values())}


def runs(records: dict[str, dict]) -> pd.DataFrame:
    """Per record (index cell), the run behind it: profile, training and test-set sizes, epochs, the training and
    evaluation attacks' steps, device and wall time (training + evaluation, whole seconds)."""
    return pd.DataFrame({c: {
        "profile": r["profile"], "n_train": r["data"]["n_train"], "n_test": r["n_test"],
        "epochs": r["config"]["defenses"][split_cell(c)[0]]["epochs"],
        "training PGD steps": r["config"]["train_attack"]["linf"]["steps"],
        "PGD steps (eval)": r["config"]["evaluation"]["PGD-l2"]["steps"],
        "S-O steps × draws": "{steps} × {samples}".format(**r["config"]["evaluation"]["SO-l2"]),
        "device": r["device"],
        "train + eval time (s)": round(wall_seconds(r)["training"] + wall_seconds(r)["evaluation"]),
    } for c, r in records.items()}).T


def training_summary(records: dict[str, dict]) -> pd.DataFrame:
    """Per record (index cell): profile, n_train, epochs, the last epoch's loss (3 decimals) and adversarial training
    accuracy (%, 1 decimal), and the training time (whole seconds)."""
    return pd.DataFrame({c: {"profile": r["profile"], "n_train": r["data"]["n_train"], "epochs": len(r["training"]),
                             "final loss": round(r["training"][-1]["loss"], 3),
                             "final adv_acc (%)": round(100 * r["training"][-1]["adv_acc"], 1),
                             "training time (s)": round(r["wall_time"]["train"])} for c, r in records.items()}).T


def accuracy_and_cost(records: dict[str, dict]) -> pd.DataFrame:
    """Per record (index cell): its accuracies (%) under the paper's rows and the norm-agnostic one, n_test, the device
    in a word (``verdict.device_label``) and the training and evaluation wall time in minutes."""
    return pd.DataFrame({c: {
        **{f"{LABELS[k]} (%)": 100 * v for k, v in r["accuracy"].items()},
        "norm-agnostic (%)": 100 * r["norm_agnostic"], "n_test": r["n_test"], "device": device_label(r["device"]),
        "training (min)": wall_seconds(r)["training"] / 60, "evaluation (min)": wall_seconds(r)["evaluation"] / 60,
    } for c, r in records.items()}).T.infer_objects().astype({"n_test": int})


def released_vs_paper(record: dict) -> pd.DataFrame:
    """The TRADES authors' released model (``record``) next to the paper's TRADES ℓ∞ column: accuracy (%) per row of
    the paper's table, ours, the paper's, and Δ = ours − paper (points)."""
    column = paper_table()[("trades", "linf")]
    frame = pd.DataFrame({
        f"released model, ours ({record['profile']}, n = {record['n_test']:,})":
            {LABELS[k]: 100 * v for k, v in record["accuracy"].items()},
        "paper, TRADES ℓ∞": {LABELS[k]: v for k, v in column.items()}})
    frame["Δ (points)"] = frame.iloc[:, 0] - frame.iloc[:, 1]
    return frame


def extension_cost(record: dict, sample: dict) -> pd.Series:
    """Seconds per stage for one cell on one machine: training and the paper's five rows from ``record``, then each
    part of the extended block and its total from ``sample`` (``tools/extension_cost.py``'s output, timed on a sample
    of the test images and scaled to ``sample["n_test"]``)."""
    block = sample["extended_wall_time_extrapolated"]
    seconds = wall_seconds(record)
    return pd.Series({"training": seconds["training"], "the paper's five rows": seconds["evaluation"],
                      **{f"extended: {k}": v for k, v in block.items() if k != "total"},
                      "extended block, total": block["total"]}, name=f"seconds (n = {sample['n_test']:,})")


def search_precision_cost(doc: dict) -> pd.DataFrame:
    """From ``benchmarks/aa_speed.py``'s output: per row and attack of AutoAttack's cascade (then the row's total),
    seconds with an fp32 and with a bf16 search on the same images, and the speed-up."""
    out = {}
    for row, r in doc["rows"].items():
        for attack in r["seconds"]["fp32"]:
            out[(row, attack)] = {p: r["seconds"][p][attack] for p in ("fp32", "bf16")}
        out[(row, "total")] = dict(r["total_seconds"])
    frame = pd.DataFrame(out).T.rename(columns={"fp32": "fp32 search (s)", "bf16": "bf16 search (s)"})
    frame["speed-up"] = frame.iloc[:, 0] / frame.iloc[:, 1]
    return frame


def search_precision_check(doc: dict) -> pd.DataFrame:
    """From ``benchmarks/aa_speed.py``'s output: per row, AutoAttack's robust accuracy (%) with each search (fp32
    verdict), the difference (points) and the images robust only under the bf16 search (attacks it missed)."""
    return pd.DataFrame.from_dict({row: {
        "fp32 search (%)": 100 * r["accuracy"]["fp32"], "bf16 search (%)": 100 * r["accuracy"]["bf16"],
        "Δ (points)": 100 * (r["accuracy"]["bf16"] - r["accuracy"]["fp32"]),
        "missed by bf16": r["robust_only_in_bf16"]} for row, r in doc["rows"].items()}, orient="index")


def search_time_split(doc: dict) -> pd.DataFrame:
    """From ``benchmarks/aa_profile.py``'s output: per row and attack of AutoAttack's cascade (then the total over
    all, whose points are the images), the points it attacked, its seconds, those inside the model's forward and
    backward passes, the rest (the attack's own code) and the model's share (%)."""
    out = {(row, attack): a for row, r in doc["rows"].items() for attack, a in r["attacks"].items()}
    frame = pd.DataFrame.from_dict(out, orient="index")[["points", "seconds", "forward_s", "backward_s"]]
    total = frame.sum().to_frame(("all rows", "total")).T.assign(points=doc["n"])
    frame = pd.concat([frame, total])
    frame["attack's own code (s)"] = frame["seconds"] - frame["forward_s"] - frame["backward_s"]
    frame["model share (%)"] = 100 * (frame["forward_s"] + frame["backward_s"]) / frame["seconds"]
    return frame.rename(columns={"forward_s": "model forward (s)", "backward_s": "model backward (s)"})


def effort_flags(flags: pd.DataFrame) -> tuple[int, int]:
    """(flagged, checked): of the more-effort checks in a ``diagnostics`` frame (more steps, random restarts), how many
    entries are flagged, and how many there are."""
    effort = flags.loc[[name for name in flags.index if "steps" in name or "restarts" in name]]
    return int(effort.stack().str.startswith("FLAG").sum()), int(effort.size)


def worst_cases(records: dict[str, dict]) -> pd.DataFrame:
    """Per record (index): clean accuracy and, from the extended block, the per-example worst case in ℓ∞ (ε 0.3), in
    ℓ2 at ε 2 and over both at once with every attack (%; NaN without the block): the layout of the multi-norm
    literature (``multinorm_literature``)."""
    wide = extended_rows(records)
    return pd.DataFrame({cell: {"clean": 100 * rec["accuracy"]["Natural"],
                                "ℓ∞ ε=0.3, worst case": wide.loc["worst case (ℓ∞)", cell],
                                "ℓ2 ε=2, worst case": wide.loc["worst case (ℓ2, ε=2)", cell],
                                "norm-agnostic (ℓ2 ε=2, ℓ∞), all attacks": wide.loc[EXTENDED_LABELS["Union@2"], cell]}
                         for cell, rec in records.items()}).T


def best_norm_agnostic(summary: pd.DataFrame, wide: pd.DataFrame, multinorm_group: str) -> pd.DataFrame:
    """The best norm-agnostic accuracy (%) of several groups of models, one row each where it has a value: "paper's
    defenses" (every ``union_summary`` group but ``multinorm_group``; where = "cell, group"), "multi-norm" (where = the
    cell; natural = its clean accuracy), "all attacks" and "all attacks, ℓ2 ε=2" (the extended rows of ``wide``, an
    ``extended_rows`` frame; where = its column) and "every model" (all of ``summary``). Columns: accuracy, where,
    natural, models (how many models the best is taken over). ``summary`` is indexed (group, cell)."""
    rows = {}
    agnostic = summary["PGD ∪ S-O"]
    groups = summary.index.get_level_values(0)
    paper = agnostic[groups != multinorm_group]
    if len(paper):
        group, cell = paper.idxmax()
        rows["paper's defenses"] = {"accuracy": paper.max(), "where": f"{cell}, {group}", "models": len(paper)}
    if multinorm_group in groups:
        multi = summary.xs(multinorm_group, level=0)
        best = multi["PGD ∪ S-O"].idxmax()
        rows["multi-norm"] = {"accuracy": multi["PGD ∪ S-O"].max(), "where": best,
                              "natural": multi.loc[best, "natural"], "models": len(multi)}
    for name, key in (("all attacks", "Union"), ("all attacks, ℓ2 ε=2", "Union@2")):
        row = EXTENDED_LABELS[key]
        values = wide.loc[row].dropna() if row in wide.index else pd.Series(dtype=float)
        if len(values):
            rows[name] = {"accuracy": values.max(), "where": values.idxmax(), "models": len(values)}
    if len(agnostic):
        rows["every model"] = {"accuracy": agnostic.max(), "where": agnostic.idxmax(), "models": len(agnostic)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["accuracy", "where", "natural", "models"])


#: The attack rows of Table 1 and the norm each is measured in.
ATTACK_NORMS = {"PGD-l2": "l2", "PGD-linf": "linf", "SO-l2": "l2", "SO-linf": "linf"}


def against_bound(records: dict[str, dict], path: str | Path | None = None) -> pd.DataFrame:
    """Every Table 1 attack cell set against the data's own bound (``advlib.bounds``): the most any classifier can
    keep at the row's radius on the test images it was measured on. One row per (cell, attack): the paper's
    accuracy (10,000 test images) and its bound, ours with its profile, n and the bound of its own images (%),
    whether each lies above its bound (then it cannot be a robust accuracy: the attack failed on some image), and
    "above": which of the two does ("paper", "ours", "both" or "—")."""
    from advlib import bounds
    from advlib.specs import EPS
    paper, rows = paper_table(), []
    for cell in CELLS:
        defense, norm = split_cell(cell)
        for attack, attack_norm in ATTACK_NORMS.items():
            theirs = paper.loc[attack, (defense, norm)]
            paper_bound = 100 * bounds.upper_bound(attack_norm, EPS[attack_norm], 10_000, path)
            row = {"cell": cell, "attack": attack, "paper (%)": theirs, "bound, 10k (%)": paper_bound,
                   "paper above": bounds.exceeds(theirs / 100, attack_norm, EPS[attack_norm], 10_000, path)}
            rec = records.get(cell)
            if rec is not None and attack in rec["accuracy"]:
                eps = rec["config"]["evaluation"][attack]["eps"]
                row.update({"ours (%)": 100 * rec["accuracy"][attack], "profile": rec["profile"], "n": rec["n_test"],
                            "bound, our n (%)": 100 * bounds.upper_bound(attack_norm, eps, rec["n_test"], path),
                            "ours above": bounds.exceeds(rec["accuracy"][attack], attack_norm, eps, rec["n_test"],
                                                         path)})
            row["above"] = {(True, True): "both", (True, False): "paper", (False, True): "ours"}.get(
                (bool(row["paper above"]), bool(row.get("ours above", False))), "—")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["cell", "attack"])

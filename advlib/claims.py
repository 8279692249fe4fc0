"""The paper's five claims about Table 1, checked against result records (or against the paper's own numbers).

Each ``claimN`` function takes records keyed by cell (``advlib.discovery.best_records()``; a subset is fine)
and returns ``(evidence, verdict)``: a tidy DataFrame of the numbers the verdict rests on, each row labelled
with its record's profile and n_test, and a ``Verdict`` whose text quotes those numbers. ``verdicts``
runs all five. The criteria are explicit module constants (percentage points); ``paper_records`` turns the
paper's Table 1 into pseudo-records, and with them every claim is "supported": the criteria encode what
the paper says (the book asserts that).

Claims (Li, Chen, Wang, Carin 2019, §5):

1. Madry's and TRADES models are robust to PGD in their own training norm.
2. S-O breaks the ℓ∞-trained Madry/TRADES models in ℓ2 (cross-norm), while PGD-ℓ2 does not.
3. Mixing ℓ2/ℓ∞ examples in training barely helps norm-agnostic robustness.
4. Ensemble adversarial training and ATDA partly fix the issue.
5. PGD and S-O give similar accuracies on ensemble-trained models.
"""
from __future__ import annotations

import math

import pandas as pd

from advlib import comparisons, protocols, stats, table
from advlib.protocols import NORM_LABELS, split_cell
from advlib.stats import format_p
from advlib.verdict import Verdict, coverage, grade, label, percent_text, provenance

#: Own-norm PGD accuracy (%) at or above which a model counts as robust (the paper's four cells: ≥ 91.7 %).
ROBUST = 80.0
#: Accuracy (%) at or above which an attack "does not break" a model (the model still holds).
HOLDS = 50.0
#: Drop (points) from PGD to S-O accuracy that counts as S-O breaking a model PGD does not.
BREAK_DROP = 20.0
#: Norm-agnostic accuracy (%) below which robustness is still "unsatisfying".
UNSATISFYING = 50.0
#: Largest gain (points) of Mix over the better single-norm model that still counts as "barely helps".
BARELY = 30.0
#: Accuracy (%) at or below which an attack has reduced a model "to almost zero" (the paper, §5, on Mix: "no longer
#: reduced to almost zero"): between its single-norm models' cross-norm S-O accuracies (0.0-3.2 %) and the smallest
#: of its Mix cells' attack rows (14.5 %).
ALMOST_ZERO = 10.0
#: Smallest gain (points) of ensemble/ATDA over Madry/TRADES norm-agnostic accuracy that counts as a partial fix.
FIX_GAIN = 10.0
#: Largest |S-O − PGD| (points) that counts as "similar".
SIMILAR = 5.0
#: The paper's S-O accuracy at ℓ2 ≤ 2.0 on its ℓ∞-trained TRADES model (§5: "accuracy 41.04%"), the radius of the
#: later multi-norm literature (``advlib.specs.L2_LITERATURE_EPS``).
PAPER_SO_L2_2 = 41.04
#: The cells claim 6 reads, best evidence first: the TRADES authors' released model (the paper's most likely
#: model, ``advlib.released``), then our ℓ∞-trained TRADES.
CLAIM6_CELLS = ("trades-released", "trades-linf")
#: Gap (points) PGD-ℓ2 − S-O-ℓ2 on the TRADES authors' released model beyond which the paper's central observation
#: (S-O breaks in ℓ2 what PGD does not) holds on it: more than half the test set (the paper's own gap: 88.5 points).
RELEASED_GAP = 50.0
#: Images by which AutoAttack's accuracy may exceed S-O's on one model and radius and AutoAttack still count as "at
#: least as strong": a handful of images is within the noise of a random start.
AUTOATTACK_SLACK = 5
#: Norm-agnostic accuracy (%) at which a model "keeps half of the test images correct under both norms at once".
KEEPS_HALF = 50.0
STATEMENTS = {
    1: "Madry and TRADES are robust to PGD in their own training norm",
    2: "S-O breaks ℓ∞-trained Madry/TRADES in ℓ2 (cross-norm) while PGD-ℓ2 does not",
    3: "mixing ℓ2/ℓ∞ training: no attack reduces it to almost zero, yet it barely helps norm-agnostic robustness",
    4: "ensemble AT and ATDA partly fix the issue",
    5: "PGD and S-O give similar accuracy on ensemble-trained models",
    6: "S-O at ℓ2 ≤ 2.0 still breaks the ℓ∞-trained TRADES model (the paper: 41.04 % accuracy)",
}


def _agnostic(record: dict) -> float:
    return 100.0 * record["norm_agnostic"]


def claim1(records: dict[str, dict], robust: float = ROBUST, holds: float = HOLDS) -> tuple[pd.DataFrame, Verdict]:
    """Own-norm PGD accuracy of madry/trades × l2/linf: robust if ≥ ``robust`` %.

    Supported if every recorded cell is robust; partly if at least one holds (≥ ``holds`` %); else not.
    """
    cells = [f"{d}-{n}" for d in ("madry", "trades") for n in comparisons.NORMS]
    rows = [{"cell": c, "profile": records[c]["profile"], "n_test": records[c]["n_test"],
             "natural": comparisons.accuracy_percent(records[c], "Natural"), "own_norm_pgd": comparisons.accuracy_percent(records[c], f"PGD-{split_cell(c)[1]}")}
            for c in cells if c in records]
    frame = pd.DataFrame(rows, columns=["cell", "profile", "n_test", "natural", "own_norm_pgd"])
    frame["robust"] = frame["own_norm_pgd"] >= robust
    if frame.empty:
        return frame, Verdict(1, STATEMENTS[1], "no records", "none of madry/trades × ℓ2/ℓ∞ is recorded")
    n_robust, n_hold = int(frame["robust"].sum()), int((frame["own_norm_pgd"] >= holds).sum())
    verdict = "supported" if n_robust == len(frame) else ("partly supported" if n_hold else "not supported")
    text = "; ".join(f"{r.cell}: {r.own_norm_pgd:.1f} % under own-norm PGD ({r.profile}, n={r.n_test})"
                     for r in frame.itertuples())
    text += f". Robust means ≥ {robust:.0f} % (the paper's four cells are ≥ 91.7 %): {n_robust} of {len(frame)}"
    return frame, Verdict(1, STATEMENTS[1], verdict, text + coverage(len(frame), len(cells)) + ".")


def claim2(records: dict[str, dict], holds: float = HOLDS, drop: float = BREAK_DROP) -> tuple[pd.DataFrame, Verdict]:
    """madry-linf and trades-linf in ℓ2: PGD-ℓ2 holds (≥ ``holds`` %) and S-O-ℓ2 is ≥ ``drop`` points lower.

    Supported if both parts hold on every recorded cell; partly if on some; else not (the text says which
    part fails: PGD-ℓ2 already breaking the model, or S-O not beating it).
    """
    cells = ["madry-linf", "trades-linf"]
    frame = comparisons.so_vs_pgd({c: records[c] for c in cells if c in records})
    frame = frame[frame["attack_norm"] == "l2"].reset_index(drop=True)
    frame["pgd_holds"] = frame["pgd"] >= holds
    frame["so_breaks"] = frame["delta"] <= -drop
    if frame.empty:
        return frame, Verdict(2, STATEMENTS[2], "no records", "neither madry-linf nor trades-linf is recorded")
    ok = int((frame["pgd_holds"] & frame["so_breaks"]).sum())
    parts = []
    for r in frame.itertuples():
        why = []
        if not r.pgd_holds:
            why.append(f"PGD-ℓ2 already breaks it (< {holds:.0f} %)")
        if not r.so_breaks:
            why.append(f"S-O is not ≥ {drop:.0f} points below PGD")
        test = "" if math.isnan(r.p) else f", paired sign test p {format_p(r.p)}"
        parts.append(f"{r.cell}: PGD-ℓ2 {r.pgd:.1f} %, S-O-ℓ2 {r.so:.1f} % (Δ {r.delta:+.1f} points{test}; "
                     f"{r.profile}, n={r.n_test})" + (" — " + " and ".join(why) if why else ""))
    return frame, Verdict(2, STATEMENTS[2], grade(ok, len(frame)),
                          "; ".join(parts) + coverage(len(frame), len(cells)) + ".")


def claim3(records: dict[str, dict], unsatisfying: float = UNSATISFYING, barely: float = BARELY,
           almost_zero: float = ALMOST_ZERO) -> tuple[pd.DataFrame, Verdict]:
    """The paper's two halves on the Mix cells: every attack row stays above ``almost_zero`` % ("no longer reduced
    to almost zero") and the norm-agnostic accuracy vs the better single-norm cell, per defense.

    For madry and trades, mixing "barely helps" if the Mix model's norm-agnostic accuracy stays below
    ``unsatisfying`` % and (when the ℓ2/ℓ∞ cells are recorded) gains less than ``barely`` points over the better of
    them. Supported if both halves hold for every recorded Mix cell of the two; partly if for one; else not.
    """
    rows = []
    for defense in protocols.DEFENSES:
        cells = {n: records.get(f"{defense}-{n}") for n in protocols.TRAIN_NORMS}
        if cells["mix"] is None:
            continue
        single = [_agnostic(r) for n, r in cells.items() if n != "mix" and r is not None]
        best = max(single) if single else float("nan")
        mix = _agnostic(cells["mix"])
        attacks = {k: v for k, v in cells["mix"]["accuracy"].items() if k != "Natural"}
        weakest = min(attacks, key=attacks.get)
        rows.append({"defense": defense, "profile": cells["mix"]["profile"], "n_test": cells["mix"]["n_test"],
                     "l2": _agnostic(cells["l2"]) if cells["l2"] else float("nan"),
                     "linf": _agnostic(cells["linf"]) if cells["linf"] else float("nan"),
                     "mix": mix, "gain": mix - best, "weakest_attack": weakest,
                     "weakest": 100.0 * attacks[weakest]})
    frame = pd.DataFrame(rows, columns=["defense", "profile", "n_test", "l2", "linf", "mix", "gain", "weakest_attack",
                                        "weakest"])
    frame["not_zero"] = frame["weakest"] > almost_zero
    frame["barely_helps"] = (frame["mix"] < unsatisfying) & ~(frame["gain"] >= barely)
    judged = frame[frame["defense"].isin(["madry", "trades"])]
    if judged.empty:
        return frame, Verdict(3, STATEMENTS[3], "no records", "neither madry-mix nor trades-mix is recorded")
    parts = [f"{r.defense}: Mix {r.mix:.1f} % norm-agnostic vs ℓ2 {percent_text(r.l2)} / ℓ∞ {percent_text(r.linf)} "
             f"(gain {'unknown' if math.isnan(r.gain) else f'{r.gain:+.1f} points'}), its weakest attack "
             f"{r.weakest_attack} {r.weakest:.1f} % ({r.profile}, n={r.n_test})" for r in judged.itertuples()]
    text = "; ".join(parts)
    text += (f". No attack reduces Mix to almost zero means every attack row > {almost_zero:.0f} %; barely helps "
             f"means Mix stays < {unsatisfying:.0f} % and gains < {barely:.0f} points")
    both = judged["not_zero"] & judged["barely_helps"]
    return frame, Verdict(3, STATEMENTS[3], grade(int(both.sum()), len(judged)), text + coverage(len(judged), 2) + ".")


def claim4(records: dict[str, dict], gain: float = FIX_GAIN) -> tuple[pd.DataFrame, Verdict]:
    """Norm-agnostic accuracy of ensemble/ATDA vs Madry/TRADES for the ℓ∞ and Mix training norms.

    Supported if the ensemble/ATDA mean exceeds the Madry/TRADES mean by ≥ ``gain`` points (a partial fix:
    the text also says how far from ideal they stay); not supported otherwise; "no records" when either
    group has no recorded cell. ℓ2 training is left out: in the paper every ℓ2-trained model falls to
    about 0 % under ℓ∞ attacks, so the paper claims no fix there.
    """
    rows = [{"cell": c, "defense": split_cell(c)[0], "train_norm": split_cell(c)[1],
             "group": "ensemble/ATDA" if split_cell(c)[0] in ("ensemble", "atda") else "Madry/TRADES",
             "profile": records[c]["profile"], "n_test": records[c]["n_test"], "norm_agnostic": _agnostic(records[c])}
            for c in protocols.CELLS if c in records and split_cell(c)[1] in ("linf", "mix")]
    frame = pd.DataFrame(rows, columns=["cell", "defense", "train_norm", "group", "profile", "n_test", "norm_agnostic"])
    means = frame.groupby("group")["norm_agnostic"].mean()
    if len(means) < 2:
        return frame, Verdict(4, STATEMENTS[4], "no records",
                              "needs ℓ∞/Mix cells of both ensemble/ATDA and Madry/TRADES; recorded: "
                              + (", ".join(frame["cell"]) or "none"))
    diff = means["ensemble/ATDA"] - means["Madry/TRADES"]
    best = frame[frame["group"] == "ensemble/ATDA"]["norm_agnostic"].max()
    text = (f"mean norm-agnostic accuracy over the recorded ℓ∞/Mix cells: "
            f"ensemble/ATDA {means['ensemble/ATDA']:.1f} % "
            f"vs Madry/TRADES {means['Madry/TRADES']:.1f} % (gain {diff:+.1f} points; a fix needs ≥ {gain:.0f}); "
            f"the best ensemble/ATDA cell reaches {best:.1f} % ({provenance({c: records[c] for c in frame['cell']})})")
    return frame, Verdict(4, STATEMENTS[4], "supported" if diff >= gain else "not supported",
                          text + coverage(len(frame), 8) + ".")


def claim5(records: dict[str, dict], similar: float = SIMILAR) -> tuple[pd.DataFrame, Verdict]:
    """|S-O − PGD| per attack norm on the ensemble cells: similar if ≤ ``similar`` points.

    Supported if every recorded pair is similar; partly if at least half are; else not.
    """
    frame = comparisons.so_vs_pgd({c: r for c, r in records.items() if c.startswith("ensemble-")})
    frame["similar"] = frame["delta"].abs() <= similar
    if frame.empty:
        return frame, Verdict(5, STATEMENTS[5], "no records", "no ensemble cell is recorded")
    ok = int(frame["similar"].sum())
    verdict = "supported" if ok == len(frame) else ("partly supported" if 2 * ok >= len(frame) else "not supported")
    parts = [f"{r.cell} {NORM_LABELS[r.attack_norm]}: PGD {r.pgd:.1f} % vs S-O {r.so:.1f} % (Δ {r.delta:+.1f})"
             for r in frame.itertuples()]
    text = (f"{ok} of {len(frame)} pairs within {similar:.0f} points — " + "; ".join(parts)
            + f" ({provenance({c: records[c] for c in frame['cell'].unique()})})")
    return frame, Verdict(5, STATEMENTS[5], verdict, text + coverage(frame["cell"].nunique(), 3) + ".")


def claim6(records: dict[str, dict], similar: float = SIMILAR, drop: float = BREAK_DROP) -> tuple[pd.DataFrame, Verdict]:
    """S-O at ℓ2 ε = 2.0 on TRADES-ℓ∞ (``CLAIM6_CELLS``: the released model's record under its cell name, and
    trades-linf), from the extended block's "SO-l2@2" and "PGD-l2@2" rows.

    "Still breaks" means S-O leaves at most the paper's accuracy plus ``similar`` points and, where PGD at the same
    radius is recorded, ``drop`` points fewer than PGD. Supported if so on every recorded cell; partly if on some;
    else not. The text also says whether the number itself matches the paper's (its 95 % binomial interval)."""
    rows = []
    for cell in CLAIM6_CELLS:
        block = records.get(cell, {}).get("extended", {}).get("accuracy", {})
        if "SO-l2@2" not in block:
            continue
        n = records[cell]["n_test"]
        so, pgd = 100 * block["SO-l2@2"], 100 * block.get("PGD-l2@2", float("nan"))
        low, high = stats.binomial_interval(round(so * n / 100), n)
        rows.append({"cell": cell, "profile": records[cell]["profile"], "n_test": n, "so": so, "pgd": pgd,
                     "so_low": 100 * low, "so_high": 100 * high})
    frame = pd.DataFrame(rows, columns=["cell", "profile", "n_test", "so", "pgd", "so_low", "so_high"])
    if frame.empty:
        return frame, Verdict(6, STATEMENTS[6], "no records", "needs the ℓ2 ε = 2 rows of the extended block on "
                              f"{' or '.join(CLAIM6_CELLS)}; none of the records given has them")
    frame["breaks"] = (frame["so"] <= PAPER_SO_L2_2 + similar) & ~(frame["pgd"] - frame["so"] < drop)
    frame["matches_paper"] = (frame["so_low"] <= PAPER_SO_L2_2) & (PAPER_SO_L2_2 <= frame["so_high"])
    parts = [f"{r.cell}: S-O-ℓ2 at ε = 2 {r.so:.1f} % (95 % interval {r.so_low:.1f}-{r.so_high:.1f}), PGD "
             f"{percent_text(r.pgd)} ({r.profile}, n={r.n_test})" for r in frame.itertuples()]
    text = (f"{'; '.join(parts)}. Still breaks means S-O ≤ {PAPER_SO_L2_2:g} + {similar:.0f} % and ≥ {drop:.0f} "
            f"points below PGD; the paper's {PAPER_SO_L2_2:g} % itself lies inside the interval of "
            f"{int(frame['matches_paper'].sum())} of {len(frame)}")
    return frame, Verdict(6, STATEMENTS[6], grade(int(frame["breaks"].sum()), len(frame)), text + ".")


CLAIMS = {1: claim1, 2: claim2, 3: claim3, 4: claim4, 5: claim5, 6: claim6}


def verdicts(records: dict[str, dict]) -> pd.DataFrame:
    """All six verdicts as a frame: claim, statement, verdict, evidence."""
    return pd.DataFrame([vars(CLAIMS[k](records)[1]) for k in sorted(CLAIMS)])


def paper_records() -> dict[str, dict]:
    """The paper's Table 1 as pseudo-records (profile "paper-table", n_test 10000, no masks).

    The paper reports no per-example results, so ``norm_agnostic`` is the minimum over its five rows: an
    upper bound on the per-example worst case.
    """
    wide = table.paper_table()
    out = {}
    for defense, norm in wide.columns:
        acc = {row: float(wide.loc[row, (defense, norm)]) / 100.0 for row in protocols.ROWS}
        out[f"{defense}-{norm}"] = {"cell": f"{defense}-{norm}", "profile": "paper-table", "n_test": 10_000,
                                    "accuracy": acc, "norm_agnostic": min(acc.values()), "masks": {}, "training": []}
    out["trades-linf"]["extended"] = {"accuracy": {"SO-l2@2": PAPER_SO_L2_2 / 100}}  # §5; PGD there not reported
    return out


def verdict_table(groups: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """The verdicts on each group of records (column per group name), after a "statement" column; rows by claim."""
    frame = pd.DataFrame({name: verdicts(recs).set_index("claim")["verdict"] for name, recs in groups.items()})
    frame.insert(0, "statement", pd.Series(STATEMENTS))
    return frame


def brief(records: dict[str, dict]) -> str:
    """The verdicts in one line: "claim 1 supported; claim 2 not supported; …"."""
    return "; ".join(f"claim {v.claim} {v.verdict}" for v in verdicts(records).itertuples())


def released_gap_holds(record: dict, gap: float = RELEASED_GAP) -> bool:
    """Whether S-O-ℓ2 leaves more than ``gap`` points fewer test images correct than PGD-ℓ2 on ``record`` (the
    paper's central observation, checked on the TRADES authors' released model)."""
    return (comparisons.accuracy_percent(record, "PGD-l2") - comparisons.accuracy_percent(record, "SO-l2")) > gap


def autoattack_at_least_as_strong(cross: pd.DataFrame, slack: int = AUTOATTACK_SLACK) -> bool:
    """Whether, on every row of a ``table.so_vs_autoattack_l2`` frame, AutoAttack's accuracy is at most ``slack``
    images above S-O's."""
    return bool((cross["AutoAttack (%)"] <= cross["S-O (%)"] + 100 * slack / cross["n"]).all())


def keeps_half(norm_agnostic: pd.Series, threshold: float = KEEPS_HALF) -> bool:
    """Whether any model's norm-agnostic accuracy (%, one value per model) reaches ``threshold``."""
    return bool((norm_agnostic >= threshold).any())


#: Claims that join a thesis (the ℓ∞-trained models are not robust in ℓ2: some attack breaks them) to a mechanism
#: (S-O breaks what PGD, a first-order attack, does not): claim → (the thesis, its cells, the ℓ2 radius's row suffix,
#: the accuracy (%) at or below which a model counts as broken). Judged with the strongest attacks, the two can differ.
THESES = {
    2: ("ℓ∞-trained Madry/TRADES are not robust in ℓ2 at ε = 4.0: the strongest attack leaves them below "
        f"{HOLDS:.0f} %", ("madry-linf", "trades-linf"), "", HOLDS),
    6: ("the ℓ∞-trained TRADES model is not robust in ℓ2 at ε = 2.0: the strongest attack leaves it at most "
        f"{PAPER_SO_L2_2:g} + {SIMILAR:.0f} %", CLAIM6_CELLS, "@2", PAPER_SO_L2_2 + SIMILAR),
}


def thesis(claim: int, records: dict[str, dict]) -> Verdict:
    """``THESES[claim]`` on ``records`` (with the extended block): the per-example worst case over every ℓ2 attack
    the record holds (clean, PGD, S-O, AutoAttack) at the thesis' radius, per cell."""
    from advlib import extended  # claims is imported by modules that extended imports
    statement, cells, suffix, broken = THESES[claim]
    parts, ok = [], 0
    for cell in cells:
        worst = extended.derived_rows(records[cell]).get(f"Worst-l2{suffix}") if cell in records else None
        if worst is None:
            continue
        value = 100 * worst.float().mean().item()
        ok += value <= broken
        parts.append(f"{cell}: {value:.1f} % under every ℓ2 attack at once ({label(records[cell])})")
    text = "; ".join(parts) if parts else "no record with the extended block"
    return Verdict(claim, statement, grade(ok, len(parts)), text + ".")


#: Why a claim's verdict changes when AutoAttack joins PGD (shown where the two verdicts differ; the numbers are in
#: each verdict's evidence).
WHY_STRONGER = {
    1: "AutoAttack breaks the ℓ2-trained models in their own norm further than PGD-40 does",
    2: "AutoAttack, a first-order attack, breaks in ℓ2 what PGD-40 with the cross-entropy leaves: the models are "
       "not ℓ2-robust (the thesis), but S-O is not needed to show it (the mechanism fails)",
    3: "counted with AutoAttack, the Mix models are reduced to almost zero after all, so the claim's first half fails",
    4: "counted with AutoAttack, the ensemble and ATDA models lose the norm-agnostic gain that PGD-40 credited them with",
    5: "AutoAttack lowers the PGD rows of the ensemble models, so PGD and S-O no longer agree",
    6: "AutoAttack at ε = 2.0 leaves fewer images correct than S-O: the model is broken, but not only by S-O",
}


def headlines(best: dict[str, dict], strong: dict[str, dict]) -> pd.DataFrame:
    """One headline verdict per claim, judged with the strongest attacks (``strong``: records passed through
    ``advlib.extended.strengthened``, PGD ∪ AutoAttack per example), claims 2 and 6 split into their thesis and
    the claim as stated; beside each, the verdict on ``best`` (the largest test sets, PGD + S-O as the paper ran
    them) and, where the two differ, why."""
    on_best, on_strong = verdicts(best).set_index("claim"), verdicts(strong).set_index("claim")
    rows = []
    for claim in sorted(CLAIMS):
        readings = [(f"{claim}: thesis", thesis(claim, strong), None)] if claim in THESES else []
        readings.append((f"{claim}: as stated" if claim in THESES else str(claim),
                         Verdict(claim, STATEMENTS[claim], *on_strong.loc[claim, ["verdict", "evidence"]]),
                         on_best.loc[claim, "verdict"]))
        for name, v, other in readings:
            why = WHY_STRONGER[claim] if other is not None and other != v.verdict else ""
            rows.append({"claim": name, "statement": v.statement, "verdict": v.verdict, "evidence": v.evidence,
                         "paper's attacks, largest test sets": other if other is not None else "—",
                         "why they differ": why})
    return pd.DataFrame(rows)


#: Every threshold of the claims (the keyword of ``claimN``) with its value and its reason: the book prints it.
THRESHOLDS = {
    "robust": (ROBUST, "own-norm PGD accuracy (%) at which a model counts as robust: well above chance and "
                       "below the paper's own four cells (≥ 91.7 %), so weaker training can still pass"),
    "holds": (HOLDS, "accuracy (%) at which an attack \"does not break\" a model: it keeps most test images"),
    "drop": (BREAK_DROP, "points S-O must lie below PGD to \"break\" what PGD does not: four times the "
                         "±5-point agreement band, and far beyond binomial noise at n ≥ 1,000 (±3 points)"),
    "unsatisfying": (UNSATISFYING, "norm-agnostic accuracy (%) below which robustness is still \"unsatisfying\": "
                                   "the model fails on most images under some attack"),
    "barely": (BARELY, "largest gain (points) of Mix over the better single-norm model that still \"barely "
                       "helps\": the paper's own Mix gains are up to 18 points"),
    "almost_zero": (ALMOST_ZERO, "accuracy (%) at or below which an attack has reduced a model \"to almost zero\": "
                                 "between the paper's single-norm cross-norm S-O numbers (0.0-3.2 %) and its "
                                 "smallest Mix row (14.5 %)"),
    "gain": (FIX_GAIN, "norm-agnostic gain (points) of ensemble/ATDA over Madry/TRADES that counts as a partial "
                       "fix: twice the agreement band"),
    "similar": (SIMILAR, "largest |S-O − PGD| (points) that counts as \"similar\": the book's ±5-point agreement "
                         "band, about the 95 % binomial half-width at n = 1,000 and p = 0.5 (3.1) plus run-to-run "
                         "spread"),
}


def flip_points(records: dict[str, dict], step: float = 1.0) -> pd.DataFrame:
    """Where each verdict would flip: per claim and threshold, its value, the verdict there and the nearest values
    (on a grid of ``step`` points over 0-100) below and above it at which the verdict differs (NaN: none)."""
    import inspect
    grid = [i * step for i in range(int(100 / step) + 1)]
    rows = []
    for claim, check in CLAIMS.items():
        here = check(records)[1].verdict
        for name, param in inspect.signature(check).parameters.items():
            if name == "records":
                continue
            other = {v: check(records, **{name: v})[1].verdict for v in grid}
            below = [v for v in grid if v < param.default and other[v] != here]
            above = [v for v in grid if v > param.default and other[v] != here]
            rows.append({"claim": claim, "threshold": name, "value": param.default, "verdict": here,
                         "flips below": below[-1] if below else float("nan"),
                         "to": other[below[-1]] if below else "—",
                         "flips above": above[0] if above else float("nan"),
                         "to ": other[above[0]] if above else "—",
                         "reason": THRESHOLDS[name][1]})
    return pd.DataFrame(rows)

"""The gradient-masking checklist as a reader can use it: per model a short pass/flag summary, each check with its
threshold stated and its source, computed from the values ``advlib.extended.diagnose`` stored in a record's extended
block (nothing is re-run, and the block's own ``flag`` fields, judged by ``advlib.extended``'s fixed thresholds, are
not used).

The stored checklist mixes three questions, which this module keeps apart:

* **masking** — could the attacks be fooled, so that an accuracy is too high for a reason no amount of the same
  attack fixes? Zero gradients, accuracy at very large radii, curves that rise with ε, and a black-box attack
  (Square) that breaks images every white-box attack left correct.
* **convergence** — has PGD with the paper's 40 steps converged? 4× the steps or the worst of 5 random starts
  lowering the accuracy says the PGD row overstates robustness: the attack is short, not the model masked.
  A drop counts only when it exceeds what ``n`` test images can resolve (``resolution``) and one point.
* **implementation** — is S-O with σ = 0 exactly PGD without a random start? A check of our attack code, not of the
  model: reported, never counted as masking.

Sources (section numbers of Carlini et al. 2019, "On Evaluating Adversarial Robustness", arXiv:1902.06705, as in the
authors' LaTeX source of 18 February 2019; AutoAttack: Croce & Hein 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", and its checks, ``autoattack/checks.py`` and
``flags_doc.md`` in fra31/auto-attack) are in ``RULES``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

#: z of the two-sided ≈95 % interval: an accuracy p measured on n images is known to about ± Z·√(p(1−p)/n).
Z = 2.0
#: The smallest more-effort drop that counts, in accuracy (advlib.extended.MORE_EFFORT_DROP): one point.
MIN_DROP = 0.01
#: Square may lower the white-box robust accuracy by at most this (AutoAttack's ``check_square_sr(alpha=.002)``).
SQUARE_ALPHA = 0.002
#: Accuracy of random guessing among MNIST's 10 classes: the ceiling at "high" distortion (Carlini et al. §5.2).
CHANCE = 0.10
#: The largest rise of an accuracy-vs-ε curve that is not counted (advlib.extended.MONOTONE_SLACK): one point.
MONOTONE_SLACK = 0.01
NORMS = ("l2", "linf")
NORM_TEXT = {"l2": "ℓ2", "linf": "ℓ∞"}
#: Summary cells keep their words together (a no-break space), so a narrow column does not split "0.5 pt".
NBSP = "\u00a0"


def resolution(p: float, n: int) -> float:
    """What ``n`` test images can resolve of an accuracy ``p`` (a fraction): ``Z`` binomial standard errors,
    Z·√(p(1−p)/n). 0.029 for p = 0.3 on 1,000 images; 0.009 on 10,000. ``ValueError`` for n < 1 or p outside [0, 1]."""
    if n < 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"need n ≥ 1 and 0 ≤ p ≤ 1, got n = {n}, p = {p}")
    return Z * math.sqrt(p * (1 - p) / n)


@dataclass(frozen=True)
class Rule:
    """One check as a reader meets it: what it asks, which of the three meanings it has, when it flags and why."""

    name: str
    meaning: str  # "masking", "convergence" or "implementation"
    flags_when: str
    source: str


RULES: dict[str, Rule] = {
    "zero gradient": Rule(
        "Zero gradients", "masking",
        "share of test images with ‖∇ₓL‖₂ < 1e-6 at the clean image above what n images resolve of the PGD "
        "accuracies it could inflate (the smaller of the two norms')",
        "Carlini et al. §4.7 (gradients that vanish); AutoAttack's zero-gradient flag"),
    "large radius": Rule(
        "Large ε", "masking",
        "PGD accuracy at ℓ∞ ε = 0.5 or ℓ2 ε = 10 above chance (10 %)",
        "Carlini et al. §5.2 (at high distortion, accuracy at the level of random guessing) and §5.3"),
    "monotone": Rule(
        "Monotone in ε", "masking",
        "any accuracy-vs-ε curve (PGD, S-O, both norms) rising by more than 1 point as ε grows",
        "Carlini et al. §5.2 (a larger budget must not lower attack success)"),
    "black box": Rule(
        "Square", "masking",
        "the black-box Square attack lowering the white-box robust accuracy by more than 0.2 points",
        "Carlini et al. §4.4 and §5.4 (white-box attacks must beat black-box ones); AutoAttack's Square flag "
        "(alpha = 0.002)"),
    "steps": Rule(
        "4× steps", "convergence",
        "PGD with 4× the steps lowering PGD-40's accuracy by more than max(1 point, what n images resolve)",
        "Carlini et al. §4.8 (more iterations must not increase attack success)"),
    "restarts": Rule(
        "5 restarts", "convergence",
        "the worst of 5 random starts lowering PGD-40's accuracy by more than max(1 point, what n images resolve)",
        "Carlini et al. §4.9 (random starts must not change the result significantly)"),
    "S-O σ=0": Rule(
        "S-O σ = 0 is PGD", "implementation",
        "S-O with σ = 0 and PGD without a random start ending on different images (largest pixel gap > 0)",
        "a check of advlib's attack code (docs: chapter 4); exact on a CPU "
        "(tests/test_extended.py::test_s_o_without_noise_is_pgd_exactly_on_a_real_robust_model_on_a_cpu)"),
}


@dataclass(frozen=True)
class Result:
    """One check of one model: ``value`` and ``threshold`` as fractions of the test set (accuracy) except for the
    S-O gap (a pixel value); ``flag`` True when the value exceeds the threshold; ``norm`` None when it spans both."""

    check: str
    norm: str | None
    value: float
    threshold: float
    flag: bool
    n: int

    @property
    def meaning(self) -> str:
        return RULES[self.check].meaning


def _diagnostics(record: dict) -> dict:
    found = record.get("extended", {}).get("diagnostics")
    if not found:
        raise ValueError(f"record {record.get('cell')!r} ({record.get('profile')}) has no extended block with "
                         "diagnostics: add it with `python -m advlib reproduce --extended`")
    return found


def assess(record: dict) -> list[Result]:
    """Every check of ``record`` (a record with its extended block, as ``advlib.records.assemble`` returns it),
    judged by ``RULES`` from its stored diagnostics, its ``n_test`` and its PGD accuracies. A check the block lacks
    (a block without AutoAttack's Square has no black-box check) is left out. ``ValueError`` without a block."""
    d, n = _diagnostics(record), record["n_test"]
    pgd = {norm: record["accuracy"][f"PGD-{norm}"] for norm in NORMS}
    out = []
    if "zero gradient" in d:
        limit = min(resolution(p, n) for p in pgd.values())
        out.append(Result("zero gradient", None, d["zero gradient"]["value"], limit,
                          d["zero gradient"]["value"] > limit, n))
    for norm in NORMS:
        if f"large radius {norm}" in d:
            value = d[f"large radius {norm}"]["value"]
            out.append(Result("large radius", norm, value, CHANCE, value > CHANCE, n))
    if "monotone in ε" in d:
        value = d["monotone in ε"]["value"]
        out.append(Result("monotone", None, value, MONOTONE_SLACK, value > MONOTONE_SLACK, n))
    for norm in NORMS:
        entry = d.get(f"black box {norm}")
        if entry is not None:  # the share of the white-box-robust images (entry n) Square breaks, in whole images
            broken = round(entry["value"] * entry["n"])
            out.append(Result("black box", norm, broken / n, SQUARE_ALPHA, broken > SQUARE_ALPHA * n, n))
    for norm in NORMS:
        limit = max(MIN_DROP, resolution(pgd[norm], n))
        for check, key in (("steps", f"x steps {norm}"), ("restarts", f"restarts {norm}")):
            found = [v for k, v in d.items() if k.endswith(key)]
            if found:
                out.append(Result(check, norm, found[0]["value"], limit, found[0]["value"] > limit, n))
    for norm in NORMS:
        entry = d.get(f"S-O σ=0 = PGD {norm}")
        if entry is not None:
            out.append(Result("S-O σ=0", norm, entry["value"], 0.0, entry["value"] > 0.0, n))
    return out


def _points(value: float) -> str:
    return f"{100 * value:.1f} pt"


def _cell(results: list[Result]) -> str:
    """One summary cell: "pass", or "FLAG" with the largest value over the threshold (and its norm), unbreakable."""
    if not results:
        return "—"
    flagged = [r for r in results if r.flag]
    if not flagged:
        return "pass"
    worst = max(flagged, key=lambda r: r.value - r.threshold)
    norm = f" {NORM_TEXT[worst.norm]}" if worst.norm and len({r.norm for r in results}) > 1 else ""
    value = f"{100 * worst.value:.1f} %" if worst.check in ("large radius", "zero gradient") else _points(worst.value)
    return f"FLAG{norm}: {value}".replace(" ", NBSP)


def _converged(results: list[Result]) -> str:
    if not results:
        return "—"
    flagged = [r for r in results if r.flag]
    return f"no: −{_points(max(r.value for r in flagged))}".replace(" ", NBSP) if flagged else "yes"


#: The summary's columns: masking checks, then PGD-40's convergence per norm.
COLUMNS = ("Zero ∇", "Large ε", "Monotone", "Square", "PGD-40 ℓ2 converged", "PGD-40 ℓ∞ converged")


def summary(records: dict[str, dict]) -> pd.DataFrame:
    """One row per record (its key, e.g. "madry-linf (large)"), ``COLUMNS``: each masking check "pass" or
    "FLAG: value" (the largest excess, with its norm where the check has two), and whether PGD-40 converged in each
    norm ("yes", or "no: −x pt", the largest drop more effort found). Records without the block are left out."""
    rows = {}
    for key, rec in records.items():
        if not rec.get("extended", {}).get("diagnostics"):
            continue
        res = assess(rec)

        def of(check: str, norm: str | None = None, res: list[Result] = res) -> list[Result]:
            return [r for r in res if r.check == check and (norm is None or r.norm == norm)]
        rows[key] = dict(zip(COLUMNS, (
            _cell(of("zero gradient")), _cell(of("large radius")), _cell(of("monotone")), _cell(of("black box")),
            _converged(of("steps", "l2") + of("restarts", "l2")),
            _converged(of("steps", "linf") + of("restarts", "linf")))))
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))


def values(records: dict[str, dict], meaning: str) -> pd.DataFrame:
    """The measured values behind ``summary`` for one ``meaning`` ("masking", "convergence", "implementation"):
    one row per record, one column per check and norm, in accuracy points (percent for shares and accuracies; the
    S-O gap as a pixel value); the convergence frame adds each norm's threshold ("flags above")."""
    rows = {}
    for key, rec in records.items():
        if not rec.get("extended", {}).get("diagnostics"):
            continue
        row = {}
        for r in assess(rec):
            if r.meaning != meaning:
                continue
            label = RULES[r.check].name + (f" {NORM_TEXT[r.norm]}" if r.norm else "")
            row[label] = r.value if r.check == "S-O σ=0" else 100 * r.value
            if meaning == "convergence":
                row[f"flags above {NORM_TEXT[r.norm]}"] = 100 * r.threshold
        rows[key] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    if meaning == "convergence" and not frame.empty:  # per norm: the two drops, then the threshold they share
        order = [f"{name} {NORM_TEXT[norm]}" for norm in NORMS
                 for name in (RULES["steps"].name, RULES["restarts"].name, "flags above")]
        frame = frame[[c for c in order if c in frame.columns]]
    return frame


def counts(records: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """Per check (``RULES`` key): (records it flags, records it was run on); a record flags a check when any of its
    norms does."""
    flagged: dict[str, set] = {k: set() for k in RULES}
    run: dict[str, set] = {k: set() for k in RULES}
    for key, rec in records.items():
        if not rec.get("extended", {}).get("diagnostics"):
            continue
        for r in assess(rec):
            run[r.check].add(key)
            if r.flag:
                flagged[r.check].add(key)
    return {k: (len(flagged[k]), len(run[k])) for k in RULES if run[k]}


def worst_case_below_more_effort(record: dict) -> dict[str, bool]:
    """Per norm: whether AutoAttack (the block's "AA-<norm>" row, which the worst-case rows include) leaves no more
    images correct than the stronger of the two more-effort PGD runs — so PGD-40's missing convergence does not reach
    the worst-case numbers."""
    d, acc = _diagnostics(record), record["extended"]["accuracy"]
    out = {}
    for norm in NORMS:
        drops = [v["value"] for k, v in d.items() if k.endswith((f"x steps {norm}", f"restarts {norm}"))]
        if drops and f"AA-{norm}" in acc:
            out[norm] = acc[f"AA-{norm}"] <= record["accuracy"][f"PGD-{norm}"] - max(drops) + 1e-9
    return out


def rules_table() -> pd.DataFrame:
    """``RULES`` as a reader's table: check, meaning, when it flags, source."""
    return pd.DataFrame([{"check": r.name, "meaning": r.meaning, "flags when": r.flags_when, "source": r.source}
                         for r in RULES.values()]).set_index("check")

"""The first run: ``python -m advlib tour`` shows the paper's phenomenon, first from the committed records,
then live on this machine at a scale it states.

1. Table 1 from the best committed record per cell (full profile where it exists, else medium), next to
   the paper's numbers, with where each number comes from, and the verdict on each of the paper's claims;
2. the two cells that carry the paper's central claim (Madry's and TRADES' ℓ∞ training), reproduced live
   with the ``tour`` profile (its description says how long, from the records in ``results/bench/tour-cpu/``) into ``results/tour/``, and what they show:
   robust to PGD in their own norm, weaker under PGD-ℓ2, broken by S-O-ℓ2.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from advlib import claims, divergences, extended, protocols, table
from advlib.discovery import best_extended_records, best_records, results_root, with_released
from advlib.verdict import provenance

WIDTH = 110
CELLS = ("madry-linf", "trades-linf")


def _say(text: str = "") -> None:
    print(textwrap.fill(text, width=WIDTH) if text else "", flush=True)


def committed() -> dict[str, dict]:
    """Print the committed Table 1 and the claim verdicts; return the records."""
    records = best_records()
    _say(f"1. What the committed records say ({results_root()}): {provenance(records)}.")
    _say("Each entry is ours/paper, accuracy in %; norm-agnostic = correct on the clean image and under all four "
         "attacks, per example.")
    if not records:
        return records
    print(table.compact(records).to_string())
    _say()
    _say(divergences.summary_line(divergences.counts(records)))
    _say()
    extended_best = best_extended_records()
    if not extended_best:
        for v in claims.verdicts(with_released(records)).itertuples():
            _say(f"Claim {v.claim} ({v.statement}): {v.verdict.upper()}.")
        return records
    strong = {c: extended.strengthened(r) for c, r in with_released(extended_best).items()}
    _say(f"The verdicts the book stands behind, under the strongest attacks the records hold (PGD, S-O and AutoAttack "
         f"per example; {provenance(extended_best)}), and in brackets under the paper's attacks on the records above:")
    paper_attacks = "paper's attacks, largest test sets"
    for row in claims.headlines(with_released(records), strong).to_dict("records"):
        number, _, reading = row["claim"].partition(": ")
        _say(f"Claim {number} ({reading + ' — ' if reading else ''}{row['statement']}): {row['verdict'].upper()} "
             f"({row[paper_attacks]}).")
    return records


def live(out: str | Path = Path("results") / "tour", device: str | None = None) -> dict[str, dict]:
    """Reproduce the tour profile's two cells here (resumable; finished cells are reused); print what they show."""
    from advlib.reproduce import reproduce
    profile = protocols.get_profile("tour")
    _say()
    _say(f"2. Now live on this machine, tour profile: {profile.description} These are small models; the committed "
         f"full-profile records above are the reproduction proper.")
    records = reproduce("tour", ",".join(CELLS), out=out, device=device, quiet=True)
    print(table.compact(records).to_string())
    for cell, rec in records.items():
        acc = {k: 100 * v for k, v in rec["accuracy"].items()}
        _say(f"{cell} ({rec['profile']}, n_test = {rec['n_test']}): PGD-ℓ∞ {acc['PGD-linf']:.1f} % in its own norm; "
             f"in ℓ2 (ε = {profile.evaluation['PGD-l2'].eps}) PGD leaves {acc['PGD-l2']:.1f} % and S-O {acc['SO-l2']:.1f} %.")
    return records


def run(out: str | Path = Path("results") / "tour", device: str | None = None) -> tuple[dict, dict]:
    """Both parts; returns (committed records, live records)."""
    return committed(), live(out, device)

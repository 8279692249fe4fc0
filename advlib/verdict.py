"""The verdict engine: how a claim's outcome is graded, and how every number names where it comes from."""
from __future__ import annotations

import math
from dataclasses import dataclass

from advlib import protocols

VERDICTS = ("supported", "partly supported", "not supported", "no records")


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict (one of ``VERDICTS``) and the evidence behind it, in words with numbers."""

    claim: int
    statement: str
    verdict: str
    evidence: str


def label(record: dict) -> str:
    """``"medium, n=1000"``: the profile and test-set size every number must carry."""
    return f"{record['profile']}, n={record['n_test']}"


def device_label(device: str) -> str:
    """A record's device in a word: ``"CPU"`` for ``"cpu (x86_64, 2 threads)"``, ``"H100"`` for
    ``"NVIDIA H100 80GB HBM3"``."""
    return "CPU" if device.startswith("cpu") else device.removeprefix("NVIDIA ").split(" ")[0]


def device_legend(records: dict[str, dict]) -> str:
    """The devices the records ran on, each as its word and in full: ``"CPU = cpu (x86_64, 2 threads); H100 = …"``."""
    return "; ".join(sorted({f"{device_label(r['device'])} = {r['device']}" for r in records.values()}))


def provenance(records: dict[str, dict]) -> str:
    """One line saying which profiles and test sizes the records come from and how many cells exist."""
    if not records:
        return f"no records (0 of {len(protocols.CELLS)} cells)"
    groups: dict[str, list[str]] = {}
    for cell, rec in records.items():
        groups.setdefault(label(rec), []).append(cell)
    parts = [f"{key}: {len(cells)} cell{'s' * (len(cells) != 1)}" for key, cells in sorted(groups.items())]
    return f"{len(records)} of {len(protocols.CELLS)} cells — " + "; ".join(parts)


def grade(ok: int, total: int) -> str:
    """"supported" if all ``total`` checks hold, "partly supported" if some, "not supported" if none."""
    if total == 0:
        return "no records"
    if ok == total:
        return "supported"
    return "partly supported" if ok > 0 else "not supported"


def coverage(found: int, needed: int) -> str:
    """A clause saying how many of the cells a claim needs are recorded ("" when all are)."""
    verb = "is" if found == 1 else "are"
    return "" if found == needed else f" (only {found} of the {needed} cells this claim needs {verb} recorded)"


def percent_text(value: float) -> str:
    """``"12.3 %"``, or "not recorded" for NaN."""
    return "not recorded" if math.isnan(value) else f"{value:.1f} %"

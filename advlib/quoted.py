"""Figures quoted in prose that no code cell prints (the README, chapters' Markdown, profile descriptions), each
rendered from the committed records it comes from.

A quoted figure is the phrase ``render(root)`` returns, computed from records under ``root``; the prose must contain
that phrase verbatim, so a figure that drifts from its records fails ``tests/test_quoted.py`` (which also requires
every duration or percentage in the README to come from here).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advlib import table


@dataclass(frozen=True)
class Quoted:
    """A figure in prose: where it appears (``files``, relative to the repository), the records it comes from
    (``source``, relative to the results root) and how the phrase is rendered from them."""

    files: tuple[str, ...]
    source: str
    render: Callable[[Path], str]


def _records(folder: Path) -> list[dict]:
    """The records of ``folder`` and their side files that ran on a device of their own (extended blocks), not its
    other documents (e.g. ``retrain-check.json``) nor rows side files (each row there names its own device)."""
    found = {p: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    return [doc for p, doc in found.items() if (p.name.count(".") > 1 or "kind" not in doc) and "device" in doc]


def _minutes(record: dict) -> float:
    return sum(table.wall_seconds(record).values()) / 60


def _tour(root: Path) -> str:
    total = sum(_minutes(r) for r in _records(root / "bench" / "tour-cpu"))
    return f"about {total:.0f} minutes on 2 CPU cores"


def _large_cpu(root: Path) -> str:
    hours = sorted(_minutes(r) / 60 for r in _records(root / "large") if r["device"].startswith("cpu"))
    return f"{hours[0]:.0f}–{hours[-1]:.0f} h per cell on 2 CPU cores"


QUOTED: dict[str, Quoted] = {
    "tour minutes": Quoted(("README.md", "advlib/protocols.py"), "bench/tour-cpu", _tour),
    "large CPU hours": Quoted(("README.md",), "large", _large_cpu),
}


def rendered(root: str | Path | None = None) -> dict[str, str]:
    """Every quoted figure's phrase, from the records under ``root`` (default the results root)."""
    from advlib.discovery import results_root
    root = Path(root) if root is not None else results_root()
    return {name: q.render(root) for name, q in QUOTED.items()}

"""``advlib.quoted``: every figure quoted in prose is rendered from its records, and the README quotes no other."""
from __future__ import annotations

import re

import pytest

from advlib import quoted
from conftest import REPO

#: A duration or a percentage as prose writes it ("12 minutes", "1–3 h", "54.7 %").
FIGURE = re.compile(r"\d+(?:[.,–-]\d+)*\s?(?:%|h\b|hours?\b|min\b|minutes?\b|s\b|seconds?\b)")


@pytest.mark.parametrize("name", sorted(quoted.QUOTED))
def test_each_quoted_figure_appears_verbatim_where_it_is_quoted(name):
    phrase = quoted.rendered()[name]
    for file in quoted.QUOTED[name].files:
        assert phrase in (REPO / file).read_text(), f"{file} should quote {phrase!r} ({name}, from the records)"


def test_every_duration_or_percentage_in_the_readme_is_a_quoted_figure():
    text = (REPO / "README.md").read_text()
    phrases = list(quoted.rendered().values())
    for match in FIGURE.finditer(text):
        inside = any(phrase in text and text.find(phrase) <= match.start() < text.find(phrase) + len(phrase)
                     for phrase in phrases)
        assert inside, f"README.md quotes {match.group()!r} near {text[match.start() - 40:match.end()]!r}: " \
                       "compute it from records in advlib.quoted, or drop it"

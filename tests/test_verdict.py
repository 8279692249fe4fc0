"""``advlib.verdict``: how a claim is graded and how every number names the records it comes from."""
from __future__ import annotations

import pytest

from advlib import verdict
from conftest import acc, make_record


def test_provenance_names_profiles_and_test_sizes():
    recs = {"madry-l2": make_record("madry-l2", acc(1, 1, 1, 1), profile="medium", n=1000),
            "madry-linf": make_record("madry-linf", acc(1, 1, 1, 1), profile="full", n=10000)}
    text = verdict.provenance(recs)
    assert text.startswith("2 of 12 cells") and "medium, n=1000: 1 cell" in text and "full, n=10000: 1 cell" in text
    assert verdict.provenance({}) == "no records (0 of 12 cells)"
    recs["trades-l2"] = make_record("trades-l2", acc(1, 1, 1, 1), profile="medium", n=1000)
    assert "medium, n=1000: 2 cells" in verdict.provenance(recs)


def test_label_is_profile_and_test_size():
    assert verdict.label({"profile": "quick", "n_test": 200}) == "quick, n=200"


@pytest.mark.parametrize(("ok", "total", "word"), [(3, 3, "supported"), (1, 3, "partly supported"),
                                                   (0, 3, "not supported"), (0, 0, "no records")])
def test_grade(ok, total, word):
    assert verdict.grade(ok, total) == word
    assert word in verdict.VERDICTS


def test_coverage_says_what_is_missing_and_nothing_when_complete():
    assert verdict.coverage(4, 4) == ""
    assert verdict.coverage(1, 2) == " (only 1 of the 2 cells this claim needs is recorded)"
    assert verdict.coverage(3, 8) == " (only 3 of the 8 cells this claim needs are recorded)"


def test_percent_text():
    assert verdict.percent_text(12.345) == "12.3 %"
    assert verdict.percent_text(float("nan")) == "not recorded"


def test_verdicts_are_the_four_words_and_verdict_is_a_value():
    assert verdict.VERDICTS == ("supported", "partly supported", "not supported", "no records")
    v = verdict.Verdict(1, "statement", "supported", "evidence")
    assert v == verdict.Verdict(1, "statement", "supported", "evidence") and vars(v)["evidence"] == "evidence"


def test_device_legend_names_each_device_once_in_a_word_and_in_full():
    recs = {"a": {"device": "cpu (x86_64, 2 threads)"}, "b": {"device": "NVIDIA H100 80GB HBM3"},
            "c": {"device": "cpu (x86_64, 2 threads)"}}
    assert verdict.device_legend(recs) == "CPU = cpu (x86_64, 2 threads); H100 = NVIDIA H100 80GB HBM3"
    assert verdict.device_legend({}) == ""

"""``tools/check_pages.py``: the headless-browser check that nothing on a built page is wider than its column."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_pages", REPO / "tools" / "check_pages.py")
check_pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pages)

PAGE = """<html><body><div style="width: 300px">
<div class="cell_output"><pre style="overflow: auto">{text}</pre></div>
<table><tr><td>short</td></tr></table></div></body></html>"""


def _site(tmp_path: Path, text: str) -> Path:
    (tmp_path / "book").mkdir(parents=True)
    (tmp_path / "book" / "01_x.html").write_text(PAGE.format(text=text))
    return tmp_path


def test_the_pages_are_the_books_chapters(tmp_path):
    site = _site(tmp_path, "x")
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/01_x.html" />')
    assert check_pages.pages(site) == [site / "book" / "01_x.html"]


def test_without_a_browser_the_check_says_so_and_does_not_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert check_pages.main([str(_site(tmp_path, "x"))]) == 2
    assert "no browser found" in capsys.readouterr().err


@pytest.mark.skipif(check_pages.browser() is None, reason="needs Chromium (Debian's chromium package)")
def test_an_output_wider_than_its_box_fails_and_a_narrow_one_passes(tmp_path):
    wide = _site(tmp_path / "wide", "x" * 400)
    assert check_pages.main([str(wide)]) == 1
    narrow = _site(tmp_path / "narrow", "short line")
    assert check_pages.main([str(narrow)]) == 0
    report = check_pages.measure(wide / "book" / "01_x.html", check_pages.browser(), 1400, 900)
    assert report["overflow"] and report["overflow"][0]["width"] > report["overflow"][0]["box"]

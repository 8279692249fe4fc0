"""The book's structure, without executing anything (nbval executes the chapters separately).

* each ``book/*.md`` has its ``.ipynb`` twin and both render to identical MyST markdown;
* every code cell of every chapter notebook has been executed, without error outputs;
* ``_toc.yml`` and ``book/`` agree, and ``_config.yml`` keeps the settings the strict build needs;
* every chapter opens the same way: a hidden Colab install cell naming ``_config.yml``'s repository URL,
  then the cell calling ``setup()`` before any other code;
* chapters import their code from advlib: no function or class longer than a few lines is defined in them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
MAX_DEF_LINES = 5
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def as_python(source: str) -> str:
    """Cell source with IPython syntax (``!cmd``, ``%magic``) turned into plain Python calls."""
    return TransformerManager().transform_cell(source)


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_there_are_chapters():
    assert CHAPTERS, "book/ has no NN_name.md chapters"
    assert len(toc_files()) == 8, toc_files()


@pytest.mark.parametrize("md", CHAPTERS, ids=ids(CHAPTERS))
def test_md_and_ipynb_are_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{md.name} has no executed twin; run: python tools/execute_book.py {md.stem}"
    from_md = jupytext.writes(jupytext.read(md), fmt="md:myst")
    from_ipynb = jupytext.writes(jupytext.read(ipynb), fmt="md:myst")
    assert from_md == from_ipynb, f"{md.name} and {ipynb.name} differ; run: python tools/execute_book.py {md.stem}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_every_code_cell_was_executed_without_error(ipynb):
    for i, cell in enumerate(code_cells(ipynb)):
        assert cell.execution_count is not None, f"{ipynb.name}: code cell {i} was never executed"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{ipynb.name}: code cell {i} raised {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_every_notebook_is_in_the_toc(ipynb):
    assert ipynb.relative_to(REPO).as_posix() in toc_files(), f"{ipynb.name} is missing from _toc.yml"


def test_every_toc_entry_exists_as_a_paired_notebook():
    for entry in toc_files():
        assert entry.endswith(".ipynb"), f"toc entry {entry} must name the .ipynb (with the suffix)"
        assert (REPO / entry).exists(), f"_toc.yml names {entry}, which does not exist"
        assert (REPO / entry).with_suffix(".md").exists(), f"{entry} has no .md source"


def test_config_keeps_the_settings_the_strict_build_needs():
    cfg = config()
    assert cfg["only_build_toc_files"] is True
    assert ".*" in cfg["exclude_patterns"]
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["repository"]["branch"] == "main"
    assert cfg["repository"]["url"].startswith("https://github.com/")
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_colab_cell_installs_from_the_configured_repository(ipynb):
    first = code_cells(ipynb)[0]
    assert "remove-cell" in first.metadata.get("tags", []), f"{ipynb.name}: first code cell is not tagged remove-cell"
    assert "google.colab" in first.source, f"{ipynb.name}: first code cell is not the Colab install cell"
    url = config()["repository"]["url"].rstrip("/")
    assert url in first.source, f"{ipynb.name}: the Colab cell does not install from {url} (_config.yml)"
    assert not first.outputs, f"{ipynb.name}: the Colab cell printed something outside Colab"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_setup_comes_right_after_the_colab_cell(ipynb):
    cells = code_cells(ipynb)
    assert len(cells) >= 2, f"{ipynb.name}: needs a Colab cell and a set-up cell"
    calls = {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
             for n in ast.walk(ast.parse(as_python(cells[1].source))) if isinstance(n, ast.Call)}
    assert "setup" in calls, f"{ipynb.name}: the second code cell must call setup() before any other code"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_chapters_define_no_long_functions(ipynb):
    for i, cell in enumerate(code_cells(ipynb)):
        for node in ast.walk(ast.parse(as_python(cell.source))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_DEF_LINES, (
                    f"{ipynb.name}: code cell {i} defines {node.name} ({length} lines); move it to advlib")

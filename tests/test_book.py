"""The book's structure, without executing anything (nbval executes the chapters separately).

* each ``book/*.md`` has its ``.ipynb`` twin and both render to identical MyST markdown;
* every code cell of every chapter notebook has been executed, without error outputs;
* ``_toc.yml`` and ``book/`` agree, and ``_config.yml`` keeps the settings the strict build needs;
* every chapter opens the same way: a hidden Colab install cell naming ``_config.yml``'s repository URL,
  then the cell calling ``setup()`` before any other code;
* chapters import their code from advlib: no function or class longer than a few lines is defined in them,
  and no lambda stands in for one (a lambda is allowed only as a call's argument, ``key=lambda …``);
* the Colab cell, run in a fresh interpreter that pretends to be Colab, makes the clone importable at once;
* every figure has a "*Figure N.*" caption right after it;
* no prose line can turn into a list item inside inline math (checked in the sources), and, once the book is
  built (``_build/html``), no page shows unrendered math.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

from conftest import REPO

BOOK = REPO / "book"
MAX_DEF_LINES = 5
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    chapters = [entry for part in toc.get("parts", []) for entry in part["chapters"]] + toc.get("chapters", [])
    return [toc["root"]] + [entry["file"] for entry in chapters]


def test_the_toc_groups_the_chapters_in_three_numbered_parts():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    parts = toc["parts"]
    assert [p["caption"] for p in parts] == ["Background", "The reproduction", "Beyond the paper"]
    assert all(p.get("numbered") is True for p in parts), "chapters and figures are numbered (Figure 6.2)"
    assert "provenance" in parts[1]["chapters"][-1]["file"], "the reproduction ends with its appendix"


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def as_python(source: str) -> str:
    """Cell source with IPython syntax (``!cmd``, ``%magic``) turned into plain Python calls."""
    return TransformerManager().transform_cell(source)


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_there_are_chapters():
    assert CHAPTERS, "book/ has no NN_name.md chapters"
    assert len(CHAPTERS) >= 9, [md.name for md in CHAPTERS]
    assert toc_files() == [f"book/{md.stem}.ipynb" for md in CHAPTERS], "every chapter in _toc.yml, in order"


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
    clones = re.findall(r"git clone\b[^\n]*?\s(\S+://\S+)", first.source)
    assert clones, f"{ipynb.name}: the Colab cell clones nothing"
    assert all(c.removesuffix(".git") == url for c in clones), (
        f"{ipynb.name}: the Colab cell clones {clones}, not {url} (_config.yml repository.url)")
    assert "https://github.com/" not in first.source.replace(url, ""), f"{ipynb.name}: a second GitHub URL"
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


def stray_lambdas(source: str) -> list[int]:
    """Lines of the lambdas in ``source`` that stand in for functions: every lambda that is not passed straight to a
    call (``sorted(…, key=lambda …)``, ``.map(lambda …)`` are allowed); one bound to a name, kept in a container or
    returned is a helper, and a helper belongs in advlib, tested."""
    tree = ast.parse(as_python(source))
    passed = {id(arg) for call in ast.walk(tree) if isinstance(call, ast.Call)
              for arg in [*call.args, *(k.value for k in call.keywords)]}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Lambda) and id(node) not in passed]


def test_stray_lambdas_are_found():
    assert stray_lambdas("pct = lambda v: f'{v:.1f}'\nx, f = 1, lambda: 2\n") == [1, 2]
    assert stray_lambdas("runs = {'a': lambda: load()}\n") == [1]
    assert stray_lambdas("best = min(d, key=lambda k: d[k])\ns = col.map(lambda p: p / 2)\n") == []
    assert stray_lambdas("ok = sorted(d.items(), key=lambda kv: kv[1])[0]\n") == []


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_chapters_bind_no_lambdas(ipynb):
    """A lambda given a name (``f = lambda …``) or stored is a function in disguise: the rule above applies to it."""
    for i, cell in enumerate(code_cells(ipynb)):
        lines = stray_lambdas(cell.source)
        assert not lines, f"{ipynb.name}: code cell {i} keeps a lambda on line(s) {lines}; move it to advlib"


# --- the Colab cell works mechanically --------------------------------------------------------------------------

COLAB_RUNNER = '''
import subprocess, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab has and a plain Python lacks
calls = []

class Shell:  # the two IPython features the cell uses, done by hand
    def system(self, cmd):
        calls.append(("system", cmd))
        subprocess.run(cmd, shell=True, check=True)
    def run_line_magic(self, name, line):
        calls.append((name, line))  # pip is recorded, not run: the point is that no restart is needed

get_ipython = Shell
exec(compile(open(sys.argv[1]).read(), "colab-cell", "exec"))
import advlib
print(advlib.__file__)
print(calls)
'''


def test_colab_cell_makes_the_clone_importable_in_the_same_interpreter(tmp_path):
    """Run chapter 01's Colab cell in a fresh interpreter with a fake ``google.colab``, cloning this repository
    from disk instead of GitHub into a temporary folder instead of /content: ``import advlib`` right after it
    must find the clone (the editable install of a running kernel is not seen without a restart)."""
    cell = code_cells(BOOK / "01_adversarial_examples.ipynb")[0].source
    url = config()["repository"]["url"].rstrip("/")
    clone = tmp_path / "content" / "advlib"
    local = cell.replace(url + ".git", REPO.as_uri()).replace(url, REPO.as_uri()).replace("/content/advlib", str(clone))
    assert REPO.as_uri() in local and str(clone) in local, "the cell no longer names the URL or /content/advlib"
    script = tmp_path / "cell.py"
    script.write_text(as_python(local))
    runner = tmp_path / "runner.py"
    runner.write_text(COLAB_RUNNER)
    done = subprocess.run([sys.executable, str(runner), str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    module_file, calls = done.stdout.strip().splitlines()[-2:]
    assert Path(module_file).resolve().is_relative_to(clone.resolve()), f"advlib imported from {module_file}"
    assert ("pip", f"install -q -e {clone}") in eval(calls), calls


# --- figure captions ---------------------------------------------------------------------------------------------

HAND_NUMBERED = re.compile(r"^\*Figures? \d+")


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_every_figure_has_a_caption_that_sphinx_numbers(ipynb):
    """A cell that draws a figure carries its caption and a label in myst-nb's ``mystnb.figure`` metadata, so the
    build numbers it per chapter ("Figure 6.2"); no hand-numbered "*Figure N.*" paragraph remains."""
    names = []
    for i, cell in enumerate(nbformat.read(ipynb, as_version=4).cells):
        if cell.cell_type == "markdown":
            assert not HAND_NUMBERED.match(cell.source), f"{ipynb.name}: cell {i} numbers a figure by hand"
            continue
        images = sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
        if not images:
            continue
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        assert images == 1, f"{ipynb.name}: cell {i} draws {images} figures; one per cell, each with its caption"
        assert figure.get("caption", "").strip() and figure.get("name"), (
            f"{ipynb.name}: the figure of cell {i} needs mystnb.figure.caption and .name in its metadata")
        names.append(figure["name"])
    assert len(names) == len(set(names)), f"{ipynb.name}: figure names repeat: {names}"


# --- math that renders: no list item inside an inline-math span ---------------------------------------------------

LIST_START = re.compile(r"^\s*(?:[-+*]|\d+[.)])\s")


def list_hazards(markdown: str) -> list[tuple[int, str]]:
    """Prose lines that start like a list item (``+ ``, ``- ``, ``* ``, ``1. ``) while the paragraph they continue
    has an odd number of ``$``: MyST would cut the inline math in two and render a bullet list."""
    hazards, paragraph, fenced, display = [], [], False, False
    for number, line in enumerate(markdown.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced, paragraph = not fenced, []
            continue
        if fenced:
            continue
        if stripped.startswith("$$"):
            if stripped == "$$" or not (len(stripped) > 2 and stripped.endswith("$$")):
                display = not display
            paragraph = []
            continue
        if display:
            continue
        if not stripped:
            paragraph = []
            continue
        text = re.sub(r"`[^`]*`", "", "\n".join(paragraph)).replace(r"\$", "")
        if paragraph and LIST_START.match(line) and text.count("$") % 2:
            hazards.append((number, line))
        paragraph.append(line)
    return hazards


def test_list_hazards_are_found():
    broken = "To first order, $\\nabla L(x + d) \\approx \\nabla L(x)\n+ H d$, and more.\n"
    assert list_hazards(broken) == [(2, "+ H d$, and more.")]
    assert list_hazards("Sum $a$ and\n- a real list item\n") == []
    assert list_hazards("$$\nx = a\n+ b\n$$\n") == []
    assert list_hazards("```python\nx = f($a\n- b)\n```\n") == []


@pytest.mark.parametrize("md", sorted(BOOK.glob("*.md")), ids=ids(sorted(BOOK.glob("*.md"))))
def test_no_prose_line_starts_a_list_inside_inline_math(md):
    hazards = list_hazards(md.read_text(encoding="utf-8"))
    assert not hazards, f"{md.name}: reflow these lines (a list marker inside inline math): {hazards}"


#: How a chapter writes a MyST comment it means: any other prose line that starts with "%" is text MyST would drop.
MEANT_COMMENT = "% comment:"


def dropped_lines(text: str) -> list[tuple[int, str]]:
    """Prose lines (outside fenced blocks) that start with "%": MyST renders them as comments, i.e. not at all
    (a reflowed "in\n% accuracy" lost the preface's unit; the strict build does not warn)."""
    fenced, out = False, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.startswith("%") and not line.startswith(MEANT_COMMENT):
            out.append((number, line))
    return out


def test_dropped_lines_are_found():
    assert dropped_lines("in\n% accuracy, and\n```python\n% not prose\n```\n% comment: kept\n") == [(2, "% accuracy, and")]


@pytest.mark.parametrize("md", sorted(BOOK.glob("*.md")), ids=ids(sorted(BOOK.glob("*.md"))))
def test_no_prose_line_starts_with_a_percent_sign(md):
    dropped = dropped_lines(md.read_text(encoding="utf-8"))
    assert not dropped, f"{md.name}: MyST drops these lines as comments (reflow them): {dropped}"


BUILT = REPO / "_build" / "html" / "book"


def unrendered_math(html: str) -> list[str]:
    """Text of a built page, outside code, outputs' <pre> and MathJax's own spans, that still holds ``$`` or ``\\(``,
    and list items whose text carries a stray ``$`` (the symptom of an inline-math span cut by a list marker)."""
    bs4 = pytest.importorskip("bs4")
    soup = bs4.BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "code", "pre", "kbd", "samp"]):
        tag.decompose()
    for tag in soup.select(".math"):
        tag.decompose()
    body = soup.select_one("main") or soup.body or soup
    problems = [f"<li>{' '.join(li.get_text(' ').split())[:80]}" for li in body.find_all("li")
                if "$" in li.get_text() or re.match(r"\s*[A-Za-z](\s[A-Za-z])?\$", li.get_text())]
    for node in body.find_all(string=True):
        if "$" in node or "\\(" in node or "\\[" in node:
            problems.append(" ".join(str(node).split())[:80])
    return problems


def test_unrendered_math_is_found():
    pytest.importorskip("bs4")
    broken = ('<main><p>To first order, $\\nabla L(x)</p><ul><li><p>H d$, and <span class="math">\\(x\\)</span></p>'
              '</li></ul><p>fine <span class="math notranslate">\\(a\\)</span> and <code>$HOME</code></p></main>')
    problems = unrendered_math(broken)
    assert any(p.startswith("<li>H d$") for p in problems) and any("To first order" in p for p in problems)
    assert unrendered_math('<main><p>ok <span class="math">\\(a + b\\)</span></p></main>') == []


@pytest.mark.skipif(not BUILT.is_dir(), reason="no built book in _build/html: run `jupyter-book build . -W -n --keep-going`")
@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_built_page_has_no_unrendered_math(ipynb):
    page = BUILT / f"{ipynb.stem}.html"
    assert page.exists(), f"{page.relative_to(REPO)} is missing: rebuild the book"
    problems = unrendered_math(page.read_text(encoding="utf-8"))
    assert not problems, f"{page.name}: math MathJax will not render: {problems[:5]}"


# --- running-time notes: measured, and kept out of nbval's comparison ----------------------------------------------


@pytest.mark.parametrize("md", CHAPTERS, ids=ids(CHAPTERS))
def test_every_chapter_states_its_measured_running_time_and_nbval_ignores_it(md):
    text = md.read_text()
    cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, re.S)
    timed = [c for c in cells if "running_time(" in c]
    assert timed, f"{md.name}: no notebook.running_time(...) cell (the running time comes from measurements)"
    assert all("NBVAL_IGNORE_OUTPUT" in c for c in timed), f"{md.name}: the running time changes with every run"
    assert "not measured" not in re.sub(r"```.*?```", "", text, flags=re.S), f"{md.name}: hand-written timing"

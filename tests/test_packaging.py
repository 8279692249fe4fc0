"""Packaging: environment.yml and pyproject.toml agree; importing advlib is light; the CLI starts."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from conftest import REPO

CONDA_TO_PIP = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def split_requirement(req: str) -> tuple[str, str]:
    """'jupyter-book>=1.0.4,<2' -> ('jupyter-book', '<2,>=1.0.4'): normalised name, sorted specifiers."""
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*", req)
    assert m, req
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s.replace(" ", "") for s in m.group(2).split(",") if s.strip()))
    return name, spec


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    reqs = project["dependencies"] + extras["test"] + extras["download"]
    return dict(split_requirement(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep["pip"]:
                if pip_dep.strip().startswith("-e"):
                    continue
                name, spec = split_requirement(pip_dep)
                out[name] = spec
            continue
        conda = re.sub(r"=(?=[\d*])", "==", dep) if re.search(r"[^<>!=]=\d", dep) else dep  # conda 'x=1' pins
        name, spec = split_requirement(conda)
        if name not in NOT_PACKAGES:
            out[CONDA_TO_PIP.get(name, name)] = spec
    return out


def test_split_requirement():
    assert split_requirement("jupyter-book>=1.0.4,<2") == ("jupyter-book", "<2,>=1.0.4")
    assert split_requirement("Jupyter_Book >= 1.0.4, <2") == ("jupyter-book", "<2,>=1.0.4")
    assert split_requirement("torch") == ("torch", "")


def test_environment_and_pyproject_name_the_same_dependencies():
    py, env = pyproject_requirements(), environment_requirements()
    assert "torch" in py and "pytest" in py and len(py) >= 10
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"


def test_environment_and_pyproject_pin_the_same_versions():
    py, env = pyproject_requirements(), environment_requirements()
    differ = {name: (py[name], env.get(name)) for name in py if py[name] != env.get(name)}
    assert not differ, f"version constraints differ (pyproject, environment.yml): {differ}"


def test_environment_installs_the_package_and_pins_python():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in [p.strip() for p in pip]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    pinned = re.fullmatch(r"python\s*[=>]=?\s*(\d+)\.(\d+)(\.\*)?", python)
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", required)
    assert pinned and minimum, (python, required)
    assert tuple(map(int, pinned.groups()[:2])) >= tuple(map(int, minimum.groups())), (python, required)


def run_python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_import_does_not_pull_torchvision():
    done = run_python("-c", "import advlib, sys; assert 'torchvision' not in sys.modules")
    assert done.returncode == 0, done.stderr


def test_cli_help():
    done = run_python("-m", "advlib", "--help")
    assert done.returncode == 0, done.stderr
    assert "reproduce" in done.stdout and "table" in done.stdout


# --- the protocol notes that code, tests and book cite ship with the repository (docs/protocols.md) ---------------

PROTOCOLS = REPO / "docs" / "protocols.md"
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)?)(?:[a-z]\b)?(?:\s?[-–]\s?(\d+(?:\.\d+)?))?")


def citing_files() -> list[Path]:
    """Where protocol sections are cited: the package, the book's sources and the README."""
    return sorted(REPO.glob("advlib/**/*.py")) + sorted(REPO.glob("book/*.md")) + [REPO / "README.md"]


def cited_sections(text: str, every_section: bool = False) -> set[str]:
    """Section numbers cited as "protocols.md §N" (also "§N-M" ranges and later "§K" on the same line).

    With ``every_section``, every §N of the text counts (``advlib/protocols.py`` cites the notes by bare §N)."""
    found = set()
    for line in text.splitlines():
        if not every_section and "protocols.md" not in line:
            continue
        start = 0 if every_section else line.index("protocols.md")
        for m in SECTION.finditer(line, start):
            found.update(g for g in m.groups() if g)
    return found


def protocol_headings() -> set[str]:
    return set(re.findall(r"^#{2,3} §(\d+(?:\.\d+)?) ", PROTOCOLS.read_text(), flags=re.M))


def test_cited_sections_are_parsed():
    assert cited_sections("see `docs/protocols.md` §4.2–4.3 and §7.1; paper §5 elsewhere") == {"4.2", "4.3", "7.1", "5"}
    assert cited_sections("(protocols.md §2.1-2.2)") == {"2.1", "2.2"}
    assert cited_sections("the paper's §5, no protocol cited") == set()
    assert cited_sections("vectorised (§2.2a); (§4.1-4.2)", every_section=True) == {"2.2", "4.1", "4.2"}


def test_protocol_notes_ship_with_numbered_sections():
    assert PROTOCOLS.is_file(), "docs/protocols.md is missing"
    headings = protocol_headings()
    assert {"0", "1", "1.1", "6", "6.1", "6.3", "9"} <= headings, sorted(headings)


def test_every_cited_protocol_section_exists():
    headings, missing = protocol_headings(), []
    for path in citing_files():
        text = path.read_text(encoding="utf-8")
        cited = cited_sections(text, every_section=path.name == "protocols.py")
        missing += [f"{path.relative_to(REPO)}: §{s}" for s in sorted(cited - headings)]
    assert not missing, f"cited but not a heading '## §N' / '### §N' of docs/protocols.md: {missing}"


def test_nothing_points_outside_the_repository():
    paths = sorted(REPO.glob("advlib/**/*.py")) + sorted(REPO.glob("tests/*.py")) + sorted(REPO.glob("book/*.md"))
    outside = ("/wo" + "rk/", "../sha" + "red")  # split so that this file does not match itself
    hits = [f"{p.relative_to(REPO)}:{i}" for p in paths
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if any(s in line for s in outside)]
    assert not hits, f"paths outside the repository: {hits}"


# --- the README's user path: its two commands as written, and every command and path it names, exist ------------

USER_DOCS = [REPO / "README.md", REPO / "docs" / "remote-gpu.md"]
INSTALL = 'pip install torch==2.13.0 && pip install -e ".[test]" && python -m advlib tour'
TOP_LEVEL = ("advlib/", "book/", "docs/", "results/", "tests/", "tools/", "benchmarks/", ".ci/")


def inline_code(text: str) -> list[str]:
    """The `inline code` spans of a Markdown text, fenced blocks left out."""
    return re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))


def test_inline_code_skips_fenced_blocks():
    assert inline_code("a `x/y` b\n```bash\nrun `z`\n```\n`w`") == ["x/y", "w"]


def test_readme_install_command_is_the_one_ci_runs():
    """The first command, verbatim, with the CPU torch pin first; CI (.ci/run) installs the same way, then runs
    ``python -m pytest``, the second command."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert INSTALL in readme and "\npytest\n" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.index("torch==2.13.0") < ci.index('-e ".[test]"') < ci.index("python -m pytest")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "test" in project["optional-dependencies"]
    torch_req = next(r for r in project["dependencies"] if split_requirement(r)[0] == "torch")
    assert split_requirement(torch_req)[1] == ">=2.2"  # the pinned 2.13.0 satisfies it


def test_user_docs_name_only_existing_subcommands_and_scripts():
    usage = run_python("-m", "advlib", "--help")
    assert usage.returncode == 0, usage.stderr
    commands = set(re.search(r"\{([\w,-]+)\}", usage.stdout).group(1).split(","))
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        named = set(re.findall(r"python -m advlib ([\w-]+)", text))
        assert named and named <= commands, f"{doc.name} names unknown subcommands: {sorted(named - commands)}"
        scripts = re.findall(r"python (\S+\.py)", text)
        assert all((REPO / s).is_file() for s in scripts), f"{doc.name}: missing scripts in {scripts}"


def test_user_docs_name_only_existing_paths():
    """Every repository path in `inline code` or a link exists (placeholders such as <profile> aside)."""
    missing = []
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        spans = inline_code(text) + re.findall(r"\]\(([^)#]+)\)", text)
        for span in spans:
            path = span.split()[0]
            if path.startswith(TOP_LEVEL) and "<" not in path:
                if not (REPO / path).exists():
                    missing.append(f"{doc.name}: {path}")
    assert not missing, f"paths that do not exist: {missing}"


def test_user_docs_stay_generic():
    """Nothing about one remote-machine service: the remote procedure is any machine you can copy a tree to."""
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        for word in ("$OUT", ".whl", "warm machine", "64 MiB", "gpu_session", "gpu_collect", "slim_checkpoints"):
            assert word not in text, f"{doc.name} mentions {word!r}"

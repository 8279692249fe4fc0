"""Re-execute the book's chapters after edits, without timestamp noise.

For each chapter ``book/NN_name.md`` (all of them, or those named on the command line):

1. update the paired ``book/NN_name.ipynb`` from the ``.md`` with jupytext (``--update`` keeps the
   notebook's metadata and the outputs of unchanged cells; a missing ``.ipynb`` is created);
2. execute it in place with nbconvert (kernel cwd ``book/``, timeout 600 s per cell,
   ``record_timing=False`` so no per-cell timestamps end up in the file);
3. print the chapter's wall time and keep it in ``results/bench/chapters.json`` (per chapter and device: seconds,
   profile, date, git revision), which each chapter's running-time note reads (``advlib.notebook.running_time``).

Usage (from anywhere)::

    python tools/execute_book.py                       # every chapter
    python tools/execute_book.py 02 book/03_hessian_power_iteration.md   # some chapters

A chapter is named by its path, its file name, its stem, or its number prefix. Exits non-zero if any
chapter fails (the others still run). The profile is the chapters' own default (``$ADVLIB_PROFILE``,
quick on a CPU); MNIST comes from advlib's own sources (``$ADVLIB_DATA`` if set, else the packaged files).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
TIMEOUT = 600


def chapters(names: list[str]) -> list[Path]:
    """The ``.md`` sources to run: all of ``book/*.md`` in order, or those matching ``names``."""
    everything = sorted(BOOK.glob("[0-9][0-9]_*.md"))
    if not names:
        return everything
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".md").removesuffix(".ipynb")
        hits = [md for md in everything if md.stem == stem or md.stem.split("_")[0] == stem]
        if not hits:
            raise SystemExit(f"no chapter {name!r}; chapters: {', '.join(md.stem for md in everything)}")
        chosen += [md for md in hits if md not in chosen]
    return chosen


def update_notebook(md: Path) -> Path:
    """jupytext: write the .md's cells into the paired .ipynb, keeping its metadata and unchanged outputs."""
    ipynb = md.with_suffix(".ipynb")
    args = [sys.executable, "-m", "jupytext", "--to", "ipynb", "--quiet"]
    args += ["--update"] if ipynb.exists() else []
    subprocess.run(args + [str(md)], check=True, cwd=REPO)
    return ipynb


def execute(ipynb: Path) -> None:
    """Execute a notebook in place with cwd ``book/``; raises on the first failing cell."""
    nb = nbformat.read(ipynb, as_version=4)
    ExecutePreprocessor(timeout=TIMEOUT, record_timing=False, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(ipynb.parent)}})
    nbformat.write(nb, ipynb)


def keep_time(md: Path, seconds: float) -> None:
    """Store the chapter's wall time on this device (``advlib.notebook.record_chapter_time``)."""
    from advlib import notebook
    notebook.record_chapter_time(md.stem, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapters to run (default: all), e.g. 02 or book/02_x.md")
    args = parser.parse_args(argv)
    print(f"profile {os.environ.get('ADVLIB_PROFILE') or 'default'}, "
          f"MNIST from {os.environ.get('ADVLIB_DATA') or 'advlib default sources'}", flush=True)
    failed, total = [], time.perf_counter()
    for md in chapters(args.chapters):
        start = time.perf_counter()
        try:
            execute(update_notebook(md))
            status = "ok"
            keep_time(md, time.perf_counter() - start)
        except Exception as err:  # report and go on with the other chapters
            failed.append(md.stem)
            print(err, file=sys.stderr)
            status = f"FAILED ({type(err).__name__})"
        print(f"{md.stem:36s} {time.perf_counter() - start:7.1f} s  {status}", flush=True)
    print(f"{'total':36s} {time.perf_counter() - total:7.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

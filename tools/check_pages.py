"""Load every built book page in headless Chromium and fail on anything wider than its container.

    python tools/check_pages.py [_build/html] [--width 1400] [--height 900] [--json report.json]

For each page of the built book (``<html>/index.html`` and ``<html>/book/*.html``) a copy with a small measuring
script is opened by ``chromium --headless --dump-dom`` at the given window size (a reader's 1400×900 by default);
after layout the script records

* every output block (``.cell_output`` and what it holds), table and image whose content is wider than the box
  that shows it (``scrollWidth > clientWidth``, or an image or table wider than its parent): the reader would have
  to scroll sideways or would lose part of it;
* the page's height in screens (its scroll height over the window height).

The report prints one line per page (screens, overflowing elements) and one line per offending element; the exit
status is 1 if any element overflows. Needs Chromium (Debian's ``chromium`` package); without it the check says so
and exits 2, so CI cannot mistake a skipped check for a passed one.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MARK = "advlib-page-check"
SCRIPT = """
<script>
window.addEventListener('load', () => {
  const found = [];
  const describe = (el) => {
    const cell = el.closest('.cell');
    const heading = [...document.querySelectorAll('h1, h2, h3')].filter(
        h => h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING).pop();
    return {tag: el.tagName.toLowerCase(), cls: el.className.toString().slice(0, 60),
            section: heading ? heading.textContent.trim().slice(0, 60) : '',
            text: (el.innerText || el.getAttribute('alt') || '').trim().slice(0, 80)};
  };
  const blocks = document.querySelectorAll(
      '.cell_output, .cell_output .output, .cell_output pre, .cell_output div, table, .table-wrapper, ' +
      '.pst-scrollable-table-container, figure, .figure');
  for (const el of blocks) {
    if (el.offsetParent === null) continue;                       // hidden (folded) content
    if (el.scrollWidth > el.clientWidth + 1) found.push({...describe(el), width: el.scrollWidth, box: el.clientWidth});
  }
  for (const el of document.querySelectorAll('img, table')) {
    const parent = el.parentElement;
    if (el.offsetParent === null || !parent) continue;
    const w = el.getBoundingClientRect().width, box = parent.getBoundingClientRect().width;
    if (w > box + 1) found.push({...describe(el), width: Math.round(w), box: Math.round(box)});
  }
  const report = {screens: document.documentElement.scrollHeight / window.innerHeight, overflow: found};
  const out = document.createElement('pre');
  out.id = 'MARK';
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>
""".replace("MARK", MARK)


def browser() -> str | None:
    """The first Chromium-like browser on PATH."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def pages(root: Path) -> list[Path]:
    """The book's pages (the root index.html only redirects to the first)."""
    return sorted((root / "book").glob("*.html"))


def measure(page: Path, exe: str, width: int, height: int) -> dict:
    """Open a measuring copy of ``page`` (beside it, so its relative links resolve) and return the report."""
    text = page.read_text(encoding="utf-8")
    with tempfile.NamedTemporaryFile("w", suffix=".html", dir=page.parent, prefix=".check-", delete=False,
                                     encoding="utf-8") as tmp:
        tmp.write(text.replace("</body>", SCRIPT + "</body>", 1))
    try:
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run(
                [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                 Path(tmp.name).resolve().as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    match = re.search(f'<pre id="{MARK}"[^>]*>(.*?)</pre>', done.stdout, re.S)
    if match is None:
        raise RuntimeError(f"{page}: the browser returned no measurement (exit {done.returncode}): "
                           f"{done.stderr.strip()[-400:]}")
    return json.loads(html.unescape(match.group(1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default="_build/html", type=Path, help="the built book (default _build/html)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--json", type=Path, default=None, help="also write the whole report here")
    args = parser.parse_args(argv)
    exe = browser()
    if exe is None:
        print(f"check_pages: no browser found ({', '.join(BROWSERS)}); install Debian's chromium package",
              file=sys.stderr)
        return 2
    found = pages(args.html)
    if not found:
        print(f"check_pages: no built pages under {args.html}; run jupyter-book build . first", file=sys.stderr)
        return 2
    report, total = {}, 0
    for page in found:
        got = measure(page, exe, args.width, args.height)
        report[page.name] = got
        total += len(got["overflow"])
        print(f"{page.name:<36} {got['screens']:5.1f} screens  {len(got['overflow'])} overflowing")
        for el in got["overflow"]:
            print(f"    {el['tag']}.{el['cls'][:30]:<30} {el['width']}px in {el['box']}px  [{el['section']}] "
                  f"{el['text'][:60]!r}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(f"{len(found)} pages, {total} overflowing elements")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure an HTML page as a reader sees it: headless Chromium (Debian's ``chromium`` package) at a
given window width. A copy of the page gets a script that, once everything has loaded, writes its
measurements as JSON into ``document.title``; ``--dump-dom`` prints the DOM, the title is read back.
Tests that use it skip when ``chromium`` is not on PATH."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# run in the page after the load event: the page's width, every table's width against the box it
# sits in (a .tablebox that may scroll, else the page), and every image that did not load
_MEASURE = """<script>addEventListener("load", () => {
  const page = document.documentElement;
  const tables = [...document.querySelectorAll("table")].map((t, k) => {
    const box = t.closest(".tablebox") || document.body;
    return {index: k, width: Math.ceil(t.getBoundingClientRect().width), box: box.clientWidth,
            right: Math.ceil(t.getBoundingClientRect().right)};
  });
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40));
  document.title = JSON.stringify({scroll_width: page.scrollWidth, client_width: page.clientWidth,
                                   images: document.images.length, broken: broken, tables: tables});
});</script>"""


@dataclass
class PageMeasure:
    """What the page measured in the browser (CSS pixels)."""

    scroll_width: int
    client_width: int
    images: int
    broken: list[str]
    tables: list[dict[str, int]]

    def overflowing_tables(self) -> list[dict[str, int]]:
        """Tables wider than the box they sit in, or reaching past the window's right edge."""
        return [t for t in self.tables if t["width"] > t["box"] + 1 or t["right"] > self.client_width + 1]


def chromium() -> str:
    """The chromium executable, or skip the test."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    return exe


def measure_page(page: Path, *, width: int = 1280, height: int = 2400, timeout: float = 90) -> PageMeasure:
    """Load ``page`` in headless Chromium at ``width`` px and return its :class:`PageMeasure`."""
    exe = chromium()
    text = page.read_text(encoding="utf-8")
    probe = page.with_name(f".measure-{page.name}")  # beside the page: relative links resolve the same
    probe.write_text(text.replace("</body>", _MEASURE + "</body>") if "</body>" in text else text + _MEASURE, encoding="utf-8")
    try:
        done = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--virtual-time-budget=5000", f"--window-size={width},{height}", "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r"<title>(.*?)</title>", done.stdout, re.S)
    if found is None or not found.group(1).startswith("{"):
        raise AssertionError(f"no measurement from chromium (exit {done.returncode}): {done.stderr[-500:]}")
    return PageMeasure(**json.loads(html.unescape(found.group(1))))

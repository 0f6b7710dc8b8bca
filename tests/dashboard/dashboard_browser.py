"""Headless Chromium for the dashboard tests, driven by Playwright.

Playwright is pointed at Debian's `/usr/bin/chromium` (`executable_path`): no browser is
downloaded (`scripts/install_chromium.sh`, `make browser`, installs the Debian package).
The wrapper offers what the tests need on top of Playwright's page: open a URL and wait for
text rendered client-side by Streamlit, read the HTML tables, wait until the page settles,
take a full-page screenshot of Streamlit's scrolling main area.

By hand: `python tests/dashboard/dashboard_browser.py URL OUT.png [TEXT ...]`.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--lang=zh-CN"]

# The height of the page as a reader scrolls it: Streamlit scrolls its main area, not the document.
PAGE_HEIGHT_JS = (
    "Math.max(document.documentElement.scrollHeight,"
    " ...Array.from(document.querySelectorAll('[data-testid=\"stMain\"], section.main,"
    " [data-testid=\"stAppScrollToBottomContainer\"]')).map(e => e.scrollHeight))"
)


# The text of every chart (axis titles and labels, legend titles and labels) that a reader cannot
# read whole: shortened with "…" by Vega, or reaching outside the chart's box (by more than 3 px:
# a text's box is its font's line, some 2 px beyond its glyphs).
CUT_CHART_TEXT_JS = """
Array.from(document.querySelectorAll('.vega-embed')).flatMap(embed => {
  const box = embed.getBoundingClientRect();
  return Array.from(embed.querySelectorAll(
      '.role-axis-title text, .role-axis-label text, .role-legend-title text, .role-legend-label text'))
    .filter(t => {
      const r = t.getBoundingClientRect();
      return t.textContent.endsWith('…') || r.left < box.left - 3 || r.right > box.right + 3
        || r.top < box.top - 3 || r.bottom > box.bottom + 3;
    })
    .map(t => t.textContent);
})
"""


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CITYCLOUD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


class Browser:
    """One headless Chromium (Debian's) with one page, 1440 × 1000 by default."""

    def __init__(self, width: int = 1440, height: int = 1000, executable: str | None = None):
        executable = executable or chromium_path()
        if not executable:
            raise RuntimeError("chromium not found: install it with `make browser` (apt-get install chromium)")
        self.width, self.height = width, height
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            self.page = self._browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
        except Exception:
            self._pw.stop()
            raise

    def open(self, url: str, texts: list[str], timeout: float = 45, absent: list[str] = ()) -> str:
        """Navigate (a fresh document) and wait until every string of `texts` is in the page."""
        self.page.set_viewport_size({"width": self.width, "height": self.height})
        self.page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        return self.wait_for(texts, timeout=timeout, absent=absent)

    def evaluate(self, expression: str):
        return self.page.evaluate(expression)

    def text(self) -> str:
        try:
            return self.page.evaluate("document.body ? document.body.innerText : ''") or ""
        except PlaywrightError:  # the page navigated or reran mid-read
            return ""

    def wait_for(self, texts: list[str], timeout: float = 30, absent: list[str] = ()) -> str:
        """Wait until every string of `texts` is in the page text and none of `absent`."""
        deadline = time.monotonic() + timeout
        page = ""
        while time.monotonic() < deadline:
            page = self.text()
            if all(t in page for t in texts) and not any(t in page for t in absent):
                return page
            time.sleep(0.2)
        missing = [t for t in texts if t not in page]
        present = [t for t in absent if t in page]
        raise AssertionError(f"page lacks {missing} / still shows {present} after {timeout}s; page text:\n{page[:3000]}")

    def tables(self) -> list[list[str]]:
        """Every row of every HTML table on the page (st.table), as lists of cell texts."""
        try:
            return self.page.evaluate(
                "Array.from(document.querySelectorAll('table tr')).map(tr =>"
                " Array.from(tr.cells).map(c => c.innerText.trim()))"
            ) or []
        except PlaywrightError:
            return []

    def wait_row(self, first: str, timeout: float = 20) -> list[str]:
        """Wait for a table row whose first cell is `first`; return its cells."""
        deadline = time.monotonic() + timeout
        tables: list[list[str]] = []
        while time.monotonic() < deadline:
            tables = self.tables()
            for row in tables:
                if row and row[0] == first:
                    return row
            time.sleep(0.2)
        raise AssertionError(f"no table row starting with {first!r} after {timeout}s; rows: {tables[:30]}")

    def wait_settled(self, timeout: float = 20, quiet: float = 1.0) -> None:
        """Wait until Streamlit stopped running and the page (text, charts) stopped changing."""
        probe = (
            "JSON.stringify([document.body.innerText.length,"
            " document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length,"
            " document.querySelectorAll('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"],"
            " [data-testid=\"stSkeleton\"]').length])"
        )
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            try:
                state = self.page.evaluate(probe)
            except PlaywrightError:
                state = None
            busy = json.loads(state)[2] if state else 1
            if state != last or busy:
                last, since = state, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)

    def page_height(self) -> int:
        """How tall the page is when scrolled through (px)."""
        return int(self.page.evaluate(PAGE_HEIGHT_JS) or self.height)

    def screenshot(self, path: Path | str, full_page: bool = True) -> Path:
        """PNG of the page; full_page grows the viewport to Streamlit's scrolling main area."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            height = min(max(self.page_height(), self.height), 12000)
            self.page.set_viewport_size({"width": self.width, "height": height})
            time.sleep(0.8)  # let charts re-layout to the new size
        self.page.screenshot(path=str(path))
        if full_page:
            self.page.set_viewport_size({"width": self.width, "height": self.height})
        return path

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._pw.stop()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    url, out, *texts = sys.argv[1:]
    with Browser() as b:
        b.open(url, texts, timeout=60)
        b.wait_settled()
        print(b.screenshot(out))

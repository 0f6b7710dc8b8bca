"""A small DevTools-protocol driver for Debian's headless Chromium (no browser download).

Starts `/usr/bin/chromium --headless` with a fresh profile and a DevTools port on 127.0.0.1,
attaches to its page over a websocket (the `websockets` package Streamlit already depends on)
and offers what the dashboard tests need: navigate, read the page text, wait for content
rendered client-side, take a full-page screenshot.

By hand: `python tests/dashboard/dashboard_cdp.py URL OUT.png [TEXT ...]`.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--lang=zh-CN",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CITYCLOUD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


class CDPError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, width: int = 1440, height: int = 1000, executable: str | None = None):
        self.executable = executable or chromium_path()
        if not self.executable:
            raise CDPError("chromium not found: install it with `make browser` (apt-get install chromium)")
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="citycloud-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        try:
            port = self._devtools_port()
            url = self._page_ws(port)
            try:
                self.ws = connect(url, max_size=None, open_timeout=20, legacy=True)
            except TypeError:  # websockets without the `legacy` switch
                self.ws = connect(url, max_size=None, open_timeout=20)
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.set_viewport(width, height)
        except Exception:
            self.close()
            raise

    # -------------------------------------------------------------- plumbing
    def _devtools_port(self, timeout: float = 30) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode}: {self._log_tail()}")
            if marker.exists():
                text = marker.read_text().split()
                if text:
                    return int(text[0])
            time.sleep(0.05)
        raise CDPError(f"chromium did not open a DevTools port in {timeout}s: {self._log_tail()}")

    def _page_ws(self, port: int) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                targets = json.load(resp)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise CDPError("no page target in chromium")

    def _log_tail(self) -> str:
        try:
            self.log.flush()
            return Path(self.profile, "chromium.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def send(self, method: str, params: dict | None = None, timeout: float = 60):
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"{method}: no answer in {timeout}s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") == msg_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result", {})

    # -------------------------------------------------------------- page
    def set_viewport(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url: str) -> None:
        self.set_viewport(self.width, self.height)
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigate {url}: {result['errorText']}")

    def reload(self) -> None:
        self.send("Page.reload", {"ignoreCache": True})

    def open(self, url: str, texts: list[str], timeout: float = 45, absent: list[str] = ()) -> str:
        """Navigate (a fresh document, never the previous page's DOM) and wait for `texts`."""
        try:
            self.evaluate("window.__stale_document = true")
        except CDPError:
            pass
        self.navigate(url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate("window.__stale_document === undefined && document.readyState !== 'loading'"):
                    break
            except CDPError:
                pass
            time.sleep(0.1)
        return self.wait_for(texts, timeout=max(1.0, deadline - time.monotonic()), absent=absent)

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

    def tables(self) -> list[list[str]]:
        """Every row of every HTML table on the page (st.table), as lists of cell texts."""
        return self.evaluate(
            "Array.from(document.querySelectorAll('table tr')).map(tr =>"
            " Array.from(tr.cells).map(c => c.innerText.trim()))"
        ) or []

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CDPError(f"evaluate: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, texts: list[str], timeout: float = 30, absent: list[str] = ()) -> str:
        """Wait until every string of `texts` is in the page text (rendered client-side)."""
        deadline = time.monotonic() + timeout
        page = ""
        while time.monotonic() < deadline:
            try:
                page = self.text()
            except CDPError:
                page = ""
            if all(t in page for t in texts) and not any(t in page for t in absent):
                return page
            time.sleep(0.2)
        missing = [t for t in texts if t not in page]
        raise AssertionError(f"page lacks {missing} after {timeout}s; page text:\n{page[:3000]}")

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
            state = self.evaluate(probe)
            busy = json.loads(state)[2] if state else 1
            if state != last or busy:
                last, since = state, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)

    def screenshot(self, path: Path | str, full_page: bool = True) -> Path:
        """PNG of the page; full_page grows the viewport to Streamlit's scrolling main area."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            height = self.evaluate(
                "Math.max(document.documentElement.scrollHeight,"
                " ...Array.from(document.querySelectorAll('[data-testid=\"stMain\"], section.main,"
                " [data-testid=\"stAppScrollToBottomContainer\"]')).map(e => e.scrollHeight))"
            ) or self.height
            self.set_viewport(self.width, int(min(max(height, self.height), 12000)))
            time.sleep(0.8)  # let charts re-layout to the new size
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.write_bytes(base64.b64decode(data))
        if full_page:
            self.set_viewport(self.width, self.height)
        return path

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    url, out, *texts = sys.argv[1:]
    with Browser() as b:
        b.navigate(url)
        b.wait_for(texts or ["Streamlit"] if texts else [], timeout=60)
        b.wait_settled()
        print(b.screenshot(out))

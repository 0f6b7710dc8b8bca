"""Delivered text on the dashboard (issue 31): a service, department, channel or outcome named
with markdown or HTML is shown as written on every page, and the browser loads nothing from
any host but the dashboard's own. `st.table` once rendered `![t](http://host/x.png)` as an
image every operator's browser fetched, and `[click](javascript:…)` as a link.

Real components: the worked example with hostile names through `citycloud run`, the dashboard
served by Streamlit, headless Chromium (Debian's) through Playwright. Every request to another
host is intercepted and aborted (never sent off the machine) and recorded."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TINY
from tests.faults.conftest import cli_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))

from dashboard_browser import Browser, chromium_path  # noqa: E402
from dashboard_support import Dashboard  # noqa: E402

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
CITY = "430100"
IMAGE = "![t](http://198.51.100.7/x.png)"
LINK = "[click](javascript:alert(1))"
TAG = "<img src=http://198.51.100.7/d.png>"
CHANNEL = "<b>x</b>![c](http://evil.example/c.png)"
OUTCOME = "![o](http://evil.example/o.png)"
PAGES = {"": "今日概览", "trends": "趋势", "services": "服务", "users": "用户运营", "settlement": "结算",
         "scorecard": "运营评价"}
LOCAL = {"127.0.0.1", "localhost"}


def _hostile_landing(landing: Path) -> None:
    shutil.copytree(TINY / "landing", landing)
    for catalog in (landing / CITY / "service_catalog").glob("dt=*/*.csv"):
        text = catalog.read_text(encoding="utf-8")
        catalog.write_text(text.replace(",社保服务0,", f",{IMAGE},").replace(",医疗服务1,", f",{LINK},")
                           .replace(",市人社局,", f",{TAG},"), encoding="utf-8")
    # the two services busiest on the last day, so that every page's top list shows them
    extra = [{"event_id": f"HOSTILE-{service}-{i}", "user_id": "U430100000004", "service_id": service,
              "event_time": "2026-03-03T09:00:00+08:00", "channel": CHANNEL, "outcome": "success"}
             for service in ("S43000", "S43001") for i in range(60)]
    extra.append({"event_id": "HOSTILE-OUTCOME", "user_id": "U430100000004", "service_id": "S43001",
                  "event_time": "2026-03-03T09:00:00+08:00", "channel": "web", "outcome": OUTCOME})
    with open(landing / CITY / "service_access" / "dt=2026-03-03" / "part-1.jsonl", "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in extra))


@pytest.fixture(scope="module")
def hostile_dashboard(tmp_path_factory):
    if not chromium_path():
        pytest.fail("chromium is not installed: run `make browser` (or scripts/install_chromium.sh)")
    tmp = tmp_path_factory.mktemp("hostile-text")
    _hostile_landing(tmp / "landing")
    warehouse = tmp / "wh" / "citycloud.duckdb"
    env = {**cli_env(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", "run", "--landing", str(tmp / "landing"),
                           "--warehouse", str(warehouse)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    d = Dashboard(warehouse, tmp / "streamlit.log")
    try:
        with Browser() as browser:
            yield d, browser
    finally:
        d.stop()


@pytest.mark.slow
def test_delivered_markdown_and_html_show_as_text_and_nothing_loads_from_elsewhere(hostile_dashboard):
    d, browser = hostile_dashboard
    elsewhere: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).hostname in LOCAL or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:  # never sent: recorded and aborted here
            elsewhere.append(route.request.url)
            route.abort()

    browser.page.context.route("**/*", only_local)
    texts = {}
    for path, title in PAGES.items():
        browser.open(f"{d.url}/{path}?city={CITY}&day=2026-03-03", [title])
        browser.wait_settled(timeout=30)
        texts[path] = browser.text()
        found = browser.evaluate(
            "[...document.querySelectorAll('img[src], a[href], image, [srcset], [style*=\"url(\"]')]"
            ".map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('srcset')"
            " || e.getAttribute('xlink:href') || e.getAttribute('style'))"
            ".filter(u => /198\\.51\\.100\\.7|evil\\.example|javascript:/i.test(u || ''))")
        assert found == [], f"/{path}: hostile URLs became elements: {found}"
    assert elsewhere == []
    for literal in (IMAGE, LINK, TAG):
        assert literal in texts["services"], (literal, texts["services"][-3000:])
    assert CHANNEL in texts["users"]
    assert f"unknown outcome '{OUTCOME}'" in texts[""]


def test_tables_and_markdown_lines_escape_every_delivered_character():
    import pandas as pd

    from citycloud.dashboards.as_text import html_table, markdown_literal

    table = html_table(pd.DataFrame({"服务 <x>": [IMAGE, None], "n": [1.5, float("nan")], "k": [3, 4]}))
    assert "<th>服务 &lt;x&gt;</th>" in table
    assert f"<td>{IMAGE}</td><td class=num>1.5000</td><td class=num>3</td>" in table
    assert "<tr><td></td><td class=num></td><td class=num>4</td></tr>" in table
    assert "<td>&lt;img src=http://198.51.100.7/d.png&gt;</td>" in html_table(pd.DataFrame({"d": [TAG]}))
    assert markdown_literal(LINK) == r"\[click\]\(javascript\:alert\(1\)\)"
    assert markdown_literal("a\n# b $x$ :red[y]") == r"a \# b \$x\$ \:red\[y\]"

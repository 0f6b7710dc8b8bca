"""Every dashboard page runs (Streamlit's AppTest, in-process, no browser) on a snapshot, with
the registry's labels; the Settlement page shows the recorded statements and lines. A page run
alone has no `app.py` gate, so each run is given local mode's scope (every city) as the gate
would; tables are the escaped HTML of `ui.table`, read back as text."""
from __future__ import annotations

from html.parser import HTMLParser
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from citycloud.access import Scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
import dashboard_handmade as handmade  # noqa: E402

VIEWS = Path(__file__).resolve().parents[2] / "dashboards" / "views"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    wh = tmp_path_factory.mktemp("pages") / "wh.duckdb"
    handmade.build(wh)
    return wh


def run_page(page: str, warehouse: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("CITYCLOUD_WAREHOUSE", str(warehouse))
    at = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=120)
    at.session_state["_scope"] = Scope.local(("430100",))
    at.query_params["city"] = "430100"
    at.run()
    assert [e.value for e in at.exception] == []
    return at


def html_tables(at: AppTest) -> list[pd.DataFrame]:
    """The page's `ui.table`s (st.html elements), every cell as the text shown."""
    def walk(node):
        yield node
        for child in (getattr(node, "children", None) or {}).values():
            yield from walk(child)
    bodies = [e.proto.body for e in walk(at._tree) if getattr(e, "type", "") == "html" and "<table" in e.proto.body]
    return [_table(b) for b in bodies]


def _table(html: str) -> pd.DataFrame:
    rows = []

    class Cells(HTMLParser):
        cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                rows[-1].append("".join(self.cell).strip())
                self.cell = None

    Cells().feed(html)
    header, *body = [r for r in rows if r]
    return pd.DataFrame(body, columns=header)


@pytest.mark.parametrize("page", ["today", "trends", "services"])
def test_page_runs_with_registry_labels(page, warehouse, monkeypatch):
    at = run_page(page, warehouse, monkeypatch)
    text = " ".join([str(t.to_dict()) for t in html_tables(at)] + [m.value for m in at.markdown]
                    + [m.label for m in at.metric])
    assert "注册用户数" in text or "接入服务数" in text


def test_settlement_page_shows_recorded_statements(warehouse, monkeypatch):
    at = run_page("settlement", warehouse, monkeypatch)
    tables = html_tables(at)
    lines = next(t for t in tables if "达成率" in t.columns and "目标" in t.columns)
    mau = lines[lines["指标"] == "月活跃用户 MAU"].iloc[0]
    assert (mau["实际"], mau["目标"], mau["档位系数"]) == ("110", "120", "0.90")  # version 2's line (a factor reads 0.90, #29)
    versions = next(t for t in tables if "版本" in t.columns and "状态" in t.columns and "支付金额" in t.columns)
    assert list(zip(versions["版本"], versions["状态"], versions["支付金额"])) == [
        ("v1", "最终", "¥31,200.00"), ("v2", "重述", "¥33,800.00")]

"""Every dashboard page runs (Streamlit's AppTest, in-process, no browser) on a snapshot, with
the registry's labels; the Settlement page shows the recorded statements and lines."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

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
    at.query_params["city"] = "430100"
    at.run()
    assert [e.value for e in at.exception] == []
    return at


@pytest.mark.parametrize("page", ["today", "trends", "services"])
def test_page_runs_with_registry_labels(page, warehouse, monkeypatch):
    at = run_page(page, warehouse, monkeypatch)
    text = " ".join([str(t.value.to_dict()) for t in at.table] + [m.value for m in at.markdown]
                    + [m.label for m in at.metric])
    assert "注册用户数" in text or "接入服务数" in text


def test_settlement_page_shows_recorded_statements(warehouse, monkeypatch):
    at = run_page("settlement", warehouse, monkeypatch)
    tables = [t.value for t in at.table]
    lines = next(t for t in tables if "达成率" in t.columns and "目标" in t.columns)
    mau = lines[lines["指标"] == "月活跃用户 MAU"].iloc[0]
    assert (mau["实际"], mau["目标"], mau["档位系数"]) == ("110", "120", "0.9000")  # version 2's line
    versions = next(t for t in tables if "版本" in t.columns and "状态" in t.columns and "支付金额" in t.columns)
    assert list(zip(versions["版本"], versions["状态"], versions["支付金额"])) == [
        ("v1", "最终", "¥31,200.00"), ("v2", "重述", "¥33,800.00")]

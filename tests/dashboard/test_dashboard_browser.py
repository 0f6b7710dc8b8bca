"""The dashboard in a real browser: each page renders the warehouse's figures, and it keeps
rendering while a writer holds the warehouse and replaces the published snapshot.

Streamlit renders client-side, so the tests drive Debian's headless Chromium with Playwright
(tests/dashboard/dashboard_browser.py) and wait for the content. Screenshots go to a temporary folder,
or to CITYCLOUD_SCREENSHOT_DIR (`make docs-img` refreshes docs/img that way).
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dashboard_handmade as handmade
from dashboard_support import ROOT, Dashboard, snapshot_query

from citycloud.dashboards import fmt

pytestmark = pytest.mark.slow

# Tests write only to temporary folders; `make docs-img` points this at docs/img to refresh the docs.
SHOTS = Path(os.environ.get("CITYCLOUD_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="citycloud-shots-"))
ERRORS = ("Traceback", "Error:", "IOException", "Could not set lock", "Conflicting lock", "Page not found")
CITY = "430100"


def assert_clean(text: str) -> None:
    bad = [e for e in ERRORS if e in text]
    assert not bad, f"page shows {bad}:\n{text[:3000]}"


def row(tables: list[list[str]], first: str, *, contains: str | None = None) -> list[str]:
    for r in tables:
        if r and r[0] == first and (contains is None or contains in r):
            return r
    raise AssertionError(f"no table row starting with {first!r} ({contains=}); rows: {tables[:40]}")


def latest_day_values(warehouse: Path, city: str) -> dict:
    cols = ["kpi_date", "registered_users", "dau", "total_accesses", "success_rate", "satisfaction_rate",
            "connected_services", "mau_30d"]
    (values,) = snapshot_query(
        warehouse, f"SELECT {', '.join(cols)} FROM marts.kpi_daily WHERE city_code = ? ORDER BY kpi_date DESC LIMIT 1",
        [city],
    )
    return dict(zip(cols, values))


def tables_in(warehouse: Path) -> set[str]:
    return {f"{s}.{t}" for s, t in snapshot_query(
        warehouse, "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()")}


WRITER = textwrap.dedent(
    """
    import sys, time
    import duckdb
    from citycloud.config import Settings
    from citycloud.publish import export_snapshot

    warehouse, rounds = sys.argv[1], int(sys.argv[2])
    settings = Settings(warehouse=__import__("pathlib").Path(warehouse))
    con = duckdb.connect(warehouse)          # holds the warehouse for writing throughout
    print("holding", flush=True)
    for i in range(rounds):
        con.execute("UPDATE marts.kpi_daily SET registered_users = registered_users + 1 "
                    "WHERE city_code = '430100' AND kpi_date = (SELECT max(kpi_date) FROM marts.kpi_daily)")
        export_snapshot(con, settings)       # temp file + atomic rename, as every publish does
        time.sleep(0.15)
    time.sleep(1.0)
    con.close()
    print("done", flush=True)
    """
)


def test_keeps_rendering_while_a_writer_replaces_the_snapshot(browser, tmp_path, warehouse_future):
    """Runs first, while `warehouse_future` builds the real warehouse for the next test."""
    warehouse = tmp_path / "live.duckdb"
    d = Dashboard(warehouse, tmp_path / "streamlit.log")
    try:
        # no snapshot yet: a clear message, no error
        text = browser.open(f"{d.url}/?city={CITY}", ["citycloud run"])
        assert_clean(text)
        browser.screenshot(tmp_path / "no_snapshot.png", full_page=False)

        facts = handmade.build(warehouse)
        start = int(facts["changsha_last"]["registered_users"])
        text = browser.open(f"{d.url}/?city={CITY}", ["全部指标", fmt.fmt_int(start)])
        assert_clean(text)

        rounds = 10
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(warehouse), str(rounds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert writer.stdout.readline().strip() == "holding"
            seen = set()
            loads = 0
            while writer.poll() is None:
                for page, marker in (("", "全部指标"), ("trends", "区间变化"), ("services", "按部门"),
                                     ("settlement", "结算单版本")):
                    text = browser.open(f"{d.url}/{page}?city={CITY}", [marker], timeout=30)
                    assert_clean(text)
                    loads += 1
                    if page == "":
                        seen.add(browser.wait_row("注册用户数")[1])
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        assert loads >= 4
        # the page follows the published state: after the last publish it shows the last value
        final = fmt.fmt_int(start + rounds)
        text = browser.open(f"{d.url}/?city={CITY}", ["全部指标", final])
        assert_clean(text)
        assert browser.wait_row("注册用户数")[1] == final
        print(f"\n{loads} page loads during {rounds} snapshot replacements; values seen: {sorted(seen)}",
              file=sys.stderr)
    finally:
        d.stop()


def test_pages_show_the_warehouse_figures(dashboard, browser, warehouse_under_test):
    wh = warehouse_under_test["warehouse"]
    v = latest_day_values(wh, CITY)
    day: dt.date = v["kpi_date"]
    base = dashboard.url
    timings = {}

    # Today, one city: the day's KPIs with both comparisons
    t = time.monotonic()
    text = browser.open(f"{base}/?city={CITY}", ["今日概览", "全部指标", f"{fmt.fmt_day(day)}", "交付"])
    browser.wait_settled()
    text = browser.text()
    assert_clean(text)
    browser.wait_row("活跃服务数")
    tables = browser.tables()
    assert row(tables, "注册用户数")[1] == fmt.fmt_int(v["registered_users"])
    assert row(tables, "日活跃用户 DAU")[1] == fmt.fmt_int(v["dau"])
    assert row(tables, "访问次数")[1] == fmt.fmt_int(v["total_accesses"])
    assert row(tables, "访问成功率")[1] == fmt.fmt_pct(v["success_rate"])
    assert row(tables, "满意度（好评率）")[1] == fmt.fmt_pct(v["satisfaction_rate"])
    header = row(tables, "指标")
    assert header[:4] == ["指标", "当日", "较前一日", "较上周同日"]
    assert "长沙市（430100）" in text and "数据质量" in text and "拒收" in text
    browser.screenshot(SHOTS / "dashboard_today.png")
    timings["today"] = time.monotonic() - t

    # Today, all cities: the summary table (Chinese city names)
    text = browser.open(f"{base}/", ["各城市", "长沙市（430100）"])
    browser.wait_settled()
    text = browser.text()
    assert_clean(text)
    summary = row(browser.tables(), "长沙市（430100）")
    assert fmt.fmt_int(v["registered_users"]) in summary and fmt.fmt_pct(v["success_rate"]) in summary

    # Trends: the range table's last value equals the day's figure
    t = time.monotonic()
    text = browser.open(f"{base}/trends?city={CITY}", ["趋势", "区间变化", "注册用户数（人）"])
    browser.wait_settled()
    text = browser.text()
    assert_clean(text)
    r = row(browser.tables(), "长沙市（430100）", contains="注册用户数")
    assert r[4] == fmt.fmt_int(v["registered_users"])  # 期末
    r = row(browser.tables(), "长沙市（430100）", contains="30日活跃用户 MAU")
    assert r[4] == fmt.fmt_int(v["mau_30d"])
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 6
    browser.screenshot(SHOTS / "dashboard_trends.png")
    timings["trends"] = time.monotonic() - t

    # Services: the busiest service of the last 7 days, with its Chinese name
    t = time.monotonic()
    (top,) = snapshot_query(
        wh,
        "SELECT service_id, any_value(service_name), sum(total_accesses) AS n FROM marts.service_daily "
        "WHERE city_code = ? AND kpi_date BETWEEN ? AND ? GROUP BY service_id ORDER BY n DESC, service_id LIMIT 1",
        [CITY, day - dt.timedelta(days=6), day],
    )
    text = browser.open(f"{base}/services?city={CITY}", ["服务", "访问量前 10 的服务", "按部门", top[1]])
    browser.wait_settled()
    text = browser.text()
    assert_clean(text)
    r = row(browser.tables(), top[1])
    assert r[1] == top[0] and r[4] == fmt.fmt_int(top[2])
    metrics = browser.evaluate(
        "Array.from(document.querySelectorAll('[data-testid=\"stMetric\"]')).map(m => m.innerText)")
    assert any(m.startswith("接入服务数（期末）") and fmt.fmt_int(v["connected_services"]) in m for m in metrics), metrics
    browser.screenshot(SHOTS / "dashboard_services.png")
    timings["services"] = time.monotonic() - t

    # Settlement: February's monthly actuals against the contract's targets (tiny contracts.yml)
    t = time.monotonic()
    (m,) = snapshot_query(
        wh, "SELECT mau, registered_users, connected_services FROM marts.kpi_monthly "
            "WHERE city_code = ? AND month = DATE '2026-02-01'", [CITY],
    )
    text = browser.open(f"{base}/settlement?city={CITY}", ["结算", "CS-2026-003", "指标达成", "结算单版本"])
    browser.wait_settled()
    text = browser.text()
    assert_clean(text)
    tables = browser.tables()
    assert row(tables, "月活跃用户 MAU")[1:3] == [fmt.fmt_int(m[0]), "120"]
    assert row(tables, "注册用户数")[1:3] == [fmt.fmt_int(m[1]), "150"]
    assert row(tables, "接入服务数")[1:3] == [fmt.fmt_int(m[2]), "40"]
    statements = snapshot_query(
        wh, "SELECT version, status, payment_cny FROM marts.settlement_statements "
            "WHERE city_code = ? AND month = DATE '2026-02-01' ORDER BY version", [CITY],
    ) if "marts.settlement_statements" in tables_in(wh) else []
    if statements:
        version, status, payment = statements[-1]
        r = row(tables, f"v{version}")
        assert r[1] == fmt.STATUS_LABELS[status] and r[2] == fmt.fmt_money(payment)
    else:
        assert "尚未结算" in text or "结算单表" in text
    browser.screenshot(SHOTS / "dashboard_settlement.png")
    timings["settlement"] = time.monotonic() - t
    print(f"\npage timings (s): {', '.join(f'{k} {v:.1f}' for k, v in timings.items())} "
          f"on {warehouse_under_test['note']}", file=sys.stderr)

"""The dashboard's data access and formatting, without a browser (fast)."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import dashboard_handmade as handmade
from dashboard_support import ROOT

from citycloud import dashboards
from citycloud.dashboards import data, fmt
from citycloud.config import Settings
from citycloud.publish import export_snapshot
from citycloud.access import Scope

EVERY_CITY = Scope.local(())  # local mode: every city, nothing filtered

LAST = dt.date(2026, 3, 3)


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    warehouse = tmp_path_factory.mktemp("dash-data") / "wh.duckdb"
    handmade.build(warehouse)
    return warehouse


def test_formats_for_chinese_operators():
    assert fmt.fmt_int(20552160) == "20,552,160"
    assert fmt.fmt_int(None) == fmt.MISSING and fmt.fmt_pct(float("nan")) == fmt.MISSING
    assert fmt.fmt_pct(0.8809523809523809) == "88.10%"
    assert fmt.fmt_delta("registered_users", 101, 91) == "+10（+11.0%）"
    assert fmt.fmt_delta("dau", 28, 29) == "-1（-3.4%）"
    assert fmt.fmt_delta("success_rate", 0.8809523809523809, 0.9736842105263158) == "-9.27个百分点"
    assert fmt.fmt_delta("ratings", 4, 4) == "持平"
    assert fmt.fmt_money(Decimal("33800")) == "¥33,800.00"
    assert fmt.fmt_money("1250000.005") == "¥1,250,000.01"  # half-up, decimal
    assert fmt.city_label("430100") == "长沙市（430100）"
    assert fmt.city_label("999999") == "999999"
    assert fmt.fmt_day(LAST) == "2026-03-03（星期二）"


def test_today_compares_with_the_day_before_and_a_week_before(snap):
    d = data.run_load(snap, EVERY_CITY, data.load_today, ("430100", "310000"), LAST)
    assert d["missing"] == []
    as_of, table = data.comparison_table(d["kpis"], "430100")
    assert as_of == LAST
    reg = table[table["指标"] == "注册用户数"].iloc[0]
    assert (reg["当日"], reg["较前一日"], reg["较上周同日"]) == ("101", "+1（+1.0%）", "+10（+11.0%）")
    # a day without its own row shows the latest day before it
    d2 = data.run_load(snap, EVERY_CITY, data.load_today, ("430100",), LAST + dt.timedelta(days=10))
    assert data.comparison_table(d2["kpis"], "430100")[0] == LAST

    q = data.quality_summary(d["quality"], "430100", LAST)
    assert (q["blocking"], q["warnings"], q["checks"]) == (0, 1, 4)  # latest result of each check
    status = data.delivery_status(d["deliveries"], "430100", LAST)
    on_day = status[status["dt"] == LAST].set_index("source")["status"].to_dict()
    assert on_day == {"registrations": "on_time", "service_access": "on_time", "service_catalog": "no_snapshot",
                      "ratings": "on_time", "review_tickets": "on_time"}
    # review_tickets is not a waited source: a day without a ticket delivery is not missing
    assert status[(status["dt"] == LAST - dt.timedelta(days=3)) & (status["source"] == "review_tickets")][
        "status"].item() == "no_snapshot"
    two_before = LAST - dt.timedelta(days=2)  # its ratings came in after later days' deliveries
    assert status[(status["dt"] == two_before) & (status["source"] == "ratings")]["status"].item() == "late"
    assert set(status[status["source"] == "registrations"]["status"]) == {"on_time"}
    # with a deadline, a delivery ingested long after its day is late too
    strict = data.delivery_status(d["deliveries"], "430100", LAST, deadline_hours=12)
    assert set(strict[strict["source"] == "registrations"]["status"]) == {"late"}
    sh = data.delivery_status(d["deliveries"], "310000", LAST)
    assert sh[(sh["dt"] == LAST) & (sh["source"] == "registrations")]["status"].item() == "missing"
    assert [m["kpi"] for m in data.movers(d["kpis"], "430100")][:1] == ["registered_users"]


def test_absent_tables_are_reported_not_raised(tmp_path):
    warehouse = tmp_path / "bare.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE SCHEMA marts; CREATE SCHEMA audit")
    cols = ", ".join(f"{c} DOUBLE" if c.endswith("_rate") else f"{c} BIGINT" for c in fmt.DAILY_KPIS)
    con.execute(f"CREATE TABLE marts.kpi_daily (city_code VARCHAR, kpi_date DATE, {cols})")
    con.execute("INSERT INTO marts.kpi_daily (city_code, kpi_date, registered_users) VALUES ('460100', '2026-03-01', 5)")
    export_snapshot(con, Settings(warehouse=warehouse))
    con.close()
    d = data.run_load(warehouse, EVERY_CITY, data.load_today, ("460100",), dt.date(2026, 3, 1))
    assert set(d["missing"]) == {"audit.quality_results", "audit.rejected_rows", "audit.rejected_files",
                                 "audit.deliveries"}
    assert data.quality_summary(d["quality"], "460100", dt.date(2026, 3, 1))["available"] is False
    s = data.run_load(warehouse, EVERY_CITY, data.load_settlement, ("460100",))
    assert s["statements"] is None and s["lines"] is None and s["monthly"] is None
    assert data.run_load(warehouse, EVERY_CITY, data.load_services, ("460100",), dt.date(2026, 3, 1), dt.date(2026, 3, 1))[
        "services"] is None


def test_missing_snapshot_says_what_to_run(tmp_path):
    with pytest.raises(data.SnapshotMissing, match="citycloud run"):
        data.run_load(tmp_path / "none.duckdb", EVERY_CITY, data.load_overview)
    assert data.snapshot_version(tmp_path / "none.duckdb") is None


def test_reads_while_a_writer_holds_the_warehouse_and_replaces_the_snapshot(snap):
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, time
            from pathlib import Path
            from citycloud.config import Settings
            from citycloud.publish import export_snapshot
            con = duckdb.connect({str(snap)!r})
            print("holding", flush=True)
            for i in range(6):
                con.execute("UPDATE marts.kpi_daily SET dau = dau + 1 WHERE city_code = '430100'")
                export_snapshot(con, Settings(warehouse=Path({str(snap)!r})))
            con.close()
        """)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert writer.stdout.readline().strip() == "holding"
    reads = 0
    versions = set()
    while writer.poll() is None or reads < 3:
        d = data.run_load(snap, EVERY_CITY, data.load_today, ("430100",), LAST)
        assert not d["kpis"].empty
        versions.add(data.snapshot_version(snap))
        reads += 1
    assert writer.wait() == 0
    assert reads >= 3
    final = data.run_load(snap, EVERY_CITY, data.load_today, ("430100",), LAST)
    assert data.kpi_values(final["kpis"], "430100")["dau"] == 28 + 6


def test_settlement_page_shows_what_settlement_recorded(snap):
    """The page reads marts.settlement_* as stored (no contracts file, no recomputed money)."""
    s = data.run_load(snap, EVERY_CITY, data.load_settlement, ("430100",))
    expected = handmade._read_csv(handmade.TINY / "expected" / "settlement_2026-02.csv")
    stmts = s["statements"]
    assert list(zip(stmts["version"], stmts["status"], stmts["payment_cny"])) == [
        (1, "final", "31200.00"), (2, "restatement", expected[0]["payment_cny"])]
    v2 = s["lines"][s["lines"]["version"] == 2].set_index("kpi")
    assert {k: Decimal(f) for k, f in v2["factor"].items()} == {r["kpi"]: Decimal(r["factor"]) for r in expected}
    assert not hasattr(data, "estimate_settlement") and not hasattr(data, "load_contracts")
    # monthly KPIs under the registry's names, as kpi_monthly holds them
    assert list(s["monthly"].columns) == ["city_code", "month", "connected_services", "registered_users",
                                          "new_registrations", "total_accesses", "satisfaction_rate", "mau",
                                          "activity_rate"]


def test_serve_runs_streamlit_on_the_app(tmp_path):
    cmd = dashboards.command(tmp_path / "wh.duckdb", port=8600, address="127.0.0.1")
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"] and cmd[4].endswith("dashboards/app.py")
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--warehouse") + 1] == str((tmp_path / "wh.duckdb").resolve())
    assert dashboards.command("x.duckdb", headless=False)[cmd.index("--server.headless") + 1] == "false"

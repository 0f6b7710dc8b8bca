"""End to end with `airflow dags test` on the SQLite metadata DB, over the tiny example.

- the daily DAG for one day gives the same marts as `citycloud run` on the same data;
- a backfill of consecutive days, run in order, gives them again (each run ingests dt <= D);
- a city that delivers nothing alerts and does not block the others;
- the monthly DAG writes a provisional statement version and its files; re-running writes
  nothing new; a person's final run seals the month.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from airflow_harness import AIRFLOW_HOME, BIN, REPO, base_env, dags_test

pytestmark = pytest.mark.slow


def _tiny() -> Path:
    for candidate in (REPO / "tests" / "data" / "tiny", REPO.parent / "shared" / "examples" / "tiny"):
        if (candidate / "landing").is_dir() and (candidate / "contracts.yml").is_file():
            return candidate
    pytest.skip("the tiny example (tests/data/tiny or ../shared/examples/tiny) is not here")


TINY = _tiny()
KEY = "airflow-e2e-not-secret-3f9c1d"
LAST_DAY = "2026-03-03"
DAILY_TASKS = ("wait_for_deliveries", "ingest", "build", "check", "publish")

# The public columns of the marts (interfaces.md): extra columns may come and go.
MART_COLUMNS = {
    "kpi_daily": "city_code, kpi_date, connected_services, active_services, registered_users, new_registrations, "
    "cancellations, verified_users, dau, wau, mau_30d, total_accesses, successful_accesses, success_rate, "
    "ratings, satisfaction_rate",
    "kpi_monthly": "city_code, month, connected_services, registered_users, mau, activity_rate, satisfaction_rate, "
    "new_registrations, total_accesses",
    "service_daily": "city_code, kpi_date, service_id, service_name, department, category, total_accesses, "
    "successful_accesses, users",
}


def pipeline_env(root: Path, landing: Path | None = None, **extra: str) -> dict[str, str]:
    return base_env(
        CITYCLOUD_LANDING=str(landing or TINY / "landing"),
        CITYCLOUD_WAREHOUSE=str(root / "warehouse" / "citycloud.duckdb"),
        CITYCLOUD_CONTRACTS=str(TINY / "contracts.yml"),
        CITYCLOUD_OUTPUT=str(root / "output"),
        CITYCLOUD_PII_KEY=KEY,
        **extra,
    )


def query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def published_marts(warehouse: Path) -> dict[str, list[tuple]]:
    return {t: query(warehouse, f"SELECT {cols} FROM marts.{t} ORDER BY ALL") for t, cols in MART_COLUMNS.items()}


def max_published_day(warehouse: Path) -> dict[str, dt.date]:
    return dict(query(warehouse, "SELECT city_code, max(kpi_date) FROM marts.kpi_daily GROUP BY 1"))


def assert_all_succeeded(result, tasks=DAILY_TASKS):
    assert result.state == "success", result.output[-8000:]
    assert result.tasks == {t: "success" for t in tasks}, result.output[-8000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, list[tuple]]:
    """What `citycloud run` publishes on the same landing area."""
    root = tmp_path_factory.mktemp("cli")
    warehouse = root / "warehouse" / "citycloud.duckdb"
    proc = subprocess.run(
        [str(BIN / "citycloud"), "run", "--landing", str(TINY / "landing"), "--warehouse", str(warehouse),
         "--contracts", str(TINY / "contracts.yml")],
        env=pipeline_env(root), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    marts = published_marts(warehouse)
    assert all(marts.values()), "the reference run published empty marts"
    return marts


@pytest.fixture(scope="module")
def daily(airflow_db, tmp_path_factory):
    """One daily run for the last day of the example, the PII key coming from an Airflow Variable."""
    root = tmp_path_factory.mktemp("daily")
    env = pipeline_env(root)
    del env["CITYCLOUD_PII_KEY"]
    env["AIRFLOW_VAR_CITYCLOUD_PII_KEY"] = KEY  # Airflow's env-var secrets backend for Variables
    return root, env, dags_test("citycloud_daily", LAST_DAY, env)


def test_daily_run_equals_cli_run(daily, reference):
    root, _, result = daily
    assert_all_succeeded(result)
    assert published_marts(root / "warehouse" / "citycloud.duckdb") == reference
    assert (root / "warehouse" / "citycloud.published.duckdb").is_file(), "readers' snapshot"
    # the key came from the Variable and is masked in every log line
    assert "PII key taken from Airflow Variable citycloud_pii_key" in result.output
    assert KEY not in result.output
    # every expected delivery was there: the sensor did not wait
    assert "all 3 expected deliveries for 2026-03-03 are complete" in result.output


def test_daily_run_updates_the_marts_assets(daily):
    _, _, result = daily
    con = sqlite3.connect(AIRFLOW_HOME / "airflow.db")
    try:
        rows = con.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE e.source_run_id = ?",
            [result.run_id],
        ).fetchall()
    finally:
        con.close()
    assert sorted(name for name, _ in rows) == [
        "citycloud.marts.kpi_daily", "citycloud.marts.kpi_monthly", "citycloud.marts.service_daily"
    ]
    assert all(json.loads(extra) == {"day": LAST_DAY} for _, extra in rows)


def test_backfill_in_order_gives_the_same_marts(airflow_db, reference, tmp_path_factory):
    root = tmp_path_factory.mktemp("backfill")
    env = pipeline_env(root)
    warehouse = root / "warehouse" / "citycloud.duckdb"
    for day in ("2026-03-01", "2026-03-02", LAST_DAY):
        assert_all_succeeded(dags_test("citycloud_daily", day, env))
        # each run ingests the deliveries with dt <= its day, no further
        assert max_published_day(warehouse) == {"430100": dt.date.fromisoformat(day)}
        (latest_dt,) = query(warehouse, "SELECT max(dt) FROM audit.deliveries")[0]
        assert latest_dt == dt.date.fromisoformat(day)
    assert published_marts(warehouse) == reference


def test_a_city_that_delivers_nothing_does_not_block_the_others(airflow_db, tmp_path_factory):
    """Two cities from 2026-02-26 on; 430199 delivers nothing on 2026-03-03."""
    root = tmp_path_factory.mktemp("silent")
    landing = root / "landing"
    for city in ("430100", "430199"):
        for folder in sorted((TINY / "landing" / "430100").glob("*/dt=*")):
            if folder.name >= "dt=2026-02-26" and not (city == "430199" and folder.name == f"dt={LAST_DAY}"):
                shutil.copytree(folder, landing / city / folder.parent.name / folder.name)
    result = dags_test("citycloud_daily", LAST_DAY, pipeline_env(root, landing=landing))

    assert result.state == "success", result.output[-8000:]
    assert result.tasks == {**{t: "success" for t in DAILY_TASKS}, "wait_for_deliveries": "failed"}
    (alert,) = [ln for ln in result.output.splitlines() if "CITYCLOUD ALERT" in ln]
    assert "wait_for_deliveries FAILED for day 2026-03-03" in alert
    assert "430199/registrations (not delivered)" in alert and "430100/" not in alert
    warehouse = root / "warehouse" / "citycloud.duckdb"
    assert max_published_day(warehouse) == {"430100": dt.date(2026, 3, 3), "430199": dt.date(2026, 3, 2)}


def _statements(warehouse: Path) -> list[tuple]:
    return query(
        warehouse,
        "SELECT contract_id, strftime(month, '%Y-%m'), version, status, payment_cny "
        "FROM marts.settlement_statements ORDER BY version",
    )


def test_monthly_settlement_provisional_then_final(daily):
    root, env, _ = daily
    warehouse = root / "warehouse" / "citycloud.duckdb"
    expected_payment = Decimal("33800.00")  # tests/data/tiny/expected/settlement_2026-02.csv

    # scheduled-style run: the logical date's month, provisional
    result = dags_test("citycloud_monthly_settlement", "2026-02-01", env)
    assert_all_succeeded(result, ("wait_for_month_published", "settle"))
    assert _statements(warehouse) == [("CS-2026-003", "2026-02", 1, "provisional", expected_payment)]
    files = sorted(p.suffix for p in (root / "output" / "statements" / "2026-02").rglob("*") if p.is_file())
    assert ".csv" in files and ".xlsx" in files, files

    # re-running with nothing changed writes nothing new
    result = dags_test("citycloud_monthly_settlement", "2026-03-05", env, conf={"month": "2026-02"})
    assert_all_succeeded(result, ("wait_for_month_published", "settle"))
    assert len(_statements(warehouse)) == 1

    # a person settles final
    result = dags_test("citycloud_monthly_settlement", "2026-03-06", env, conf={"month": "2026-02", "final": True})
    assert_all_succeeded(result, ("wait_for_month_published", "settle"))
    statements = _statements(warehouse)
    assert statements[-1][3] == "final" and statements[-1][4] == expected_payment

"""End to end on the SQLite metadata DB, over the tiny example: every DAG run of the module in
one process, each by `dag.test()` (what `airflow dags test` calls, without paying Airflow's
start-up once per run: run_dags.py).

- a backfill of consecutive days, run in order (each run ingests dt <= D; the first catches up
  on everything before), gives the same marts as `citycloud run` on the same data;
- a city that delivers nothing alerts and does not block the others;
- the monthly DAG writes a provisional statement version and its files; a person's final run
  seals the month; re-running it writes nothing new.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from citycloud.config import PUBLISHED_MARTS

from airflow_harness import AIRFLOW_HOME, REPO, run_dags

# Seven DAG runs (each ingests, builds, checks, publishes or settles): the end-to-end tier, `make
# test-e2e`, which CI runs after `make test` (3 of a busy `make test`'s minutes, #30). `make test`
# keeps the DAGs' structure (test_dag_integrity.py) and their tasks' decisions (test_orchestration.py).
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _tiny() -> Path:
    for candidate in (REPO / "tests" / "data" / "tiny", REPO.parent / "shared" / "examples" / "tiny"):
        if (candidate / "landing").is_dir() and (candidate / "contracts.yml").is_file():
            return candidate
    pytest.skip("the tiny example (tests/data/tiny or ../shared/examples/tiny) is not here")


TINY = _tiny()
KEY = "airflow-e2e-not-secret-3f9c1d-0123456789"
LAST_DAY = "2026-03-03"
DAILY_TASKS = ("wait_for_deliveries", "ingest", "build", "check", "publish", "send_alerts")

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


def citycloud_env(root: Path, landing: Path | None = None) -> dict[str, str]:
    """The CITYCLOUD_* settings of a scenario: its own warehouse and outputs under root."""
    return {
        "CITYCLOUD_LANDING": str(landing or TINY / "landing"),
        "CITYCLOUD_WAREHOUSE": str(root / "warehouse" / "citycloud.duckdb"),
        "CITYCLOUD_CONTRACTS": str(TINY / "contracts.yml"),
        "CITYCLOUD_OUTPUT": str(root / "output"),
        "CITYCLOUD_PII_KEY": KEY,
        "CITYCLOUD_DUCKDB_MEMORY_LIMIT": "2GB",
    }


def daily_runs(env: dict[str, str], *days: str) -> list[dict]:
    return [{"dag_id": "citycloud_daily", "logical_date": day, "env": env} for day in days]


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
def reference(tiny_built) -> dict[str, list[tuple]]:
    """What `citycloud run` publishes on the same landing area: the session's build of the
    worked example (tests/conftest.py). The marts compared hold no user key, so its PII key
    differs from KEY without changing them."""
    marts = published_marts(tiny_built.warehouse)
    assert all(marts.values()), "the reference run published empty marts"
    return marts


def silent_city_landing(root: Path) -> Path:
    """Two cities from 2026-02-26 on; 430199 delivers nothing on 2026-03-03."""
    landing = root / "landing"
    for city in ("430100", "430199"):
        for folder in sorted((TINY / "landing" / "430100").glob("*/dt=*")):
            if folder.name >= "dt=2026-02-26" and not (city == "430199" and folder.name == f"dt={LAST_DAY}"):
                shutil.copytree(folder, landing / city / folder.parent.name / folder.name)
    return landing


BACKFILL_DAYS = ("2026-03-01", "2026-03-02", LAST_DAY)


@pytest.fixture(scope="module")
def tiny(airflow_db, tmp_path_factory):
    """In one process (Airflow starts once): on one warehouse, a backfill of the example's last
    three days in order (the first run catches up on everything before) and then the monthly
    settlement of February three times (scheduled-style provisional, a person's final, the final
    re-run); then the daily run of a landing area where one city is silent, on its own warehouse.
    The PII key comes from the Airflow Variable citycloud_pii_key."""
    root = tmp_path_factory.mktemp("tiny")
    env = citycloud_env(root)
    del env["CITYCLOUD_PII_KEY"]
    month = {"dag_id": "citycloud_monthly_settlement", "env": env}
    final = {"month": "2026-02", "final": True}
    silent = tmp_path_factory.mktemp("silent")
    runs = [
        *daily_runs(env, *BACKFILL_DAYS),
        {**month, "logical_date": "2026-02-01"},  # the logical date's month, provisional
        {**month, "logical_date": "2026-03-05", "conf": final},
        {**month, "logical_date": "2026-03-06", "conf": final},  # re-run: nothing changed
        *daily_runs(citycloud_env(silent, silent_city_landing(silent)), LAST_DAY),
    ]
    # Airflow's environment-variable secrets backend serves the Variable
    results = run_dags(runs, AIRFLOW_VAR_CITYCLOUD_PII_KEY=KEY)
    days = len(BACKFILL_DAYS)
    return {"root": root, "backfill": results[:days], "daily": results[days - 1],
            "monthly": results[days:days + 3], "silent": (silent, results[-1])}


def test_daily_run_equals_cli_run(tiny, reference):
    root, result = tiny["root"], tiny["daily"]
    assert_all_succeeded(result)
    assert published_marts(root / "warehouse" / "citycloud.duckdb") == reference
    assert (root / "warehouse" / "citycloud.published.duckdb").is_file(), "readers' snapshot"
    # the key came from the Variable and is masked in every log line
    assert "PII key taken from Airflow Variable citycloud_pii_key" in result.output
    assert KEY not in result.output
    # every expected delivery was there: the sensor did not wait
    assert "all 3 expected deliveries for 2026-03-03 are complete" in result.output


def test_daily_run_updates_the_marts_assets(tiny):
    result = tiny["daily"]
    con = sqlite3.connect(AIRFLOW_HOME / "airflow.db")
    try:
        rows = con.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE e.source_run_id = ?",
            [result.run_id],
        ).fetchall()
    finally:
        con.close()
    # every published mart is an asset of the publish task (user-ops and scorecard marts included)
    assert sorted(name for name, _ in rows) == sorted(f"citycloud.marts.{t}" for t in PUBLISHED_MARTS)
    assert {"citycloud.marts.kpi_daily", "citycloud.marts.user_lifecycle"} <= {name for name, _ in rows}
    assert all(json.loads(extra) == {"day": LAST_DAY} for _, extra in rows)


def test_backfill_in_order_gives_the_same_marts(tiny, reference):
    for result in tiny["backfill"]:
        assert_all_succeeded(result)
    warehouse = tiny["root"] / "warehouse" / "citycloud.duckdb"
    # each run ingested the complete deliveries with dt <= its day not ingested before: the
    # first caught up everything up to 2026-03-01, the next ones one day each
    batches = query(warehouse, "SELECT batch_id, min(dt), max(dt) FROM audit.deliveries GROUP BY 1 ORDER BY 1")
    assert [(lo, hi) for _, lo, hi in batches] == [
        (dt.date(2026, 1, 30), dt.date(2026, 3, 1)),
        (dt.date(2026, 3, 2), dt.date(2026, 3, 2)),
        (dt.date(2026, 3, 3), dt.date(2026, 3, 3)),
    ]
    published_builds = query(warehouse, "SELECT count(*) FROM audit.builds WHERE status = 'published'")
    assert published_builds == [(3,)]
    assert published_marts(warehouse) == reference


def test_a_city_that_delivers_nothing_does_not_block_the_others(tiny):
    """Two cities from 2026-02-26 on; 430199 delivers nothing on 2026-03-03."""
    root, result = tiny["silent"]
    assert result.state == "success", result.output[-8000:]
    assert result.tasks == {**{t: "success" for t in DAILY_TASKS}, "wait_for_deliveries": "failed"}
    alerts = [ln for ln in result.output.splitlines() if "CITYCLOUD ALERT" in ln]
    assert alerts and "wait_for_deliveries FAILED for day 2026-03-03" in alerts[0]
    assert "430199/registrations (not delivered)" in alerts[0] and "430100/" not in alerts[0]
    warehouse = root / "warehouse" / "citycloud.duckdb"
    assert max_published_day(warehouse) == {"430100": dt.date(2026, 3, 3), "430199": dt.date(2026, 3, 2)}


def test_monthly_settlement_provisional_then_final(tiny):
    """After the daily run published 2026-03-03: the scheduled-style run for February settles
    provisionally, a person settles final, and re-running the final settlement writes nothing."""
    root, results = tiny["root"], tiny["monthly"]
    for result in results:
        assert_all_succeeded(result, ("wait_for_month_published", "settle", "score"))
    payment = Decimal("33800.00")  # tests/data/tiny/expected/settlement_2026-02.csv
    warehouse = root / "warehouse" / "citycloud.duckdb"
    assert query(
        warehouse,
        "SELECT contract_id, strftime(month, '%Y-%m'), version, status, payment_cny "
        "FROM marts.settlement_statements ORDER BY version",
    ) == [
        ("CS-2026-003", "2026-02", 1, "provisional", payment),
        ("CS-2026-003", "2026-02", 2, "final", payment),
    ]
    statements = root / "output" / "statements" / "2026-02"
    for version in (1, 2):
        for suffix in (".csv", ".xlsx"):
            assert (statements / f"statement_CS-2026-003_2026-02_v{version}{suffix}").is_file()

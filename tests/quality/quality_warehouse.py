"""Hand-built warehouses for the quality tests: the documented tables (docs/architecture.md,
interfaces.md) created here, filled with a small, clean, internally consistent dataset.

Every city delivers registrations, service_access and ratings every day and a catalog every 7
days; batch 1 holds the first `days - 10` days, batch 2 the last 10. The marts are synthesised so
that every KPI invariant holds (stable DAU around 1,000, slowly growing registered users).
"""
from __future__ import annotations

from datetime import date, timedelta

from pathlib import Path

import duckdb

from citycloud.config import Settings
from citycloud.expectations.bench_checks import create_tables

START = date(2026, 1, 1)
CITIES = ("310000", "510100")
DAYS = 40


# per city and day
REGISTRATIONS, ACCESSES, RATINGS, SERVICES = 30, 300, 20, 10


def make_settings(root: Path) -> Settings:
    """Settings whose every path lies under `root` (warehouse, output with the Data Docs)."""
    root.mkdir(parents=True, exist_ok=True)
    return Settings(landing=root / "landing", warehouse=root / "warehouse.duckdb", output=root / "output",
                    contracts=root / "contracts.yml")


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Ingestion's own raw.*/audit.* DDL plus the candidate marts: the fixtures can't drift."""
    create_tables(con)


def _days(con, cities, days, start, batch_split):
    con.execute("CREATE OR REPLACE TEMP TABLE _cd AS "
                "SELECT c.city_code, CAST(? AS DATE) + CAST(d.i AS INTEGER) AS dt, d.i AS day_index, "
                "CASE WHEN d.i < ? THEN 1 ELSE 2 END AS batch_id "
                "FROM (SELECT unnest(?::VARCHAR[]) AS city_code) c, range(?) d(i)",
                [start, batch_split, list(cities), days])


def fill_clean(con: duckdb.DuckDBPyConnection, cities=CITIES, days: int = DAYS, start: date = START) -> None:
    """A clean dataset: every blocking check passes, no warning is expected."""
    create_schema(con)
    _days(con, cities, days, start, days - 10)
    local_ts = "CAST(dt AS TIMESTAMP) - INTERVAL 8 HOUR + to_minutes(CAST(i AS BIGINT) * 3)"  # within day dt, Shanghai
    con.execute(f"""
        INSERT INTO raw.registrations
        SELECT city_code, dt, city_code || '/registrations/dt=' || dt || '/reg.csv', i + 2, batch_id,
               'r-' || city_code || '-' || day_index || '-' || i,
               CASE WHEN i % 10 = 9 THEN 'verify' ELSE 'register' END,
               sha256(city_code || ':user-' || (day_index * {REGISTRATIONS} + i)),
               {local_ts}, dt, ['ios','android','alipay_mini','wechat_mini','web'][i % 5 + 1],
               sha256('phone' || i), true, sha256('id' || i), true, CAST(i % 4 AS INTEGER), '310101'
        FROM _cd, range({REGISTRATIONS}) r(i)""")
    con.execute(f"""
        INSERT INTO raw.service_access
        SELECT city_code, dt, city_code || '/service_access/dt=' || dt || '/part-0.jsonl', i + 1, batch_id,
               'a-' || city_code || '-' || day_index || '-' || i,
               CASE WHEN i % 15 = 0 THEN NULL ELSE sha256(city_code || ':user-' || ((day_index * 37 + i) % 1500)) END,
               's' || (i % {SERVICES}), {local_ts}, dt, ['ios','android','alipay_mini','wechat_mini','web'][i % 5 + 1],
               CASE WHEN i % 20 = 0 THEN 'failure' ELSE 'success' END, i * 7
        FROM _cd, range({ACCESSES}) r(i)""")
    con.execute(f"""
        INSERT INTO raw.ratings
        SELECT city_code, dt, city_code || '/ratings/dt=' || dt || '/ratings.jsonl', i + 1, batch_id,
               'g-' || city_code || '-' || day_index || '-' || i, 'a-' || city_code || '-' || day_index || '-' || i,
               sha256(city_code || ':user-' || i), 's' || (i % {SERVICES}), CAST(i % 5 + 1 AS INTEGER),
               {local_ts}, dt, i % 3 = 0, CASE WHEN i % 3 = 0 THEN sha256('comment' || i) END
        FROM _cd, range({RATINGS}) r(i)""")
    con.execute(f"""
        INSERT INTO raw.service_catalog
        SELECT city_code, dt, city_code || '/service_catalog/dt=' || dt || '/catalog.csv', i + 2, batch_id,
               's' || i, '服务' || i, '市政务办', '社保', DATE '2025-01-01', NULL
        FROM _cd, range({SERVICES}) r(i) WHERE day_index % 7 = 0""")
    # the ledger: what ingestion would have written (one rejected row in every 5th access delivery)
    con.execute("""
        INSERT INTO audit.deliveries (city_code, source, dt, files, rows_read, rows_loaded, rows_rejected,
                                      ingested_at, files_rejected, duplicates_in_delivery, content_hash, batch_id)
        SELECT city_code, source, dt, 1, n + rejected, n, rejected, now()::TIMESTAMP, 0, 0, 'hash', batch_id
        FROM (SELECT city_code, 'registrations' AS source, dt, batch_id, count(*) AS n, 0 AS rejected
              FROM raw.registrations GROUP BY ALL
              UNION ALL
              SELECT city_code, 'service_access', dt, batch_id, count(*),
                     CASE WHEN day(dt) % 5 = 0 THEN 1 ELSE 0 END FROM raw.service_access GROUP BY ALL
              UNION ALL
              SELECT city_code, 'ratings', dt, batch_id, count(*), 0 FROM raw.ratings GROUP BY ALL
              UNION ALL
              SELECT city_code, 'service_catalog', dt, batch_id, count(*), 0 FROM raw.service_catalog GROUP BY ALL)""")
    con.execute("""
        INSERT INTO audit.rejected_rows
        SELECT city_code, source, dt, city_code || '/service_access/dt=' || dt || '/part-0.jsonl', 999,
               'unknown outcome ''error''', '{"outcome": "error"}', batch_id
        FROM audit.deliveries WHERE rows_rejected = 1""")
    # marts: every invariant holds; DAU steady around 1,000, registered users growing by 50 a day
    con.execute(f"""
        INSERT INTO marts_build.kpi_daily
        SELECT city_code, dt, {SERVICES}, 8, 10000 + 50 * day_index, 60, 10, 6000 + 30 * day_index,
               1000 + (day_index * 37) % 100 - 50, 3000 + (day_index * 11) % 100, 6000 + day_index,
               {ACCESSES}, 285, 285 / {ACCESSES}, {RATINGS}, 0.4
        FROM _cd""")
    con.execute("""
        INSERT INTO marts_build.kpi_monthly
        SELECT city_code, CAST(date_trunc('month', kpi_date) AS DATE) AS month,
               arg_max(connected_services, kpi_date), arg_max(registered_users, kpi_date), max(mau_30d) + 100,
               (max(mau_30d) + 100) / arg_max(registered_users, kpi_date), 0.4,
               sum(new_registrations), sum(total_accesses)
        FROM marts_build.kpi_daily GROUP BY city_code, month""")
    con.execute(f"""
        INSERT INTO marts_build.service_daily
        SELECT city_code, dt, 's' || i, '服务' || i, '市政务办', '社保', {ACCESSES // SERVICES},
               CASE WHEN i < 5 THEN 28 ELSE 29 END, 20
        FROM _cd, range({SERVICES}) r(i)""")
    con.execute("DROP TABLE _cd")


def day(n: int) -> date:
    """The n-th day of the dataset (0-based)."""
    return START + timedelta(days=n)


def add_rejected_rows(con, city: str, source: str, dt: date, rejected: int) -> None:
    """Make a delivery whose ledger reports `rejected` rows set aside, listed in audit.rejected_rows."""
    con.execute("UPDATE audit.deliveries SET rows_rejected = ?, rows_read = rows_loaded + ? "
                "WHERE city_code = ? AND source = ? AND dt = ?", [rejected, rejected, city, source, dt])
    con.execute("DELETE FROM audit.rejected_rows WHERE city_code = ? AND source = ? AND dt = ?", [city, source, dt])
    con.execute("INSERT INTO audit.rejected_rows SELECT ?, ?, ?, 'f.jsonl', 1000 + i, 'malformed JSON line', '{', "
                "(SELECT batch_id FROM audit.deliveries WHERE city_code = ? AND source = ? AND dt = ?) "
                "FROM range(?) t(i)", [city, source, dt, city, source, dt, rejected])

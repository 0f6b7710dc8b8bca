"""A hand-built warehouse with the documented tables, for the dashboard tests.

Changsha (430100) carries the figures of the shared worked example
(`shared/examples/tiny/expected/*.csv`, i.e. what the pipeline must produce for the tiny
landing area); Shanghai (310000) carries synthetic figures in the millions (thousands
separators). The audit tables (deliveries from the tiny landing folders, rejects, quality
results, builds) and the settlement tables are filled with plausible rows. The snapshot is
written with the project's own `citycloud.publish.export_snapshot`, as a run would.

Usable by hand too: `python tests/dashboard/dashboard_handmade.py /tmp/wh.duckdb`.
"""
from __future__ import annotations

import csv
import datetime as dt
import random
import sys
from pathlib import Path

import duckdb

from citycloud.config import SOURCES, Settings
from citycloud.publish import export_snapshot

# the shared worked example, as copied into the project's test data
TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"
if not (TINY / "expected").exists():
    TINY = Path(__file__).resolve().parents[3] / "shared" / "examples" / "tiny"

DAILY_COLS = [
    "city_code", "kpi_date", "connected_services", "active_services", "registered_users", "new_registrations",
    "cancellations", "verified_users", "dau", "wau", "mau_30d", "total_accesses", "successful_accesses",
    "success_rate", "ratings", "satisfaction_rate",
]


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def tiny_daily() -> list[dict]:
    return _read_csv(TINY / "expected" / "kpi_daily.csv")


def _catalog() -> list[dict]:
    snaps = sorted((TINY / "landing" / "430100" / "service_catalog").glob("dt=*/catalog.csv"))
    return _read_csv(snaps[-1])


def _shanghai_daily(days: list[dt.date]) -> list[dict]:
    rnd = random.Random(310000)
    reg = 20_150_000
    rows = []
    for i, day in enumerate(days):
        new = 9_000 + rnd.randint(0, 3_000) + (4_000 if day.weekday() < 5 else 0)
        cancel = 1_000 + rnd.randint(0, 500)
        reg += new - cancel
        total = 2_400_000 + rnd.randint(0, 300_000) - (700_000 if day.weekday() >= 5 else 0)
        ok = int(total * (0.955 + rnd.random() * 0.03))
        ratings = 40_000 + rnd.randint(0, 8_000)
        good = int(ratings * (0.86 + rnd.random() * 0.06))
        rows.append({
            "city_code": "310000", "kpi_date": day.isoformat(), "connected_services": 1480 + i // 5,
            "active_services": 1300 + rnd.randint(0, 120), "registered_users": reg, "new_registrations": new,
            "cancellations": cancel, "verified_users": int(reg * 0.81), "dau": 1_100_000 + rnd.randint(0, 200_000),
            "wau": 4_000_000 + rnd.randint(0, 300_000), "mau_30d": 8_100_000 + i * 1_000,
            "total_accesses": total, "successful_accesses": ok, "success_rate": ok / total,
            "ratings": ratings, "satisfaction_rate": good / ratings,
        })
    return rows


def _bulk(con: duckdb.DuckDBPyConnection, table: str, rows: list, columns: list[str] | None = None) -> None:
    """Insert many rows at once (through a pandas frame; executemany is slow in DuckDB)."""
    import pandas as pd

    schema, name = table.split(".")
    cols = columns or [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position", [schema, name]).fetchall()]
    frame = pd.DataFrame([list(r) for r in rows], columns=cols).astype(object)
    con.register("_bulk_rows", frame)
    con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _bulk_rows")
    con.unregister("_bulk_rows")


def build(warehouse: Path, *, settlement: bool = True, quality: bool = True) -> dict:
    """Write the warehouse and its published snapshot; return facts the tests check."""
    warehouse = Path(warehouse)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    for p in (warehouse, Path(str(warehouse) + ".wal")):
        p.unlink(missing_ok=True)
    cs = tiny_daily()
    days = [dt.date.fromisoformat(r["kpi_date"]) for r in cs]
    sh = _shanghai_daily(days)
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE SCHEMA marts; CREATE SCHEMA audit")
    con.execute(
        """CREATE TABLE marts.kpi_daily (city_code VARCHAR, kpi_date DATE, connected_services BIGINT,
        active_services BIGINT, registered_users BIGINT, new_registrations BIGINT, cancellations BIGINT,
        verified_users BIGINT, dau BIGINT, wau BIGINT, mau_30d BIGINT, total_accesses BIGINT,
        successful_accesses BIGINT, success_rate DOUBLE, ratings BIGINT, satisfaction_rate DOUBLE)"""
    )
    _bulk(con, "marts.kpi_daily", [[None if r[c] == "" else r[c] for c in DAILY_COLS] for r in cs + sh],
          DAILY_COLS)
    # monthly: the tiny example's February, Shanghai's computed the same way
    con.execute(
        """CREATE TABLE marts.kpi_monthly (city_code VARCHAR, month DATE, connected_services BIGINT,
        registered_users BIGINT, mau BIGINT, activity_rate DOUBLE, satisfaction_rate DOUBLE,
        new_registrations BIGINT, total_accesses BIGINT)"""
    )
    for r in _read_csv(TINY / "expected" / "kpi_monthly.csv"):
        con.execute("INSERT INTO marts.kpi_monthly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", list(r.values()))
    con.execute(
        """INSERT INTO marts.kpi_monthly
        SELECT city_code, DATE '2026-02-01', arg_max(connected_services, kpi_date), arg_max(registered_users, kpi_date),
               8500000, 8500000 / arg_max(registered_users, kpi_date), sum(satisfaction_rate * ratings) / sum(ratings),
               sum(new_registrations), sum(total_accesses)
        FROM marts.kpi_daily WHERE city_code = '310000' AND kpi_date BETWEEN '2026-02-01' AND '2026-02-28'
        GROUP BY city_code"""
    )
    # services: the tiny catalog's Chinese names, synthetic counts
    con.execute(
        """CREATE TABLE marts.service_daily (city_code VARCHAR, kpi_date DATE, service_id VARCHAR,
        service_name VARCHAR, department VARCHAR, category VARCHAR, total_accesses BIGINT,
        successful_accesses BIGINT, users BIGINT)"""
    )
    rnd = random.Random(430100)
    catalog = _catalog()
    rows = []
    for day in days:
        for i, s in enumerate(catalog):
            for city, scale in (("430100", 1), ("310000", 2_000)):
                total = rnd.randint(0, 4) * scale + (3 * scale if i < 3 else 0)
                fail = 0.35 if s["service_id"] == "S43007" else 0.05
                ok = round(total * (1 - fail * rnd.random() * 2))
                sid = s["service_id"] if city == "430100" else "S31" + s["service_id"][3:]
                rows.append((city, day, sid, s["service_name"], s["department"], s["category"], total, ok,
                             max(0, ok - rnd.randint(0, 2) * scale // 2)))
    _bulk(con, "marts.service_daily", rows)

    # audit.deliveries from the tiny landing folders (complete ones), Shanghai every day
    con.execute(
        """CREATE TABLE audit.deliveries (city_code VARCHAR, source VARCHAR, dt DATE, files BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT, ingested_at TIMESTAMP, content_hash VARCHAR,
        batch_id BIGINT, files_rejected BIGINT, duplicates_in_delivery BIGINT)"""
    )
    last = days[-1]
    deliveries = []
    for source in SOURCES:
        for folder in sorted((TINY / "landing" / "430100" / source).glob("dt=*")):
            if not (folder / "_SUCCESS").exists():
                continue
            d = dt.date.fromisoformat(folder.name[3:])
            files = len([f for f in folder.iterdir() if f.name != "_SUCCESS"])
            # one ingestion batch a day; the ratings of two days before the last came in with the last
            late = source == "ratings" and d == last - dt.timedelta(days=2)
            arrived = last if late else d
            ingested = dt.datetime.combine(arrived, dt.time(2, 30)) + dt.timedelta(days=1)
            batch = (arrived - days[0]).days + 1
            rows_read = 30 + (d.day % 7)
            rej = 2 if (source == "service_access" and d == last) else 0
            deliveries.append(("430100", source, d, files, rows_read, rows_read - rej, rej, ingested, "x", batch,
                               0, 0))
        for d in days:
            if source == "registrations" and d == last:
                continue  # Shanghai's registrations for the last day never came
            if source == "service_catalog" and d.weekday() != 0:
                continue
            deliveries.append(("310000", source, d, 4, 2_500_000, 2_499_990, 10,
                               dt.datetime.combine(d, dt.time(1, 5)) + dt.timedelta(days=1), "y",
                               (d - days[0]).days + 1, 0, 0))
    _bulk(con, "audit.deliveries", deliveries)
    con.execute(
        """CREATE TABLE audit.rejected_rows (city_code VARCHAR, source VARCHAR, dt DATE, file VARCHAR,
        line BIGINT, reason VARCHAR, raw VARCHAR, batch_id BIGINT)"""
    )
    con.executemany(
        "INSERT INTO audit.rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
        [
            ("430100", "service_access", last, f"430100/service_access/dt={last}/part-1.jsonl", 7,
             "unknown outcome 'ok'", '{"event_id":"A-9","user_id":"u***","outcome":"ok"}'),
            ("430100", "service_access", last, f"430100/service_access/dt={last}/part-1.jsonl", 12,
             "malformed JSON", '{"event_id":"A-12",'),
            ("430100", "registrations", last - dt.timedelta(days=2), "430100/registrations/x.csv", 3,
             "missing event_time", "R-3,register,u***,,ios"),
        ],
    )
    con.execute(
        """CREATE TABLE audit.rejected_files (city_code VARCHAR, source VARCHAR, dt DATE, file VARCHAR,
        reason VARCHAR, batch_id BIGINT)"""
    )
    con.execute(
        "INSERT INTO audit.rejected_files VALUES ('430100', 'registrations', ?, ?, 'truncated gzip file', 1)",
        [last - dt.timedelta(days=3), f"430100/registrations/dt={last - dt.timedelta(days=3)}/part-2.csv.gz"],
    )
    if quality:
        con.execute(
            """CREATE TABLE audit.quality_results (run_id VARCHAR, suite VARCHAR, expectation VARCHAR,
            city_code VARCHAR, day DATE, severity VARCHAR, success BOOLEAN, observed_value VARCHAR,
            details VARCHAR, checked_at TIMESTAMP)"""
        )
        checks = [
            ("kpi_daily", "expect_success_rate_between_0_and_1", "blocking"),
            ("kpi_daily", "expect_one_row_per_city_and_day", "blocking"),
            ("kpi_daily", "expect_dau_at_most_registered_users", "warning"),
            ("deliveries", "expect_all_sources_delivered", "warning"),
        ]
        q = []
        for run, checked in (("run-1", dt.datetime(2026, 3, 3, 3, 0)), ("run-2", dt.datetime(2026, 3, 4, 3, 0))):
            for city in ("430100", "310000"):
                for suite, exp, sev in checks:
                    ok = True
                    observed, details = "0", ""
                    if run == "run-2" and exp == "expect_dau_at_most_registered_users" and city == "430100":
                        ok, observed, details = False, "1.12", "30日活跃用户高于注册用户（注册日志不完整）"
                    if run == "run-2" and exp == "expect_all_sources_delivered" and city == "310000":
                        ok, observed, details = False, "registrations", "当日注册日志未交付"
                    q.append((run, suite, exp, city, last, sev, ok, observed, details, checked))
        _bulk(con, "audit.quality_results", q)
    con.execute(
        """CREATE TABLE audit.builds (build_id BIGINT, batch_id BIGINT, started_at TIMESTAMP, finished_at TIMESTAMP,
        status VARCHAR, message VARCHAR)"""
    )
    con.execute(
        "INSERT INTO audit.builds VALUES (1, 1, '2026-03-04 02:40:00', '2026-03-04 03:01:00', 'published', 'ok')"
    )
    if settlement:
        con.execute(
            """CREATE TABLE marts.settlement_statements (contract_id VARCHAR, city_code VARCHAR, month DATE,
            version INTEGER, status VARCHAR, monthly_fee_cny DECIMAL(18,2), payment_cny DECIMAL(18,2),
            computed_at TIMESTAMP, input_fingerprint VARCHAR)"""
        )
        con.execute(
            """CREATE TABLE marts.settlement_lines (contract_id VARCHAR, city_code VARCHAR, month DATE,
            version INTEGER, kpi VARCHAR, actual DOUBLE, target DOUBLE, attainment DOUBLE, weight DECIMAL(38,18),
            factor DECIMAL(38,18))"""
        )
        targets = {"connected_services": (40, 0.2), "registered_users": (150, 0.3), "mau": (120, 0.3),
                   "satisfaction_rate": (0.8, 0.2)}
        expected = _read_csv(TINY / "expected" / "settlement_2026-02.csv")
        con.execute(
            "INSERT INTO marts.settlement_statements VALUES ('CS-2026-003', '430100', '2026-02-01', 1, 'final', "
            "52000.00, 31200.00, '2026-03-01 09:00:00', 'a1b2c3d4e5f6a7b8')"
        )
        con.execute(
            "INSERT INTO marts.settlement_statements VALUES ('CS-2026-003', '430100', '2026-02-01', 2, 'restatement', "
            f"52000.00, {expected[0]['payment_cny']}, '2026-03-04 03:10:00', 'f0e1d2c3b4a59687')"
        )
        for version in (1, 2):
            for r in expected:
                target, weight = targets[r["kpi"]]
                actual = float(r["actual"])
                factor = r["factor"]
                if version == 1 and r["kpi"] == "mau":
                    actual, factor = 100.0, "0.60"
                con.execute(
                    "INSERT INTO marts.settlement_lines VALUES ('CS-2026-003', '430100', '2026-02-01', ?, ?, ?, ?, ?, ?, ?)",
                    [version, r["kpi"], actual, target, actual / target, weight, factor],
                )
    settings = Settings(warehouse=warehouse)
    export_snapshot(con, settings)
    con.close()
    last_cs = cs[-1]
    return {
        "warehouse": warehouse,
        "snapshot": settings.published,
        "last_day": last,
        "changsha_last": last_cs,
        "shanghai_last": sh[-1],
        "payment": expected[0]["payment_cny"] if settlement else None,
    }


if __name__ == "__main__":
    facts = build(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/citycloud_handmade.duckdb"))
    print(facts["snapshot"], facts["last_day"])

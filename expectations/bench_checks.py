"""How long do the checks take on a big delivery? `python -m citycloud.expectations.bench_checks [--rows N]`

Builds a scratch warehouse whose raw.service_access holds one delivery of N rows (default 10M,
made with DuckDB range(), already pseudonymised), plus a small catalog and ledger, and runs
`run_checks` over it with the project's DuckDB settings. Prints the time of each step.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from citycloud import registry
from citycloud.config import Settings
from citycloud.db import connect
from citycloud.ingestion.schema import ensure_schema

# The candidate KPI marts as documented in dbt (their YAML's column order, the interface of
# interfaces.md), typed by the metric registry's formats; service_daily holds no metric.
SERVICE_DAILY = """city_code VARCHAR, kpi_date DATE, service_id VARCHAR, service_name VARCHAR,
    department VARCHAR, category VARCHAR, total_accesses BIGINT, successful_accesses BIGINT, users BIGINT"""
KEYS = {"kpi_daily": ("city_code", "kpi_date"), "kpi_monthly": ("city_code", "month")}


def marts_build_tables() -> dict[str, str]:
    reg = registry.load()

    def columns(mart: str) -> str:
        rates = {col for m, col in reg.in_mart(mart).items() if reg.metrics[m].is_rate}
        keys = KEYS[mart]
        cols = [c for c in registry.mart_columns(mart) if c not in keys]
        return ", ".join([f"{keys[0]} VARCHAR", f"{keys[1]} DATE"]
                         + [f"{c} {'DOUBLE' if c in rates else 'BIGINT'}" for c in cols])

    return {
        "marts_build.kpi_daily": columns("kpi_daily"),
        "marts_build.kpi_monthly": columns("kpi_monthly"),
        "marts_build.service_daily": SERVICE_DAILY,
    }


def create_tables(con) -> None:
    """The tables run_checks reads: ingestion's own DDL plus the candidate marts."""
    ensure_schema(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts_build")
    for table, cols in marts_build_tables().items():
        con.execute(f"CREATE TABLE {table} ({cols})")


def build(con, rows: int) -> None:
    create_tables(con)
    # 64 lowercase hex characters, like the HMAC-SHA256 keys ingestion writes, but cheap to make
    hexkey = ("lower(lpad(to_hex(hash({})), 16, '0') || lpad(to_hex(hash({} || 'b')), 16, '0') || "
              "lpad(to_hex(hash({} || 'c')), 16, '0') || lpad(to_hex(hash({} || 'd')), 16, '0'))")
    user = hexkey.format(*["(i % 2000000)"] * 4)
    con.execute(f"""
        INSERT INTO raw.service_access
        SELECT '310000', DATE '2026-03-01', '310000/service_access/dt=2026-03-01/part-' || (i // 1000000) || '.jsonl.gz',
               i % 1000000 + 1, 1, 'e' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE {user} END, 's' || (i % 1500),
               TIMESTAMP '2026-02-28 16:00:00' + to_seconds(i % 86400), DATE '2026-03-01',
               ['ios','android','web','alipay_mini','wechat_mini'][i % 5 + 1],
               CASE WHEN i % 20 = 0 THEN 'failure' ELSE 'success' END, i % 5000
        FROM range({rows}) t(i)""")
    con.execute("""INSERT INTO raw.service_catalog SELECT '310000', DATE '2026-03-01', 'c.csv', i + 2, 1, 's' || i,
                   'n', 'd', 'c', DATE '2020-01-01', NULL FROM range(1500) t(i)""")
    con.execute("INSERT INTO audit.deliveries (city_code, source, dt, files, rows_read, rows_loaded, rows_rejected, "
                "ingested_at, files_rejected, duplicates_in_delivery, batch_id) VALUES "
                f"('310000', 'service_access', DATE '2026-03-01', 10, {rows}, {rows}, 0, now(), 0, 0, 1), "
                "('310000', 'service_catalog', DATE '2026-03-01', 1, 1500, 1500, 0, now(), 0, 0, 1)")
    # the day's marts, as dbt would build them from these rows
    con.execute("""INSERT INTO marts_build.service_daily
                   SELECT city_code, event_day, service_id, 'n', 'd', 'c', count(*), count(*) FILTER (outcome = 'success'),
                          count(DISTINCT user_key) FILTER (outcome = 'success')
                   FROM raw.service_access GROUP BY ALL""")
    con.execute("""INSERT INTO marts_build.kpi_daily BY NAME
                   SELECT city_code, event_day AS kpi_date, 1500 AS connected_services,
                          count(DISTINCT service_id) FILTER (outcome = 'success') AS active_services,
                          2000000 AS registered_users, 0 AS new_registrations, 0 AS cancellations,
                          1000000 AS verified_users, count(DISTINCT user_key) FILTER (outcome = 'success') AS dau,
                          count(DISTINCT user_key) FILTER (outcome = 'success') AS wau,
                          count(DISTINCT user_key) FILTER (outcome = 'success') AS mau_30d, count(*) AS total_accesses,
                          count(*) FILTER (outcome = 'success') AS successful_accesses,
                          count(*) FILTER (outcome = 'success') / count(*) AS success_rate, 0 AS ratings,
                          NULL AS satisfaction_rate
                   FROM raw.service_access GROUP BY ALL""")
    con.execute("""INSERT INTO marts_build.kpi_monthly BY NAME
                   SELECT city_code, CAST(date_trunc('month', kpi_date) AS DATE) AS month, connected_services,
                          registered_users, mau_30d AS mau, mau_30d / registered_users AS activity_rate,
                          NULL AS satisfaction_rate, new_registrations, total_accesses
                   FROM marts_build.kpi_daily""")
    con.execute("CHECKPOINT")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None,
                        help="scratch directory, kept and reused (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="cc-bench-checks-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(warehouse=root / "bench.duckdb", output=root / "output")
    try:
        reuse = settings.warehouse.exists()
        con = connect(settings.warehouse, settings=settings)
        t = time.perf_counter()
        if not reuse:
            build(con, args.rows)
            print(f"built raw.service_access with {args.rows:,} rows in {time.perf_counter() - t:.1f}s")
        else:
            con.execute("DELETE FROM audit.quality_results WHERE run_id = 'bench'") if con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'quality_results'").fetchone()[0] else None
            n = con.execute("SELECT count(*) FROM raw.service_access").fetchone()[0]
            print(f"reusing {settings.warehouse} ({n:,} access rows)")
        t = time.perf_counter()
        import citycloud.expectations.gx_runner as gx_runner
        gx_runner._import_gx()
        print(f"import Great Expectations: {time.perf_counter() - t:.1f}s")
        from citycloud.expectations import run_checks
        t, cpu = time.perf_counter(), time.process_time()
        report = run_checks(con, settings, run_id="bench")
        total, cpu = time.perf_counter() - t, time.process_time() - cpu
        for step, seconds in sorted(report.timings.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {step:<32} {seconds:6.2f}s")
        print(report.summary_line())
        print(f"run_checks over a {args.rows:,}-row delivery: {total:.1f}s "
              f"(frames {sum(v for k, v in report.timings.items() if k.endswith('.frame')):.1f}s, "
              f"GX {sum(v for k, v in report.timings.items() if k.endswith('.gx')):.1f}s); "
              f"CPU time {cpu:.1f}s (all threads; wall time on an idle machine ≈ CPU / threads for the SQL part)")
        con.close()
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

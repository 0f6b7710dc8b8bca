"""How long do the checks take on a big delivery? `python -m expectations.bench_checks [--rows N]`

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

from citycloud.config import Settings
from citycloud.db import connect

TABLES = {
    "raw.service_access": """city_code VARCHAR, dt DATE, file VARCHAR, line BIGINT, batch_id BIGINT, event_id VARCHAR,
        user_key VARCHAR, service_id VARCHAR, event_ts_utc TIMESTAMP, event_day DATE, channel VARCHAR, outcome VARCHAR,
        duration_ms BIGINT, client_ip_hash VARCHAR""",
    "raw.registrations": """city_code VARCHAR, dt DATE, file VARCHAR, line BIGINT, batch_id BIGINT, event_id VARCHAR,
        event_type VARCHAR, user_key VARCHAR, event_ts_utc TIMESTAMP, event_day DATE, channel VARCHAR,
        phone_hash VARCHAR, phone_valid BOOLEAN, id_number_hash VARCHAR, id_number_valid BOOLEAN, auth_level INTEGER,
        district_code VARCHAR""",
    "raw.ratings": """city_code VARCHAR, dt DATE, file VARCHAR, line BIGINT, batch_id BIGINT, event_id VARCHAR,
        access_event_id VARCHAR, user_key VARCHAR, service_id VARCHAR, score INTEGER, event_ts_utc TIMESTAMP,
        event_day DATE, has_comment BOOLEAN, comment_hash VARCHAR""",
    "raw.service_catalog": """city_code VARCHAR, dt DATE, file VARCHAR, line BIGINT, batch_id BIGINT, service_id VARCHAR,
        service_name VARCHAR, department VARCHAR, category VARCHAR, online_date DATE, offline_date DATE""",
    "audit.deliveries": """city_code VARCHAR, source VARCHAR, dt DATE, files INTEGER, rows_read BIGINT, rows_loaded BIGINT,
        rows_rejected BIGINT, ingested_at TIMESTAMP, files_rejected INTEGER, duplicates_in_delivery BIGINT,
        batch_id BIGINT""",
    "audit.rejected_rows": """city_code VARCHAR, source VARCHAR, dt DATE, file VARCHAR, line BIGINT, reason VARCHAR,
        raw VARCHAR, batch_id BIGINT""",
}


def build(con, rows: int) -> None:
    for schema in ("raw", "audit"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, cols in TABLES.items():
        con.execute(f"CREATE TABLE {table} ({cols})")
    hexkey = "lpad(to_hex(hash({})), 16, '0') || lpad(to_hex(hash({} || 'b')), 16, '0') || " \
             "lpad(to_hex(hash({} || 'c')), 16, '0') || lpad(to_hex(hash({} || 'd')), 16, '0')"
    user = hexkey.format(*["(i % 2000000)"] * 4)
    ip = hexkey.format(*["(i % 100000)"] * 4)
    con.execute(f"""
        INSERT INTO raw.service_access
        SELECT '310000', DATE '2026-03-01', '310000/service_access/dt=2026-03-01/part-' || (i // 1000000) || '.jsonl.gz',
               i % 1000000 + 1, 1, 'e' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE {user} END, 's' || (i % 1500),
               TIMESTAMP '2026-02-28 16:00:00' + to_seconds(i % 86400), DATE '2026-03-01',
               ['ios','android','web','alipay_mini','wechat_mini'][i % 5 + 1],
               CASE WHEN i % 20 = 0 THEN 'failure' ELSE 'success' END, i % 5000, {ip}
        FROM range({rows}) t(i)""")
    con.execute("""INSERT INTO raw.service_catalog SELECT '310000', DATE '2026-03-01', 'c.csv', i + 2, 1, 's' || i,
                   'n', 'd', 'c', DATE '2020-01-01', NULL FROM range(1500) t(i)""")
    con.execute("INSERT INTO audit.deliveries VALUES "
                f"('310000', 'service_access', DATE '2026-03-01', 10, {rows}, {rows}, 0, now(), 0, 0, 1), "
                "('310000', 'service_catalog', DATE '2026-03-01', 1, 1500, 1500, 0, now(), 0, 0, 1)")
    con.execute("CHECKPOINT")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="cc-bench-checks-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(warehouse=root / "bench.duckdb", output=root / "output")
    try:
        con = connect(settings.warehouse, settings=settings)
        t = time.perf_counter()
        build(con, args.rows)
        print(f"built raw.service_access with {args.rows:,} rows in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        import expectations.gx_runner as gx_runner
        gx_runner._import_gx()
        print(f"import Great Expectations: {time.perf_counter() - t:.1f}s")
        from expectations import run_checks
        t = time.perf_counter()
        report = run_checks(con, settings, run_id="bench")
        total = time.perf_counter() - t
        for step, seconds in sorted(report.timings.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {step:<32} {seconds:6.2f}s")
        print(report.summary_line())
        print(f"run_checks over a {args.rows:,}-row delivery: {total:.1f}s "
              f"(frames {sum(v for k, v in report.timings.items() if k.endswith('.frame')):.1f}s, "
              f"GX {sum(v for k, v in report.timings.items() if k.endswith('.gx')):.1f}s)")
        con.close()
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

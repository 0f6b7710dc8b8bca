"""What the user-operations models cost for one new day, on 30 and on 180 days of history.

Runs the project's real dbt models (`int_user_activity_aggregated_to_periods`,
`int_users_first_registered`, `int_city_periods_covered`, the five user-operations marts) on a
synthetic warehouse whose *inputs* are written directly (active user-days, account events, the
day spine, the change log): the rest of the pipeline is measured by `bench/run.py`, this isolates
the models added for user_ops.md at a volume the full pipeline cannot reach on this machine.

    python -m bench.user_ops_cost [--users 300000] [--histories 30,180] [--repeat 2]

For each history H: a full build over H days, then day H+1 arrives (its user-days, account
events and change-log rows) and `dbt run` builds it incrementally; that run is timed per model
(dbt's run_results.json), `repeat` times on copies of the same warehouse, best kept.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from citycloud.dbt_runner import SINCE_BATCH_ENV

ROOT = Path(os.environ.get("CITYCLOUD_HOME", Path(__file__).resolve().parents[1]))
START = date(2026, 1, 1)
CITY = "430100"
MODELS = ["stg_audit__delivery_changes", "stg_audit__deliveries", "int_users_first_registered", "int_city_periods_covered",
          "int_user_activity_aggregated_to_periods", "user_lifecycle", "retention_monthly", "stickiness_monthly",
          "activation_daily", "channel_daily", "int_channel_accesses_aggregated_to_days"]
# channel_daily reads accesses through int_channel_accesses_aggregated_to_days (incremental by
# day, like the other per-day aggregates): given here as a ready table, not rebuilt.
BUILT = [m for m in MODELS if m != "int_channel_accesses_aggregated_to_days"]


def _inputs(con, users: int, first: int, last: int, batch: int) -> None:
    """User-days, account events, channel aggregates and change-log rows for days first..last
    (day numbers from START): each user has its own daily activity probability (heavy and light
    users), a registration day spread over 5 years before START and the window."""
    con.execute(f"""
        INSERT INTO intermediate.int_user_activity_aggregated_to_days
        SELECT '{CITY}', DATE '{START}' + d::INTEGER, 'u' || u, 1
        FROM range({first}, {last + 1}) t(d), range({users}) s(u)
        WHERE hash(u, d) % 1000 < 10 + (hash(u) % 1000) * (hash(u) % 1000) // 2500""")
    con.execute(f"""
        INSERT INTO staging.stg_landing__registrations
        SELECT '{CITY}', 'r' || u, 'register', 'u' || u,
               CAST(DATE '{START}' + reg_day::INTEGER AS TIMESTAMP) + INTERVAL 3 HOUR, DATE '{START}' + reg_day::INTEGER,
               ['ios', 'android', 'web', 'wechat_mini', 'alipay_mini', NULL][1 + (hash(u, 7) % 6)::INTEGER], 1 + (hash(u, 9) % 3)::INTEGER
        FROM (SELECT u, CAST(hash(u, 3) % ({last + 1} + 1825) AS INTEGER) - 1825 AS reg_day FROM range({users}) s(u))
        WHERE reg_day BETWEEN {first if first else -1825} AND {last}""")
    con.execute(f"""
        INSERT INTO intermediate.int_channel_accesses_aggregated_to_days
        SELECT '{CITY}', DATE '{START}' + d::INTEGER, c, 1000, 950, 400
        FROM range({first}, {last + 1}) t(d), unnest(['ios', 'android', 'web', 'wechat_mini', 'alipay_mini']) x(c)""")
    con.execute(f"""
        INSERT INTO audit.deliveries
        SELECT '{CITY}', s, DATE '{START}' + d::INTEGER, 1, 0, 0, 0, now()::TIMESTAMP, '', {batch}
        FROM range({first}, {last + 1}) t(d), unnest(['service_access', 'registrations']) x(s)""")
    con.execute(f"INSERT INTO intermediate.int_city_days_enumerated SELECT '{CITY}', DATE '{START}' + d::INTEGER "
                f"FROM range({first}, {last + 1}) t(d)")
    con.execute(f"""
        INSERT INTO audit.delivery_changes
        SELECT {batch}, '{CITY}', s, DATE '{START}' + {last}, DATE '{START}' + d::INTEGER, 1, 'added'
        FROM range({first}, {last + 1}) t(d), unnest(['service_access', 'registrations']) x(s)""")


def _create(path: Path) -> None:
    con = duckdb.connect(str(path))
    for schema in ("intermediate", "staging", "audit", "marts_build"):
        con.execute(f"CREATE SCHEMA {schema}")
    con.execute("CREATE TABLE intermediate.int_user_activity_aggregated_to_days (city_code VARCHAR, event_day DATE, "
                "user_key VARCHAR, successful_accesses BIGINT)")
    con.execute("CREATE TABLE intermediate.int_city_days_enumerated (city_code VARCHAR, kpi_date DATE)")
    con.execute("CREATE TABLE intermediate.int_channel_accesses_aggregated_to_days (city_code VARCHAR, "
                "event_day DATE, channel VARCHAR, total_accesses BIGINT, successful_accesses BIGINT, "
                "active_users BIGINT)")
    con.execute("CREATE TABLE staging.stg_landing__registrations (city_code VARCHAR, event_id VARCHAR, "
                "event_type VARCHAR, user_key VARCHAR, event_ts_utc TIMESTAMP, event_day DATE, channel VARCHAR, "
                "auth_level INTEGER)")
    con.execute("CREATE TABLE audit.deliveries (city_code VARCHAR, source VARCHAR, dt DATE, files INTEGER, "
                "rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT, ingested_at TIMESTAMP, "
                "content_hash VARCHAR, batch_id BIGINT)")
    con.execute("CREATE TABLE audit.delivery_changes (batch_id BIGINT, city_code VARCHAR, source VARCHAR, dt DATE, "
                "event_day DATE, rows BIGINT, change VARCHAR)")
    con.close()


def _dbt(warehouse: Path, since_batch: int, full: bool) -> dict[str, float]:
    target = warehouse.parent / "dbt_target"
    env = {**os.environ, "CITYCLOUD_WAREHOUSE": str(warehouse), "CITYCLOUD_SPILL_DIR": str(warehouse.parent / "spill"),
           "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(warehouse.parent / "dbt_logs"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", SINCE_BATCH_ENV: str(since_batch)}
    cmd = [str(Path(sys.executable).parent / "dbt"), "run", "--select", *BUILT,
           "--project-dir", str(ROOT / "dbt_project"),
           "--profiles-dir", str(ROOT / "dbt_project")] + (["--full-refresh"] if full else [])
    proc = subprocess.run(cmd, env=env, cwd=ROOT / "dbt_project", capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stdout[-3000:])
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}


def select_cpu(warehouse: Path, repeat: int = 3) -> dict[str, float]:
    """CPU seconds (all DuckDB threads) of each model's compiled SELECT as the last run compiled
    it (incremental models: the new day's rebuild, without the pre-hook delete and the insert);
    best of `repeat`. Steadier than wall time on a shared machine."""
    compiled = warehouse.parent / "dbt_target" / "compiled" / "citycloud" / "models"
    con = duckdb.connect(str(warehouse), read_only=True)
    out = {}
    try:
        for model in BUILT:
            (path,) = compiled.rglob(f"{model}.sql")
            sql = path.read_text()
            best = None
            for _ in range(repeat):
                c0 = time.process_time()
                con.execute(f"SELECT count(*) FROM ({sql})").fetchall()
                spent = time.process_time() - c0
                best = spent if best is None else min(best, spent)
            out[model] = round(best, 3)
    finally:
        con.close()
    return out


def measure(work: Path, users: int, history: int, repeat: int) -> dict:
    base = work / f"h{history}"
    shutil.rmtree(base, ignore_errors=True)
    (base / "wh").mkdir(parents=True)
    wh = base / "wh" / "citycloud.duckdb"
    _create(wh)
    con = duckdb.connect(str(wh))
    _inputs(con, users, 0, history - 1, 1)
    user_days = con.execute("SELECT count(*) FROM intermediate.int_user_activity_aggregated_to_days").fetchone()[0]
    con.close()
    t = time.perf_counter()
    _dbt(wh, -1, full=True)
    full_s = time.perf_counter() - t
    saved = base / "saved"
    shutil.copytree(base / "wh", saved)
    tries = []
    for i in range(repeat):
        if i:
            shutil.rmtree(base / "wh")
            shutil.copytree(saved, base / "wh")
        con = duckdb.connect(str(wh))
        _inputs(con, users, history, history, 2)
        con.close()
        t0, c0 = time.perf_counter(), os.times()
        models = _dbt(wh, 1, full=False)
        c1 = os.times()
        tries.append({"seconds": time.perf_counter() - t0, "cpu_s": c1.children_user + c1.children_system
                      - c0.children_user - c0.children_system, "models": models})
    shutil.rmtree(saved)
    best = min(tries, key=lambda r: sum(r["models"].values()))
    cpu = select_cpu(wh)
    con = duckdb.connect(str(wh), read_only=True)
    periods = con.execute("SELECT count(*) FROM intermediate.int_user_activity_aggregated_to_periods").fetchone()[0]
    con.close()
    return {"history_days": history, "users": users, "user_days": user_days, "user_periods": periods,
            "full_build_s": round(full_s, 1), "new_day_s": [round(r["seconds"], 1) for r in tries],
            "new_day_cpu_s": [round(r["cpu_s"], 1) for r in tries],
            "models_s": {k: round(v, 2) for k, v in best["models"].items()},
            "models_total_s": round(sum(best["models"].values()), 2),
            "select_cpu_s": cpu, "select_cpu_total_s": round(sum(cpu.values()), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=300_000)
    p.add_argument("--histories", default="30,180")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--work", default="/tmp/citycloud-user-ops-cost")
    args = p.parse_args()
    out = [measure(Path(args.work), args.users, int(h), args.repeat) for h in args.histories.split(",")]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

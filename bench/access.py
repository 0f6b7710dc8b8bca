"""What the scope filter costs (access.md): a dashboard page load and an API answer on a 5-city
warehouse, read through `citycloud.access.scoped_connection` (every table a view filtered to the
person's cities) against the same reads on a plain read-only connection to the snapshot.

    python -m bench.access [--days 60] [--users 2000] [--repeat 7] [--warehouse FILE]

Builds the warehouse with the real pipeline (`citycloud generate --cities 5`, `citycloud run`)
unless --warehouse names one. A page load = opening the snapshot, the sidebar's overview and the
Today page's loader for the chosen cities (what the dashboard runs when a page opens, cache cold).
An API answer = opening the snapshot and `citycloud query`'s run_query (wau,total_accesses by week). Median
of `repeat` runs each; written to bench/results/access.json and access.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

from citycloud import query, registry
from citycloud.access import Scope, scoped_connection
from citycloud.config import published_path
from citycloud.publish import open_snapshot

from citycloud.dashboards import data

RESULTS = Path(__file__).resolve().parent / "results"
CITYCLOUD = Path(sys.executable).with_name("citycloud")


def build(folder: Path, days: int, users: int) -> Path:
    env = dict(os.environ, CITYCLOUD_PII_KEY="bench-access-key-not-secret-0123456789abcdef")
    warehouse = folder / "wh.duckdb"
    for cmd in (["generate", "--out", str(folder / "landing"), "--cities", "5", "--days", str(days), "--users",
                 str(users), "--clean"],
                ["run", "--landing", str(folder / "landing"), "--warehouse", str(warehouse)]):
        subprocess.run([str(CITYCLOUD), *cmd], check=True, env=env, capture_output=True)
    return warehouse


@contextmanager
def plain(snapshot: Path):
    """The reads as before the scope: a read-only connection to the snapshot itself."""
    con = open_snapshot(path=snapshot)
    con.execute("SET threads = 2")
    try:
        yield con
    finally:
        con.close()


@contextmanager
def scoped(snapshot: Path, scope: Scope):
    con = scoped_connection(snapshot, scope)
    try:
        yield con
    finally:
        con.close()


def tables_of(con) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for schema, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database()").fetchall():
        out.setdefault(f"{schema}.{table}", set()).add(column)
    return out


def page_load(opener, snapshot: Path, cities: tuple[str, ...]) -> None:
    with opener() as con:
        snap = data.Snapshot(con, snapshot, tables_of(con))
        overview = data.load_overview(snap)
        day = max(overview["cities"]["last_day"])
        data.load_today(snap, cities or tuple(overview["cities"]["city_code"]), day)


def api_answer(opener, reg, request) -> int:
    with opener() as con:
        return len(query.run_query(con, reg, request))


def median_ms(fn, repeat: int) -> float:
    fn()  # warm: MetricFlow's engine, registry, page cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--warehouse", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        warehouse = args.warehouse or build(Path(tmp), args.days, args.users)
        snapshot = published_path(warehouse)
        with plain(snapshot) as con:
            cities = tuple(r[0] for r in con.execute(
                "SELECT DISTINCT city_code::VARCHAR FROM marts.kpi_daily ORDER BY 1").fetchall())
        one = Scope("bench@example.org", "operator", cities[:1])
        every = Scope("bench@example.org", "admin", cities, every_city=True)
        two = Scope("bench@example.org", "contract_manager", cities[:2])
        reg = registry.load()
        request = query.QueryRequest(metrics=("wau", "total_accesses"), grain="week")
        rows = []
        for label, scope in (("one city", one), ("two cities", two), ("every city", every)):
            rows.append({
                "scope": label,
                "page_plain_ms": median_ms(lambda: page_load(lambda: plain(snapshot), snapshot, scope.cities),
                                           args.repeat),
                "page_scoped_ms": median_ms(lambda: page_load(lambda: scoped(snapshot, scope), snapshot, scope.cities),
                                            args.repeat),
                "api_plain_ms": median_ms(lambda: api_answer(lambda: plain(snapshot), reg, request), args.repeat),
                "api_scoped_ms": median_ms(lambda: api_answer(lambda: scoped(snapshot, scope), reg, request),
                                           args.repeat),
            })
        open_plain = median_ms(lambda: plain(snapshot).__enter__().close(), args.repeat)
        open_scoped = median_ms(lambda: scoped_connection(snapshot, one).close(), args.repeat)
        with plain(snapshot) as con:
            volume = con.execute("SELECT count(*), min(kpi_date), max(kpi_date) FROM marts.kpi_daily").fetchone()
    result = {"cities": len(cities), "kpi_daily_rows": volume[0], "days": f"{volume[1]}..{volume[2]}",
              "repeat": args.repeat, "open_plain_ms": open_plain, "open_scoped_ms": open_scoped, "rows": rows,
              "cpus": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "access.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Scope filter overhead ({len(cities)} cities, {volume[0]} kpi_daily rows, {result['days']}; "
             f"median of {args.repeat})", "",
             f"Opening the snapshot: plain {open_plain} ms, scoped (one city) {open_scoped} ms.", "",
             "| scope | page load plain (ms) | page load scoped (ms) | API answer plain (ms) | API answer scoped (ms) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['scope']} | {r['page_plain_ms']} | {r['page_scoped_ms']} | {r['api_plain_ms']} | "
              f"{r['api_scoped_ms']} |" for r in rows]
    (RESULTS / "access.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

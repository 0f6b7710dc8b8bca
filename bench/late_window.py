"""A new high-volume day on a history its late events reach: what the morning run costs a big city.

A delivery for day D holds late events of the weeks before D (landing.md), so a new day touches
every recent day. `bench.run`'s incremental part measures this at 50k events a day; here the
same `citycloud run` of one new day runs at a city's real volume (1M access events a day by
default) on H days of history at that volume:

    python -m bench.late_window [--volume 1000000] [--history 20] [--repeat 1] [--data DIR]

The history is built once (one `citycloud run`), the new day then runs `repeat` times on copies
of that warehouse (best kept), each in its own child process measured as `bench.run` measures a
step: wall and CPU seconds per phase, peak RSS, the largest spill, dbt's time per model. Also
reported: how many event days the new day's access delivery touched and how many of its events
were late. Results: bench/results/late_window.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from bench.run import RESULTS, best_new_day, gib, history_warehouse, machine


def touched_days(warehouse: Path) -> dict:
    """Event days the latest batch's access deliveries added rows to, and how many rows were late."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        days, rows, late = con.execute(
            """SELECT count(DISTINCT event_day), sum(rows), sum(rows) FILTER (WHERE event_day < dt)
               FROM audit.delivery_changes
               WHERE source = 'service_access' AND change = 'added'
                 AND batch_id = (SELECT max(batch_id) FROM audit.delivery_changes)""").fetchall()[0]
    finally:
        con.close()
    return {"event_days": days, "rows": int(rows or 0), "late_rows": int(late or 0)}


def bench_late_window(data: Path, volume: int, history: int, repeat: int, regen: bool) -> dict:
    # Two days past the history: the generator leaves the last day of one source incomplete.
    env, setup_end, setup = history_warehouse(data, "late_window", volume, history, 2, regen)
    state = Path(env["CITYCLOUD_WAREHOUSE"]).parent
    best = best_new_day(env, setup_end + timedelta(days=1), repeat, data, "late window: new day")
    best["touched"] = touched_days(Path(env["CITYCLOUD_WAREHOUSE"]))
    best["warehouse_bytes"] = Path(env["CITYCLOUD_WAREHOUSE"]).stat().st_size
    out = {"volume": volume, "history_days": history, "setup": setup, "new_day": best}
    shutil.rmtree(state.parent, ignore_errors=True)
    return out


def markdown(res: dict) -> str:
    r, s, t, m = res["new_day"], res["setup"], res["new_day"]["touched"], res["machine"]
    phases = r["phases"]
    models = ", ".join(f"{k} {v}" for k, v in sorted(r["dbt_models"].items(), key=lambda kv: -kv[1])[:8])
    return "\n".join([
        f"# New day on a history its late events reach — {res['started']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.1f} GiB RAM; git {m['git']}; DuckDB "
        f"memory_limit {m['duckdb_memory_limit']} (ingestion {m['duckdb_ingest_memory_limit']}).",
        "",
        f"{res['history_days']} days of history at {res['volume']:,} access events a day (setup "
        f"{s['seconds']:.0f} s), then `citycloud run` of day {res['history_days'] + 1} "
        f"(best of {len(r['all_seconds'])}: {', '.join(f'{x:.1f}' for x in r['all_seconds'])} s).",
        f"The new day's access delivery: {t['rows']:,} events on {t['event_days']} event days, "
        f"{t['late_rows']:,} of them late.",
        "",
        "| total s | ingest s (CPU s) | build s (CPU s) | checks s (CPU s) | publish s (CPU s) | CPU s own / others "
        "| peak RSS GiB | max spill MB | warehouse GiB | load (1 min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {r['seconds']:.1f} | "
        + " | ".join(f"{phases[k]['seconds']:.1f} ({phases[k]['cpu_s']})" for k in ("ingest", "build", "check", "publish"))
        + f" | {r['cpu_own_s']} / {r['cpu_others_s']} | {gib(r['peak_rss_bytes'])} | "
          f"{(r['max_spill_bytes'] or 0) // 2**20} | {r['warehouse_bytes'] / 2**30:.2f} | {r['loadavg']} |",
        "",
        f"dbt models of the new day (s): {models}",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.late_window", description=__doc__.splitlines()[0])
    p.add_argument("--volume", type=int, default=1_000_000, help="access events a day (default 1,000,000)")
    p.add_argument("--history", type=int, default=20, help="days of history before the new day (default 20)")
    p.add_argument("--repeat", type=int, default=1, help="tries of the new day, best kept (default 1)")
    p.add_argument("--data", default="/tmp/citycloud-bench", help="generated data and scratch warehouses")
    p.add_argument("--regen", action="store_true", help="generate the data again even if present")
    a = p.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    res = {"started": started, "machine": machine(), **bench_late_window(Path(a.data), a.volume, a.history, max(1, a.repeat), a.regen)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "late_window.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (RESULTS / "late_window.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

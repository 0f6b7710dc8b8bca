"""The same generated month on DuckDB, Spark local[2] and a two-worker Spark cluster:
`python -m bench.engines` (make bench-engines; docs/performance.md, "Spark").

Per engine, on its own copy of the warehouse: `citycloud run --engine E` of the month minus its
last day (the initial load), then of the last day (the daily increment). Reported: wall time of
each run, and from the CLI's progress lines the dbt part (first to last model) and what comes
before it (for Spark: the lake export, the session start and dbt's parse); the (city, event day)
partitions each run built, and so the cost per partition; whether the three engines published
the same marts (citycloud.spark.compare). The cluster is started and stopped with
scripts/spark_cluster.sh. Modest by default (2 cores, shared): see --cities/--days/--accesses.
Results: bench/results/engines.json and engines.md. Nothing is asserted (tests never time).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from citycloud.config import Settings
from citycloud.spark.compare import differences, published_marts

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PII_KEY = "citycloud-bench-key-not-a-secret"
CLUSTER = "spark://127.0.0.1:7077"
START = date(2026, 1, 1)
_STAMP = re.compile(r"^\s+(\d\d):(\d\d):(\d\d) (.*)$")
# dbt's line for a finished node, as `citycloud run --verbose` passes it on
_NODE = re.compile(r"^dbt \d+ of \d+ (?:OK|PASS|WARN|ERROR|FAIL) (?:created sql \S+ model |loaded seed file )?(\S+)"
                   r".*\bin ([\d.]+)s\]$")


def log(msg: str) -> None:
    print(f"[bench.engines {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _seconds(line: str) -> tuple[int, str] | None:
    m = _STAMP.match(line)
    return (int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]), m[4]) if m else None


def run_once(engine: str, master: str | None, landing: Path, warehouse: Path, end: date | None) -> dict:
    """One `citycloud run`; wall time and the phases its progress lines show."""
    env = {**os.environ, "CITYCLOUD_PII_KEY": PII_KEY, "PYTHONPATH": str(ROOT)}
    if master:
        env["CITYCLOUD_SPARK_MASTER"] = master
    cmd = [sys.executable, "-m", "citycloud.pipeline.cli", "run", "--landing", str(landing), "--warehouse", str(warehouse),
           "--engine", engine, "--verbose"] + (["--end", end.isoformat()] if end else [])  # every dbt node, stamped
    load_before = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = CpuMeter(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.time() - t0
    cpu_s = cpu.stop()
    # The machine is shared: the 1- and 5-minute load averages as the run ends, beside its times.
    load = [round(load_before, 1), *(round(x, 1) for x in os.getloadavg()[:2])]
    (warehouse.parent / f"run-{'initial' if end else 'new-day'}.log").write_text(stderr)  # every node's time
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} run failed:\n" + "\n".join(stderr.splitlines()[-30:]))
    stamped = [s for s in map(_seconds, stderr.splitlines()) if s]
    dbt = [t for t, msg in stamped if msg.startswith("dbt ")]
    ingested = next((t for t, msg in stamped if msg.startswith("ingest:")), stamped[0][0] if stamped else 0)
    exported = [t for t, msg in stamped if msg.startswith("lake:")]
    return {"wall_s": round(wall, 1), "dbt_models_s": (dbt[-1] - dbt[0]) if dbt else None,
            "before_first_model_s": (dbt[0] - ingested) if dbt else None,
            "lake_export_s": (exported[-1] - ingested) if exported else None,
            "load_start_end1_end5": load, "cpu_s": cpu_s,
            "nodes_s": {m[1]: float(m[2]) for m in (_NODE.match(msg) for _, msg in stamped) if m},
            "summary": stdout.strip().splitlines()[-1] if stdout.strip() else ""}


class CpuMeter:
    """CPU seconds (user + system) of a process and every process under it (the CLI, Spark's JVM,
    which pyspark does not wait for, so the kernel's RUSAGE_CHILDREN misses it): each process's
    own times, sampled every half second, the last sample of each kept. The machine is shared:
    CPU seconds are what the load average does not change much. None without psutil."""

    def __init__(self, pid: int):
        self.seen: dict[tuple[int, float], float] = {}
        self.done = threading.Event()
        try:
            import psutil
        except ImportError:
            self.thread = None
            return
        self.thread = threading.Thread(target=self._sample, args=(psutil, pid), daemon=True)
        self.thread.start()

    def _sample(self, psutil, pid: int) -> None:
        while not self.done.is_set():
            try:
                root = psutil.Process(pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                processes = []
            for p in processes:
                try:
                    t = p.cpu_times()
                    self.seen[(p.pid, p.create_time())] = t.user + t.system
                except psutil.Error:
                    pass
            self.done.wait(0.5)

    def stop(self) -> float | None:
        self.done.set()
        if self.thread is None:
            return None
        self.thread.join()
        return round(sum(self.seen.values()), 1)


def partitions_built(warehouse: Path, batch_id: int) -> int:
    """(city, event day) partitions of access events a batch added or changed."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT count(DISTINCT (city_code, event_day)) FROM audit.delivery_changes "
                           "WHERE batch_id = ? AND source = 'service_access'", [batch_id]).fetchone()[0]
    finally:
        con.close()


def bench_engine(name: str, engine: str, master: str | None, landing: Path, work: Path, last_day: date) -> dict:
    warehouse = work / name / "citycloud.duckdb"
    shutil.rmtree(warehouse.parent, ignore_errors=True)
    log(f"{name}: initial load up to {last_day - timedelta(days=1)}")
    initial = run_once(engine, master, landing, warehouse, last_day - timedelta(days=1))
    log(f"{name}: initial {initial['wall_s']}s; the last day")
    new_day = run_once(engine, master, landing, warehouse, None)
    log(f"{name}: new day {new_day['wall_s']}s")
    initial["partitions"] = partitions_built(warehouse, 1)
    new_day["partitions"] = partitions_built(warehouse, 2)
    for run in (initial, new_day):
        run["dbt_s_per_partition"] = round(run["dbt_models_s"] / run["partitions"], 3) if run["dbt_models_s"] else None
    return {"engine": engine, "master": master, "warehouse": str(warehouse), "initial": initial, "new_day": new_day}


def cluster(action: str, state: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "spark_cluster.sh"), action, str(state)], check=True,
                   env={**os.environ, "PYTHON": sys.executable})


def markdown(res: dict) -> str:
    p = res["params"]
    lines = [f"# Engines: the same month on DuckDB, Spark local[2] and a 2-worker cluster ({res['when']})", "",
             f"{p['cities']} cities x {p['days']} days, {p['accesses_per_day']:,} access events per city-day; "
             f"machine: {res['machine']}; marts identical across engines: **{res['identical']}**", "",
             "| engine | run | wall | CPU | dbt nodes | before 1st node (lake export) | partitions | dbt s/partition | load (start/end 1 min/5 min) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, r in res["engines"].items():
        for label, run in (("initial load", r["initial"]), ("new day", r["new_day"])):
            lines.append(f"| {name} | {label} | {run['wall_s']} s | {run.get('cpu_s')} s | {run['dbt_models_s']} s | "
                         f"{run['before_first_model_s']} s ({run['lake_export_s']} s) | {run['partitions']} | {run['dbt_s_per_partition']} | "
                         f"{' / '.join(map(str, run['load_start_end1_end5']))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", type=int, default=2)
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--accesses", type=int, default=20_000, help="access events per city-day")
    ap.add_argument("--data", type=Path, default=Path("/tmp/citycloud-bench-engines"))
    ap.add_argument("--engines", default="duckdb,spark-local,spark-cluster")
    ap.add_argument("--results", default="engines", help="name of the results files in bench/results")
    args = ap.parse_args(argv)
    params = {"cities": args.cities, "days": args.days, "accesses_per_day": args.accesses}
    landing = args.data / "landing"
    if not (args.data / "params.json").exists() or json.loads((args.data / "params.json").read_text()) != params:
        shutil.rmtree(args.data, ignore_errors=True)
        from citycloud.generate import generate
        log(f"generating {params}")
        generate(landing, cities=args.cities, start=START, days=args.days, users=max(2000, args.accesses // 2),
                 seed=42, accesses_per_day=args.accesses)
        (args.data / "params.json").write_text(json.dumps(params))
    last_day = START + timedelta(days=args.days - 1)
    choices = {"duckdb": ("duckdb", None), "spark-local": ("spark", "local[2]"), "spark-cluster": ("spark", CLUSTER)}
    res = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "params": params,
           "machine": f"{os.cpu_count()} cores, {platform.platform()}", "engines": {}}
    for name in args.engines.split(","):
        engine, master = choices[name]
        if name == "spark-cluster":
            state = args.data / "cluster"
            cluster("start", state)
            try:
                res["engines"][name] = bench_engine(name, engine, master, landing, args.data / "work", last_day)
            finally:
                cluster("stop", state)
        else:
            res["engines"][name] = bench_engine(name, engine, master, landing, args.data / "work", last_day)
        save(res, args.results)  # after each engine: what finished is kept if a later one does not
    print(markdown(res))
    return 0


def save(res: dict, name: str) -> None:
    """Compare the finished engines' marts and write bench/results/<name>.{json,md}."""
    built = {n: published_marts(_settings(Path(r["warehouse"]))) for n, r in res["engines"].items()}
    first = next(iter(built))
    diffs = {n: differences(built[first], b) for n, b in built.items() if n != first}
    res["identical"] = all(not d for d in diffs.values())
    res["differences"] = diffs
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown(res))


def _settings(warehouse: Path) -> Settings:
    s = Settings()
    s.warehouse = warehouse
    return s


if __name__ == "__main__":
    sys.exit(main())

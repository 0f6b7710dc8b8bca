"""Benchmark the pipeline on this machine: `python -m bench.run --quick|--full`.

Measures (see docs/performance.md):
1. ingestion throughput of one city-day of access events (1M; full also 10M) against the floor,
   one DuckDB query that only reads the same files;
2. the incremental daily cost: the full `citycloud run` (ingest, dbt build, checks, publish) of
   one new day on top of 30 and of 180 days of history, at a fixed daily volume;
3. peak memory (RSS summed over the process tree, dbt included) of every step;
4. full only: a 90-day backfill of a mid-size city (1M access events a day);
plus (full) one new 10M-event day end to end, and a Shanghai-sized 30M-event day end to end
(`--only big-day`: issue #28; its own bench/results/big_day.{json,md}). Every step runs in a child process (bench._child)
whose process tree is sampled with psutil. Data is generated with `citycloud generate` into
--data (default /tmp/citycloud-bench) and reused when its parameters have not changed.

Results: bench/results/latest.json and bench/results/latest.md. Targets are reported, never
asserted (tests never time anything).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Callable
from pathlib import Path

import psutil

from citycloud.config import SOURCES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1024 ** 3
START = date(2026, 1, 1)
PII_KEY = "citycloud-bench-key-not-a-secret"

# Issue #28's table (docs/performance.md; #15's before it: 5x, 3x, 500k/s, 5 s, 4 GiB, 10 min).
# Ratios are to the floor timed in the same run (the faster of the floor with DuckDB's defaults
# and with the project's settings), by CPU seconds: on a shared machine wall ratios measure the
# load more than the pipeline (#28 states its "now" figures by CPU).
TARGETS = {
    "e2e_1m_vs_floor": 6.0,              # `citycloud run`, one new 1M-event city-day, empty warehouse (CPU)
    "e2e_10m_vs_floor": 4.0,             # the same for a 10M-event city-day (CPU)
    "ingest_events_per_s": 600_000,      # ingestion alone, access events/s
    "ingest_cpu_vs_floor": 2.0,          # ingestion CPU seconds / the floor's CPU seconds
    "new_day_on_180_s": 8.0,             # one new day on 180 days of history (50k events/day in full)
    "peak_rss_10m_gib": 3.0,             # peak memory of the 10M-event day
    "backfill_minutes": 8.0,             # 90 days at 1M access events/day, one run
    "big_day_peak_rss_gib": 4.0,         # a 30M-event day runs end to end within this
}
# Every part of a run (`--only`); big-day runs in --full, or when --only names it.
PARTS = ("ingest", "e2e", "incremental", "backfill", "big-day")

MODES = {
    "quick": {
        "ingest_sizes": [1_000_000],
        "e2e_sizes": [1_000_000],
        "incremental_volume": 5_000,
        "histories": [30, 180],
        "backfill": None,
        "big_day": None,
    },
    "full": {
        "ingest_sizes": [1_000_000, 10_000_000],
        "e2e_sizes": [1_000_000, 10_000_000],
        "incremental_volume": 50_000,
        "histories": [30, 180],
        "backfill": {"days": 90, "accesses_per_day": 1_000_000},
        "big_day": 30_000_000,
    },
}
BIG_DAY_EVENTS = 30_000_000  # a Shanghai-sized city delivers 10–50M access events a day


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring a child process

class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every `interval` seconds."""

    def __init__(self, pid: int, spill_dir: Path | None, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.spill_dir, self.interval = pid, spill_dir, interval
        self.samples: list[tuple[float, int]] = []
        self.spills: list[tuple[float, int]] = []  # (time, bytes in the spill folder), every 10th sample
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        tick = 0
        while not self._halt.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.samples.append((time.time(), total))
            tick += 1
            if self.spill_dir is not None and tick % 10 == 0:
                self.spills.append((time.time(), _dir_size(self.spill_dir)))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, start: float | None = None, end: float | None = None, spill: bool = False) -> int:
        """The largest RSS (or spill folder size) sampled between start and end."""
        slack = 0.5 if spill else 0.05  # spill is sampled every 0.5 s
        vals = [r for t, r in (self.spills if spill else self.samples)
                if (start is None or t >= start - slack) and (end is None or t <= end + slack)]
        return max(vals, default=0)


def _dir_size(path: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            try:
                total += entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else (
                    _dir_size(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else 0)
            except OSError:
                pass
    except OSError:
        pass
    return total


def measure(step: str, args: dict, env: dict[str, str], workdir: Path) -> dict:
    """Run one step in a child process; return its result with wall time and peak RSS per phase."""
    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / f"result-{step}-{os.getpid()}-{time.monotonic_ns()}.json"
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    spill = Path(env["CITYCLOUD_SPILL_DIR"]) if "CITYCLOUD_SPILL_DIR" in env else None
    cpu0, ru0, load0 = psutil.cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "bench._child", step, json.dumps(args), str(result_path)],
                            env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid, spill)
    sampler.start()
    output = proc.communicate()[0]
    sampler.stop()
    wall = time.time() - t0
    cpu1, ru1 = psutil.cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise RuntimeError(f"bench step {step} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    result["process_wall_s"] = round(wall, 2)
    result["peak_rss_bytes"] = sampler.peak()
    result["max_spill_bytes"] = sampler.peak(spill=True)
    # Contention: CPU seconds the rest of the machine used meanwhile (other developers' jobs).
    busy = sum(getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "nice", "irq", "softirq", "steal")
               if hasattr(cpu1, f))
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    result["cpu_own_s"] = round(own, 1)
    result["cpu_others_s"] = round(max(0.0, busy - own), 1)
    result["loadavg_before"] = round(load0, 2)
    result["loadavg_after"] = round(os.getloadavg()[0], 2)
    for ph in result.get("phases", []):
        ph["seconds"] = round(ph["end"] - ph["start"], 3)
        ph["peak_rss_bytes"] = sampler.peak(ph["start"], ph["end"]) if not ph.get("skipped") else None
        ph["max_spill_bytes"] = sampler.peak(ph["start"], ph["end"], spill=True) if not ph.get("skipped") else None
    return result


# ---------------------------------------------------------------- data

def generate(data: Path, name: str, params: dict, regen: bool) -> Path:
    """`citycloud generate` into data/name, reused when the same parameters made it before."""
    out = data / name
    marker = out / ".bench-params.json"
    # The sources are part of the key: data generated before a source was added is made again.
    wanted = json.dumps({**params, "sources": list(SOURCES)}, sort_keys=True)
    if not regen and marker.exists() and marker.read_text() == wanted:
        log(f"data {name}: reusing {out}")
        return out
    if out.exists():
        shutil.rmtree(out)
    log(f"data {name}: generating {params}")
    res = measure("generate", {"out": str(out), "params": params}, {}, data / ".work")
    marker.write_text(wanted)
    log(f"data {name}: generated in {res['process_wall_s']:.0f}s: {res.get('summary')}")
    return out


def files_of(landing: Path, source: str) -> list[Path]:
    return sorted(p for p in landing.glob(f"*/{source}/dt=*/*") if p.is_file() and p.name != "_SUCCESS"
                  and not p.name.startswith("."))


def only_source(landing: Path, source: str, dest: Path) -> Path:
    """A landing area holding only `source` of `landing` (hard-linked files: ingestion refuses
    links that leave the landing root)."""
    if dest.exists():
        shutil.rmtree(dest)
    for src_dir in landing.glob(f"*/{source}"):
        shutil.copytree(src_dir, dest / src_dir.parent.name / source, copy_function=os.link)
    return dest


def fresh_env(work: Path, landing: Path) -> dict[str, str]:
    """Environment of one pipeline instance: its own warehouse and spill dir under `work`."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {
        "CITYCLOUD_LANDING": str(landing),
        "CITYCLOUD_WAREHOUSE": str(work / "warehouse" / "citycloud.duckdb"),
        "CITYCLOUD_OUTPUT": str(work / "output"),
        "CITYCLOUD_PII_KEY": PII_KEY,
    }
    env["CITYCLOUD_SPILL_DIR"] = os.environ.get("CITYCLOUD_SPILL_DIR", str(work / "warehouse" / ".spill"))
    return env


def size_of(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def warm(paths: list[Path]) -> None:
    """Read the files once so both the floor and ingestion find them in the page cache."""
    for p in paths:
        with p.open("rb") as fh:
            while fh.read(1 << 24):
                pass


# ---------------------------------------------------------------- scenarios

def users_for(accesses_per_day: int) -> int:
    # A portal where a logged-in user opens a few services a day; the generator scales the
    # cities by their profile from this base.
    return max(2_000, accesses_per_day // 4)


def bench_ingest(data: Path, size: int, regen: bool, repeat: int = 1) -> dict:
    label = f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"
    landing = generate(data, f"day_{label}", {
        "cities": 1, "start": START.isoformat(), "days": 1, "users": users_for(size), "seed": 7,
        "accesses_per_day": size, "dirt": True}, regen)
    access_landing = only_source(landing, "service_access", data / f"day_{label}_access_only")
    files = files_of(access_landing, "service_access")
    warm(files)
    log(f"ingest {label}: floor query and ingestion over {len(files)} file(s), {size_of(files) / 1e6:.0f} MB, "
        f"best of {repeat}")
    floor_runs, ingests = [], []
    for _ in range(repeat):
        env = fresh_env(data / "work" / f"ingest_{label}", access_landing)
        floor_runs.append(time_floors(files, env, data))
        ingests.append(measure("ingest", {}, env, data / ".work"))
        log(f"ingest {label}: floor {floor_runs[-1]['floor_s']:.2f}s, ingest {ingests[-1]['seconds']:.2f}s "
            f"(CPU used by other processes meanwhile: {ingests[-1]['cpu_others_s']}s; "
            f"load {ingests[-1]['loadavg_before']})")
    floor = min(floor_runs, key=lambda r: r["floor_s"])
    ing = min(ingests, key=lambda r: r["seconds"])
    events = ing["access_rows_read"]
    res = {
        "label": label,
        "files": len(files),
        "bytes_on_disk": size_of(files),
        "access_events": events,
        "rows_loaded": ing["rows_loaded"],
        "rows_rejected": ing["rows_rejected"],
        "ingest_s": round(ing["seconds"], 3),
        "ingest_events_per_s": round(events / ing["seconds"]),
        "ingest_peak_rss_bytes": ing["peak_rss_bytes"],
        "ingest_max_spill_bytes": ing["max_spill_bytes"],
        "ingest_breakdown": ing["breakdown"],
        **floor,
        "floor_events_per_s": round(floor["floor_rows"] / floor["floor_s"]),
        "ratio_to_floor": round(ing["seconds"] / floor["floor_s"], 2),
        "repeats": repeat,
        "all_ingest_s": [round(r["seconds"], 2) for r in ingests],
        "all_floor_s": [r["floor_s"] for r in floor_runs],
        "cpu_others_s_during_ingest": ing["cpu_others_s"],
        "loadavg": [ing["loadavg_before"], ing["loadavg_after"]],
        # CPU seconds the step itself used: less sensitive to other jobs on the machine than wall time.
        "ingest_cpu_s": ing["cpu_own_s"],
        "ratio_to_floor_cpu": round(ing["cpu_own_s"] / max(floor["floor_cpu_s"], 0.1), 2),
    }
    log(f"ingest {label}: {events:,} access events in {ing['seconds']:.2f}s = {res['ingest_events_per_s']:,}/s, "
        f"{res['ratio_to_floor']}x floor, peak {ing['peak_rss_bytes'] / GIB:.2f} GiB")
    shutil.rmtree(Path(env["CITYCLOUD_WAREHOUSE"]).parent.parent, ignore_errors=True)
    return res


def time_floors(files: list[Path], env: dict[str, str], data: Path) -> dict:
    """The floor (DuckDB only reading the files) with the project's settings and with DuckDB's
    defaults, timed now; `floor_s`/`floor_cpu_s` are the faster of the two."""
    out = {}
    for settings, suffix in (("project", "project"), ("defaults", "defaults")):
        r = measure("floor", {"files": [str(f) for f in files], "settings": settings}, env, data / ".work")
        out.update({f"floor_{suffix}_s": round(r["seconds"], 3), f"floor_{suffix}_cpu_s": r["cpu_own_s"],
                    f"floor_{suffix}_peak_rss_bytes": r["peak_rss_bytes"],
                    f"floor_{suffix}_loadavg": r["loadavg_before"]})
        out["floor_rows"], out["floor_skipped_files"] = r["rows"], r["skipped"]
    best = min(("project", "defaults"), key=lambda k: out[f"floor_{k}_s"])
    out.update(floor_s=out[f"floor_{best}_s"], floor_cpu_s=out[f"floor_{best}_cpu_s"],
               floor_peak_rss_bytes=out[f"floor_{best}_peak_rss_bytes"], floor_best=best,
               floor_bytes=size_of(files), floor_files=len(files))
    return out


def run_summary(r: dict) -> dict:
    phases = {p["name"]: {"seconds": p["seconds"], "peak_rss_bytes": p["peak_rss_bytes"], "cpu_s": p.get("cpu_s"),
                          "max_spill_bytes": p.get("max_spill_bytes"),
                          **({"skipped": True} if p.get("skipped") else {})} for p in r["phases"]}
    return {
        "seconds": round(r["seconds"], 2),
        "peak_rss_bytes": r["peak_rss_bytes"],
        "max_spill_bytes": r["max_spill_bytes"],
        "cpu_own_s": r["cpu_own_s"],
        "cpu_others_s": r["cpu_others_s"],
        "loadavg": [r["loadavg_before"], r["loadavg_after"]],
        "rows_loaded": r.get("rows_loaded"),
        "rows_read": r.get("rows_read"),
        "access_events": r.get("access_rows_read"),
        "checks_available": r["checks_available"],
        "blocked": r.get("blocked"),
        "published": r.get("published"),
        "phases": phases,
        "dbt_models": r.get("dbt_models", {}),
    }


def bench_e2e(data: Path, size: int, regen: bool) -> dict:
    """One new city-day (every source) through the whole `citycloud run` on an empty
    warehouse, against the floor over its access files timed just before."""
    label = f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"
    landing = generate(data, f"day_{label}", {
        "cities": 1, "start": START.isoformat(), "days": 1, "users": users_for(size), "seed": 7,
        "accesses_per_day": size, "dirt": True}, regen)
    access = files_of(landing, "service_access")
    warm(access)
    env = fresh_env(data / "work" / f"e2e_{label}", landing)
    floor = time_floors(access, env, data)
    log(f"e2e {label}: floor {floor['floor_project_s']:.2f}s (project settings) / "
        f"{floor['floor_defaults_s']:.2f}s (DuckDB defaults); citycloud run of one {label}-event day")
    r = run_summary(measure("run", {}, env, data / ".work"))
    r.update(floor, label=label, landing_bytes=size_of([p for p in landing.rglob("*") if p.is_file()]))
    r["ratio_to_floor"] = round(r["seconds"] / floor["floor_s"], 2)
    r["ratio_to_floor_cpu"] = round(r["cpu_own_s"] / max(floor["floor_cpu_s"], 0.1), 2)
    log(f"e2e {label}: {r['seconds']:.1f}s, peak {r['peak_rss_bytes'] / GIB:.2f} GiB, phases "
        + ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in r["phases"].items()))
    shutil.rmtree(Path(env["CITYCLOUD_WAREHOUSE"]).parent.parent, ignore_errors=True)
    return r


def history_warehouse(data: Path, part: str, volume: int, history: int, extra_days: int,
                      regen: bool) -> tuple[dict[str, str], date, dict]:
    """One city's landing of `history` + `extra_days` days at `volume` access events a day
    (generated once) and a warehouse of its first `history` days in data/work/<part>.
    Returns (the run's environment, the last day built, the setup run's summary)."""
    landing = generate(data, f"{part}_{volume // 1000}k_{history}d", {
        "cities": 1, "start": START.isoformat(), "days": history + extra_days, "users": users_for(volume),
        "seed": 11, "accesses_per_day": volume, "dirt": True}, regen)
    env = fresh_env(data / "work" / part, landing)
    setup_end = START + timedelta(days=history - 1)
    log(f"{part.replace('_', ' ')}: history of {history} days at {volume:,} events a day, up to {setup_end}")
    return env, setup_end, run_summary(measure("run", {"end": setup_end.isoformat()}, env, data / ".work"))


def tries_on_copies(env: dict[str, str], repeat: int, try_once: Callable[[int], dict]) -> list[dict]:
    """`try_once(i)` `repeat` times, each on a copy of the warehouse as it is now (kept in
    warehouse.before-new-day meanwhile): the best try is less at the mercy of other jobs on the
    machine. The warehouse left is the last try's."""
    state = Path(env["CITYCLOUD_WAREHOUSE"]).parent
    saved = state.parent / "warehouse.before-new-day"
    if saved.exists():
        shutil.rmtree(saved)
    shutil.copytree(state, saved, symlinks=True)
    tries = []
    for i in range(repeat):
        if i:
            shutil.rmtree(state)
            shutil.copytree(saved, state, symlinks=True)
        tries.append(try_once(i))
    shutil.rmtree(saved)
    return tries


def best_new_day(env: dict[str, str], new_day: date, repeat: int, data: Path, label: str) -> dict:
    """`citycloud run` of `new_day`, `repeat` times on copies of the same warehouse. Returns the
    best run's summary with every try's seconds."""
    def try_once(i: int) -> dict:
        r = run_summary(measure("run", {"end": new_day.isoformat()}, env, data / ".work"))
        log(f"{label}: try {i + 1}: {r['seconds']:.1f}s (CPU own {r['cpu_own_s']}s, others {r['cpu_others_s']}s)")
        return r

    tries = tries_on_copies(env, repeat, try_once)
    best = min(tries, key=lambda t: t["seconds"])
    best["all_seconds"] = [t["seconds"] for t in tries]
    return best


def bench_incremental(data: Path, volume: int, histories: list[int], regen: bool, repeat: int = 2) -> dict:
    # Two days past the longest history: the generator leaves the last day's delivery of one
    # source incomplete (no _SUCCESS), and the measured day must be a complete one.
    days = max(histories) + 2
    landing = generate(data, f"history_{volume // 1000}k", {
        "cities": 1, "start": START.isoformat(), "days": days, "users": users_for(volume), "seed": 11,
        "accesses_per_day": volume, "dirt": True}, regen)
    env = fresh_env(data / "work" / f"incremental_{volume // 1000}k", landing)
    state = Path(env["CITYCLOUD_WAREHOUSE"]).parent
    out = {"accesses_per_day": volume, "repeats": repeat, "runs": {}}
    for h in sorted(histories):
        setup_end = START + timedelta(days=h - 1)
        log(f"incremental: history up to {setup_end} ({h} days)")
        setup = run_summary(measure("run", {"end": setup_end.isoformat()}, env, data / ".work"))
        new_day = setup_end + timedelta(days=1)
        log(f"incremental: new day {new_day} on {h} days of history (setup took {setup['seconds']:.0f}s), "
            f"best of {repeat}")
        r = best_new_day(env, new_day, repeat, data, f"incremental {h}")
        r["history_days"] = h
        r["setup_seconds"] = setup["seconds"]
        r["setup_peak_rss_bytes"] = setup["peak_rss_bytes"]
        r["setup_phases"] = setup["phases"]
        r["warehouse_bytes"] = Path(env["CITYCLOUD_WAREHOUSE"]).stat().st_size
        out["runs"][str(h)] = r
        log(f"incremental {h}: {r['seconds']:.1f}s ("
            + ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in r["phases"].items()) + ")")
    lo, hi = str(min(histories)), str(max(histories))
    out["ratio"] = round(out["runs"][hi]["seconds"] / out["runs"][lo]["seconds"], 2)
    out["ratio_cpu"] = round(out["runs"][hi]["cpu_own_s"] / max(out["runs"][lo]["cpu_own_s"], 0.1), 2)
    shutil.rmtree(state.parent, ignore_errors=True)
    return out


def bench_backfill(data: Path, days: int, volume: int, regen: bool) -> dict:
    landing = generate(data, f"backfill_{days}d_{volume // 1000}k", {
        "cities": 1, "start": START.isoformat(), "days": days, "users": users_for(volume), "seed": 13,
        "accesses_per_day": volume, "dirt": True}, regen)
    env = fresh_env(data / "work" / "backfill", landing)
    log(f"backfill: {days} days x {volume:,} access events, one citycloud run")
    r = run_summary(measure("run", {}, env, data / ".work"))
    r["days"] = days
    r["accesses_per_day"] = volume
    r["events_per_s"] = round((r["access_events"] or 0) / r["seconds"]) if r["seconds"] else None
    r["warehouse_bytes"] = Path(env["CITYCLOUD_WAREHOUSE"]).stat().st_size
    log(f"backfill: {r['seconds']:.0f}s, {r['events_per_s']:,} access events/s, "
        f"peak {r['peak_rss_bytes'] / GIB:.2f} GiB")
    shutil.rmtree(Path(env["CITYCLOUD_WAREHOUSE"]).parent.parent, ignore_errors=True)
    return r


def bench_big_day(data: Path, size: int, regen: bool) -> dict:
    """Issue #28: one Shanghai-sized city-day (30M access events, every source) through the whole
    `citycloud run` on an empty warehouse, as `bench_e2e` runs the 1M and 10M days: its data is
    generated once into the bench's cache (reused while the parameters are the same), the floor
    is timed in the same run. Reports the peak RSS and CPU of every step and the largest spill."""
    r = bench_e2e(data, size, regen)
    r["peak_target_gib"] = TARGETS["big_day_peak_rss_gib"]
    r["meets_peak_target"] = r["peak_rss_bytes"] / GIB <= TARGETS["big_day_peak_rss_gib"]
    return r


def big_day_markdown(res: dict) -> str:
    """bench/results/big_day.md: the 30M-event day alone."""
    r, m = res["big_day"], res["machine"]
    spills = [f"{k} {v['max_spill_bytes'] / 1e6:.0f}" for k, v in r["phases"].items() if v.get("max_spill_bytes") is not None]
    lines = [f"# citycloud benchmark: a {r['label']}-event city-day end to end — {res['finished_at']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / GIB:.1f} GiB RAM; git {m['git']}. "
             f"DuckDB memory_limit {m['duckdb_memory_limit']} (ingestion {m.get('duckdb_ingest_memory_limit')}), "
             f"threads {m['duckdb_threads']}. Generation is cached (not timed here).",
             *run_rows("`citycloud run` of one new city-day, empty warehouse, every source", [(f"{r['label']} day", r)]),
             "", *e2e_notes(r),
             *(["", "Largest spill folder per step (MB): " + ", ".join(spills) + "."] if spills else []),
             "", f"Peak RSS {gib(r['peak_rss_bytes'])} GiB against the target ≤ {r['peak_target_gib']} GiB: "
             + ("met." if r["meets_peak_target"] else "**not met**.")]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- machine and report

def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version
    for pkg in ("duckdb", "dbt-core", "dbt-duckdb", "pyarrow", "numpy", "polars", "psutil"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    from citycloud.config import Settings
    s = Settings()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "git": commit + ("+dirty" if dirty else ""),
        "duckdb_memory_limit": s.memory_limit,
        "duckdb_ingest_memory_limit": s.ingest_memory_limit,
        "duckdb_threads": s.threads or "default (all cores)",
        "spill_dir": "CITYCLOUD_SPILL_DIR or <warehouse dir>/.spill",
    }


def e2e_runs(res: dict) -> list[dict]:
    e2e = res.get("e2e") or []
    return [e2e] if isinstance(e2e, dict) else e2e  # results written before the list form


def targets(res: dict) -> list[dict]:
    """Every figure of issue #28's table against its target (the quick mode at its smaller sizes)."""
    out = []

    def add(figure: str, target: str, value: str, met: bool | None) -> None:
        out.append({"figure": figure, "target": target, "value": value, "met": met})

    for e in e2e_runs(res):
        if e.get("ratio_to_floor") is None:
            continue
        limit = TARGETS["e2e_1m_vs_floor"] if e["label"] == "1M" else TARGETS["e2e_10m_vs_floor"]
        cpu_ratio = e.get("ratio_to_floor_cpu")
        add(f"`citycloud run`, one new {e['label']}-event city-day, empty warehouse", f"≤ {limit}× the floor's CPU",
            f"CPU {e.get('cpu_own_s', '–')} s vs {e.get('floor_cpu_s', '–')} s = {cpu_ratio if cpu_ratio else '–'}× "
            f"(wall {e['seconds']:.1f} s vs {e['floor_s']:.2f} s = {e['ratio_to_floor']}×; load {e.get('loadavg', ['?'])[0]})",
            cpu_ratio <= limit if cpu_ratio else None)
    for r in res.get("ingestion", []):
        add(f"ingestion alone, {r['label']} events", f"≥ {TARGETS['ingest_events_per_s']:,} events/s, "
            f"≤ {TARGETS['ingest_cpu_vs_floor']}× floor CPU",
            f"{r['ingest_events_per_s']:,}/s; CPU {r['ingest_cpu_s']} s vs {r['floor_cpu_s']} s = "
            f"{r['ratio_to_floor_cpu']}× (wall {r['ratio_to_floor']}×)",
            r["ingest_events_per_s"] >= TARGETS["ingest_events_per_s"]
            and r["ratio_to_floor_cpu"] <= TARGETS["ingest_cpu_vs_floor"])
    inc = res.get("incremental")
    if inc and "180" in inc.get("runs", {}):
        r = inc["runs"]["180"]
        add(f"one new {inc['accesses_per_day'] // 1000}k-event day on 180 days of history",
            f"≤ {TARGETS['new_day_on_180_s']} s",
            f"{r['seconds']:.1f} s (CPU {r['cpu_own_s']} s; on 30 days {inc['runs']['30']['seconds']:.1f} s; "
            f"load {r.get('loadavg', ['?'])[0]})", r["seconds"] <= TARGETS["new_day_on_180_s"])
    peaks = [(e["label"], e["peak_rss_bytes"]) for e in e2e_runs(res)]
    if peaks:
        label, peak = max(peaks, key=lambda lp: lp[1])
        add(f"peak memory, {label}-event day", f"≤ {TARGETS['peak_rss_10m_gib']} GiB", f"{peak / GIB:.2f} GiB",
            peak / GIB <= TARGETS["peak_rss_10m_gib"])
    big = res.get("big_day")
    if big:
        add(f"a {big['label']}-event day end to end (issue #28)", f"runs end to end, ≤ {big['peak_target_gib']} GiB",
            f"{big['seconds']:.0f} s, {big['ratio_to_floor']}× the floor; peak {gib(big['peak_rss_bytes'])} GiB, "
            f"max spill {big['max_spill_bytes'] / GIB:.2f} GiB", big["meets_peak_target"])
    bf = res.get("backfill")
    if bf:
        add(f"{bf['days']}-day backfill at {bf['accesses_per_day']:,} events a day",
            f"measured, ≤ {TARGETS['backfill_minutes']:.0f} minutes",
            f"{bf['seconds'] / 60:.1f} min ({bf['events_per_s']:,} access events/s; CPU {bf['cpu_own_s']} s)",
            bf["seconds"] / 60 <= TARGETS["backfill_minutes"])
    elif res.get("mode") == "quick":
        add("90-day backfill at 1M events a day", f"≤ {TARGETS['backfill_minutes']:.0f} minutes",
            "not run in the quick mode (`make bench`)", None)
    return out


def gib(b: int | None) -> str:
    return "" if b is None else f"{b / GIB:.2f}"


def floors(r: dict) -> str:
    if "floor_project_s" not in r:
        return f"{r['floor_s']:.2f}"
    return f"{r['floor_project_s']:.2f} / {r['floor_defaults_s']:.2f}"


def run_rows(title: str, runs: list[tuple[str, dict]]) -> list[str]:
    rows = ["", f"## {title}", "",
            "| run | access events | total s | ingest s (CPU s) | build s (CPU s) | checks s (CPU s) | publish s (CPU s) | peak RSS GiB "
            "(ingest / build / checks / publish) | max spill MB | CPU s own / others | load (1 min) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for name, r in runs:
        ph = r["phases"]

        def s(k):
            p = ph.get(k)
            if not p:
                return "–"
            if p.get("skipped"):
                return "n/a"
            return f"{p['seconds']:.1f}" + (f" ({p['cpu_s']:.1f})" if p.get("cpu_s") is not None else "")

        def mem(k):
            p = ph.get(k)
            return gib(p["peak_rss_bytes"]) if p and not p.get("skipped") else "–"

        rows.append(f"| {name} | {r['access_events'] or 0:,} | {r['seconds']:.1f} | {s('ingest')} | {s('build')} | "
                    f"{s('check')} | {s('publish')} | {gib(r['peak_rss_bytes'])} ({mem('ingest')} / {mem('build')} / "
                    f"{mem('check')} / {mem('publish')}) | {r['max_spill_bytes'] / 1e6:.0f} | "
                    f"{r.get('cpu_own_s', '')} / {r.get('cpu_others_s', '')} | {r.get('loadavg', '')} |")
    return rows


def e2e_notes(e: dict) -> list[str]:
    """The floor, the ratios and the slowest dbt nodes of one city-day run end to end."""
    lines = []
    if e.get("ratio_to_floor") is not None:
        lines += ["", f"{e['label']} day: floor over its {e.get('floor_files', '?')} access file(s) "
                  f"({(e.get('floor_bytes') or 0) / 1e6:.0f} MB; whole landing "
                  f"{(e.get('landing_bytes') or 0) / 1e6:.0f} MB): {floors(e)} s; ratio "
                  f"**{e['ratio_to_floor']}×** wall, {e.get('ratio_to_floor_cpu', '–')}× CPU."]
    if e.get("dbt_models"):
        lines += ["", f"dbt nodes of the {e['label']} day (s): "
                  + ", ".join(f"{k} {v}" for k, v in list(e["dbt_models"].items())[:10])]
        lines += watched_models(f"the {e['label']} day", e["dbt_models"])
    return lines


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"# citycloud benchmark ({res['mode']}) — {res['finished_at']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / GIB:.1f} GiB RAM, {m['os']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; git {m['git']}. DuckDB memory_limit {m['duckdb_memory_limit']} "
          f"(ingestion {m.get('duckdb_ingest_memory_limit', m['duckdb_memory_limit'])}), threads {m['duckdb_threads']}, "
          f"spill dir {m['spill_dir']}. Total bench time {res['seconds'] / 60:.1f} min.",
        "",
        "## Ingestion of one city-day of access events vs the floor",
        "",
        "| events | files | MB on disk | ingest s | events/s | floor s (project / DuckDB defaults) | ratio to floor | "
        "ingest / floor CPU s (ratio) | peak RSS ingest GiB | peak RSS floor GiB | load (1 min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in res.get("ingestion", []):
        lines.append(f"| {r['access_events']:,} | {r['files']} | {r['bytes_on_disk'] / 1e6:.0f} | {r['ingest_s']:.2f} | "
                     f"{r['ingest_events_per_s']:,} | {floors(r)} | "
                     f"{r['ratio_to_floor']} | {r.get('ingest_cpu_s')} / {r.get('floor_cpu_s')} ({r.get('ratio_to_floor_cpu')}) | "
                     f"{gib(r['ingest_peak_rss_bytes'])} | {gib(r['floor_peak_rss_bytes'])} | {r.get('loadavg', '')} |")
    for r in res.get("ingestion", []):
        lines += ["", f"Where ingestion of {r['label']} spends its time (s, and peak RSS GiB while doing it): "
                  + "; ".join(f"{k} {v['seconds']}" + (f" ({gib(v['peak_rss_bytes'])} GiB)" if v.get("peak_rss_bytes") else "")
                              for k, v in r["ingest_breakdown"].items() if v["seconds"] >= 0.01)]

    runs = e2e_runs(res)
    if runs:
        lines += run_rows("One new city-day end to end (`citycloud run`, empty warehouse, every source)",
                          [(f"{e['label']} day", e) for e in runs])
        for e in runs:
            lines += e2e_notes(e)
    if res.get("big_day"):
        lines += run_rows("A Shanghai-sized city-day end to end (issue #28)", [(f"{res['big_day']['label']} day",
                                                                                res["big_day"])])
        lines += e2e_notes(res["big_day"])
    inc = res.get("incremental")
    if inc:
        runs = [(f"new day on {h} days", r) for h, r in inc["runs"].items()]
        lines += run_rows(f"Incremental daily cost at {inc['accesses_per_day']:,} access events/day", runs)
        lines += ["", f"Ratio 180 / 30 days of history: **{inc['ratio']}×** by wall time (best of "
                  f"{inc.get('repeats', 1)} tries on copies of the same warehouse), {inc.get('ratio_cpu', '–')}× by "
                  "CPU seconds. Setup (history backfill): "
                  + ", ".join(f"{h} days {r['setup_seconds']:.0f}s" for h, r in inc["runs"].items()) + "."]
        for h, r in inc["runs"].items():
            if r["dbt_models"]:
                lines += ["", f"dbt models of the new day on {h} days (s): "
                          + ", ".join(f"{k} {v}" for k, v in list(r["dbt_models"].items())[:8])]
                lines += watched_models(f"the new day on {h} days", r["dbt_models"])
    bf = res.get("backfill")
    if bf:
        lines += run_rows(f"Full backfill: {bf['days']} days × {bf['accesses_per_day']:,} access events (one run)",
                          [("backfill", bf)])
        lines += ["", f"Backfill: {bf['seconds'] / 60:.1f} min, **{bf['events_per_s']:,} access events/s** end to end; "
                  f"warehouse {bf['warehouse_bytes'] / GIB:.2f} GiB."]
        if bf["dbt_models"]:
            lines += ["", "dbt models of the backfill (s): "
                      + ", ".join(f"{k} {v}" for k, v in list(bf["dbt_models"].items())[:8])]
            lines += watched_models("the backfill", bf["dbt_models"])
    lines += ["", "## Targets (issue #28)", "", "| figure | target | measured | met |", "| --- | --- | --- | --- |"]
    for t in res.get("targets", []):
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['figure']} | {t['target']} | {t['value']} | {met} |")
    if res.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


# Models always listed in latest.md by name (the JSON has every model): the 好差评 loop's
# (issue #26: the new marts' cost on a new day), whatever their rank among the slowest.
WATCHED_MODELS = ("review",)


def watched_models(what: str, timings: dict) -> list[str]:
    watched = {k: v for k, v in timings.items() if any(w in k for w in WATCHED_MODELS)}
    if not watched:
        return []
    return ["", f"{'/'.join(WATCHED_MODELS)} models of {what} (s): "
            + ", ".join(f"{k} {v}" for k, v in watched.items()) + f"; together {sum(watched.values()):.2f}"]


def write_results(res: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    res["targets"] = targets(res)
    text_json, text_md = json.dumps(res, indent=2, default=str), markdown(res)
    # latest.* is the last run of either mode; <mode>.* keeps the last run of each mode.
    for stem in ("latest", res["mode"]):
        for name, text in ((stem + ".json", text_json), (stem + ".md", text_md)):
            tmp = RESULTS / (name + ".tmp")
            tmp.write_text(text)
            tmp.replace(RESULTS / name)


def write_big_day(res: dict) -> None:
    """bench/results/big_day.{json,md}: the last run of the big day, whichever mode ran it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {k: res[k] for k in ("started_at", "finished_at", "machine", "big_day") if k in res}
    (RESULTS / "big_day.json").write_text(json.dumps(out, indent=2, default=str))
    (RESULTS / "big_day.md").write_text(big_day_markdown(out))


def run_big_day_alone(data: Path, size: int, regen: bool) -> int:
    data.mkdir(parents=True, exist_ok=True)
    res = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    res["big_day"] = bench_big_day(data, size, regen)
    res["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_big_day(res)
    print((RESULTS / "big_day.md").read_text())
    return 0


def kept_parts(old: dict, only: set[str]) -> tuple[dict, list[str]]:
    """The parts of the last run of a mode that this partial run does not redo, and a note for each
    naming the run that measured it: the old run's own note when it had kept that part itself."""
    kept, notes = {}, []
    for part in ("ingestion", "e2e", "incremental", "backfill", "big_day"):
        if part in old and {"ingestion": "ingest", "big_day": "big-day"}.get(part, part) not in only:
            kept[part] = old[part]
            earlier = [n for n in old.get("notes", []) if n.startswith(f"{part}: from the run started ")]
            notes.append(earlier[0] if earlier else f"{part}: from the run started {old.get('started_at')}")
    return kept, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode")
    mode.add_argument("--full", action="store_const", const="full", dest="mode")
    p.add_argument("--data", default=os.environ.get("CITYCLOUD_BENCH_DATA", "/tmp/citycloud-bench"),
                   help="where generated data and scratch warehouses go (default /tmp/citycloud-bench)")
    p.add_argument("--only", help=f"comma-separated parts to run ({', '.join(PARTS)}); default every part of the "
                   "mode (big-day: --full only)")
    p.add_argument("--regen", action="store_true", help="generate the data again even if present")
    p.add_argument("--sizes", help="override ingestion sizes, e.g. 1000000,10000000")
    p.add_argument("--volume", type=int, help="override the incremental daily volume")
    p.add_argument("--backfill-volume", type=int, help="override the backfill's access events per day")
    p.add_argument("--big-day-events", type=int, help=f"override the big day's access events (default {BIG_DAY_EVENTS:,})")
    p.add_argument("--render", metavar="JSON", help="only re-render the markdown of a results JSON file")
    args = p.parse_args(argv)
    if args.render:
        res = json.loads(Path(args.render).read_text())
        write_results(res)
        print((RESULTS / "latest.md").read_text())
        return 0
    args.mode = args.mode or "quick"
    cfg = dict(MODES[args.mode])
    if args.sizes:
        cfg["ingest_sizes"] = [int(x) for x in args.sizes.split(",")]
    if args.volume:
        cfg["incremental_volume"] = args.volume
    if args.backfill_volume and cfg["backfill"]:
        cfg["backfill"] = {**cfg["backfill"], "accesses_per_day": args.backfill_volume}
    if args.only and (unknown := set(args.only.split(",")) - set(PARTS)):
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}")
    only = set(args.only.split(",")) if args.only else set(PARTS)
    if args.only and "big-day" in only or args.big_day_events:
        cfg["big_day"] = args.big_day_events or BIG_DAY_EVENTS  # named: run in either mode
    if not cfg["big_day"]:
        only.discard("big-day")
    if only == {"big-day"}:  # alone: its own results file, the mode's results untouched
        return run_big_day_alone(Path(args.data), cfg["big_day"], args.regen)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res: dict = {"mode": args.mode, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "machine": machine(), "config": cfg, "notes": []}
    previous = RESULTS / f"{args.mode}.json"
    if only != set(PARTS) - ({"big-day"} if not cfg["big_day"] else set()) and previous.exists():
        # A partial run keeps the other parts of the last run of the same mode.
        kept, notes = kept_parts(json.loads(previous.read_text()), only)
        res.update(kept)
        res["notes"] += notes

    def checkpoint():
        res["seconds"] = round(time.time() - t0, 1)
        res["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_results(res)

    try:
        from citycloud import expectations  # noqa: F401
        from citycloud.expectations import run_checks  # noqa: F401
    except ImportError:
        res["notes"].append("citycloud.expectations.run_checks is not available yet: runs skip the quality checks step")

    if "ingest" in only:
        res["ingestion"] = []
        for size in cfg["ingest_sizes"]:
            res["ingestion"].append(bench_ingest(data, size, args.regen, repeat=2 if size <= 2_000_000 else 1))
            checkpoint()
    if "e2e" in only:
        res["e2e"] = []
        for size in cfg["e2e_sizes"]:
            res["e2e"].append(bench_e2e(data, size, args.regen))
            checkpoint()
    if "incremental" in only:
        res["incremental"] = bench_incremental(data, cfg["incremental_volume"], cfg["histories"], args.regen)
        checkpoint()
    if "backfill" in only and cfg["backfill"]:
        res["backfill"] = bench_backfill(data, cfg["backfill"]["days"], cfg["backfill"]["accesses_per_day"],
                                         args.regen)
        checkpoint()
    if "big-day" in only:
        res["big_day"] = bench_big_day(data, cfg["big_day"], args.regen)
        checkpoint()
        write_big_day(res)
    checkpoint()
    print((RESULTS / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One measured step, run in its own process so its memory can be sampled as a process tree.

`python -m bench._child STEP ARGS_JSON RESULT_JSON`. The parent (`bench.run`) samples the RSS
of this process and its children (dbt runs inside it) and cuts the samples by the phases this
process records (wall-clock start/end of ingest, build, checks, publish, ...).
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path


class Phases:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def run(self, name: str, fn, *args, **kwargs):
        t0, cpu0 = time.time(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            # CPU of this process (all threads: DuckDB's, dbt's, a background import) meanwhile
            self.items.append({"name": name, "start": t0, "end": time.time(),
                               "cpu_s": round(time.process_time() - cpu0, 2)})


class Current:
    """What the step is doing now, and the peak RSS of this process tree seen during each kind of work."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.kind = "other"
        self.peaks: dict = defaultdict(int)
        self._me = psutil.Process()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._halt.is_set():
            total = 0
            try:
                for p in [self._me, *self._me.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            kind = self.kind
            self.peaks[kind] = max(self.peaks[kind], total)
            self._halt.wait(0.05)

    def stop(self) -> dict:
        self._halt.set()
        self._thread.join()
        return dict(self.peaks)


class TimedConnection:
    """Proxy of a DuckDB connection that adds up the time of each kind of statement."""

    def __init__(self, con, totals: dict, current: Current | None = None):
        self._con = con
        self._totals = totals
        self._current = current

    def execute(self, sql: str, *args, **kwargs):
        t0 = time.perf_counter()
        key = _statement_kind(sql)
        if self._current:
            self._current.kind = key
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            if self._current:
                self._current.kind = "other"
            self._totals[key]["seconds"] += time.perf_counter() - t0
            self._totals[key]["calls"] += 1

    def __getattr__(self, name):
        return getattr(self._con, name)


def _statement_kind(sql: str) -> str:
    s = " ".join(sql.split())
    for prefix, label in (
        ("CREATE OR REPLACE TEMP TABLE _checked", "parse+validate+hmac → _checked (temp table)"),
        ("CREATE OR REPLACE TEMP TABLE _bulk", "bulk: read_json/read_csv + validate → _bulk (temp table)"),
        ("SELECT count(*), list(line", "bulk: row count and rejected lines"),
        ("INSERT INTO raw.", "insert valid rows → raw.*"),
        ("INSERT INTO audit.rejected_rows", "insert rejects → audit.rejected_rows"),
        ("SELECT count(*) FROM _checked", "count rejects"),
        ("SELECT count(*), count(DISTINCT", "count loaded/duplicates of the delivery"),
        ("INSERT INTO audit.delivery_changes", "day counts → audit.delivery_changes"),
        ("DELETE FROM raw.", "delete earlier copy from raw.*"),
        ("COMMIT", "commit"),
    ):
        if s.startswith(prefix):
            return label
    return "other statements"


def _timed(fn, label: str, totals: dict, current):
    """`fn` with its time added to `totals[label]` (a step of ingestion that is not a statement)."""
    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        current.kind = label
        try:
            return fn(*args, **kwargs)
        finally:
            current.kind = "other"
            totals[label]["seconds"] += time.perf_counter() - t0
            totals[label]["calls"] += 1
    return timed


def step_generate(args: dict, phases: Phases) -> dict:
    from citycloud.generate import generate

    kw = dict(args["params"])
    kw["start"] = date.fromisoformat(kw["start"])
    out = Path(args["out"])
    kw.setdefault("overwrite", True)
    summary = phases.run("generate", generate, out, **kw)
    return {"summary": {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}}


def step_floor(args: dict, phases: Phases) -> dict:
    """The floor: one DuckDB query that only reads the same files (no validation, no load)."""
    import duckdb

    from citycloud.config import Settings

    settings = Settings()
    con = duckdb.connect()
    if args.get("settings", "project") == "project":
        # The project's memory limit, threads and spill folder (citycloud.db.connect); else
        # DuckDB's defaults (80 % of RAM, all cores, spill beside nothing).
        settings.spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{settings.spill_dir.as_posix()}'")
        con.execute(f"SET memory_limit = '{settings.memory_limit}'")
        if settings.threads:
            con.execute(f"SET threads = {settings.threads}")
    files = list(args["files"])
    skipped = []

    def query(paths):
        lit = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
        return con.execute(
            f"SELECT count(*), count(DISTINCT user_id) FROM read_json({lit}, format='newline_delimited', "
            "ignore_errors=true)").fetchall()[0]

    # A file the reader cannot open at all (truncated gzip, ...) is left out of the floor, as
    # ingestion sets it aside too.
    for f in list(files):
        try:
            con.execute(f"SELECT count(*) FROM read_json('{f}', format='newline_delimited', "
                        "ignore_errors=true) LIMIT 1").fetchall()
        except duckdb.Error as exc:
            files.remove(f)
            skipped.append((f, str(exc).splitlines()[0][:200]))
    t0 = time.perf_counter()
    rows, users = phases.run("floor query", query, files)
    seconds = time.perf_counter() - t0
    return {"rows": rows, "distinct_users": users, "seconds": seconds, "files": len(files), "skipped": skipped}


def step_ingest(args: dict, phases: Phases) -> dict:
    """`pipeline.ingest` as it is (its connection + ingest_landing), with statement and reader timings."""
    import citycloud.ingestion.fast as fast
    import citycloud.ingestion.load as load
    from citycloud.config import Settings, pii_key
    from citycloud import pipeline

    settings = Settings()
    totals: dict = defaultdict(lambda: {"seconds": 0.0, "calls": 0})
    real_line_chunks = load.line_chunks
    current = Current()
    reading = "read file → Arrow lines (numpy, streamed)"

    def timed_line_chunks(*args, **kwargs):
        """The reader's time: each step of the stream (decompress, number lines), not the SQL between."""
        chunks = real_line_chunks(*args, **kwargs)
        totals[reading]["calls"] += 1
        while True:
            t0 = time.perf_counter()
            current.kind = reading
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                current.kind = "other"
                totals[reading]["seconds"] += time.perf_counter() - t0
            yield chunk

    load.line_chunks = timed_line_chunks
    fast.scan = _timed(fast.scan, "bulk: scan lines (Python, streamed)", totals, current)
    fast.scan_csv = _timed(fast.scan_csv, "bulk: scan CSV lines (Python, streamed)", totals, current)
    t0 = time.perf_counter()

    def ingest():
        with pipeline.ingest_connection(settings) as con:
            return load.ingest_landing(TimedConnection(con, totals, current), settings.landing,
                                       pii_key(settings=settings), settings=settings)

    report = phases.run("ingest", ingest)
    seconds = time.perf_counter() - t0
    peaks = current.stop()
    access = [d for d in report.deliveries if d.source == "service_access"]
    return {
        "seconds": seconds,
        "rows_read": sum(d.rows_read for d in report.deliveries),
        "rows_loaded": report.rows_loaded,
        "rows_rejected": report.rows_rejected,
        "access_rows_read": sum(d.rows_read for d in access),
        "files_rejected": len(report.rejected_files),
        "breakdown": {k: {"seconds": round(v["seconds"], 3), "calls": v["calls"],
                          "peak_rss_bytes": peaks.get(k)} for k, v in
                      sorted(totals.items(), key=lambda kv: -kv[1]["seconds"])},
    }


def step_run(args: dict, phases: Phases) -> dict:
    """The full `citycloud run` (pipeline.run) with each of its steps timed."""
    # The module whose run() calls the steps by their global names: wrapping the package
    # citycloud.pipeline's lazy attributes instead (as before #30's layout) timed nothing.
    from citycloud.pipeline import steps as pipeline
    from citycloud.config import CitycloudError, Settings

    settings = Settings()
    checks_available = True
    try:
        from citycloud import expectations  # noqa: F401
        from citycloud.expectations import run_checks  # noqa: F401
    except ImportError:
        checks_available = False

    for name in ("ingest", "build", "check", "publish"):
        real = getattr(pipeline, name)

        def wrapped(*a, _real=real, _name=name, **kw):
            if _name == "check" and not checks_available:
                t0 = time.time()
                phases.items.append({"name": "check", "start": t0, "end": t0, "skipped": True})
                return _NoChecks()
            return phases.run(_name, _real, *a, **kw)

        setattr(pipeline, name, wrapped)

    end = date.fromisoformat(args["end"]) if args.get("end") else None
    t0 = time.perf_counter()
    blocked = None
    try:
        report = pipeline.run(settings, end=end)
    except CitycloudError as exc:
        if "blocking" not in str(exc):
            raise
        blocked, report = str(exc)[:1000], None
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "checks_available": checks_available, "blocked": blocked}
    if report is not None:
        access = [d for d in report.ingest.deliveries if d.source == "service_access"]
        out.update(
            rows_loaded=report.ingest.rows_loaded,
            rows_rejected=report.ingest.rows_rejected,
            rows_read=sum(d.rows_read for d in report.ingest.deliveries),
            access_rows_read=sum(d.rows_read for d in access),
            deliveries=len(report.ingest.deliveries),
            published=report.published,
        )
        if report.quality is not None and checks_available:
            out["blocking_failures"] = len(report.quality.blocking_failures)
            out["warnings"] = len(report.quality.warnings)
    out["dbt_models"] = _dbt_timings(settings)
    return out


class _NoChecks:
    blocking_failures: list = []
    warnings: list = []
    docs_index = None


def _dbt_timings(settings) -> dict:
    path = settings.warehouse.parent / ".dbt" / "target" / "run_results.json"
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text())["results"]
    except (ValueError, KeyError):
        return {}
    timings = {}
    for r in results:
        uid = r.get("unique_id", "")
        if uid.startswith("model."):
            timings[uid.split(".")[-1]] = round(r.get("execution_time") or 0.0, 2)
        else:
            timings["tests"] = round(timings.get("tests", 0.0) + (r.get("execution_time") or 0.0), 2)
            if (r.get("execution_time") or 0.0) >= 0.3:  # the data tests worth a look, by name
                timings[f"test {uid.split('.')[2]}"] = round(r["execution_time"], 2)
    return dict(sorted(timings.items(), key=lambda kv: -kv[1]))


def step_fixed_cost(args: dict, phases: Phases) -> dict:
    """`citycloud run` of one new day with its fixed-cost pieces timed (bench/fixed_cost.py)."""
    from bench.fixed_cost import step_fixed_cost as run_timed

    return run_timed(args, phases)


STEPS = {"generate": step_generate, "floor": step_floor, "ingest": step_ingest, "run": step_run,
         "fixed_cost": step_fixed_cost}


def main() -> int:
    step, args_json, result_path = sys.argv[1:4]
    args = json.loads(args_json)
    phases = Phases()
    result = STEPS[step](args, phases)
    result["phases"] = phases.items
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

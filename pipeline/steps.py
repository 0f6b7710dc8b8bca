"""The pipeline: ingest → dbt build → quality checks → publish.

One function per step so the CLI (`citycloud run`) and the Airflow DAGs run the same code.
Only one step writes the warehouse at a time (DuckDB has one writer per file): each step
opens and closes its own connection, and dbt (in this process) opens its own in between. Every
step holds the warehouse's writer lock (a whole `run` holds it throughout), so what a step finds
half-done when it starts was left by a writer that died: `recover` repairs it (docs/reliability.md).
"""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterator

from citycloud import definitions, fault_hook
from citycloud import funnels as funnels_file
from citycloud import publish as publishing
from citycloud.config import CitycloudError, Settings, pii_key
from citycloud.db import connect, writer_lock, writer_step
from citycloud.dbt_runner import build_args, run_dbt
from citycloud.spark import engine as engines
from citycloud.ingestion import IngestReport, ingest_landing
from citycloud.ingestion.load import close_interrupted_batches
from citycloud.ingestion.schema import ensure_schema

Progress = Callable[[str], None] | None

# audit.builds.status: a build whose dbt step succeeded is one of these.
BUILT = ("built", "published", "blocked")
# A build found `building` when a writer starts was left by one that died (killed, power cut).
KILLED = "killed"


class BlockingFailure(CitycloudError):
    """Blocking data-quality failures: the candidate marts were not published (CLI exit 1)."""


@contextmanager
def _connection(settings: Settings, memory_limit: str | None = None) -> Iterator[Any]:
    con = connect(settings.warehouse, settings=settings, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


def recover(con, settings: Settings) -> list[str]:
    """Repair what a writer killed mid-run left behind; returns what was repaired.

    Safe only under the writer lock with `con` open read-write: then no other writer exists.
    """
    ensure_schema(con)
    notes = []
    # Deliveries commit one by one and the batch's ledger row comes last: a kill in between
    # leaves committed deliveries whose batch is unrecorded. Record it from their own ledger,
    # so the next batch takes a new id and every delivery's batch exists in ingest_batches.
    orphans = close_interrupted_batches(con)
    if orphans:
        notes.append(f"recovered the ledger of interrupted ingest batch(es) {', '.join(map(str, orphans))}")
    stale = con.execute(
        "UPDATE audit.builds SET status = ?, finished_at = coalesce(finished_at, now()::TIMESTAMP), "
        "message = 'interrupted: the process stopped before the build finished' "
        "WHERE status = 'building' RETURNING build_id", [KILLED]).fetchall()
    if stale:
        notes.append(f"marked interrupted build(s) {', '.join(str(b) for (b,) in stale)} {KILLED}")
    if leftovers := publishing.remove_leftovers(settings):
        notes.append(f"removed {len(leftovers)} half-written snapshot file(s)")
    if settings.spill_dir == settings.warehouse.parent / ".spill" and settings.spill_dir.is_dir():
        # Only the warehouse's own spill folder: one set with CITYCLOUD_SPILL_DIR may be shared.
        spilled = [p for p in settings.spill_dir.glob("duckdb_temp*") if p.is_file()]
        for path in spilled:
            path.unlink(missing_ok=True)
        if spilled:
            notes.append(f"removed {len(spilled)} spill file(s) left in {settings.spill_dir}")
    return notes


@dataclass
class BuildReport:
    since_batch: int
    batch_id: int
    skipped: bool = False
    seconds: float = 0.0

    def summary_line(self) -> str:
        if self.skipped:
            return f"build: marts already cover batch {self.batch_id}, nothing to build"
        return f"build: dbt built batches {self.since_batch + 1}..{self.batch_id} in {self.seconds:.1f}s"


@dataclass
class RunReport:
    ingest: IngestReport
    build: BuildReport | None = None
    quality: Any = None
    published: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        q = self.quality
        checks = (f", checks: {len(q.blocking_failures)} blocking failures, {len(q.warnings)} warnings"
                  if q is not None else "")
        state = "marts published" if self.published else "marts unchanged"
        return (f"run: {len(self.ingest.deliveries)} deliveries, {self.ingest.rows_loaded:,} rows loaded, "
                f"{self.ingest.rows_rejected:,} rows rejected, {len(self.ingest.rejected_files)} files set aside"
                f"{checks}; {state}; {self.seconds:.1f}s")


def _batches(con) -> tuple[int, int, int]:
    """(latest ingested batch, latest batch dbt built, latest batch published)."""
    ensure_schema(con)
    (latest,) = con.execute("SELECT coalesce(max(batch_id), 0) FROM audit.ingest_batches").fetchall()[0]
    built, published = con.execute(
        f"""SELECT coalesce(max(batch_id) FILTER (WHERE status IN {BUILT}), -1),
                   coalesce(max(batch_id) FILTER (WHERE status = 'published'), -1)
            FROM audit.builds"""
    ).fetchall()[0]
    return latest, built, published


def _with_fault_points(progress: Progress) -> Progress:
    """Test hook: pause after the first and after the last delivery ("[i/n] ..." progress)."""
    if not (fault_hook.armed("ingest-early") or fault_hook.armed("ingest-late")):
        return progress

    def relay(message: str) -> None:
        if progress:
            progress(message)
        if message.startswith("[") and "/" in message.split("]", 1)[0]:
            done, total = (int(n) for n in message[1:].split("]", 1)[0].split("/"))
            if done == 1:
                fault_hook.pause_at("ingest-early", deliveries_committed=done)
            if done == total:
                fault_hook.pause_at("ingest-late", deliveries_committed=done)
    return relay


def ingest_connection(settings: Settings):
    """The ingest step's connection: ingestion's own memory limit (config.Settings.ingest_memory_limit)."""
    return _connection(settings, settings.ingest_memory_limit)


@writer_step
def ingest(settings: Settings, start: date | None = None, end: date | None = None,
           progress: Progress = None) -> IngestReport:
    key = pii_key(settings=settings)
    if not settings.landing.is_dir():
        raise CitycloudError(f"landing area {settings.landing} is not a directory")
    with ingest_connection(settings) as con:
        for note in recover(con, settings):
            if progress:
                progress(note)
        return ingest_landing(con, settings.landing, key, start, end, _with_fault_points(progress), settings)


def run_funnels(settings: Settings) -> list[funnels_file.Funnel]:
    """The funnels of settings.funnels (--funnels / CITYCLOUD_FUNNELS), validated; none without a file."""
    return funnels_file.load_funnels(settings.funnels) if settings.funnels else []


def check_funnels_catalog(settings: Settings, funnels: list[funnels_file.Funnel]) -> None:
    """Refuse a funnel filter naming a service, category or department no ingested catalog had."""
    if funnels:
        with _connection(settings) as con:
            funnels_file.check_against_catalog(funnels, str(settings.funnels), funnels_file.catalog_values(con))


def _funnels_changed(con, funnels: list[funnels_file.Funnel]) -> bool:  # noqa: ANN001 - a DuckDB connection
    """The funnel definitions differ from those the last build used (intermediate.int_funnel_steps)."""
    wanted = {(f.name, f.fingerprint()) for f in funnels}
    try:
        built = set(con.execute("SELECT DISTINCT funnel, definition_fingerprint FROM intermediate.int_funnel_steps").fetchall())
    except Exception:  # noqa: BLE001 - never built: changed if there are funnels
        return bool(wanted)
    return built != wanted


@writer_step
def build(settings: Settings, full_refresh: bool = False, progress: Progress = None) -> BuildReport:
    funnels = run_funnels(settings)
    # dbt's incremental models keep old rows in the old shape: a model changed since the last
    # build rebuilds every mart, here so that the DAG's build task does it too, not only `run`
    full_refresh = full_refresh or bool(definitions.changed_since_build(settings))
    con = connect(settings.warehouse, settings=settings)
    try:
        recover(con, settings)
        latest, built, _ = _batches(con)
        has_marts = bool(con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts_build'").fetchall()[0][0])
        if built >= latest and has_marts and not full_refresh and not _funnels_changed(con, funnels):
            return BuildReport(built, latest, skipped=True)
        # The other engine's tables do not have the batches this one built: rebuild in full.
        full_refresh = full_refresh or engines.last_engine(settings) not in (None, settings.engine)
        (build_id,) = con.execute("SELECT coalesce(max(build_id), 0) + 1 FROM audit.builds").fetchall()[0]
        con.execute("INSERT INTO audit.builds VALUES (?, ?, now()::TIMESTAMP, NULL, 'building', NULL)",
                    [build_id, latest])
    finally:
        con.close()
    status, message = "failed", "interrupted"
    since = -1 if full_refresh else built
    t0 = time.perf_counter()
    try:
        if settings.engine == "spark":
            engines.build(settings, since, full_refresh, progress, funnels_file.definitions_json(funnels))
        else:
            run_dbt(settings, build_args(since, full_refresh, funnels=funnels_file.definitions_json(funnels)), progress)
        engines.record_engine(settings)
        definitions.record_built(settings)
        status, message = "built", None
    except CitycloudError as exc:
        status, message = "failed", str(exc)[:2000]
        raise
    finally:
        with _connection(settings) as con:
            con.execute("UPDATE audit.builds SET status = ?, message = ?, finished_at = now()::TIMESTAMP "
                        "WHERE build_id = ?", [status, message, build_id])
    return BuildReport(since, latest, seconds=time.perf_counter() - t0)


@writer_step
def check(settings: Settings, progress: Progress = None):
    """Great Expectations and SQL checks on the new batches and the candidate marts."""
    from citycloud.expectations import run_checks

    with _connection(settings) as con:
        _, _, published = _batches(con)
        if progress:
            progress("checks: validating deliveries and candidate marts")
        fault_hook.pause_at("checks")
        return run_checks(con, settings, run_id=uuid.uuid4().hex[:12], since_batch=published)


@writer_step
def publish(settings: Settings, progress: Progress = None) -> None:
    """Publish the latest built candidate marts; its build and the snapshot say `published`."""
    with _connection(settings) as con:
        (build_id,) = con.execute("SELECT max(build_id) FROM audit.builds WHERE status = 'built'").fetchone()
        publishing.publish(con, settings, build_id)
    if progress:
        progress(f"published marts; readers' snapshot {settings.published}")


@writer_step
def refresh_snapshot(settings: Settings, progress: Progress = None) -> bool:
    """Export the snapshot again if it lags the warehouse (a writer died before renaming it)."""
    with _connection(settings) as con:
        if publishing.snapshot_is_current(con, settings):
            return False
        publishing.export_snapshot(con, settings)
    if progress:
        progress(f"readers' snapshot {settings.published} was behind the published marts: exported again")
    return True


@writer_step
def mark_blocked(settings: Settings, message: str) -> None:
    """Record that the latest built batch failed blocking checks (not published)."""
    con = connect(settings.warehouse, settings=settings)
    try:
        con.execute("UPDATE audit.builds SET status = 'blocked', message = ? "
                    "WHERE build_id = (SELECT max(build_id) FROM audit.builds WHERE status = 'built')",
                    [message[:2000]])
    finally:
        con.close()


def stop_if_blocked(settings: Settings, quality) -> None:
    """The one branch for blocking failures (`citycloud run` and the DAG's check task): the build
    is marked blocked and BlockingFailure raised, so nothing is published and readers keep the
    previous marts."""
    if not quality.blocking_failures:
        return
    message = "blocking data-quality failures, marts NOT published:\n  " + "\n  ".join(
        str(f) for f in quality.blocking_failures)
    mark_blocked(settings, message)
    raise BlockingFailure(message + f"\nThe previous marts stay published. Quality page: {quality.page}")


@writer_step
def run(settings: Settings, start: date | None = None, end: date | None = None,
        progress: Progress = None, full_refresh: bool = False) -> RunReport:
    """Ingest what is new, build, check, publish. Raises BlockingFailure on a blocking failure."""
    t0 = time.perf_counter()
    funnels = run_funnels(settings)  # a broken funnels.yml is refused before anything is read
    report = RunReport(ingest=ingest(settings, start, end, progress))
    if progress:
        progress(report.ingest.summary_line())
    check_funnels_catalog(settings, funnels)
    con = connect(settings.warehouse, settings=settings)
    try:
        latest, built, published = _batches(con)
        funnels_changed = _funnels_changed(con, funnels)
    finally:
        con.close()
    if latest == 0:
        raise CitycloudError(f"no complete delivery found under {settings.landing}: nothing to build")
    changed = definitions.changed_since_build(settings)
    if changed and not full_refresh:  # build() rebuilds every mart for it; say so, and don't skip
        full_refresh = True
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        report.notes.append(f"the dbt project changed since the last build ({shown}): every mart rebuilt")
        if progress:
            progress(report.notes[-1])
    if published >= latest and not full_refresh and not funnels_changed:
        report.notes.append("nothing new since the last published build; marts are up to date")
        # A writer killed between publishing and renaming the snapshot left it behind (or none).
        if refresh_snapshot(settings, progress):
            report.notes.append("readers' snapshot exported again: it lagged the published marts")
        report.seconds = time.perf_counter() - t0
        return report
    report.build = build(settings, full_refresh, progress)
    report.quality = check(settings, progress)
    stop_if_blocked(settings, report.quality)
    publish(settings, progress)
    report.published = True
    report.seconds = time.perf_counter() - t0
    return report

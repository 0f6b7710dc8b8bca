"""The pipeline: ingest → dbt build → quality checks → publish.

One function per step so the CLI (`citycloud run`) and the Airflow DAGs run the same code.
Only one step writes the warehouse at a time (DuckDB has one writer per file): each step
opens and closes its own connection, and dbt runs as one subprocess in between.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

from citycloud import publish as publishing
from citycloud.config import CitycloudError, Settings, pii_key
from citycloud.db import connect
from citycloud.dbt_runner import build_args, run_dbt
from ingestion import IngestReport, ingest_landing
from ingestion.schema import ensure_schema

Progress = Callable[[str], None] | None

# audit.builds.status: a build whose dbt step succeeded is one of these.
BUILT = ("built", "published", "blocked")


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


def ingest(settings: Settings, start: date | None = None, end: date | None = None,
           progress: Progress = None) -> IngestReport:
    key = pii_key()
    if not settings.landing.is_dir():
        raise CitycloudError(f"landing area {settings.landing} is not a directory")
    con = connect(settings.warehouse, settings=settings)
    try:
        return ingest_landing(con, settings.landing, key, start, end, progress)
    finally:
        con.close()


def build(settings: Settings, full_refresh: bool = False, progress: Progress = None) -> BuildReport:
    con = connect(settings.warehouse, settings=settings)
    try:
        latest, built, _ = _batches(con)
        has_marts = bool(con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts_build'").fetchall()[0][0])
        if built >= latest and has_marts and not full_refresh:
            return BuildReport(built, latest, skipped=True)
        (build_id,) = con.execute("SELECT coalesce(max(build_id), 0) + 1 FROM audit.builds").fetchall()[0]
        con.execute("INSERT INTO audit.builds VALUES (?, ?, now()::TIMESTAMP, NULL, 'building', NULL)",
                    [build_id, latest])
    finally:
        con.close()
    since = -1 if full_refresh else built
    t0 = time.perf_counter()
    try:
        run_dbt(settings, build_args(since, full_refresh), progress)
        status, message = "built", None
    except CitycloudError as exc:
        status, message = "failed", str(exc)[:2000]
        raise
    finally:
        con = connect(settings.warehouse, settings=settings)
        con.execute("UPDATE audit.builds SET status = ?, message = ?, finished_at = now()::TIMESTAMP "
                    "WHERE build_id = ?", [status, message, build_id])
        con.close()
    return BuildReport(since, latest, seconds=time.perf_counter() - t0)


def check(settings: Settings, progress: Progress = None):
    """Great Expectations and SQL checks on the new batches and the candidate marts."""
    from expectations import run_checks

    con = connect(settings.warehouse, settings=settings)
    try:
        _, _, published = _batches(con)
        if progress:
            progress("checks: validating deliveries and candidate marts")
        return run_checks(con, settings, run_id=uuid.uuid4().hex[:12], since_batch=published)
    finally:
        con.close()


def publish(settings: Settings, progress: Progress = None) -> None:
    con = connect(settings.warehouse, settings=settings)
    try:
        publishing.publish(con, settings)
        con.execute("UPDATE audit.builds SET status = 'published', finished_at = now()::TIMESTAMP "
                    "WHERE build_id = (SELECT max(build_id) FROM audit.builds WHERE status = 'built')")
    finally:
        con.close()
    if progress:
        progress(f"published marts; readers' snapshot {settings.published}")


def mark_blocked(settings: Settings, message: str) -> None:
    """Record that the latest built batch failed blocking checks (not published)."""
    con = connect(settings.warehouse, settings=settings)
    try:
        con.execute("UPDATE audit.builds SET status = 'blocked', message = ? "
                    "WHERE build_id = (SELECT max(build_id) FROM audit.builds WHERE status = 'built')",
                    [message[:2000]])
    finally:
        con.close()


def run(settings: Settings, start: date | None = None, end: date | None = None,
        progress: Progress = None, full_refresh: bool = False) -> RunReport:
    """Ingest what is new, build, check, publish. Raises CitycloudError on a blocking failure."""
    t0 = time.perf_counter()
    report = RunReport(ingest=ingest(settings, start, end, progress))
    if progress:
        progress(report.ingest.summary_line())
    con = connect(settings.warehouse, settings=settings)
    try:
        latest, built, published = _batches(con)
    finally:
        con.close()
    if latest == 0:
        raise CitycloudError(f"no complete delivery found under {settings.landing}: nothing to build")
    if published >= latest and not full_refresh and settings.published.exists():
        report.notes.append("nothing new since the last published build; marts are up to date")
        report.seconds = time.perf_counter() - t0
        return report
    report.build = build(settings, full_refresh, progress)
    report.quality = check(settings, progress)
    if report.quality.blocking_failures:
        message = "blocking data-quality failures, marts NOT published:\n  " + "\n  ".join(
            str(f) for f in report.quality.blocking_failures)
        mark_blocked(settings, message)
        raise CitycloudError(message + f"\nThe previous marts stay published. Data Docs: {report.quality.docs_index}")
    publish(settings, progress)
    report.published = True
    report.seconds = time.perf_counter() - t0
    return report

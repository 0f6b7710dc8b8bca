"""Load complete deliveries into the warehouse: one transaction per delivery folder.

A delivery seen before with the same content is skipped; a re-exported folder (same city,
source and dt, other content) replaces everything its earlier copy contributed: its raw rows
and its rejects. Every batch records which event days it touched (`audit.delivery_changes`,
including the days of removed rows) so dbt rebuilds only those days.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb

from ingestion.discover import Delivery, discover
from ingestion.pii import register_hmac
from ingestion.readers import UnreadableFile, chunks, read_lines
from ingestion.rules import RULES, TS_PARSE_MACROS, checked_sql, header_problem
from ingestion.schema import RAW_TABLES, ensure_schema

# Lines validated per statement: bounds the temp table (and memory) for 10M-line files.
CHUNK_ROWS = 1_000_000


@dataclass
class DeliveryResult:
    city_code: str
    source: str
    dt: date
    files: int
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates: int = 0
    rejected_files: list[tuple[str, str]] = field(default_factory=list)
    replaced: bool = False


@dataclass
class IngestReport:
    batch_id: int | None = None
    deliveries: list[DeliveryResult] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int:
        return sum(d.rows_loaded for d in self.deliveries)

    @property
    def rows_rejected(self) -> int:
        return sum(d.rows_rejected for d in self.deliveries)

    @property
    def rejected_files(self) -> list[tuple[str, str]]:
        return [rf for d in self.deliveries for rf in d.rejected_files]

    def summary_line(self) -> str:
        if not self.deliveries:
            return f"ingest: nothing new ({len(self.incomplete)} incomplete folders waiting for _SUCCESS)"
        replaced = sum(d.replaced for d in self.deliveries)
        return (
            f"ingest: batch {self.batch_id}: {len(self.deliveries)} deliveries ({replaced} re-exported), "
            f"{self.rows_loaded:,} rows loaded, {self.rows_rejected:,} rows rejected, "
            f"{len(self.rejected_files)} files set aside, {len(self.incomplete)} incomplete folders waiting, "
            f"{self.seconds:.1f}s"
        )


def _sql(template: str, **values: object) -> str:
    """Inline trusted literals (validated city codes, dates, ints, quoted paths)."""
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        if isinstance(value, date):
            lit = f"DATE '{value.isoformat()}'"
        elif isinstance(value, int):
            lit = str(value)
        else:
            lit = "'" + str(value).replace("'", "''") + "'"
        template = template.replace(f"${name}", lit)
    return template


def _day_counts(d: Delivery) -> str:
    day = "dt" if d.source == "service_catalog" else "event_day"
    return _sql(
        f"SELECT {day} AS event_day, count(*) AS rows FROM raw.{d.source} WHERE city_code = $city AND dt = $dt GROUP BY 1",
        city=d.city_code, dt=d.dt,
    )


def _ingest_delivery(con: duckdb.DuckDBPyConnection, d: Delivery, landing: Path, batch_id: int,
                     signature: str, content_hash: str, replaced: bool) -> DeliveryResult:
    res = DeliveryResult(d.city_code, d.source, d.dt, len(d.files), replaced=replaced)
    ctx = dict(city=d.city_code, dt=d.dt, batch=batch_id, source=d.source)
    raw_cols = ", ".join(c.split()[0] for c in RAW_TABLES[d.source].replace("\n", " ").split(", "))
    con.execute("BEGIN TRANSACTION")
    try:
        if replaced:
            # What the earlier copy contributed goes: its rows, its rejects (change log first).
            con.execute(_sql(
                f"INSERT INTO audit.delivery_changes SELECT $batch, $city, $source, $dt, event_day, rows, 'removed' "
                f"FROM ({_day_counts(d)})", **ctx))
            con.execute(_sql(f"DELETE FROM raw.{d.source} WHERE city_code = $city AND dt = $dt", **ctx))
            for table in ("audit.rejected_rows", "audit.rejected_files"):
                con.execute(_sql(f"DELETE FROM {table} WHERE city_code = $city AND source = $source AND dt = $dt",
                                 **ctx))

        for path in d.files:
            rel = path.relative_to(landing).as_posix()
            try:
                lines = read_lines(path)
                header = None
                for chunk in chunks(lines, CHUNK_ROWS):
                    con.register("_lines", chunk)
                    query, header = checked_sql(d.source, con, chunk, header)
                    if problem := header_problem(d.source, header):
                        raise UnreadableFile(problem)
                    con.execute(_sql(f"CREATE OR REPLACE TEMP TABLE _checked AS {query}", header_line=1, **ctx))
                    con.execute(_sql(
                        f"INSERT INTO raw.{d.source} SELECT $city, $dt, $file, line, $batch, {raw_cols} "
                        f"FROM _checked WHERE reason IS NULL", file=rel, **ctx))
                    con.execute(_sql(
                        "INSERT INTO audit.rejected_rows SELECT $city, $source, $dt, $file, line, reason, raw, $batch "
                        "FROM _checked WHERE reason IS NOT NULL ORDER BY line", file=rel, **ctx))
                    res.rows_rejected += con.execute(
                        "SELECT count(*) FROM _checked WHERE reason IS NOT NULL").fetchall()[0][0]
                    con.unregister("_lines")
                res.rows_read += lines.num_rows - (1 if header is not None else 0)
            except UnreadableFile as exc:
                # Only a whole-file problem (unreadable, no header) lands here: nothing of it loaded yet.
                res.rejected_files.append((rel, str(exc)))
                con.execute(_sql("INSERT INTO audit.rejected_files VALUES ($city, $source, $dt, $file, $reason, $batch)",
                                 file=rel, reason=str(exc), **ctx))
        con.execute("DROP TABLE IF EXISTS _checked")

        key = "service_id" if d.source == "service_catalog" else "event_id"
        loaded, distinct = con.execute(_sql(
            # 64-bit hashes: a distinct count over integers, not strings (collisions ~1e-6 at 10M)
            f"SELECT count(*), count(DISTINCT hash({key})) FROM raw.{d.source} "
            f"WHERE city_code = $city AND dt = $dt AND batch_id = $batch", **ctx
        )).fetchall()[0]
        res.rows_loaded, res.duplicates = loaded, loaded - distinct
        con.execute(_sql(
            f"INSERT INTO audit.delivery_changes SELECT $batch, $city, $source, $dt, event_day, rows, 'added' "
            f"FROM ({_day_counts(d)})", **ctx))
        values = _sql(
            "($city, $source, $dt, $files, $read, $loaded, $rejected, now()::TIMESTAMP, $files_rejected, $dups, "
            "$content_hash, $signature, $batch)",
            files=res.files, read=res.rows_read, loaded=res.rows_loaded, rejected=res.rows_rejected,
            files_rejected=len(res.rejected_files), dups=res.duplicates, content_hash=content_hash,
            signature=signature, **ctx)
        con.execute(_sql("DELETE FROM audit.deliveries WHERE city_code = $city AND source = $source AND dt = $dt", **ctx))
        con.execute(f"INSERT INTO audit.deliveries VALUES {values}")
        con.execute(f"INSERT INTO audit.delivery_history VALUES {values}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return res


def ingest_landing(con: duckdb.DuckDBPyConnection, landing: Path, key: bytes, start: date | None = None,
                   end: date | None = None, progress: Callable[[str], None] | None = None) -> IngestReport:
    """Ingest every complete delivery not yet ingested (or re-exported since) into `con`."""
    t0 = time.perf_counter()
    landing = Path(landing)
    ensure_schema(con)
    register_hmac(con, key)
    con.execute(TS_PARSE_MACROS)
    found = discover(landing, start, end)
    report = IngestReport(
        incomplete=[f"{d.city_code}/{d.source}/dt={d.dt}" for d in found.incomplete], ignored=found.ignored
    )
    known = {
        (c, s, dt): (sig, ch)
        for c, s, dt, sig, ch in con.execute(
            "SELECT city_code, source, dt, signature, content_hash FROM audit.deliveries").fetchall()
    }
    todo = []
    for d in found.complete:
        signature = d.signature()
        prev = known.get(d.key)
        if prev and prev[0] == signature:
            continue
        content_hash = d.content_hash()
        if prev and prev[1] == content_hash:
            # Touched but identical (e.g. copied again): remember the new signature only.
            con.execute("UPDATE audit.deliveries SET signature = ? WHERE city_code = ? AND source = ? AND dt = ?",
                        [signature, *d.key])
            continue
        todo.append((d, signature, content_hash, prev is not None))
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report

    batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM audit.ingest_batches").fetchall()[0][0]
    report.batch_id = batch_id
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    todo.sort(key=lambda item: (item[0].dt, item[0].city_code, item[0].source))
    for i, (d, signature, content_hash, replaced) in enumerate(todo, 1):
        res = _ingest_delivery(con, d, landing, batch_id, signature, content_hash, replaced)
        report.deliveries.append(res)
        if progress:
            note = f", {len(res.rejected_files)} file(s) set aside" if res.rejected_files else ""
            progress(f"[{i}/{len(todo)}] {d.city_code}/{d.source}/dt={d.dt}: {res.rows_loaded:,} loaded, "
                     f"{res.rows_rejected:,} rejected{note}{' (re-export)' if replaced else ''}")
    con.execute(
        "INSERT INTO audit.ingest_batches VALUES (?, ?, now()::TIMESTAMP, ?, ?, ?, ?)",
        [batch_id, started, len(report.deliveries), report.rows_loaded, report.rows_rejected,
         len(report.rejected_files)],
    )
    report.seconds = time.perf_counter() - t0
    return report

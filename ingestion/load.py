"""Load complete deliveries into the warehouse: one transaction per delivery folder.

A delivery seen before with the same content is skipped; a re-exported folder (same city,
source and dt, other content) replaces everything its earlier copy contributed: its raw rows
and its rejects. Every batch records which event days it touched (`audit.delivery_changes`,
including the days of removed rows) so dbt rebuilds only those days.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

from citycloud.config import CitycloudError, Settings
from citycloud.ingestion.discover import Delivery, LandingProblem, discover
from citycloud.ingestion.fast import NotBulkSafe, ingest_bulk
from citycloud.ingestion.masking import Masker, mask_reason
from citycloud.ingestion.pii import key_fingerprint, register_hmac
from citycloud.ingestion.readers import SizeLimit, UnreadableFile, line_chunks, picked_lines
from citycloud.ingestion.rules import RULES, TS_PARSE_MACROS, checked_sql, header_problem
from citycloud.ingestion.schema import RAW_TABLES, ensure_schema


@dataclass(frozen=True)
class FileLimits:
    """When a whole file is set aside (config.Settings: max_decompression_ratio, ...), and whether
    a file DuckDB's reader takes whole is read in bulk (two_pass_ingestion)."""
    size: SizeLimit
    max_bad_lines: int
    two_pass: bool = True

    @classmethod
    def of(cls, settings: Settings) -> FileLimits:
        return cls(SizeLimit(settings.max_decompression_ratio, int(settings.min_decompressed_limit_mb * 2**20)),
                   settings.max_bad_lines, settings.two_pass_ingestion)


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
    problems: list[LandingProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ignored(self) -> list[str]:
        return [str(p) for p in self.problems]

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
        waiting = _listed("incomplete folder(s) waiting for _SUCCESS", self.incomplete)
        problems = _listed("landing problem(s), not read (audit.landing_issues)", [p.path for p in self.problems])
        if not self.deliveries:
            return f"ingest: nothing new{waiting}{problems}"
        replaced = sum(d.replaced for d in self.deliveries)
        return (
            f"ingest: batch {self.batch_id}: {len(self.deliveries)} deliveries ({replaced} re-exported), "
            f"{self.rows_loaded:,} rows loaded, {self.rows_rejected:,} rows rejected, "
            f"{len(self.rejected_files)} files set aside{waiting}{problems}, {self.seconds:.1f}s"
        )


def _listed(what: str, items: list[str], shown: int = 3) -> str:
    if not items:
        return ""
    more = f", +{len(items) - shown} more" if len(items) > shown else ""
    return f"; {len(items)} {what}: {', '.join(items[:shown])}{more}"


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


def _set_aside(con: duckdb.DuckDBPyConnection, res: DeliveryResult, rel: str, reason: str, ctx: dict) -> None:
    res.rejected_files.append((rel, reason))
    con.execute(_sql("INSERT INTO audit.rejected_files VALUES ($city, $source, $dt, $file, $reason, $batch)",
                     file=rel, reason=reason, **ctx))


def _keep_rejected(con: duckdb.DuckDBPyConnection, masker: Masker, fmt: str, header: list[str] | None,
                   rel: str, ctx: dict, rejected: pa.Table) -> None:
    """Store the rejected lines of `_checked`, masked (citycloud.ingestion.masking): never as delivered."""
    if rejected.num_rows == 0:
        return
    kept = pa.table({
        "line": rejected.column("line"),
        "reason": pa.array([mask_reason(r) for r in rejected.column("reason").to_pylist()], pa.string()),
        "raw": pa.array([masker.line(t, fmt, header) for t in rejected.column("raw").to_pylist()], pa.string()),
    })
    con.register("_kept", kept)
    con.execute(_sql("INSERT INTO audit.rejected_rows SELECT $city, $source, $dt, $file, line, reason, raw, $batch "
                     "FROM _kept ORDER BY line", file=rel, **ctx))
    con.unregister("_kept")


def _too_many_bad_lines(limit: int) -> str:
    return (f"more than {limit:,} lines break the contract (CITYCLOUD_MAX_BAD_LINES): not a delivery of its "
            "source; set aside whole, its rows not kept one by one")


def _forget_file(con: duckdb.DuckDBPyConnection, source: str, rel: str, ctx: dict) -> None:
    """Drop what the chunks read before a file was found unreadable stored: it is set aside whole."""
    where = "city_code = $city AND dt = $dt AND file = $file AND batch_id = $batch"
    con.execute(_sql(f"DELETE FROM raw.{source} WHERE {where}", file=rel, **ctx))
    con.execute(_sql(f"DELETE FROM audit.rejected_rows WHERE source = $source AND {where}", file=rel, **ctx))


def _ingest_file(con: duckdb.DuckDBPyConnection, d: Delivery, path: Path, rel: str, masker: Masker,
                 res: DeliveryResult, ctx: dict, limits: FileLimits) -> None:
    """Validate one file into raw.<source> and its rejects: in bulk when DuckDB's reader takes it
    whole (ingestion/fast.py), else line by line; the rows and line numbers are the same. A CSV
    file's pending lines start with its header (line 1), which the per-line rules need."""
    if limits.two_pass:
        raw_cols = _raw_columns(d.source)
        insert = f"INSERT INTO raw.{d.source} SELECT $city, $dt, $file, line, $batch, {raw_cols} FROM ({{query}})"
        try:
            bulk = ingest_bulk(con, d.source, d.read_path(path), limits.size, insert,
                               lambda sql: _sql(sql, file=rel, **ctx))
        except NotBulkSafe:
            pass  # nothing stored: the per-line path below
        else:
            if bulk.pending:  # rows the bulk rules rejected: their reasons and text, line by line
                _ingest_lines(con, d, path, rel, masker, res, ctx, limits, only=bulk.pending)
            res.rows_read += bulk.rows  # (not for a file set aside: UnreadableFile leaves above)
            return
    _ingest_lines(con, d, path, rel, masker, res, ctx, limits)


def _raw_columns(source: str) -> str:
    return ", ".join(c.split()[0] for c in RAW_TABLES[source].replace("\n", " ").split(", "))


def _ingest_lines(con: duckdb.DuckDBPyConnection, d: Delivery, path: Path, rel: str, masker: Masker,
                  res: DeliveryResult, ctx: dict, limits: FileLimits, only: list[int] | None = None) -> None:
    """Validate one file's lines chunk by chunk (streamed: readers.line_chunks) into raw.<source>
    and its rejects (with `only`: those lines, the rest stored in bulk already). A file found
    unreadable, too large or too bad part way is set aside whole: what its earlier chunks (or
    the bulk statement) stored goes (inside the delivery's transaction)."""
    raw_cols = _raw_columns(d.source)
    fmt = RULES[d.source].format
    header = None
    lines = rejected_lines = 0
    stored = only is not None
    try:
        chunks = line_chunks(d.read_path(path), limits.size) if only is None else [
            picked_lines(d.read_path(path), only, limits.size)]
        for chunk in chunks:
            lines += chunk.num_rows
            con.register("_lines", chunk)
            query, header = checked_sql(d.source, con, chunk, header)
            if problem := header_problem(d.source, header):
                raise UnreadableFile(problem)
            con.execute(_sql(f"CREATE OR REPLACE TEMP TABLE _checked AS {query}", header_line=1, **ctx))
            rejected = con.sql(
                "SELECT line, reason, raw FROM _checked WHERE reason IS NOT NULL ORDER BY line").to_arrow_table()
            rejected_lines += rejected.num_rows
            if rejected_lines > limits.max_bad_lines:  # before masking them one by one
                raise UnreadableFile(_too_many_bad_lines(limits.max_bad_lines))
            stored = True
            con.execute(_sql(
                f"INSERT INTO raw.{d.source} SELECT $city, $dt, $file, line, $batch, {raw_cols} "
                f"FROM _checked WHERE reason IS NULL", file=rel, **ctx))
            _keep_rejected(con, masker, fmt, header, rel, ctx, rejected)
            con.unregister("_lines")
            del chunk, rejected  # this chunk's bytes are freed before the next is read
    except UnreadableFile:
        if stored:
            _forget_file(con, d.source, rel, ctx)
        raise
    if only is None:
        res.rows_read += lines - (1 if header is not None else 0)
    res.rows_rejected += rejected_lines


def _ingest_delivery(con: duckdb.DuckDBPyConnection, d: Delivery, landing: Path, batch_id: int,
                     signature: str, content_hash: str, replaced: bool, masker: Masker,
                     own_transaction: bool = True, limits: FileLimits | None = None) -> DeliveryResult:
    limits = limits or FileLimits.of(Settings())
    res = DeliveryResult(d.city_code, d.source, d.dt, len(d.files), replaced=replaced)
    ctx = dict(city=d.city_code, dt=d.dt, batch=batch_id, source=d.source)
    if own_transaction:
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

        for path, reason in d.refused:
            _set_aside(con, res, path.relative_to(landing).as_posix(), reason, ctx)
        for path in d.files:
            rel = path.relative_to(landing).as_posix()
            try:
                _ingest_file(con, d, path, rel, masker, res, ctx, limits)
            except UnreadableFile as exc:
                # Only a whole-file problem (unreadable, no header) lands here: nothing of it loaded yet.
                _set_aside(con, res, rel, str(exc), ctx)
        con.execute("DROP TABLE IF EXISTS _checked")

        key = {"service_catalog": "service_id", "review_tickets": "ticket_id"}.get(d.source, "event_id")
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
        if own_transaction:
            con.execute("COMMIT")
    except BaseException:
        if own_transaction:
            con.execute("ROLLBACK")
        raise
    return res


def check_key(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Refuse a key other than the one the warehouse's pseudonyms were made with.

    Two keys give two unrelated pseudonym spaces: mixed in one warehouse, the same person
    counts twice and every distinct-user KPI is wrong. The first key used is remembered by
    its fingerprint (an HMAC of a fixed label: it does not reveal the key).
    """
    fingerprint = key_fingerprint(key)
    row = con.execute("SELECT fingerprint FROM audit.pii_key").fetchall()
    if not row:
        remask_legacy_rejects(con, key)
        con.execute("INSERT INTO audit.pii_key VALUES (?, now()::TIMESTAMP)", [fingerprint])
        return
    if row[0][0] != fingerprint:
        raise CitycloudError(
            f"CITYCLOUD_PII_KEY is not the key this warehouse was built with (key fingerprint {fingerprint[:12]}, "
            f"warehouse {row[0][0][:12]}): its user hashes would not match the stored ones and every user would "
            "count twice. Set the original key; to change keys on purpose run `citycloud rotate-key` "
            "(docs/reliability.md).")


def remask_legacy_rejects(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """A warehouse from before the fingerprint kept rejected lines with user ids in clear:
    mask them as new ones are (a CSV line's header is no longer known: it keeps no field)."""
    rows = con.execute("SELECT rowid, city_code, source, raw FROM audit.rejected_rows WHERE raw IS NOT NULL").fetchall()
    if not rows:
        return
    masked = [(Masker(key, city).line(raw, RULES[source].format), rowid) for rowid, city, source, raw in rows]
    con.execute("BEGIN TRANSACTION")
    con.executemany("UPDATE audit.rejected_rows SET raw = ? WHERE rowid = ?", masked)
    con.execute("COMMIT")


def record_landing_problems(con: duckdb.DuckDBPyConnection, problems: list[LandingProblem]) -> None:
    """audit.landing_issues describes the landing area as last scanned; first_seen survives rescans."""
    current = sorted({(p.path, p.kind, p.reason) for p in problems})
    stored = con.execute("SELECT path, kind, reason FROM audit.landing_issues ORDER BY ALL").fetchall()
    if [tuple(r) for r in stored] == current:
        return  # nothing changed: a rerun writes nothing
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE OR REPLACE TEMP TABLE _issues (path VARCHAR, kind VARCHAR, reason VARCHAR)")
    if current:
        con.executemany("INSERT INTO _issues VALUES (?, ?, ?)", current)
    con.execute("""DELETE FROM audit.landing_issues
                   WHERE (path, kind, reason) NOT IN (SELECT (path, kind, reason) FROM _issues)""")
    con.execute("""INSERT INTO audit.landing_issues
                   SELECT path, kind, reason, now()::TIMESTAMP FROM _issues
                   WHERE (path, kind, reason) NOT IN (SELECT (path, kind, reason) FROM audit.landing_issues)""")
    con.execute("DROP TABLE _issues")
    con.execute("COMMIT")


def _empty(d: Delivery, landing: Path) -> LandingProblem:
    refused = f" ({len(d.refused)} entries refused)" if d.refused else ""
    return LandingProblem(d.path.relative_to(landing).as_posix(), "empty_delivery",
                          f"_SUCCESS but no data file{refused}: not a day of zeros, an error of the delivery; "
                          "nothing ingested (an earlier copy, if any, stays)")


def ingest_landing(con: duckdb.DuckDBPyConnection, landing: Path, key: bytes, start: date | None = None,
                   end: date | None = None, progress: Callable[[str], None] | None = None,
                   settings: Settings | None = None) -> IngestReport:
    """Ingest every complete delivery not yet ingested (or re-exported since) into `con`.

    `settings` gives the file limits and today's date (default: read from the environment)."""
    settings = settings or Settings()
    limits = FileLimits.of(settings)
    t0 = time.perf_counter()
    landing = Path(landing).resolve()
    ensure_schema(con)
    check_key(con, key)
    close_interrupted_batches(con)
    register_hmac(con, key)
    con.execute(TS_PARSE_MACROS)
    found = discover(landing, start, end, today=settings.current_day)
    problems = list(found.problems) + [_empty(d, landing) for d in found.complete if not d.files]
    # Incomplete folders are kept too (not as problems): settlement warns about a month that has one.
    waiting = [LandingProblem(d.path.relative_to(landing).as_posix(), "incomplete_delivery",
                              "no _SUCCESS yet: still being written, not read") for d in found.incomplete]
    record_landing_problems(con, problems + waiting)
    report = IngestReport(incomplete=[d.label for d in found.incomplete], problems=problems)
    known = {
        (c, s, dt): (sig, ch)
        for c, s, dt, sig, ch in con.execute(
            "SELECT city_code, source, dt, signature, content_hash FROM audit.deliveries").fetchall()
    }
    todo = []
    for d in found.complete:
        if not d.files:
            continue
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

    batch_id = next_batch_id(con)
    report.batch_id = batch_id
    started = con.execute("SELECT now()::TIMESTAMP").fetchall()[0][0]  # as finished_at: the warehouse's time zone
    todo.sort(key=lambda item: (item[0].dt, item[0].city_code, item[0].source))
    for i, (d, signature, content_hash, replaced) in enumerate(todo, 1):
        res = _ingest_delivery(con, d, landing, batch_id, signature, content_hash, replaced,
                               Masker(key, d.city_code), limits=limits)
        report.deliveries.append(res)
        if progress:
            note = f", {len(res.rejected_files)} file(s) set aside" if res.rejected_files else ""
            progress(f"[{i}/{len(todo)}] {d.city_code}/{d.source}/dt={d.dt}: {res.rows_loaded:,} loaded, "
                     f"{res.rows_rejected:,} rejected{note}{' (re-export)' if replaced else ''}")
    record_batch(con, batch_id, started, report)
    report.seconds = time.perf_counter() - t0
    return report


def next_batch_id(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("""SELECT greatest(coalesce((SELECT max(batch_id) FROM audit.ingest_batches), 0),
                                          coalesce((SELECT max(batch_id) FROM audit.delivery_history), 0)) + 1""").fetchall()[0][0]


def close_interrupted_batches(con: duckdb.DuckDBPyConnection) -> list[int]:
    """A run killed mid-batch committed some deliveries but not its batch row: add the row now,
    from the deliveries it committed, so the ledger reconciles, the next batch takes a new id and
    the next build covers those deliveries. Returns the batch ids recorded."""
    return [b for (b,) in con.execute("""
        INSERT INTO audit.ingest_batches
        SELECT batch_id, min(ingested_at), max(ingested_at), count(*), sum(rows_loaded), sum(rows_rejected),
               sum(files_rejected)
        FROM audit.delivery_history
        WHERE batch_id NOT IN (SELECT batch_id FROM audit.ingest_batches)
        GROUP BY batch_id RETURNING batch_id""").fetchall()]


def record_batch(con: duckdb.DuckDBPyConnection, batch_id: int, started: datetime, report: IngestReport) -> None:
    con.execute(
        "INSERT INTO audit.ingest_batches VALUES (?, ?, now()::TIMESTAMP, ?, ?, ?, ?)",
        [batch_id, started, len(report.deliveries), report.rows_loaded, report.rows_rejected,
         len(report.rejected_files)],
    )

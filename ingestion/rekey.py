"""Deliberate key rotation: re-key every pseudonym of the warehouse in one transaction.

A keyed hash cannot be re-keyed from the hash itself, and the pipeline never keeps a user id
in clear: rotation re-reads every ingested delivery from the landing area under the new key.
So it needs the landing area exactly as it was ingested (each delivery's content hash is
checked first); a delivery that is gone or changed stops the rotation before anything is
written. The whole re-ingestion is one DuckDB transaction: a failure or a kill leaves the
warehouse under the old key, whole. The caller rebuilds the models from scratch afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from citycloud.config import CitycloudError
from citycloud.ingestion.discover import discover
from citycloud.ingestion.load import (FileLimits, IngestReport, _ingest_delivery, check_key, close_interrupted_batches,
                                     next_batch_id, record_batch)
from citycloud.ingestion.masking import Masker
from citycloud.ingestion.pii import key_fingerprint, register_hmac
from citycloud.ingestion.rules import TS_PARSE_MACROS
from citycloud.ingestion.schema import ensure_schema


@dataclass
class RotationReport:
    batch_id: int
    deliveries: int
    rows: int

    def summary_line(self) -> str:
        return (f"rotate-key: {self.deliveries} deliveries re-read under the new key in batch {self.batch_id} "
                f"({self.rows:,} rows); the models were rebuilt from scratch")


def rotate_key(con: duckdb.DuckDBPyConnection, landing: Path, old_key: bytes, new_key: bytes,
               progress: Callable[[str], None] | None = None, limits: FileLimits | None = None) -> RotationReport:
    landing = Path(landing).resolve()
    ensure_schema(con)
    check_key(con, old_key)
    if key_fingerprint(old_key) == key_fingerprint(new_key):
        raise CitycloudError("the new key is the current key: nothing to rotate")
    close_interrupted_batches(con)
    found = {d.key: d for d in discover(landing).complete}
    ledger = con.execute("SELECT city_code, source, dt, content_hash FROM audit.deliveries ORDER BY dt, city_code, source"
                         ).fetchall()
    if not ledger:
        raise CitycloudError("the warehouse holds no delivery: set the new key and run `citycloud run` instead")
    todo, missing = [], []
    for city, source, dt, content_hash in ledger:
        d = found.get((city, source, dt))
        if d is None or not d.files or d.content_hash() != content_hash:
            missing.append(f"{city}/{source}/dt={dt}")
        else:
            todo.append((d, content_hash))
    if missing:
        raise CitycloudError(
            f"cannot re-key: {len(missing)} ingested deliveries are not in {landing} as they were ingested "
            f"({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}). Rotation re-reads every delivery; "
            "restore them (or run `citycloud run` with the current key first if they were re-exported).")

    register_hmac(con, new_key)
    con.execute(TS_PARSE_MACROS)
    batch_id = next_batch_id(con)
    started = con.execute("SELECT now()::TIMESTAMP").fetchall()[0][0]  # as finished_at: the warehouse's time zone
    report = IngestReport(batch_id=batch_id)
    con.execute("BEGIN TRANSACTION")
    try:
        for i, (d, content_hash) in enumerate(todo, 1):
            report.deliveries.append(_ingest_delivery(
                con, d, landing, batch_id, d.signature(), content_hash, replaced=True,
                masker=Masker(new_key, d.city_code), own_transaction=False, limits=limits))
            if progress and (i % 50 == 0 or i == len(todo)):
                progress(f"re-keyed {i}/{len(todo)} deliveries")
        con.execute("UPDATE audit.pii_key SET fingerprint = ?, since = now()::TIMESTAMP", [key_fingerprint(new_key)])
        record_batch(con, batch_id, started, report)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return RotationReport(batch_id, len(todo), report.rows_loaded)

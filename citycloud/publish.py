"""Write-audit-publish: dbt builds candidate marts, checks audit them, this publishes.

Readers never open the warehouse itself (DuckDB lets no reader in while a writer holds
the file): every publish also writes a read-only snapshot beside it, replaced atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from citycloud.config import Settings

BUILD_SCHEMA = "marts_build"
PUBLISHED_MARTS = ("kpi_daily", "kpi_monthly", "service_daily",
                   # the scorecard's measures and the reference table it divides by
                   "scorecard_measures", "city_reference",
                   # the semantic layer's inputs besides the marts (`citycloud query` reads the snapshot)
                   "user_activity_daily", "metricflow_time_spine",
                   # user operations (user_ops.md)
                   "user_lifecycle", "retention_monthly", "activation_daily", "stickiness_monthly", "channel_daily")
SNAPSHOT_SCHEMAS = ("marts", "audit")


def publish(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Copy the candidate marts into `marts` in one transaction, then refresh the snapshot."""
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute("BEGIN TRANSACTION")
    try:
        for table in PUBLISHED_MARTS:
            con.execute(f"CREATE OR REPLACE TABLE marts.{table} AS SELECT * FROM {BUILD_SCHEMA}.{table}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    export_snapshot(con, settings)


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_type = 'BASE TABLE' "
        "ORDER BY table_name",
        [schema],
    ).fetchall()
    return [r[0] for r in rows]


def export_snapshot(con: duckdb.DuckDBPyConnection, settings: Settings) -> Path:
    """Write schemas marts and audit to `<warehouse>.published.duckdb` (temp file + rename)."""
    target = settings.published
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    for leftover in (tmp, Path(str(tmp) + ".wal")):
        leftover.unlink(missing_ok=True)
    con.execute(f"ATTACH '{tmp.as_posix()}' AS snapshot")
    try:
        for schema in SNAPSHOT_SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS snapshot.{schema}")
            for table in _tables(con, schema):
                con.execute(f"CREATE TABLE snapshot.{schema}.{table} AS SELECT * FROM {schema}.{table}")
    finally:
        con.execute("DETACH snapshot")
    os.replace(tmp, target)
    return target


def open_published(settings: Settings | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the latest published snapshot (for dashboards and reports)."""
    return duckdb.connect(str((settings or Settings()).published), read_only=True)

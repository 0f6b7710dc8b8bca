"""Write-audit-publish: dbt builds candidate marts, checks audit them, this publishes.

Readers never open the warehouse itself (DuckDB lets no reader in while a writer holds
the file): every publish also writes a read-only snapshot beside it, replaced atomically.

Order (each step survives a crash or a full disk at any point, see docs/reliability.md):
1. write the new snapshot to a temp file, from the candidate marts and with the build
   already marked `published` (a failure here leaves marts.* and the old snapshot as they were);
2. swap the candidate marts into `marts` and mark the build published, in one transaction;
3. rename the temp file over the snapshot. A crash between 2 and 3 leaves the snapshot one
   build behind: the next run sees it (`snapshot_is_current`) and exports it again.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from citycloud import fault_hook
from citycloud.config import BUILD_SCHEMA, BUSINESS_TZ_NAME, PUBLISHED_MARTS, CitycloudError, Settings

SNAPSHOT_SCHEMAS = ("marts", "audit")


def publish(con: duckdb.DuckDBPyConnection, settings: Settings, build_id: int | None = None) -> None:
    """Publish the candidate marts (and mark `build_id` published) with the snapshot to match."""
    (finished_at,) = con.execute("SELECT now()::TIMESTAMP").fetchone()
    # What the snapshot's copy of a table is, where it is not the warehouse table itself.
    replaced = {("marts", t): f"SELECT * FROM {BUILD_SCHEMA}.{t}" for t in PUBLISHED_MARTS}
    if build_id is not None:
        replaced[("audit", "builds")] = (
            "SELECT * REPLACE (CASE WHEN build_id = $build THEN 'published' ELSE status END AS status, "
            "CASE WHEN build_id = $build THEN $finished ELSE finished_at END AS finished_at) FROM audit.builds")
    tmp = _write_snapshot(con, settings, replaced, {"build": build_id, "finished": finished_at})
    try:
        fault_hook.pause_at("publish", snapshot_tmp=str(tmp))
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("BEGIN TRANSACTION")
        try:
            for table in PUBLISHED_MARTS:
                con.execute(f"CREATE OR REPLACE TABLE marts.{table} AS SELECT * FROM {BUILD_SCHEMA}.{table}")
            if build_id is not None:
                con.execute("UPDATE audit.builds SET status = 'published', finished_at = ? WHERE build_id = ?",
                            [finished_at, build_id])
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
    except BaseException:
        _remove(tmp)
        raise
    fault_hook.pause_at("publish-committed", snapshot_tmp=str(tmp))
    os.replace(tmp, settings.published)


def export_snapshot(con: duckdb.DuckDBPyConnection, settings: Settings) -> Path:
    """Write schemas marts and audit, as committed, to `<warehouse>.published.duckdb` (temp file + rename)."""
    tmp = _write_snapshot(con, settings)
    os.replace(tmp, settings.published)
    return settings.published


def snapshot_is_current(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Does the readers' snapshot show the warehouse's latest published build?"""
    sql = "SELECT max(build_id) FILTER (WHERE status = 'published') FROM {}audit.builds"
    (wanted,) = con.execute(sql.format("")).fetchone()
    if not settings.published.exists():
        return wanted is None
    try:
        con.execute(f"ATTACH '{settings.published.as_posix()}' AS published_check (READ_ONLY)")
    except duckdb.Error:
        return False  # unreadable: write it again
    try:
        return con.execute(sql.format("published_check.")).fetchone()[0] == wanted
    except duckdb.Error:
        return False
    finally:
        con.execute("DETACH published_check")


def remove_leftovers(settings: Settings) -> list[Path]:
    """Delete temp snapshots of writers that died mid-export (the caller holds the writer lock)."""
    target = settings.published
    found = sorted(target.parent.glob(target.name + ".tmp*")) if target.parent.is_dir() else []
    for path in found:
        path.unlink(missing_ok=True)
    return found


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_type = 'BASE TABLE' "
        "ORDER BY table_name",
        [schema],
    ).fetchall()
    return [r[0] for r in rows]


def _write_snapshot(con: duckdb.DuckDBPyConnection, settings: Settings,
                    replaced: dict[tuple[str, str], str] | None = None, params: dict | None = None) -> Path:
    """Copy schemas marts and audit into a new temp file beside the snapshot; return its path.

    `replaced` gives the SELECT for tables whose snapshot copy differs from the warehouse's
    (the candidate marts before they are published). On any failure the temp file goes.
    """
    replaced = replaced or {}
    target = settings.published
    remove_leftovers(settings)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    con.execute(f"ATTACH '{tmp.as_posix()}' AS snapshot")
    try:
        copied = 0
        for schema in SNAPSHOT_SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS snapshot.{schema}")
            tables = set(_tables(con, schema)) | {t for s, t in replaced if s == schema}
            for table in sorted(tables):
                select = replaced.get((schema, table), f"SELECT * FROM {schema}.{table}")
                used = {k: v for k, v in (params or {}).items() if f"${k}" in select}
                con.execute(f"CREATE TABLE snapshot.{schema}.{table} AS {select}", used or None)
                copied += 1
                if copied == 2:
                    fault_hook.pause_at("snapshot-export", snapshot_tmp=str(tmp))
        con.execute("DETACH snapshot")
    except BaseException:
        try:
            con.execute("DETACH snapshot")
        except duckdb.Error:
            pass  # already detached, or the database is unusable after a full disk
        _remove(tmp)
        raise
    return tmp


def _remove(tmp: Path) -> None:
    for path in (tmp, Path(str(tmp) + ".wal")):
        path.unlink(missing_ok=True)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # DuckDB already aborted it (a full disk invalidates the database): nothing committed


def open_snapshot(settings: Settings | None = None, path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the latest published snapshot (`path`, else settings.published):
    the one way readers open it (dashboard, `citycloud query`, exports, Spark compare, Airflow),
    each in the same session (the business time zone, as the warehouse's own connections)."""
    con = duckdb.connect(str(path or (settings or Settings()).published), read_only=True)
    try:
        con.execute(f"SET TimeZone = '{BUSINESS_TZ_NAME}'")
    except BaseException:
        con.close()
        raise
    return con


def known_cities(con: duckdb.DuckDBPyConnection, schema: str = "marts") -> list[str]:
    """The cities a snapshot or warehouse knows: the city_reference seed's, and any with data."""
    return [r[0] for r in con.execute(f"SELECT city_code FROM {schema}.city_reference UNION "
                                      f"SELECT city_code FROM {schema}.kpi_daily ORDER BY 1").fetchall()]


def check_city(con: duckdb.DuckDBPyConnection, city: str, flag: str = "--city") -> None:
    """One line naming the known cities when `city` is none of them (not an empty answer)."""
    known = known_cities(con)
    if city not in known:
        raise CitycloudError(f"{flag} {city}: unknown city (known: {', '.join(known)}; "
                             "cities come from dbt_project/seeds/city_reference.csv and their deliveries)")


def attach_snapshot(path: Path | str, alias: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the snapshot at `path` attached read-only as `alias`, in the
    same session as `open_snapshot` (the access scope builds its filtered views over it)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET TimeZone = '{BUSINESS_TZ_NAME}'")
        quoted = str(Path(path)).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS {alias} (READ_ONLY)")
    except BaseException:
        con.close()
        raise
    return con

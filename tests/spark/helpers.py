"""Watching the files of Spark's day-partitioned tables (tests/spark)."""
from __future__ import annotations

import duckdb

from citycloud.config import Settings
from citycloud.spark.compare import differences, published_marts  # noqa: F401  (the tests' one import)
from citycloud.spark.engine import table_folder


def partition_files(settings: Settings, schema: str, table: str) -> dict[str, dict[str, int]]:
    """Per (city, day) partition folder of a Spark table: its data files and their mtimes (ns)."""
    root = table_folder(settings, schema, table)
    return {str(folder.relative_to(root)): {f.name: f.stat().st_mtime_ns for f in folder.glob("*.parquet")}
            for folder in sorted(root.glob("city_code=*/*=*"))}


def affected_partitions(settings: Settings, batch_id: int) -> set[str]:
    """The (city, event day) partitions an ingestion batch changed, named like Spark's folders."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT city_code, event_day FROM audit.delivery_changes "
                           "WHERE batch_id = ? AND source = 'service_access'", [batch_id]).fetchall()
    finally:
        con.close()
    return {f"city_code={city}/event_day={day}" for city, day in rows}

"""Spark builds in a process of their own, and watching the files of Spark's day-partitioned
tables (tests/spark)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

from citycloud import pipeline
from citycloud.config import Settings
from citycloud.spark.compare import differences, published_marts  # noqa: F401  (the tests' one import)
from citycloud.spark.engine import table_folder


def partition_files(settings: Settings, schema: str, table: str) -> dict[str, dict[str, int]]:
    """Per (city, day) partition folder of a Spark table: its data files and their mtimes (ns)."""
    root = table_folder(settings, schema, table)
    return {str(folder.relative_to(root)): {f.name: f.stat().st_mtime_ns for f in folder.glob("*.parquet")}
            for folder in sorted(root.glob("city_code=*/*=*"))}


def forget_reads(folder: Path) -> set[Path]:
    """Set the access time of every parquet file under `folder` to 0, mtimes kept: on a relatime
    mount (Linux's default) the next read of a file sets it again, so partitions_read() tells
    which of them a build read. Returns the files; None when this filesystem does not record reads."""
    files = set(folder.rglob("*.parquet"))
    for path in files:
        os.utime(path, ns=(0, path.stat().st_mtime_ns))
    probe = next(iter(sorted(files)))
    probe.read_bytes()
    if probe.stat().st_atime_ns == 0:
        return None
    os.utime(probe, ns=(0, probe.stat().st_mtime_ns))
    return files


def partitions_read(files: set[Path], folder: Path) -> set[str]:
    """The partition folders (`city_code=…/event_day=…`) of the files read since forget_reads()."""
    return {str(path.parent.relative_to(folder)) for path in files if path.exists() and path.stat().st_atime_ns > 0}


def affected_partitions(settings: Settings, batch_id: int) -> set[str]:
    """The (city, event day) partitions an ingestion batch changed, named like Spark's folders."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT city_code, event_day FROM audit.delivery_changes "
                           "WHERE batch_id = ? AND source = 'service_access'", [batch_id]).fetchall()
    finally:
        con.close()
    return {f"city_code={city}/event_day={day}" for city, day in rows}


def run_spark(settings: Settings, end: date | None = None) -> bool:
    """pipeline.run of a Spark build in a child process (a process runs Spark for one warehouse:
    engine.check_session); True when it published. A child of its own, not a fork of the test
    process (dbt's and DuckDB's threads leave locks a fork inherits) nor multiprocessing's spawn
    (pyspark.sql.connect, imported by great_expectations, takes its bare __main__ for a doctest
    run and exits)."""
    args = [sys.executable, "-m", "tests.spark.helpers", str(settings.landing), str(settings.warehouse),
            str(settings.output), end.isoformat() if end else ""]
    child = subprocess.run(args, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    if child.returncode not in (0, 3):
        raise AssertionError(f"Spark build failed ({child.returncode}):\n{child.stderr[-5000:]}")
    return child.returncode == 0


if __name__ == "__main__":  # the child of run_spark
    landing, warehouse, output, end = sys.argv[1:5]
    child_settings = Settings()
    child_settings.landing, child_settings.warehouse, child_settings.output = Path(landing), Path(warehouse), Path(output)
    child_settings.engine = "spark"
    published = pipeline.run(child_settings, end=date.fromisoformat(end) if end else None).published
    sys.exit(0 if published else 3)

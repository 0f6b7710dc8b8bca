"""The parquet lake Spark builds from: every delivery's raw rows, partitioned by day.

Layout: `<spark_dir>/lake/<source>/city_code=<city>/<day>=<YYYY-MM-DD>/dt=<dt>.batch=<n>.<i>.parquet`
(day = event_day; for service_catalog, whose rows have no event, the snapshot's dt). Each
delivery is one writer: it removes its earlier copy's files and writes its own, touching no
other delivery's files, so deliveries (cities) can be exported in parallel. `_deliveries.json`
records which copy of each delivery the lake holds; a copy whose export was cut off is simply
exported again. The audit tables dbt reads (deliveries, delivery_changes) are small and are
exported whole on every build.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from citycloud.config import SOURCES, Settings

# The column each source's rows are partitioned by within a city.
DAY_COLUMN = {"registrations": "event_day", "service_access": "event_day", "ratings": "event_day",
              "review_tickets": "event_day",
              "service_catalog": "dt"}
# The audit tables the dbt models read (sources 'audit' in _landing__sources.yml).
AUDIT_TABLES = ("deliveries", "delivery_changes")
MANIFEST = "_deliveries.json"

# DuckDB type -> Spark type, for the external tables over the lake.
_SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "INTEGER": "int", "SMALLINT": "smallint",
                "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp_ntz", "DOUBLE": "double",
                "FLOAT": "float", "BLOB": "binary", "HUGEINT": "decimal(38,0)"}


def lake_dir(settings: Settings) -> Path:
    return settings.spark_dir / "lake"


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _manifest(lake: Path) -> dict[str, int]:
    path = lake / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _save_manifest(lake: Path, manifest: dict[str, int]) -> None:
    tmp = lake / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, sort_keys=True, indent=0))
    os.replace(tmp, lake / MANIFEST)


def delivery_files(lake: Path, source: str, city: str, dt: str) -> list[Path]:
    """The lake files of one delivery (any copy), across the days it spans."""
    return sorted((lake / source / f"city_code={city}").glob(f"*/dt={dt}.batch=*.parquet"))


def export_delivery(con, lake: Path, source: str, city: str, dt: str, batch: int) -> int:
    """Replace one delivery's files with its rows as raw.<source> holds them; returns files written."""
    for old in delivery_files(lake, source, city, dt):
        old.unlink()
    staging = lake / "_writing" / f"{source}.{city}.{dt}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    day = DAY_COLUMN[source]
    con.execute(
        f"COPY (SELECT * FROM raw.{source} WHERE city_code = {_quote(city)} AND dt = DATE {_quote(dt)}) "
        f"TO {_quote(staging.as_posix())} (FORMAT parquet, PARTITION_BY (city_code, {day}), "
        f"FILENAME_PATTERN {_quote(f'dt={dt}.batch={batch}.{{i}}')})")
    written = 0
    for path in sorted(staging.rglob("*.parquet")):
        target = lake / source / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        written += 1
    shutil.rmtree(staging, ignore_errors=True)
    return written


def sync(con, settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Export what changed since the last sync; return the tables for dbt's var('lake')."""
    lake = lake_dir(settings)
    lake.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(lake)
    wanted = {f"{source}/{city}/{dt}": batch for city, source, dt, batch in con.execute(
        "SELECT city_code, source, strftime(dt, '%Y-%m-%d'), batch_id FROM audit.deliveries").fetchall()}
    changed = sorted(key for key, batch in wanted.items() if manifest.get(key) != batch)
    for i, key in enumerate(changed, 1):
        source, city, dt = key.split("/")
        export_delivery(con, lake, source, city, dt, wanted[key])
        manifest[key] = wanted[key]
        _save_manifest(lake, manifest)
        if progress and (i == len(changed) or i % 50 == 0):
            progress(f"lake: exported {i}/{len(changed)} deliveries to {lake}")
    for key in sorted(set(manifest) - set(wanted)):
        for path in delivery_files(lake, *key.split("/")):
            path.unlink()
        del manifest[key]
        _save_manifest(lake, manifest)
    tables = {}
    for source in SOURCES:
        (lake / source).mkdir(exist_ok=True)
        tables[f"raw.{source}"] = {"columns": _spark_columns(con, "raw", source), "location": str(lake / source),
                                   "partitioned_by": ["city_code", DAY_COLUMN[source]]}
    for table in AUDIT_TABLES:
        folder = lake / "audit" / table
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".data.parquet.tmp"
        con.execute(f"COPY audit.{table} TO {_quote(tmp.as_posix())} (FORMAT parquet)")
        os.replace(tmp, folder / "data.parquet")
        tables[f"audit.{table}"] = {"columns": _spark_columns(con, "audit", table), "location": str(folder),
                                    "partitioned_by": []}
    return tables


def _spark_columns(con, schema: str, table: str) -> str:
    """The table's columns as Spark DDL, partition columns included (Spark lists them last)."""
    columns = []
    for name, duck_type, *_ in con.execute(f"DESCRIBE {schema}.{table}").fetchall():
        base = duck_type.split("(")[0]
        spark_type = duck_type.lower() if base == "DECIMAL" else _SPARK_TYPES.get(base)
        if spark_type is None:
            raise ValueError(f"{schema}.{table}.{name}: DuckDB type {duck_type} has no Spark mapping in the lake")
        columns.append(f"`{name}` {spark_type}")
    return ", ".join(columns)

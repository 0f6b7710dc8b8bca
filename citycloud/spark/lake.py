"""The parquet lake Spark builds from: every delivery's raw rows, partitioned by day.

Layout: `<spark_dir>/lake/<source>/city_code=<city>/<day>=<YYYY-MM-DD>/dt=<dt>.batch=<n>.<i>.parquet`
(day = event_day for the large event sources, whose increments read only the days a delivery
touched; the delivery's dt for registrations, small account events spread over every day since a
platform opened, and for service_catalog, whose rows have no event). Each delivery is one
writer: it removes its earlier copy's files and writes its own, touching no other delivery's
files, so deliveries (cities) can be exported in parallel. `_deliveries.json` records which copy
of each delivery the lake holds and each source's layout; a copy whose export was cut off is
simply exported again, and a source the ledger records in another layout (a lake written before
the layout changed) is exported again whole once, its Spark table declared again (`redeclare`).
The audit tables dbt reads (deliveries, delivery_changes) are small and are exported whole on
every build.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from citycloud.config import SOURCES, Settings

# The column each source's rows are partitioned by within a city. Registrations by delivery:
# by event day they were one folder per day since each platform opened (~2,100 per city), listed
# and read on every build (docs/performance.md, "Spark").
DAY_COLUMN = {"registrations": "dt", "service_access": "event_day", "ratings": "event_day",
              "review_tickets": "event_day",
              "service_catalog": "dt"}
# The layout of a lake whose ledger records none (written before the ledger recorded layouts).
_FIRST_LAYOUT = {"registrations": "event_day", "service_access": "event_day", "ratings": "event_day",
                 "review_tickets": "event_day", "service_catalog": "dt"}
# Ledger entries that are not deliveries: each source's layout, and the sources whose Spark
# table must be declared again (cleared by declared() once a build has done it).
_LAYOUT, _REDECLARE = "_layout", "_redeclare"
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


def _manifest(lake: Path) -> dict:
    path = lake / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _save_manifest(lake: Path, manifest: dict) -> None:
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
    manifest = _migrate_layout(lake, _manifest(lake))
    redeclare = set(manifest.get(_REDECLARE, []))
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
    for key in sorted(set(manifest) - set(wanted) - {_LAYOUT, _REDECLARE}):
        for path in delivery_files(lake, *key.split("/")):
            path.unlink()
        del manifest[key]
        _save_manifest(lake, manifest)
    tables = {}
    for source in SOURCES:
        (lake / source).mkdir(exist_ok=True)
        tables[f"raw.{source}"] = {"columns": _spark_columns(con, "raw", source), "location": str(lake / source),
                                   "partitioned_by": ["city_code", DAY_COLUMN[source]],
                                   "redeclare": source in redeclare}
    for table in AUDIT_TABLES:
        folder = lake / "audit" / table
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".data.parquet.tmp"
        con.execute(f"COPY audit.{table} TO {_quote(tmp.as_posix())} (FORMAT parquet)")
        os.replace(tmp, folder / "data.parquet")
        tables[f"audit.{table}"] = {"columns": _spark_columns(con, "audit", table), "location": str(folder),
                                    "partitioned_by": []}
    return tables


def _migrate_layout(lake: Path, manifest: dict) -> dict:
    """A source whose files the ledger records in another layout than DAY_COLUMN loses its files
    and ledger entries (so sync exports every delivery of it again) and is marked for its Spark
    table to be declared again with the new partition columns."""
    layout = manifest.get(_LAYOUT, _FIRST_LAYOUT if manifest else DAY_COLUMN)
    moved = sorted(source for source in DAY_COLUMN if layout.get(source, DAY_COLUMN[source]) != DAY_COLUMN[source])
    if manifest.get(_LAYOUT) == DAY_COLUMN and not moved:
        return manifest
    for source in moved:
        shutil.rmtree(lake / source, ignore_errors=True)
        for key in [k for k in manifest if k.split("/")[0] == source]:
            del manifest[key]
    if moved:
        manifest[_REDECLARE] = sorted(set(manifest.get(_REDECLARE, [])) | set(moved))
    manifest[_LAYOUT] = dict(DAY_COLUMN)
    _save_manifest(lake, manifest)
    return manifest


def declared(settings: Settings) -> None:
    """After a successful build: the Spark tables are declared in the lake's current layout."""
    lake = lake_dir(settings)
    manifest = _manifest(lake)
    if manifest.pop(_REDECLARE, None) is not None:
        _save_manifest(lake, manifest)


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

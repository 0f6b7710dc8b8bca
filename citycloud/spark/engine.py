"""Build the dbt models on Spark and bring the candidate marts back into the DuckDB warehouse.

Called by citycloud.pipeline.build under the writer lock, between its bookkeeping of the build.
dbt runs the `spark` target (profiles.yml: dbt-spark's session method, the master from
CITYCLOUD_SPARK_MASTER); its tables live in `<spark_dir>/tables` with a Derby metastore in
`<spark_dir>/metastore_db`. The published marts are small: they are copied into the DuckDB
warehouse's marts_build schema, where the quality gate and publishing read them as on DuckDB.
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from citycloud.config import BUILD_SCHEMA, PUBLISHED_MARTS, CitycloudError, Settings
from citycloud.db import connect
from citycloud.dbt_runner import DbtCommand, build_args, run_dbt
from citycloud.spark import lake


def table_folder(settings: Settings, schema: str, table: str) -> Path:
    """Where Spark keeps a managed table's files (spark.sql.warehouse.dir/<schema>.db/<table>)."""
    return settings.spark_dir / "tables" / f"{schema}.db" / table


def dbt_args(since_batch: int, full_refresh: bool, lake_tables: dict, funnels: str = "[]") -> DbtCommand:
    """The production build (dbt_runner.build_args) on the spark target, with the lake's tables."""
    command = build_args(since_batch, full_refresh, extra_vars={"lake": lake_tables}, funnels=funnels)
    return replace(command, args=[*command.args, "--target", "spark"])


def check_installed() -> None:
    """Java and pyspark are there, or a one-line error that says how to get them."""
    if shutil.which("java") is None:
        raise CitycloudError("--engine spark needs Java 17, not found on PATH: run scripts/install_java.sh "
                             "(Debian's openjdk-17-jre-headless)")
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("dbt.adapters.spark") is None:
        raise CitycloudError("--engine spark needs pyspark and dbt-spark[session]: run `make setup` "
                             "(requirements.txt pins them)")


def build(settings: Settings, since_batch: int, full_refresh: bool,
          progress: Callable[[str], None] | None = None, funnels: str = "[]") -> None:
    """Export the lake, `dbt build` on Spark, copy the candidate marts into DuckDB's marts_build."""
    check_installed()
    check_session(settings)
    con = connect(settings.warehouse, settings=settings)
    try:
        tables = lake.sync(con, settings, progress)
    finally:
        con.close()
    run_dbt(settings, dbt_args(since_batch, full_refresh, tables, funnels), progress)
    lake.declared(settings)
    con = connect(settings.warehouse, settings=settings)
    try:
        import_candidate_marts(con, settings)
    finally:
        con.close()
    if progress:
        progress(f"spark: candidate marts copied into {settings.warehouse.name} ({BUILD_SCHEMA})")


def check_session(settings: Settings) -> None:
    """One warehouse and master per process. dbt-spark's session method takes the process's
    SparkSession (getOrCreate), whose master, tables folder and Derby metastore are fixed when
    it starts; a new session after stop() is not enough either, since Hive keeps a metastore
    client per JVM thread that goes on writing into the first metastore. A second build of the
    same warehouse reuses the session (no JVM or session start)."""
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:
        return
    tables = context.getConf().get("spark.sql.warehouse.dir", "").removeprefix("file:")
    if Path(tables).resolve() != (settings.spark_dir / "tables").resolve() or context.master != settings.spark_master:
        raise CitycloudError(f"this process already runs Spark for {tables} on {context.master}: build "
                             f"{settings.warehouse} with --engine spark in a process of its own")


def import_candidate_marts(con, settings: Settings) -> None:
    """Replace DuckDB's marts_build tables with Spark's, in one transaction."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {BUILD_SCHEMA}")
    con.execute("BEGIN TRANSACTION")
    try:
        for table in PUBLISHED_MARTS:
            folder = table_folder(settings, BUILD_SCHEMA, table)
            files = sorted(folder.glob("*.parquet"))
            if not files:
                raise CitycloudError(f"Spark left no files for {BUILD_SCHEMA}.{table} in {folder}: "
                                     "run again with --full-refresh")
            (kind,) = con.execute("SELECT any_value(table_type) FROM information_schema.tables "
                                  "WHERE table_schema = ? AND table_name = ?", [BUILD_SCHEMA, table]).fetchone()
            if kind == "VIEW":  # built as a view by the DuckDB engine
                con.execute(f"DROP VIEW {BUILD_SCHEMA}.{table}")
            con.execute(f"CREATE OR REPLACE TABLE {BUILD_SCHEMA}.{table} AS "
                        f"SELECT * FROM read_parquet({[f.as_posix() for f in files]!r})")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _engine_file(settings: Settings) -> Path:
    # Beside dbt's own state for this warehouse (dbt_runner.dbt_env), not in the warehouse: the
    # DuckDB engine's tables stay exactly as they were before there was a choice.
    return settings.warehouse.parent / ".dbt" / "engine"


def last_engine(settings: Settings) -> str | None:
    """The engine of the latest successful build (None: none recorded)."""
    path = _engine_file(settings)
    return path.read_text().strip() if path.exists() else None


def record_engine(settings: Settings) -> None:
    """After a successful build: the engine whose tables now hold every built batch."""
    path = _engine_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings.engine + "\n")

"""DuckDB connections with the project's resource settings.

DuckDB allows one writing process per file: writers open the warehouse read-write
one at a time (the CLI runs steps in sequence; Airflow uses a one-slot pool);
readers use the published snapshot (see citycloud.publish).
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from citycloud.config import CitycloudError, Settings


def connect(warehouse: Path | str, read_only: bool = False, settings: Settings | None = None) -> duckdb.DuckDBPyConnection:
    settings = settings or Settings()
    warehouse = Path(warehouse)
    if read_only and not warehouse.exists():
        raise CitycloudError(f"warehouse {warehouse} does not exist: run `citycloud run` first")
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(warehouse), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise CitycloudError(
                f"warehouse {warehouse} is locked by another process (DuckDB allows one writer). "
                "Wait for the running job to finish and try again."
            ) from exc
        raise
    if not read_only:
        settings.spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{settings.spill_dir.as_posix()}'")
    con.execute(f"SET memory_limit = '{settings.memory_limit}'")
    if settings.threads:
        con.execute(f"SET threads = {settings.threads}")
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    return con

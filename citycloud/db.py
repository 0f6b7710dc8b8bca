"""DuckDB connections with the project's resource settings, the writer lock, full disks.

DuckDB allows one writing process per file: writers open the warehouse read-write
one at a time (the CLI runs steps in sequence; Airflow uses a one-slot pool);
readers use the published snapshot (see citycloud.publish).

DuckDB's own lock only covers the moments a connection is open, and a run opens several
(ingest, dbt, checks, publish). `writer_lock` covers a whole run, so that whatever a run finds
half-done when it starts (a `building` build, an unrecorded batch, snapshot temp files) can
only be the leftover of a writer that died, never the work of one still running.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import threading
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from citycloud.config import BUSINESS_TZ_NAME, CitycloudError, Settings


def connect(warehouse: Path | str, read_only: bool = False, settings: Settings | None = None,
            memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A warehouse connection with the settings' limits; `memory_limit` overrides theirs."""
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
        con.execute(f"SET disabled_compression_methods = '{settings.disabled_compression}'")
    con.execute(f"SET memory_limit = '{memory_limit or settings.memory_limit}'")
    if settings.threads:
        con.execute(f"SET threads = {settings.threads}")
    con.execute(f"SET TimeZone = '{BUSINESS_TZ_NAME}'")
    return con


# ---- one writer per warehouse, for a whole run ------------------------------------------

_held: dict[Path, list] = {}  # lock file -> [open file, depth]: re-entrant within a process
_held_guard = threading.Lock()


def lock_path(warehouse: Path | str) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.name + ".writer.lock")


@contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Hold the warehouse's writer lock (flock: the kernel drops it when the holder dies)."""
    path = lock_path(settings.warehouse).absolute()
    with _held_guard:
        entry = _held.get(path)
        if entry is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "a+", encoding="utf-8")  # not inherited by children (dbt): O_CLOEXEC
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                f.close()
                raise CitycloudError(
                    f"warehouse {settings.warehouse} is being written by another citycloud process "
                    f"(pid {holder}): DuckDB allows one writer. Wait for it to finish and try again."
                ) from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            entry = _held[path] = [f, 0]
        entry[1] += 1
    try:
        yield
    finally:
        with _held_guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[path]
                entry[0].close()  # closing releases the flock


# ---- a full disk: one clear line instead of DuckDB's or dbt's traceback ---------------------

_NO_SPACE = re.compile(r"No space left on device|\bENOSPC\b|\[Errno 28\]", re.IGNORECASE)
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")


def no_space_error(exc: BaseException, fallback: Path, consequence: str) -> CitycloudError | None:
    """A CitycloudError naming where the disk is full, if `exc` or what led to it (a failed
    rollback hides the full disk behind "cannot rollback") is a full disk; else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = exc.filename or fallback
        elif _NO_SPACE.search(str(exc)):
            # The path on the line that says so (DuckDB: 'Could not write file "…": No space left
            # on device'), not one from a traceback around it.
            line = next(ln for ln in str(exc).splitlines() if _NO_SPACE.search(ln))
            match = _QUOTED_PATH.search(line)
            where = match.group(1) if match else fallback
        else:
            exc = exc.__cause__ or exc.__context__
            continue
        return CitycloudError(f"no space left on {where}: free some space there and run again; {consequence}")
    return None


@contextmanager
def disk_full_as_error(fallback: Path, consequence: str) -> Iterator[None]:
    """Turn a full disk met anywhere inside into one CitycloudError (others pass unchanged)."""
    try:
        yield
    except Exception as exc:
        error = no_space_error(exc, fallback, consequence)
        if error is None:
            raise
        raise error from exc


def writer_step(step: Callable) -> Callable:
    """Run a step holding the writer lock, with a full disk reported as one clear error."""
    @wraps(step)
    def guarded(settings: Settings, *args, **kwargs):
        with writer_lock(settings), disk_full_as_error(
                settings.warehouse, "the previously published marts and snapshot are unchanged"):
            return step(settings, *args, **kwargs)
    return guarded

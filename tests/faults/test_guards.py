"""Fast checks of the guards the fault suite relies on: the full-disk translation and the
writer lock (no dbt, no pipeline)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from citycloud.config import CitycloudError, Settings
from citycloud.db import no_space_error, writer_lock

pytestmark = pytest.mark.faults
CONSEQUENCE = "nothing published"


def test_enospc_oserror_names_its_file():
    error = no_space_error(OSError(errno.ENOSPC, "No space left on device", "/data/wh/x.duckdb.wal"),
                           Path("/data/wh/x.duckdb"), CONSEQUENCE)
    assert str(error) == "no space left on /data/wh/x.duckdb.wal: free some space there and run again; nothing published"


def test_duckdb_message_names_the_file_it_could_not_write():
    exc = duckdb.TransactionException(
        'TransactionContext Error: Failed to commit: Could not write file "/mnt/wh/c.duckdb.wal": '
        "No space left on device")
    assert str(no_space_error(exc, Path("/elsewhere"), CONSEQUENCE)).startswith(
        "no space left on /mnt/wh/c.duckdb.wal: ")


def test_full_disk_behind_a_failed_rollback_is_found():
    try:
        try:
            raise duckdb.IOException("Could not write file \"/mnt/wh/c.duckdb\": No space left on device")
        except duckdb.IOException:
            raise duckdb.TransactionException("cannot rollback: database has been invalidated")
    except duckdb.Error as exc:
        error = no_space_error(exc, Path("/mnt/wh/c.duckdb"), CONSEQUENCE)
    assert str(error).startswith("no space left on /mnt/wh/c.duckdb: ")


def test_other_errors_are_not_mistaken_for_a_full_disk():
    assert no_space_error(duckdb.IOException("Could not set lock on file"), Path("/x"), CONSEQUENCE) is None
    assert no_space_error(OSError(errno.EACCES, "Permission denied"), Path("/x"), CONSEQUENCE) is None


def test_writer_lock_is_reentrant_here_and_refuses_another_process(tmp_path):
    settings = Settings()
    settings.warehouse = tmp_path / "wh" / "w.duckdb"
    probe = (f"import sys; from pathlib import Path; from citycloud.config import Settings, CitycloudError; "
             f"from citycloud.db import writer_lock; s = Settings(); s.warehouse = Path({str(settings.warehouse)!r})\n"
             "try:\n    with writer_lock(s): print('got it')\nexcept CitycloudError as e: print(e)")

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()

    with writer_lock(settings):
        with writer_lock(settings):  # the same process again (run -> ingest): no deadlock
            pass
        assert other_process() == (
            f"warehouse {settings.warehouse} is being written by another citycloud process (pid {os.getpid()}): "
            "DuckDB allows one writer. Wait for it to finish and try again.")
    assert other_process() == "got it"  # released with the outermost holder


def test_writer_lock_error_is_a_citycloud_error():
    assert issubclass(type(no_space_error(OSError(errno.ENOSPC, "x"), Path("/x"), "y")), CitycloudError)


def test_a_path_from_a_traceback_is_not_taken_for_the_full_file():
    dbt_output = ('dbt build failed (exit 2):\n  File "/venv/lib/click/core.py", line 1, in invoke\n'
                  '  OSError: [Errno 28] No space left on device')
    assert str(no_space_error(CitycloudError(dbt_output), Path("/disk/wh/c.duckdb"), CONSEQUENCE)).startswith(
        "no space left on /disk/wh/c.duckdb: ")

"""What the next writer repairs after one died, on hand-made leftovers (no dbt, fast)."""
from __future__ import annotations

from datetime import datetime

import pytest

from citycloud.db import connect
from citycloud.pipeline import recover
from tests.conftest import make_settings

pytestmark = pytest.mark.faults


def test_recover_records_killed_batch_marks_build_and_removes_leftovers(tmp_path):
    settings = make_settings(tmp_path)
    con = connect(settings.warehouse, settings=settings)
    recover(con, settings)  # creates the schema; nothing to repair yet
    t1, t2 = datetime(2026, 2, 3, 10, 0), datetime(2026, 2, 3, 10, 5)
    history = "INSERT INTO audit.delivery_history VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, 0, 'h', 's', ?)"
    con.execute(history, ["430100", "ratings", "2026-02-01", 10, 9, 1, t1, 0, 1])
    con.execute("INSERT INTO audit.ingest_batches VALUES (1, ?, ?, 1, 9, 1, 0)", [t1, t1])
    # Batch 2: two deliveries committed, then the process died before the batch's ledger row.
    con.execute(history, ["430100", "ratings", "2026-02-02", 20, 18, 2, t1, 1, 2])
    con.execute(history, ["430100", "registrations", "2026-02-02", 5, 5, 0, t2, 0, 2])
    con.execute("INSERT INTO audit.builds VALUES (1, 1, ?, ?, 'published', NULL), (2, 2, ?, NULL, 'building', NULL)",
                [t1, t1, t2])
    snapshot_tmp = settings.published.with_name(settings.published.name + ".tmp4242")
    snapshot_tmp.write_bytes(b"half")
    snapshot_tmp.with_name(snapshot_tmp.name + ".wal").write_bytes(b"half")
    spill = settings.warehouse.parent / ".spill"
    (spill / "duckdb_temp_storage_S32K-0.tmp").write_bytes(b"x")
    (spill / "notes.txt").write_text("not DuckDB's: stays")

    assert recover(con, settings) == [
        "recovered the ledger of interrupted ingest batch(es) 2",
        "marked interrupted build(s) 2 killed",
        "removed 2 half-written snapshot file(s)",
        f"removed 1 spill file(s) left in {spill}",
    ]
    assert con.execute("SELECT * FROM audit.ingest_batches ORDER BY batch_id").fetchall() == [
        (1, t1, t1, 1, 9, 1, 0), (2, t1, t2, 2, 23, 2, 1)]
    assert con.execute("SELECT build_id, status FROM audit.builds ORDER BY 1").fetchall() == [
        (1, "published"), (2, "killed")]
    assert not list(settings.warehouse.parent.glob("*.tmp*"))
    assert [p.name for p in spill.iterdir()] == ["notes.txt"]
    assert recover(con, settings) == []  # a second writer finds nothing left to repair
    con.close()

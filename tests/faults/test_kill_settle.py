"""SIGKILL `citycloud settle --final` at each phase; the rerun must equal a clean settlement:
the same statement versions (one final version, never half-written), the same files, and a
snapshot that shows them."""
from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.faults.conftest import Paused, citycloud, copy_warehouse, rows, settle_args

FAST = {"settle-committed", "snapshot-export"}
PHASES = ["settle-versions", "settle-committed", "snapshot-export", "settle-files"]
TABLES = ("settlement_statements", "settlement_lines", "settlement_inputs")
# computed_at is the wall clock of the run; the seal hashes it with the rest of the row.
SETTLE_VOLATILE = ("computed_at", "statement_hash")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+08:00")


def settlement(warehouse: Path) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: rows(con, f"marts.{t}", drop=SETTLE_VOLATILE) for t in TABLES}
    finally:
        con.close()


def statement_files(out: Path) -> dict[str, str]:
    """The statement files: CSVs with their timestamp masked, XLSX by name only."""
    return {p.name: _TIMESTAMP.sub("<computed_at>", p.read_text("utf-8-sig")) if p.suffix == ".csv" else "xlsx"
            for p in sorted(out.iterdir())}


def snapshot_statements(warehouse: Path) -> list[tuple]:
    snapshot = warehouse.with_name(warehouse.stem + ".published.duckdb")
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        return con.execute("SELECT contract_id, month, version, status FROM marts.settlement_statements "
                           "ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def clean_settlement(clean_build, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("clean_settle")
    warehouse = copy_warehouse(clean_build["warehouse"], root / "wh")
    citycloud(settle_args(warehouse) + ["--out", str(root / "out")])
    return {"tables": settlement(warehouse), "files": statement_files(root / "out")}


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("phase", [
    pytest.param(p, marks=() if p in FAST else pytest.mark.faults_full) for p in PHASES])
def test_rerun_after_killed_settle_equals_clean(phase, tmp_path, clean_build, clean_settlement):
    t0 = time.perf_counter()
    warehouse = copy_warehouse(clean_build["warehouse"], tmp_path / "wh")
    args = settle_args(warehouse) + ["--out", str(tmp_path / "out")]
    Paused(args, phase, tmp_path).kill()

    rerun = citycloud(args)
    assert "2026-02" in rerun.stdout
    assert settlement(warehouse) == clean_settlement["tables"]
    assert statement_files(tmp_path / "out") == clean_settlement["files"]
    assert snapshot_statements(warehouse) == [("CS-2026-003", date(2026, 2, 1), 1, "final")]
    assert not list((tmp_path / "wh").glob("*.tmp*")), "half-written snapshot left"
    # Once final, a third run changes nothing.
    again = citycloud(args)
    assert "0 new versions" in again.stdout
    assert settlement(warehouse) == clean_settlement["tables"]
    print(f"kill settle at {phase} + rerun: {time.perf_counter() - t0:.1f}s")

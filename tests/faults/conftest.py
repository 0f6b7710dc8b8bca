"""Fault-injection helpers: run the real CLI as a subprocess, pause it at a phase, kill it,
and compare warehouses by content (volatile ids and timestamps left out)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pytest

from tests.conftest import TINY

KEY = "ab" * 32  # 64 hex characters: a key the CLI accepts
LANDING = TINY / "landing"
CONTRACTS = TINY / "contracts.yml"
MONTH = "2026-02"
# Columns that legitimately differ between a clean build and a killed-then-rerun one.
VOLATILE = {"batch_id", "build_id", "run_id", "ingested_at", "started_at", "finished_at", "checked_at",
            "computed_at", "signature", "message"}
PAUSE_TIMEOUT = 600


def cli_env(pause_at: str | None = None, marker: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYCLOUD_FAULT_")}
    env.update(CITYCLOUD_PII_KEY=KEY, CITYCLOUD_DUCKDB_MEMORY_LIMIT="1GB", CITYCLOUD_DUCKDB_THREADS="2")
    for name in ("CITYCLOUD_WAREHOUSE", "CITYCLOUD_OUTPUT", "CITYCLOUD_SPILL_DIR", "CITYCLOUD_LANDING"):
        env.pop(name, None)
    if pause_at:
        env.update(CITYCLOUD_FAULT_PAUSE_AT=pause_at, CITYCLOUD_FAULT_MARKER=str(marker))
    return env


def run_args(warehouse: Path, landing: Path = LANDING, *extra: str) -> list[str]:
    return ["run", "--landing", str(landing), "--warehouse", str(warehouse), *extra]


def settle_args(warehouse: Path, final: bool = True) -> list[str]:
    return ["settle", "--warehouse", str(warehouse), "--contracts", str(CONTRACTS), "--month", MONTH,
            *(["--final"] if final else [])]


def citycloud(args: list[str], check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the CLI to the end; with check, fail the test (showing stderr) unless it exits 0."""
    done = subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", *args], env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"citycloud {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


@contextmanager
def sigint_as_in_a_terminal() -> Iterator[None]:
    """Start children with SIGINT at its default, as a terminal starts a foreground command.

    A runner started in the background by a non-interactive shell (`nohup make test &`) ignores
    SIGINT, and an ignored signal stays ignored across exec: the CLI would then, rightly, ignore
    the Ctrl-C the test sends (it hung so in CI runs started that way). A handled signal is reset
    to its default by exec, so a handler here for the duration of the fork gives the child SIG_DFL."""
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class Paused:
    """The CLI started with a pause at `phase`, waiting there (see citycloud/fault_hook.py)."""

    def __init__(self, args: list[str], phase: str, workdir: Path):
        self.marker = workdir / f"pause-{phase}.json"
        self.marker.unlink(missing_ok=True)
        self.log = open(workdir / f"pause-{phase}.log", "w+")
        # Its own session: a kill aimed at it never reaches pytest; dbt is its child only.
        with sigint_as_in_a_terminal():
            self.proc = subprocess.Popen([sys.executable, "-m", "citycloud.pipeline.cli", *args],
                                         env=cli_env(phase, self.marker), stdout=self.log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while not self.marker.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"citycloud {' '.join(args)} ended (exit {self.proc.returncode}) before pausing at "
                            f"{phase}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no pause at {phase} within {PAUSE_TIMEOUT}s")
            time.sleep(0.05)
        self.details = json.loads(self.marker.read_text())

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        """SIGKILL the citycloud process only (not its group: its dbt child must die by itself)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def release(self, timeout: float = 900) -> int:
        """Let it go on from the pause; wait for its exit code."""
        self.marker.unlink()
        return self.proc.wait(timeout)


def process_gone(pid: int, within: float = 5.0) -> bool:
    """Has `pid` exited (gone, or a zombie nobody reaped) within `within` seconds?"""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def rows(con, table: str, drop=VOLATILE) -> list[tuple]:
    schema, name = table.split(".")
    cols = [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall()
        if c not in drop]
    return con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY ALL").fetchall()


def content(warehouse: Path, schemas=("raw", "staging", "intermediate", "marts_build", "marts")) -> dict:
    """Every table of `schemas` and the ledgers, as sorted rows without volatile columns."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [f"{s}.{t}" for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            f"AND table_catalog = current_database() AND table_schema IN ({', '.join(repr(s) for s in schemas)}) "
            "ORDER BY ALL").fetchall()]
        out = {t: rows(con, t) for t in tables}
        for ledger in ("deliveries", "delivery_history", "delivery_changes", "rejected_rows", "rejected_files"):
            out[f"audit.{ledger}"] = rows(con, f"audit.{ledger}")
        # Batches: a killed batch may be recorded apart from its rerun; the totals must agree.
        out["audit.ingest_batches (totals)"] = con.execute(
            "SELECT sum(deliveries), sum(rows_loaded), sum(rows_rejected), sum(files_rejected) "
            "FROM audit.ingest_batches").fetchall()
        out["audit.builds (last)"] = con.execute(
            "SELECT status FROM audit.builds ORDER BY build_id DESC LIMIT 1").fetchall()
        out[LAST_CHECKS] = _rows_of_last_check(con)
        return out
    finally:
        con.close()


def _rows_of_last_check(con) -> list[tuple]:
    return con.execute(
        "SELECT * EXCLUDE (run_id, checked_at) FROM audit.quality_results WHERE run_id = "
        "(SELECT arg_max(run_id, checked_at) FROM audit.quality_results) ORDER BY ALL").fetchall()


# The last check run covers the batches since the last publish: not comparable with a clean
# build's when the warehouse was published once before (an incremental history).
LAST_CHECKS = "audit.quality_results (last run)"


def assert_same(actual: dict, expected: dict, ignore: tuple[str, ...] = ()) -> None:
    assert actual.keys() == expected.keys()
    differ = [t for t in expected if t not in ignore and actual[t] != expected[t]]
    assert not differ, f"tables differ from a clean build: {differ}"


def assert_consistent(warehouse: Path) -> None:
    """The ledger reconciles, no build is left `building`, the snapshot matches, no leftovers."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for ledger in ("deliveries", "delivery_history", "rejected_rows", "rejected_files", "delivery_changes"):
            (orphans,) = con.execute(
                f"SELECT count(*) FROM audit.{ledger} WHERE batch_id NOT IN "
                "(SELECT batch_id FROM audit.ingest_batches)").fetchone()
            assert orphans == 0, f"audit.{ledger}: {orphans} rows of a batch missing from audit.ingest_batches"
        (recorded, history) = con.execute(
            "SELECT (SELECT sum(deliveries) FROM audit.ingest_batches), "
            "(SELECT count(*) FROM audit.delivery_history)").fetchone()
        assert recorded == history
        assert con.execute("SELECT count(*) FROM audit.builds WHERE status = 'building'").fetchone() == (0,)
        snapshot = warehouse.with_name(warehouse.stem + ".published.duckdb")
        con.execute(f"ATTACH '{snapshot}' AS snap (READ_ONLY)")
        assert con.execute("SELECT build_id, status FROM snap.audit.builds ORDER BY build_id DESC LIMIT 1").fetchone() \
            == con.execute("SELECT build_id, status FROM audit.builds ORDER BY build_id DESC LIMIT 1").fetchone()
        assert con.execute("SELECT status FROM audit.builds ORDER BY build_id DESC LIMIT 1").fetchone() \
            == ("published",)
        for table in ("kpi_daily", "kpi_monthly", "service_daily"):
            assert con.execute(f"SELECT * FROM marts.{table} EXCEPT ALL SELECT * FROM snap.marts.{table}").fetchall() \
                == []
            assert con.execute(f"SELECT count(*) FROM marts.{table}").fetchone() \
                == con.execute(f"SELECT count(*) FROM snap.marts.{table}").fetchone()
    finally:
        con.close()
    assert not list(warehouse.parent.glob(snapshot.name + ".tmp*")), "half-written snapshot left"
    assert not list((warehouse.parent / ".spill").glob("duckdb_temp*")), "spill files left"


@pytest.fixture(scope="session")
def clean_build(tmp_path_factory) -> dict:
    """The worked example built once without faults: the reference every rerun must equal."""
    warehouse = tmp_path_factory.mktemp("clean") / "wh" / "citycloud.duckdb"
    t0 = time.perf_counter()
    citycloud(run_args(warehouse))
    print(f"clean build: {time.perf_counter() - t0:.1f}s")
    return {"warehouse": warehouse, "content": content(warehouse)}


@pytest.fixture(scope="session")
def published_before(tmp_path_factory) -> Path:
    """A warehouse published up to 2026-02-10 (snapshot included): a state to start runs from."""
    warehouse = tmp_path_factory.mktemp("before") / "wh" / "citycloud.duckdb"
    citycloud(run_args(warehouse, LANDING, "--end", "2026-02-10"))
    return warehouse


def copy_warehouse(source: Path, target_dir: Path) -> Path:
    """Copy a warehouse and its snapshot (a settled or published state to start a test from)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for path in source.parent.glob(source.stem + "*.duckdb"):
        shutil.copy2(path, target_dir / path.name)
    return target_dir / source.name

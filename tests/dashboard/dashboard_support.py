"""Helpers for the dashboard tests: the served dashboard, the warehouse under test, snapshot reads.

The warehouse is a copy of the session's tiny example run through the real pipeline (tests/
conftest.py's tiny_built), then `citycloud settle` for February, when that works; otherwise (pipeline not there yet or
failing) a hand-built warehouse with the documented tables (dashboard_handmade.py), which
carries the same Changsha figures. CITYCLOUD_DASHBOARD_TEST_SOURCE=handmade|tiny forces one.
Either way the tests read the values they expect from the snapshot itself.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import dashboard_handmade as handmade  # noqa: E402

TINY = handmade.TINY
CONTRACTS = TINY / "contracts.yml"
CITYCLOUD = Path(sys.executable).with_name("citycloud")
TINY_NOTE = "tiny example through the pipeline"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """`python -m citycloud.dashboards` as a subprocess on a free localhost port."""

    def __init__(self, warehouse: Path, log: Path, contracts: Path | None = CONTRACTS, extra: list[str] = (),
                 env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "citycloud.dashboards", "--warehouse", str(warehouse), "--port", str(self.port),
               "--address", "127.0.0.1", *extra]
        if contracts:
            cmd += ["--contracts", str(contracts)]
        env = dict(os.environ, CITYCLOUD_DASHBOARD_TTL="30", **(env or {}))
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dashboard did not start in 60s: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own process group (serve() execs streamlit: one process)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _real_warehouse(folder: Path, built) -> tuple[Path | None, str]:
    """A copy of the session's tiny example run through the pipeline (`built`: its Settings,
    tests/conftest.py's tiny_built), settled for February; (warehouse, note)."""
    if built is None or not CITYCLOUD.exists():
        return None, "citycloud pipeline not available"
    warehouse = folder / "tiny.duckdb"
    shutil.copy(built.warehouse, warehouse)
    shutil.copy(built.published, warehouse.with_name(warehouse.stem + ".published.duckdb"))
    env = dict(os.environ, CITYCLOUD_PII_KEY=built.pii_key.get_secret_value(), CITYCLOUD_OUTPUT=str(folder / "output"))
    settle = subprocess.run(
        [str(CITYCLOUD), "settle", "--warehouse", str(warehouse), "--contracts", str(CONTRACTS),
         "--month", "2026-02", "--out", str(folder / "statements")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )
    note = f"{TINY_NOTE} (the session's build)"
    if settle.returncode != 0:
        note += f" (settle failed, exit {settle.returncode}: {(settle.stderr or settle.stdout)[-300:]})"
    else:
        note += " and `citycloud settle --month 2026-02`"
    return warehouse, note


def snapshot_query(warehouse: Path, sql: str, params=()):
    path = warehouse.with_name(warehouse.stem + ".published.duckdb")
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def build_warehouse_under_test(folder: Path, built=None) -> dict:
    source = os.environ.get("CITYCLOUD_DASHBOARD_TEST_SOURCE", "auto")
    warehouse, note = (None, "forced hand-built") if source == "handmade" else _real_warehouse(folder, built)
    if warehouse is None:
        if source == "tiny":
            raise RuntimeError(f"CITYCLOUD_DASHBOARD_TEST_SOURCE=tiny but {note}")
        warehouse = folder / "handmade.duckdb"
        handmade.build(warehouse)
        note = f"hand-built snapshot ({note})"
    return {"warehouse": warehouse, "note": note, "kind": "tiny" if note.startswith(TINY_NOTE) else "handmade"}


def table_row(tables: list[list[str]], first: str) -> list[str]:
    """The first row of a page's tables that starts with `first`."""
    for r in tables:
        if r and r[0] == first:
            return r
    raise AssertionError(f"no table row starting with {first!r}; rows: {tables[:60]}")

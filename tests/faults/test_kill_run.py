"""SIGKILL `citycloud run` at each phase; the rerun must equal a clean build.

Each case pauses the real CLI at a phase (citycloud/fault_hook.py), SIGKILLs it there (its
dbt child is not signalled: it must die with its parent), reruns `citycloud run` and compares
raw tables, dbt models, marts and ledgers with a clean build of the same landing area.
The fast subset (`make test`) kills mid-dbt (proving dbt dies with its parent);
`make test-faults` kills at every phase.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import time

import duckdb
import pytest

from tests.faults.conftest import (LANDING, LAST_CHECKS, Paused, assert_consistent, assert_same, citycloud, content,
                                   copy_warehouse, process_gone, run_args)

FAST = {"dbt-middle"}
PHASES = ["ingest-early", "ingest-late", "dbt-start", "dbt-middle", "checks", "publish", "snapshot-export",
          "publish-committed"]


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("phase", [
    pytest.param(p, marks=() if p in FAST else pytest.mark.faults_full) for p in PHASES])
def test_rerun_after_kill_equals_clean_build(phase, tmp_path, clean_build):
    t0 = time.perf_counter()
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    paused = Paused(run_args(warehouse), phase, tmp_path)
    paused.kill()
    if "dbt_pid" in paused.details:
        # The kernel kills dbt when its parent dies: it does not write on after the kill.
        assert process_gone(paused.details["dbt_pid"]), "dbt outlived the killed citycloud run"
    if "snapshot_tmp" in paused.details:
        assert list((tmp_path / "wh").glob("*.tmp*")), "the kill should leave the temp snapshot behind"

    rerun = citycloud(run_args(warehouse))
    if phase == "publish-committed":  # published already: only the snapshot was missing
        assert "snapshot exported again" in rerun.stderr and "marts unchanged" in rerun.stdout
    else:
        assert "marts published" in rerun.stdout
    assert_consistent(warehouse)
    assert_same(content(warehouse), clean_build["content"])
    print(f"kill at {phase} + rerun: {time.perf_counter() - t0:.1f}s")


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.faults_full
def test_killed_batch_gets_its_own_ledger_row(tmp_path):
    """Killed after every delivery committed but before the batch row: the rerun records batch 1
    from its deliveries and takes batch 2 for what is new, never reusing 1."""
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    early = tmp_path / "early"  # a landing with one delivery now, the rest later
    shutil.copytree(LANDING / "430100" / "service_catalog" / "dt=2026-01-30",
                    early / "430100" / "service_catalog" / "dt=2026-01-30")
    paused = Paused(run_args(warehouse, early), "ingest-late", tmp_path)
    paused.kill()
    citycloud(run_args(warehouse))
    rest = len(list(LANDING.glob("*/*/dt=*/_SUCCESS"))) - 1  # every complete delivery but the early one
    assert rest == 115  # the worked example's 116 deliveries (expected/audit_counts.csv)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT batch_id, deliveries FROM audit.ingest_batches ORDER BY 1").fetchall() \
            == [(1, 1), (2, rest)]
        assert con.execute("SELECT batch_id, count(*) FROM audit.deliveries GROUP BY 1 ORDER BY 1").fetchall() \
            == [(1, 1), (2, rest)]
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.faults_full
def test_snapshot_behind_the_marts_is_exported_again(tmp_path, published_before, clean_build):
    """Killed after the marts committed but before the snapshot's rename, on a warehouse that
    already had a snapshot: the rerun finds nothing new to build, sees the snapshot one build
    behind and exports it again."""
    warehouse = copy_warehouse(published_before, tmp_path / "wh")
    Paused(run_args(warehouse), "publish-committed", tmp_path).kill()
    snapshot = warehouse.with_name(warehouse.stem + ".published.duckdb")
    con = duckdb.connect(str(snapshot), read_only=True)
    assert con.execute("SELECT max(build_id) FROM audit.builds").fetchone() == (1,)  # the old one
    con.close()

    rerun = citycloud(run_args(warehouse))
    assert "snapshot exported again" in rerun.stderr
    assert "marts unchanged" in rerun.stdout
    assert_consistent(warehouse)
    assert_same(content(warehouse), clean_build["content"], ignore=(LAST_CHECKS,))


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.faults_full
def test_ctrl_c_during_dbt_stops_dbt_and_records_the_build(tmp_path):
    """SIGINT (Ctrl-C) reaches the citycloud process only (dbt has its own process group): it
    stops dbt itself, records the build `failed` and exits 130 with one line."""
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    paused = Paused(run_args(warehouse), "dbt-middle", tmp_path)
    paused.proc.send_signal(signal.SIGINT)
    try:
        assert paused.proc.wait(60) == 130
    except subprocess.TimeoutExpired:
        paused.kill()  # leave no paused run behind
        pytest.fail(f"citycloud run still running 60 s after SIGINT:\n{paused.output()[-3000:]}")
    assert paused.output().strip().splitlines()[-1] == "citycloud run: interrupted"
    assert process_gone(paused.details["dbt_pid"], within=0.5)  # gone before the parent exited
    con = duckdb.connect(str(warehouse), read_only=True)  # the lock is free again
    try:
        assert con.execute("SELECT status, message FROM audit.builds").fetchall() == [("failed", "interrupted")]
    finally:
        con.close()

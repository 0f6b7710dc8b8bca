"""docs/airflow.md's "Run it locally, end to end", followed literally.

The fenced block after the `test_docs_local_run` marker is run as it stands with bash, in a
temporary copy of the clone (its tracked top-level entries linked, the venv as `.venv`), so
every path it writes (landing/, warehouse/, output/, airflow_home/) is in that copy. Short
sensor timeouts come from the environment: a wait that should not happen fails in seconds,
not in 48 hours.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from airflow_harness import REPO

from tests.doc_blocks import documented_block

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # `make test-e2e`

DOC = REPO / "docs" / "airflow.md"
MARKER = "<!-- test_docs_local_run: the block below is run literally -->"
CONTRACT_CITIES = ["310000", "411700", "430100", "460100", "510100"]


def clone_like(root: Path) -> Path:
    """A folder that looks like a fresh clone after `make setup`: the tracked top-level entries
    (linked, read-only use) and `.venv` (this interpreter's venv)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    clone = root / "citycloud"
    clone.mkdir()
    for name in sorted({line.split("/", 1)[0] for line in tracked.splitlines()}):
        (clone / name).symlink_to(REPO / name)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    return clone


def test_documented_local_run_works_from_a_clone(tmp_path):
    block = documented_block(DOC, MARKER)
    assert "shared/" not in block  # a clone has no ../shared
    clone = clone_like(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYCLOUD_", "AIRFLOW"))}
    env.update({
        "PYTHONPATH": str(REPO), "CITYCLOUD_HOME": str(REPO),  # this checkout's code, as an editable install
        "CITYCLOUD_SETTLEMENT_WAIT_HOURS": "0.02", "CITYCLOUD_SETTLEMENT_POKE_MINUTES": "0.1",
        "CITYCLOUD_DELIVERY_TIMEOUT_HOURS": "0", "CITYCLOUD_DUCKDB_MEMORY_LIMIT": "2GB",
    })
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=1500)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]

    con = sqlite3.connect(clone / "airflow_home" / "airflow.db")
    try:
        runs = dict(con.execute("SELECT dag_id, state FROM dag_run"))
        tasks = dict(con.execute("SELECT dag_id || '.' || task_id, state FROM task_instance"))
    finally:
        con.close()
    assert runs == {"citycloud_daily": "success", "citycloud_monthly_settlement": "success"}, output[-6000:]
    # the daily DAG's six tasks, send_alerts last (it does nothing without CITYCLOUD_ALERTS), and
    # the monthly settlement's three
    assert set(tasks.values()) == {"success"} and len(tasks) == 9 and "citycloud_daily.send_alerts" in tasks, tasks

    with duckdb.connect(str(clone / "warehouse" / "citycloud.duckdb"), read_only=True) as wh:
        covered = wh.execute("SELECT city_code, max(kpi_date) FROM marts.kpi_daily GROUP BY 1 ORDER BY 1").fetchall()
        settled = wh.execute("SELECT city_code, version, status FROM marts.settlement_statements "
                             "WHERE month = DATE '2026-02-01' ORDER BY 1").fetchall()
    assert [c for c, _ in covered] == CONTRACT_CITIES and {str(d) for _, d in covered} == {"2026-03-01"}
    assert settled == [(c, 1, "provisional") for c in CONTRACT_CITIES]
    statements = sorted(p.name for p in (clone / "output" / "statements" / "2026-02").iterdir())
    assert len([n for n in statements if n.startswith("statement_") and n.endswith(".xlsx")]) == 5
    assert "settlement_2026-02_summary.xlsx" in statements
    assert any((clone / "output" / "scorecard" / "2026-02").glob("*.pdf"))

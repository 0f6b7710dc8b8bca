"""Airflow test harness, imported by conftest.py (so before any test module): a temporary
AIRFLOW_HOME with the embedded SQLite metadata database.

The environment is set when this module is imported, i.e. before any test module here imports
Airflow (Airflow reads its configuration once, at import). `airflow db migrate` runs once per
session (fixture `airflow_db`); the end-to-end tests run their DAG runs in one subprocess
(`run_dags`), each run with its own landing/warehouse/output paths in the environment, like a worker would.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
BIN = Path(sys.executable).parent
POOL = "citycloud_warehouse"

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="citycloud-airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)  # one per session, gone after it
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
}
os.environ.update(AIRFLOW_ENV)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of an Airflow subprocess: ours, without any CITYCLOUD_* leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYCLOUD_")}
    env.update(AIRFLOW_ENV)
    env["CITYCLOUD_DUCKDB_MEMORY_LIMIT"] = "2GB"
    env.update(extra)
    return env


def airflow(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "airflow"), *args],
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=AIRFLOW_HOME,
    )


def migrate_db() -> Path:
    """Migrate the SQLite metadata database once and create the single-writer pool."""
    t0 = time.perf_counter()
    for args in (("db", "migrate"), ("pools", "set", POOL, "1", "DuckDB allows one writing process per file")):
        proc = airflow(*args)
        assert proc.returncode == 0, f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"airflow db migrate + pool: {time.perf_counter() - t0:.1f}s")
    return AIRFLOW_HOME / "airflow.db"


@dataclass
class DagTestResult:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str]
    output: str
    seconds: float


def run_dags(runs: list[dict], timeout: float = 900, **process_env: str) -> list[DagTestResult]:
    """Several DAG runs in one process (run_dags.py: `dag.test()`, as `airflow dags test` does).

    Each run is {"dag_id", "logical_date", "conf" (optional), "env" (its CITYCLOUD_* variables)}.
    """
    plan = Path(tempfile.mkstemp(prefix="plan-", suffix=".json", dir=AIRFLOW_HOME)[1])
    plan.write_text(json.dumps(runs), encoding="utf-8")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("run_dags.py")), str(plan)],
        env=base_env(**process_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        cwd=AIRFLOW_HOME,
    )
    chunks = proc.stdout.split("@@START ")[1:]
    results = []
    for chunk in chunks:
        marker = chunk.rfind("@@RESULT ")
        if marker < 0:
            break
        r = json.loads(chunk[marker + len("@@RESULT "):].splitlines()[0])
        results.append(DagTestResult(r["dag_id"], r["run_id"], r["state"], r["tasks"], chunk[:marker], r["seconds"]))
        print(f"dag.test {r['dag_id']} {runs[len(results) - 1]['logical_date']}: {r['seconds']}s, "
              f"run {r['state']}, tasks {r['tasks']}")
    print(f"{len(runs)} DAG runs in one process: {time.perf_counter() - t0:.1f}s")
    assert proc.returncode == 0 and len(results) == len(runs), proc.stdout[-8000:]
    return results

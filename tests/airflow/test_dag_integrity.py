"""The DAG files import cleanly and follow the project's rules (tags, owner, retries, docs,
single-writer pool, reschedule-mode sensors, Assets)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_harness import DAGS, POOL, base_env

DAG_IDS = {"citycloud_daily", "citycloud_monthly_settlement"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # known_pools: a task in a pool other than these is an import error
    return DagBag(dag_folder=str(DAGS), known_pools={"default_pool", POOL})


@pytest.fixture(scope="module")
def orch():
    from citycloud.pipeline import orchestration

    return orchestration


def _dags(dagbag):
    return [dagbag.dags[d] for d in sorted(DAG_IDS)]


def _is_sensor(task) -> bool:
    from airflow.sdk import BaseSensorOperator

    return isinstance(task, BaseSensorOperator)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_IDS <= set(dagbag.dag_ids)


def test_dag_settings(dagbag, orch):
    for dag in _dags(dagbag):
        assert "citycloud" in dag.tags and len(dag.tags) >= 2, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 300, f"{dag.dag_id}: doc_md for operators"
        assert "citycloud_warehouse" in dag.doc_md, f"{dag.dag_id}: doc_md explains the single writer"
        assert dag.max_active_runs == 1, f"{dag.dag_id}: one run at a time (single DuckDB writer)"
        assert dag.catchup is False
        assert dag.on_failure_callback, f"{dag.dag_id}: DAG-level failure alert"
        assert str(dag.timetable.timezone) in ("Asia/Shanghai", "Timezone('Asia/Shanghai')"), dag.timetable


def test_single_writer_comment_in_dag_files():
    for path in DAGS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "max_active_runs=1" in text, path
        assert "one writing process per file" in text, f"{path}: say why max_active_runs=1 and the pool"


def test_tasks_owner_retries_callbacks(dagbag, orch):
    for dag in _dags(dagbag):
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.owner == orch.OWNER, where
            assert task.on_failure_callback, f"{where}: failure alert callback"
            if task.task_id == "check":
                assert task.retries == 0, f"{where}: a failed check is about data, no retry"
            else:
                assert task.retries >= 1, where
                assert task.retry_exponential_backoff > 0, f"{where}: retries back off"
                assert task.max_retry_delay is not None, where


def test_writers_in_single_slot_pool_and_sensors_outside(dagbag):
    for dag in _dags(dagbag):
        sensors = [t for t in dag.tasks if _is_sensor(t)]
        writers = [t for t in dag.tasks if not _is_sensor(t)]
        assert len(sensors) == 1 and writers, dag.dag_id
        for task in writers:  # every non-waiting task opens the warehouse read-write
            assert task.pool == POOL and task.pool_slots == 1, f"{dag.dag_id}.{task.task_id}"
        for task in sensors:  # waiting must not hold the writers' slot nor a worker
            assert task.pool != POOL
            assert task.mode == "reschedule"
            assert 0 < task.timeout < 3 * 24 * 3600


def test_daily_structure(dagbag, orch):
    dag = dagbag.dags["citycloud_daily"]
    order = ["wait_for_deliveries", "ingest", "build", "check", "publish", "send_alerts"]
    assert set(dag.task_ids) == set(order), "coarse tasks: per-task process overhead"
    for up, down in zip(order, order[1:]):
        assert dag.get_task(down).upstream_task_ids == {up}
    # a late city fails the sensor with an alert, but the others are still ingested
    assert dag.get_task("ingest").trigger_rule == "all_done"
    # alerts go out also when a check failed (that is when people must hear about it)
    assert dag.get_task("send_alerts").trigger_rule == "all_done"
    assert list(dag.get_task("publish").outlets) == orch.MARTS_ASSETS
    assert "full_refresh" in dag.params


def test_monthly_structure(dagbag, orch):
    dag = dagbag.dags["citycloud_monthly_settlement"]
    assert dag.get_task("settle").upstream_task_ids == {"wait_for_month_published"}
    assert list(dag.get_task("settle").outlets) == [orch.SETTLEMENT_ASSET]
    assert {"month", "final"} <= set(dag.params)
    params = dag.params
    assert params["final"] is False and params["month"] is None
    assert "final" in dag.doc_md and "restatement" in dag.doc_md


def test_monthly_scores_the_month_after_settlement(dagbag, orch):
    dag = dagbag.dags["citycloud_monthly_settlement"]
    assert dag.get_task("score").upstream_task_ids == {"settle"}
    assert dag.get_task("score").pool == POOL
    assert list(dag.get_task("score").outlets) == [orch.SCORECARD_ASSET]


def test_parsing_stays_light():
    """The dag-processor parses these files every few seconds: no pipeline steps, dbt or DuckDB import
(citycloud.pipeline itself is a namespace that loads its steps on first use)."""
    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"b = DagBag(dag_folder={str(DAGS)!r})\n"
        "assert not b.import_errors, b.import_errors\n"
        "heavy = ('citycloud.pipeline.steps', 'citycloud.settlement', 'dbt', 'duckdb', 'great_expectations', 'citycloud.ingestion')\n"
        "print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout

"""Run several DAG runs in one process, each exactly as `airflow dags test DAG DATE -c CONF` does
(`dag.test()`), without paying Airflow's start-up (CLI, in-process execution API) once per run.

    python run_dags.py PLAN.json     # PLAN: [{"dag_id", "logical_date", "conf", "env"}, ...]

Before each run the CITYCLOUD_* environment is replaced by the run's `env`, like a worker
started with that environment. Prints `@@START <i>` before and `@@RESULT <json>` after each run.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))

    from airflow.sdk import timezone
    from airflow.utils.cli import get_bagged_dag
    from airflow.utils.session import create_session

    dags = {}
    for i, run in enumerate(plan):
        for key in [k for k in os.environ if k.startswith("CITYCLOUD_")]:
            del os.environ[key]
        os.environ.update(run.get("env", {}))
        print(f"@@START {i}", flush=True)
        t0 = time.perf_counter()
        dag = dags.get(run["dag_id"]) or dags.setdefault(run["dag_id"], get_bagged_dag(None, run["dag_id"]))
        dr = dag.test(logical_date=timezone.parse(run["logical_date"]), run_conf=run.get("conf"))
        with create_session() as session:
            tasks = {ti.task_id: _text(ti.state) for ti in dr.get_task_instances(session=session)}
        result = {
            "dag_id": run["dag_id"],
            "run_id": dr.run_id,
            "state": _text(dr.state),
            "tasks": tasks,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print("@@RESULT " + json.dumps(result), flush=True)
    return 0


def _text(state) -> str:
    return str(getattr(state, "value", state))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

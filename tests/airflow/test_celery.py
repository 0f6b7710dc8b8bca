"""Airflow on Celery, for real: the production shape of docker-compose.yml without Docker.

PostgreSQL 15 (metadata database and Celery result backend) and Redis (broker) from Debian's
packages on loopback (scripts/celery_services.sh, as root), then Airflow's scheduler,
dag-processor, api-server and one `airflow celery worker`, all as separate processes. The test
triggers `citycloud_daily` for the last day of the worked example and checks that every task ran
on the Celery worker and that the published marts equal `citycloud run` on the same data.

Run it with `make test-celery` (it installs packages and starts servers, so `make test` skips it).
Everything started here is stopped at the end, also when the test fails.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airflow_harness import BIN, DAGS, POOL, REPO, base_env
from test_e2e import DAILY_TASKS, LAST_DAY, citycloud_env, published_marts, reference  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.celery,
    pytest.mark.slow,
    # a backstop above the sum of the bounded waits below, which fail first and name their wait
    # (pytest-timeout's signal method still runs the fixtures' clean-up)
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        os.environ.get("CITYCLOUD_TEST_CELERY") != "1",
        reason="starts PostgreSQL and Redis as root: run it with `make test-celery`",
    ),
]

SERVICES = REPO / "scripts" / "celery_services.sh"
DAG_ID = "citycloud_daily"
RUN_ID = f"celery__{LAST_DAY}"
# D 02:00 Shanghai, the logical date of the scheduled run for D
LOGICAL_DATE = f"{LAST_DAY}T02:00:00+08:00"
# Bounded waits (seconds) on 2 shared cores; each names what it waited for when it runs out.
SERVICES_TIMEOUT = 600  # includes apt-get install on a fresh machine
MIGRATE_TIMEOUT = 600
READY_TIMEOUT = 240
PARSE_TIMEOUT = 240
RUN_TIMEOUT = 900
STOP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, timeout: float, check, interval: float = 2.0, on_timeout=lambda: ""):
    """Poll check() until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> dict[str, str]:
    """PostgreSQL (a throwaway database and user) and Redis (free port, no persistence)."""
    state = tmp_path_factory.mktemp("celery-services")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["bash", str(SERVICES), "start", str(state)], capture_output=True, text=True,
                              timeout=SERVICES_TIMEOUT)
        assert proc.returncode == 0, f"celery_services.sh start failed:\n{proc.stdout}\n{proc.stderr}"
        settings = dict(line.split("=", 1) for line in (state / "services.env").read_text().split())
        print(f"services up in {time.perf_counter() - t0:.1f}s: {proc.stdout.strip()}")
        yield settings
    finally:
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", str(SERVICES), "stop", str(state)], capture_output=True, text=True,
                              timeout=STOP_TIMEOUT * 2)
        print(f"services stopped: {time.perf_counter() - t0:.1f}s")
        assert proc.returncode == 0, f"celery_services.sh stop failed:\n{proc.stdout}\n{proc.stderr}"
    with socket.socket() as s:  # (not reached when start failed: that error is the one to see)
        assert s.connect_ex(("127.0.0.1", int(settings["REDIS_PORT"]))) != 0, "Redis still listens after stop"


def airflow_env(pg: dict[str, str], home: Path, api_port: int, citycloud: dict[str, str]) -> dict[str, str]:
    """One environment for every Airflow process, as docker-compose.yml's x-airflow-common."""
    db = f"{pg['PG_USER']}:{pg['PG_PASSWORD']}@127.0.0.1:{pg['PG_PORT']}/{pg['PG_DB']}"
    return base_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://{db}",  # async side: asyncpg
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql+psycopg2://{db}",
        AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{pg['REDIS_PORT']}/0",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(api_port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        # Only the triggered run: unpausing must not also start the scheduled run for today.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        CITYCLOUD_HOME=str(REPO),
        **citycloud,
    )


@dataclass
class CeleryAirflow:
    env: dict[str, str]
    home: Path
    root: Path  # the citycloud data (warehouse, output) of this run
    dsn: str
    logs: dict[str, Path] = field(default_factory=dict)

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.home)
        assert proc.returncode == 0, f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def sql(self, query: str, *params) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(self.dsn, connect_timeout=10)
        try:
            with con.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        finally:
            con.close()

    def diagnostics(self) -> str:
        """The tails of the daemons' logs and of the task logs, for a failure message."""
        parts = [f"--- {name} ---\n{path.read_text(errors='replace')[-2500:]}" for name, path in self.logs.items()]
        for log in sorted((self.home / "logs").rglob("*.log")):
            parts.append(f"--- {log.relative_to(self.home)} ---\n{log.read_text(errors='replace')[-2500:]}")
        return "\n".join(parts)


# The processes of Airflow 3 with the CeleryExecutor (no triggerer: nothing here defers).
DAEMONS = {
    "scheduler": ("scheduler",),
    "dag-processor": ("dag-processor",),
    "api-server": ("api-server",),
    "celery-worker": ("celery", "worker", "--concurrency", "2", "--celery-hostname", "citycloud-test@%h"),
}


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each process group we started, SIGKILL what is left after STOP_TIMEOUT."""
    t0 = time.perf_counter()
    for proc in procs.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:  # exited in between
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {STOP_TIMEOUT}s: killed")
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its children too (task supervisors, uvicorn)
        except ProcessLookupError:
            pass
    print(f"Airflow processes stopped: {time.perf_counter() - t0:.1f}s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def celery_airflow(services, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-celery-home")
    root = tmp_path_factory.mktemp("celery-run")
    api_port = free_port()
    cluster = CeleryAirflow(
        env=airflow_env(services, home, api_port, citycloud_env(root)),
        home=home,
        root=root,
        dsn=(f"host=127.0.0.1 port={services['PG_PORT']} dbname={services['PG_DB']} "
             f"user={services['PG_USER']} password={services['PG_PASSWORD']}"),
    )
    t0 = time.perf_counter()
    cluster.airflow("db", "migrate", timeout=MIGRATE_TIMEOUT)
    cluster.airflow("pools", "set", POOL, "1", "DuckDB allows one writing process per file")
    print(f"airflow db migrate (PostgreSQL) + pool: {time.perf_counter() - t0:.1f}s")

    procs: dict[str, subprocess.Popen] = {}
    try:
        t0 = time.perf_counter()
        for name, args in DAEMONS.items():
            cluster.logs[name] = home / f"{name}.out"
            with open(cluster.logs[name], "wb") as out:
                procs[name] = subprocess.Popen([str(BIN / "airflow"), *args], env=cluster.env, cwd=home,
                                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def all_up() -> bool:
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                pytest.fail(f"{', '.join(dead)} exited at start-up\n{cluster.diagnostics()}")
            worker_ready = " ready." in cluster.logs["celery-worker"].read_text(errors="replace")
            return worker_ready and _http_ok(f"http://127.0.0.1:{api_port}/api/v2/monitor/health")

        wait_until("the api-server's health endpoint and the Celery worker's 'ready'", READY_TIMEOUT, all_up,
                   on_timeout=cluster.diagnostics)
        print(f"scheduler, dag-processor, api-server, celery worker up: {time.perf_counter() - t0:.1f}s")
        yield cluster
    finally:
        _stop(procs)


def test_daily_run_on_celery_equals_cli_run(reference, celery_airflow):
    """The daily run on Celery publishes what `citycloud run` publishes. (reference comes first:
    the CLI run happens before the servers start, not beside them on 2 cores.)"""
    cluster = celery_airflow
    wait_until(f"the dag-processor to parse {DAG_ID}", PARSE_TIMEOUT,
               lambda: cluster.sql("SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID), on_timeout=cluster.diagnostics)
    cluster.airflow("dags", "unpause", DAG_ID)
    t0 = time.perf_counter()
    cluster.airflow("dags", "trigger", DAG_ID, "--logical-date", LOGICAL_DATE, "--run-id", RUN_ID)

    def finished():
        rows = cluster.sql("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, RUN_ID)
        return rows and rows[0][0] in ("success", "failed") and rows[0][0]

    state = wait_until(f"{DAG_ID} run {RUN_ID} to finish", RUN_TIMEOUT, finished, interval=3,
                       on_timeout=cluster.diagnostics)
    print(f"{DAG_ID} for {LAST_DAY} on Celery: {time.perf_counter() - t0:.1f}s from trigger to {state}")

    tasks = dict(cluster.sql(
        "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", DAG_ID, RUN_ID))
    assert (state, tasks) == ("success", {t: "success" for t in DAILY_TASKS}), cluster.diagnostics()
    # Each task went through the broker to the Celery worker and its result came back through the
    # result backend in PostgreSQL (the CeleryExecutor's own table).
    # the writers held the one warehouse slot on the worker too; the sensor did not
    pools = dict(cluster.sql("SELECT task_id, pool FROM task_instance WHERE dag_id = %s AND run_id = %s",
                             DAG_ID, RUN_ID))
    assert pools == {t: POOL if t != "wait_for_deliveries" else "default_pool" for t in DAILY_TASKS}
    # The run can be marked done a moment before the worker stores the last task's result.
    done = [("SUCCESS", len(DAILY_TASKS))]
    wait_until("the Celery result backend to record every task", 60,
               lambda: cluster.sql("SELECT status, count(*) FROM celery_taskmeta GROUP BY 1") == done,
               on_timeout=lambda: str(cluster.sql("SELECT task_id, status FROM celery_taskmeta")))
    # every task instance ran on the host of the worker named citycloud-test@<host>
    worker_log = cluster.logs["celery-worker"].read_text(errors="replace")
    worker_host = re.search(r"citycloud-test@(\S+) ready\.", worker_log).group(1)
    hosts = cluster.sql("SELECT DISTINCT hostname FROM task_instance WHERE dag_id = %s AND run_id = %s",
                        DAG_ID, RUN_ID)
    assert hosts == [(worker_host,)], (hosts, worker_host)
    succeeded = re.findall(r"Task execute_workload\[[0-9a-f-]+\] succeeded", worker_log)
    assert len(succeeded) == len(DAILY_TASKS), worker_log[-3000:]

    warehouse = cluster.root / "warehouse" / "citycloud.duckdb"
    assert published_marts(warehouse) == reference
    assert (cluster.root / "warehouse" / "citycloud.published.duckdb").is_file(), "readers' snapshot"


def test_services_script_refuses_bad_names_before_starting_anything(tmp_path):
    proc = subprocess.run(["bash", str(SERVICES), "start", str(tmp_path)], capture_output=True, text=True,
                          timeout=SERVICES_TIMEOUT, env={**os.environ, "PG_USER": "Bad-Name"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "celery_services.sh: PG_USER, PG_DB: lower-case SQL identifiers; PG_PASSWORD: letters and digits")
    assert not (tmp_path / "services.env").exists() and not (tmp_path / "redis.pid").exists()

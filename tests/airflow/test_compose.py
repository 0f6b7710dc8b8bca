"""docker-compose.yml: no Docker engine here, so check what can be checked statically — it is
YAML, it has the production services, its volumes and environment match the DAGs, and its
versions and Celery settings are those of constraints.txt and of `make test-celery` (test_celery.py)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import PurePosixPath

import pytest
import yaml

from airflow_harness import POOL, REPO

COMPOSE = REPO / "docker-compose.yml"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
CITYCLOUD_PATHS = ("CITYCLOUD_LANDING", "CITYCLOUD_WAREHOUSE", "CITYCLOUD_CONTRACTS", "CITYCLOUD_OUTPUT")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves the x-airflow-common anchors


def _mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(host source, container target, read_only) of each short-syntax volume."""
    out = []
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        # ${VAR:-default} sources contain a colon: rejoin from the right
        mode = parts[-1] if parts[-1] in ("ro", "rw") else None
        body = parts[:-1] if mode else parts
        target = body[-1]
        source = ":".join(body[:-1])
        out.append((source, target, mode == "ro"))
    return out


def _default(source: str) -> str:
    """The default of a ${VAR:-default} path (what `docker compose` uses when VAR is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", source)


def test_services_present(compose):
    services = compose["services"]
    assert {"postgres", "redis"} | AIRFLOW_SERVICES <= set(services)
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-apiserver"]["command"] == "api-server"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name], name
    assert {"postgres-db-volume", "citycloud-data"} <= set(compose["volumes"])


def test_production_executor_and_metadata_db(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"


def test_airflow_services_share_paths_and_settings(compose):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        for var in (*CITYCLOUD_PATHS, "CITYCLOUD_PII_KEY", "CITYCLOUD_HOME"):
            assert var in env, f"{name}: {var}"
        mounts = _mounts(service)
        targets = {t: (s, ro) for s, t, ro in mounts}
        # every data path the DAGs read lies on a mounted volume
        for var in CITYCLOUD_PATHS:
            path = PurePosixPath(env[var])
            assert any(path == PurePosixPath(t) or PurePosixPath(t) in path.parents for t in targets), (name, var)
        # the DAGs folder is the repo's dags/, the project folder the repo; the code is installed
        # in the image (below), not put on PYTHONPATH
        assert _default(targets[env["AIRFLOW__CORE__DAGS_FOLDER"]][0]) in ("./dags", "dags", "${PWD}/dags")
        assert _default(targets[env["CITYCLOUD_HOME"]][0]) == "."
        assert "PYTHONPATH" not in env
        # the warehouse is on the shared named volume, writable; the landing area is read-only
        warehouse_mount = max((t for t in targets if env["CITYCLOUD_WAREHOUSE"].startswith(t + "/")), key=len)
        assert targets[warehouse_mount] == ("citycloud-data", False)
        landing_mount = max((t for t in targets if env["CITYCLOUD_LANDING"].startswith(t)), key=len)
        assert targets[landing_mount][1] is True


def test_mounted_host_folders_exist_in_the_repo(compose):
    service = compose["services"]["airflow-scheduler"]
    for source, target, _ in _mounts(service):
        src = _default(source)
        if src.startswith(".") and target in ("/opt/airflow/dags", "/opt/citycloud", "/data/contracts"):
            assert (REPO / src).is_dir(), f"{src} -> {target}"
    contracts = PurePosixPath(service["environment"]["CITYCLOUD_CONTRACTS"]).name
    assert (REPO / "contracts" / contracts).is_file()


def test_the_image_installs_the_project(compose):
    """`pip install .` of pyproject.toml with every folder it maps into the namespace copied in."""
    import tomllib

    dockerfile = compose["x-airflow-common"]["build"]["dockerfile_inline"]
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {"citycloud", *setuptools["package-dir"].values()}
    copied = set(re.findall(r"^COPY (?:--chown=\S+ )?(\w+) /tmp/citycloud-src/\1$", dockerfile, re.M))
    assert copied == folders
    assert re.search(r"^COPY (?:--chown=\S+ )?pyproject.toml README.md /tmp/citycloud-src/$", dockerfile, re.M)
    assert "pip install --no-cache-dir --no-deps /tmp/citycloud-src" in dockerfile


def test_env_names_are_the_ones_the_code_reads(compose):
    from citycloud.config import Settings

    read = Settings.variables()  # the one object that reads CITYCLOUD_* (citycloud/config.py)
    env = compose["x-airflow-common"]["environment"]
    for var in env:
        if var.startswith("CITYCLOUD_"):
            assert var in read.values(), f"{var} is set in docker-compose.yml but no code reads it"
    # and every tunable the DAGs read can be set in compose
    orchestration = (REPO / "pipeline" / "orchestration.py").read_text(encoding="utf-8")
    used = {read[f] for f in re.findall(r"\b(?:Settings\(\)|s)\.(\w+)", orchestration) if f in read}
    assert {"CITYCLOUD_DELIVERY_TIMEOUT_HOURS", "CITYCLOUD_LANDING", "CITYCLOUD_EVALUATION"} <= used
    for var in used:
        if var not in ("CITYCLOUD_TASK_RETRIES", "CITYCLOUD_RETRY_DELAY_MINUTES", "CITYCLOUD_SETTLEMENT_POKE_MINUTES"):
            assert var in env, var


def test_init_creates_the_single_writer_pool(compose):
    init = compose["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert re.search(rf"airflow pools set {POOL} 1\b", script)
    assert "_AIRFLOW_DB_MIGRATE" in init["environment"]
    # the PII key is not interpolated into the command line (it would show in `docker inspect`)
    assert "$${CITYCLOUD_PII_KEY" in script and not re.search(r"(?<!\$)\$\{CITYCLOUD_PII_KEY", script)


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="no `docker compose` here")
def test_docker_compose_config_accepts_it():
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CITYCLOUD_PII_KEY": "x"},
    )
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- the Celery test's shape
def _pins(path) -> dict[str, str]:
    """name==version lines of a requirements/constraints file, names normalised."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1).lower())] = m.group(2)
    return pins


def _major(image: str) -> str:
    """postgres:15-bookworm -> 15, redis:7.0-bookworm -> 7"""
    return re.match(r"\d+", image.split(":", 1)[1]).group(0)


def test_image_installs_the_constrained_versions(compose):
    pins = _pins(REPO / "constraints.txt")
    build = compose["x-airflow-common"]["build"]["dockerfile_inline"]
    base = re.search(r"^FROM apache/airflow:([\d.]+)-python(\d+\.\d+)$", build, re.M)
    assert base and base.group(1) == pins["apache-airflow"], build
    # constraints.txt was resolved on the interpreter the tests run on
    assert base.group(2) == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f'"apache-airflow=={pins["apache-airflow"]}"' in build
    assert compose["x-airflow-common"]["image"].endswith(f":{pins['apache-airflow']}}}")
    # the whole tested tree, not just the top-level pins
    assert "COPY requirements.txt /tmp/citycloud-requirements.txt" in build
    assert "COPY constraints.txt /tmp/citycloud-constraints.txt" in build
    assert re.search(r"-r /tmp/citycloud-requirements.txt\s*\\?\s*-c /tmp/citycloud-constraints.txt", build)


def test_celery_dependencies_are_pinned():
    pins = _pins(REPO / "constraints.txt")
    required = (REPO / "requirements.txt").read_text(encoding="utf-8")
    for name in ("apache-airflow-providers-celery", "celery", "kombu", "redis", "asyncpg", "psycopg2-binary"):
        assert name in pins, f"{name} is not in constraints.txt"
    assert f"apache-airflow-providers-celery=={pins['apache-airflow-providers-celery']}" in required
    assert "celery>=5.5,<5.7" in required  # 5.7.0 breaks the provider (celery.backends.database.retry)
    assert tuple(int(p) for p in pins["celery"].split(".")[:2]) < (5, 7)


def test_compose_matches_the_celery_test(compose):
    """docker-compose.yml and `make test-celery` run the same executor, servers and drivers."""
    from test_celery import SERVICES, airflow_env

    services = compose["services"]
    pg_version = re.search(r"^PG_VERSION=(\d+)$", SERVICES.read_text(encoding="utf-8"), re.M).group(1)
    assert _major(services["postgres"]["image"]) == pg_version
    assert _major(services["redis"]["image"]) == "7"  # Debian bookworm's redis-server 7.0
    dummy = {"PG_USER": "u", "PG_PASSWORD": "p", "PG_PORT": "5432", "PG_DB": "d", "REDIS_PORT": "6379"}
    tested = airflow_env(dummy, REPO, 8080, {})
    env = compose["x-airflow-common"]["environment"]
    for var in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND",
                "AIRFLOW__CELERY__BROKER_URL"):
        scheme = lambda url: url.split("://")[0]  # noqa: E731
        assert scheme(env[var]) == scheme(tested[var]), var
    assert tested["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"

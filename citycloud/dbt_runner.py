"""Run dbt in this process (`dbtRunner`), streaming its progress from dbt's own events.

In-process saves a second Python start-up and dbt import per build (seconds on this machine),
and the warehouse stays written by one process: a killed `citycloud` takes its dbt with it,
so nothing can go on writing after a kill (the fault suite's "dbt-start"/"dbt-middle" points).
dbt keeps process-wide state (flags, event manager, the adapter's DuckDB environment), so
invocations are serialised by a lock, and the environment dbt reads (profile, target and log
paths) is set for the duration of one invocation only. Partial parsing stays on: its state
lives in the persistent target folder beside the warehouse (`<warehouse dir>/.dbt/target`).
The production build writes no manifest.json there (NO_MANIFEST), only run_results.json.
Results come from dbt's result objects, never from its text output.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from citycloud import fault_hook
from citycloud.config import DBT_PROJECT_DIR, CitycloudError, Settings

# dbt's events that report one finished node ("3 of 18 OK created sql table model ...").
_RESULT_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult",
                            "LogNodeResult"})
_FAILED = frozenset({"error", "fail", "runtime error"})
# The highest batch the previous build covered (macros/since_batch.sql). An environment
# variable, not a --vars value: dbt re-parses the whole project whenever --vars change.
SINCE_BATCH_ENV = "CITYCLOUD_SINCE_BATCH"
FUNNELS_ENV = "CITYCLOUD_FUNNEL_DEFINITIONS"  # the run's funnels as JSON (citycloud/funnels.py)
# dbt writes manifest.json (and semantic_manifest.json) twice per build, after parsing and at the
# end: 1-2 CPU s of JSON for files nothing of ours reads (citycloud.registry parses the project
# itself; partial parsing keeps its own partial_parse.msgpack). With this flag dbt writes no JSON
# artifact, so run_dbt writes run_results.json from the results (docs/performance.md, issue #28).
NO_MANIFEST = "--no-write-json"
_invocation = threading.Lock()  # dbt's global state allows one invocation at a time
_interrupted = threading.Event()  # a Ctrl-C arrived while dbt ran


def dbt_env(settings: Settings) -> dict[str, str]:
    state = settings.warehouse.parent / ".dbt"
    return {
        **os.environ,
        "CITYCLOUD_WAREHOUSE": str(settings.warehouse.resolve()),
        "CITYCLOUD_SPILL_DIR": str(settings.spill_dir.resolve()),
        "CITYCLOUD_DUCKDB_MEMORY_LIMIT": settings.memory_limit,
        "CITYCLOUD_DUCKDB_DISABLED_COMPRESSION": settings.disabled_compression,
        # The 好差评 deadline in working days (macros/reviews.sql).
        "CITYCLOUD_RECTIFY_WORKING_DAYS": str(settings.rectify_working_days),
        # The spark target (--engine spark): where its lake, tables and metastore live.
        "CITYCLOUD_SPARK_DIR": str(settings.spark_dir.resolve()),
        "CITYCLOUD_SPARK_MASTER": settings.spark_master,
        # Keep dbt's artifacts and logs beside the warehouse they describe, not in the repo.
        "DBT_TARGET_PATH": str((state / "target").resolve()),
        "DBT_LOG_PATH": str((state / "logs").resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # Every batch unless a command says otherwise (DbtCommand.env), whatever the caller's shell has.
        SINCE_BATCH_ENV: "-1",
        FUNNELS_ENV: "[]",
    }


@dataclass(frozen=True)
class DbtCommand:
    """dbt's command-line arguments and the environment variables one invocation adds."""
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ as `env` says for one dbt invocation (dbt reads its profile's env_var() there)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dbt(settings: Settings, command: list[str] | DbtCommand,
            progress: Callable[[str], None] | None = None) -> list[str]:
    """Run `dbt <args>` on the project in this process; raise CitycloudError naming what failed.

    Returns one line per finished node ("<unique_id>: <status>")."""
    if not isinstance(command, DbtCommand):
        command = DbtCommand(list(command))
    args = command.args
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    opened = []  # the DuckDB environment dbt-duckdb opened, to close it after the invocation

    def on_event(event) -> None:
        if not opened and DuckDBConnectionManager._ENV is not None:
            opened.append(DuckDBConnectionManager._ENV)
        if event.info.name not in _RESULT_EVENTS:
            return
        if progress:
            progress("dbt " + event.info.msg.strip())
        done, total = getattr(event.data, "index", 0), getattr(event.data, "total", 0)
        if total and done * 2 >= total and fault_hook.armed("dbt-middle"):
            # dbt runs in this process: a kill here stops it mid-build, as a frozen child did.
            _pause_in_dbt_thread("dbt-middle", dbt_pid=os.getpid())

    env = {**dbt_env(settings), **command.env}
    # No output: progress comes through on_event, failures from the results. `--log-level none`
    # silences dbt's file log too, and it stays off: with `--log-level-file info` a full disk
    # printed a logging traceback per event, and a Ctrl-C during dbt once left the run hanging
    # (tests/faults). Every node's result is in run_results.json (written below).
    cli_args = [*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
                "--no-use-colors", "--log-level", "none"]
    with _invocation, _environment(env), _watch_interrupts():
        fault_hook.pause_at("dbt-start", dbt_pid=os.getpid())
        try:
            outcome = dbtRunner(callbacks=[on_event]).invoke(cli_args)
        finally:
            _close_warehouse(opened)
    if isinstance(outcome.exception, (KeyboardInterrupt, SystemExit)):
        raise outcome.exception  # Ctrl-C inside dbt stops the run as it would anywhere else
    if NO_MANIFEST in args and hasattr(outcome.result, "write"):
        # run_results.json stays where operators (docs/airflow.md) and the benchmark read it
        outcome.result.write(os.path.join(env["DBT_TARGET_PATH"], "run_results.json"))
    node_results = [(r, str(getattr(r.status, "value", r.status))) for r in
                    getattr(outcome.result, "results", None) or []]
    if outcome.success:
        return [f"{r.node.unique_id}: {status}" for r, status in node_results]
    problems = [_problem(r.node, status, r.message) for r, status in node_results if status in _FAILED]
    if outcome.exception is not None:
        problems.insert(0, f"{type(outcome.exception).__name__}: {str(outcome.exception).strip()}")
    error = CitycloudError(f"dbt {args[0]} failed:\n  " + "\n  ".join(problems[:25] or ["(no result)"])
                           + f"\nEvery node's result: {env['DBT_TARGET_PATH']}/run_results.json")
    if outcome.exception is not None:
        raise error from outcome.exception  # a full disk stays findable (citycloud.db.no_space_error)
    raise error


def _problem(node, status: str, message: str | None) -> str:
    """One line per failed node, worded as dbt's own summary ("Failure in test <name> (<file>)")."""
    kind = getattr(node.resource_type, "value", node.resource_type)
    what = "Failure" if status == "fail" else "Error"
    return f"{what} in {kind} {node.name} ({node.original_file_path}): {(message or '').strip()}"


@contextmanager
def _watch_interrupts() -> Iterator[None]:
    """Note a Ctrl-C (SIGINT) while dbt runs, then let it act as before (KeyboardInterrupt):
    dbt cancels its queries and waits for its threads, so one paused at a fault point must
    learn of it. Signal handlers belong to the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if previous == signal.SIG_IGN:
            return
        _interrupted.set()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    _interrupted.clear()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _pause_in_dbt_thread(phase: str, **details: object) -> None:
    """fault_hook.pause_at from one of dbt's threads, given up when a Ctrl-C arrives (dbt then
    stops and waits for this thread)."""
    waiter = threading.Thread(target=fault_hook.pause_at, args=(phase,), kwargs=details, daemon=True)
    waiter.start()
    while waiter.is_alive() and not _interrupted.is_set():
        waiter.join(0.05)


def _close_warehouse(opened: list) -> None:
    """dbt-duckdb forgets its DuckDB environment at the end of a command without closing it:
    close it and drop dbt's adapters, so the warehouse file is released now and the next
    connection may open it with its own settings."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters

    for env in {id(e): e for e in [*opened, DuckDBConnectionManager._ENV] if e is not None}.values():
        env.close()
    DuckDBConnectionManager._ENV = None
    reset_adapters()
    gc.collect()


def build_args(since_batch: int, full_refresh: bool = False, extra_vars: dict | None = None,
               funnels: str = "[]") -> DbtCommand:
    """The production build: models, seeds and data tests of the batches after `since_batch`.

    dbt's unit tests are left out, as dbt recommends: they check the models' SQL on fixed
    inputs, not the data, so they belong to development and CI (`make test` runs them:
    tests/marts/test_dbt_build_command.py). `extra_vars` (the Spark target's lake) stay the same between builds, so
    partial parsing still applies. `funnels` is the run's funnel definitions as JSON
    (citycloud/funnels.py), read by the models when they compile, as the batch is."""
    args = ["build", "--exclude-resource-type", "unit_test", NO_MANIFEST]
    if extra_vars:
        args += ["--vars", json.dumps(extra_vars, sort_keys=True)]
    if full_refresh:
        args.append("--full-refresh")
    return DbtCommand(args, {SINCE_BATCH_ENV: str(int(since_batch)), FUNNELS_ENV: funnels})

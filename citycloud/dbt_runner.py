"""Run dbt as one subprocess (the single writer while it runs), streaming its progress.

The child must never outlive the `citycloud` process that started it: a dbt left writing
after its parent was killed would hold the warehouse and race the next run. So it runs in
its own process group (a Ctrl-C or a kill aimed at the parent's group is handled by the
parent, which stops dbt first) and asks the kernel for SIGKILL when its parent dies
(prctl PR_SET_PDEATHSIG), which also covers a SIGKILL of the parent.
dbt runs out of process rather than through dbtRunner because dbt keeps process-wide state
(flags, logging, adapter caches) between invocations, and Airflow workers and the tests
call it many times in one process.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

from citycloud import fault_hook
from citycloud.config import DBT_PROJECT_DIR, CitycloudError, Settings

_PR_SET_PDEATHSIG = 1

_PROGRESS = re.compile(r"\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP)")


def dbt_env(settings: Settings) -> dict[str, str]:
    state = settings.warehouse.parent / ".dbt"
    return {
        **os.environ,
        "CITYCLOUD_WAREHOUSE": str(settings.warehouse.resolve()),
        "CITYCLOUD_SPILL_DIR": str(settings.spill_dir.resolve()),
        "CITYCLOUD_DUCKDB_MEMORY_LIMIT": settings.memory_limit,
        # The spark target (--engine spark): where its lake, tables and metastore live.
        "CITYCLOUD_SPARK_DIR": str(settings.spark_dir.resolve()),
        "CITYCLOUD_SPARK_MASTER": settings.spark_master,
        # Keep dbt's artifacts and logs beside the warehouse they describe, not in the repo.
        "DBT_TARGET_PATH": str((state / "target").resolve()),
        "DBT_LOG_PATH": str((state / "logs").resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(settings: Settings, args: list[str], progress: Callable[[str], None] | None = None) -> list[str]:
    """Run `dbt <args>` on the project; raise CitycloudError naming what failed."""
    dbt = Path(sys.executable).parent / "dbt"
    cmd = [str(dbt), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
           "--no-use-colors"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dbt_env(settings), cwd=DBT_PROJECT_DIR,
                            preexec_fn=_die_with_parent(os.getpid()), process_group=0)
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        if fault_hook.armed("dbt-start"):
            os.kill(proc.pid, signal.SIGSTOP)
            fault_hook.pause_at("dbt-start", dbt_pid=proc.pid)
            os.kill(proc.pid, signal.SIGCONT)  # released: dbt goes on
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if step := _PROGRESS.search(line):
                if progress:
                    progress("dbt " + line.split("  ", 1)[-1].strip())
                if fault_hook.armed("dbt-middle") and _past_half(step.group(0)):
                    os.kill(proc.pid, signal.SIGSTOP)  # dbt frozen mid-build until the test kills us
                    fault_hook.pause_at("dbt-middle", dbt_pid=proc.pid)
                    os.kill(proc.pid, signal.SIGCONT)  # released: dbt goes on
        proc.wait()
    except BaseException:
        # Interrupted (Ctrl-C, an error reading its output): dbt stops with us, not after us.
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        start = next((i for i, ln in enumerate(lines) if "Completed with" in ln), max(len(lines) - 25, 0))
        problems = [ln for ln in lines[start:] if ln.strip()][:25]
        # A full disk often shows first in a log write's traceback, far from the summary.
        problems = [ln for ln in lines if "No space left on device" in ln][:1] + problems
        raise CitycloudError(
            f"dbt {args[0]} failed (exit {proc.returncode}):\n  " + "\n  ".join(problems)
            + f"\nFull log: {dbt_env(settings)['DBT_LOG_PATH']}/dbt.log"
        )
    return lines


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: have the kernel SIGKILL the child when the parent dies."""
    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return arrange


def _past_half(step: str) -> bool:
    done, total = (int(n) for n in re.findall(r"\d+", step)[:2])
    return done * 2 >= total


def build_args(since_batch: int, full_refresh: bool = False) -> list[str]:
    args = ["build", "--vars", json.dumps({"since_batch": since_batch})]
    if full_refresh:
        args.append("--full-refresh")
    return args

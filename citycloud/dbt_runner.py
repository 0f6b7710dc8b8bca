"""Run dbt as one subprocess (the single writer while it runs), streaming its progress."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

from citycloud.config import DBT_PROJECT_DIR, CitycloudError, Settings

_PROGRESS = re.compile(r"\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP)")


def dbt_env(settings: Settings) -> dict[str, str]:
    state = settings.warehouse.parent / ".dbt"
    return {
        **os.environ,
        "CITYCLOUD_WAREHOUSE": str(settings.warehouse.resolve()),
        "CITYCLOUD_SPILL_DIR": str(settings.spill_dir.resolve()),
        "CITYCLOUD_DUCKDB_MEMORY_LIMIT": settings.memory_limit,
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
                            env=dbt_env(settings), cwd=DBT_PROJECT_DIR)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if progress and _PROGRESS.search(line):
            progress("dbt " + line.split("  ", 1)[-1].strip())
    if proc.wait() != 0:
        start = next((i for i, ln in enumerate(lines) if "Completed with" in ln), max(len(lines) - 25, 0))
        problems = [ln for ln in lines[start:] if ln.strip()][:25]
        raise CitycloudError(
            f"dbt {args[0]} failed (exit {proc.returncode}):\n  " + "\n  ".join(problems)
            + f"\nFull log: {dbt_env(settings)['DBT_LOG_PATH']}/dbt.log"
        )
    return lines


def build_args(since_batch: int, full_refresh: bool = False) -> list[str]:
    args = ["build", "--vars", json.dumps({"since_batch": since_batch})]
    if full_refresh:
        args.append("--full-refresh")
    return args

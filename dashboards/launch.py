"""Starting the dashboard: the `streamlit run` command line, and `serve`, which becomes it.

`serve` replaces the calling process with Streamlit (os.execve of the same interpreter), so
the pid a user sees for `citycloud dashboard` is the server itself: `kill PID` or Ctrl-C stop
the server and free its port, with no child left behind holding it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from citycloud.config import CitycloudError, published_path

APP = Path(__file__).resolve().parent / "app.py"


def command(
    warehouse: Path | str,
    port: int = 8501,
    headless: bool = True,
    address: str = "127.0.0.1",
    contracts: Path | str | None = None,
) -> list[str]:
    """The `streamlit run` command line that serves the dashboard."""
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(int(port)),
        "--server.headless", "true" if headless else "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]
    # This machine only unless asked: the pages show city data.
    cmd += ["--server.address", address or "127.0.0.1"]
    cmd += ["--", "--warehouse", str(Path(warehouse).expanduser().resolve())]
    if contracts:
        cmd += ["--contracts", str(Path(contracts).expanduser().resolve())]
    return cmd


def check_warehouse(warehouse: Path | str) -> Path:
    """The warehouse path, refused (one line) when neither it nor its published snapshot exists."""
    warehouse = Path(warehouse).expanduser()
    if not warehouse.exists() and not published_path(warehouse).exists():
        raise CitycloudError(f"warehouse {warehouse} does not exist (nor its published snapshot): "
                             "run `citycloud run` first, or check the path")
    return warehouse


def serve(
    warehouse: Path | str,
    port: int = 8501,
    headless: bool = True,
    address: str = "127.0.0.1",
    contracts: Path | str | None = None,
) -> NoReturn:
    """Become the Streamlit server for `warehouse` (its `.published.duckdb` snapshot) on `port`.

    Never returns: the process is replaced (same pid), so signals reach the server directly.
    `address` is the interface to listen on (default 127.0.0.1, this machine only; "0.0.0.0"
    opens it to the network); `contracts` is the contracts.yml whose targets the Settlement
    page shows (default: CITYCLOUD_CONTRACTS or the project's contracts/contracts.yml).
    """
    env = dict(os.environ)
    env["CITYCLOUD_WAREHOUSE"] = str(Path(warehouse).expanduser().resolve())
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    cmd = command(warehouse, port, headless, address, contracts)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)

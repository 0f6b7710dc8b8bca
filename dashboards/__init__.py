"""The operators' Streamlit dashboard (read-only: it reads the published snapshot only).

`serve(warehouse, port)` runs `python -m streamlit run dashboards/app.py` and blocks until the
server stops; the `citycloud dashboard --warehouse FILE [--port N]` verb calls it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"

__all__ = ["APP", "serve", "command"]


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


def serve(
    warehouse: Path,
    port: int = 8501,
    headless: bool = True,
    address: str = "127.0.0.1",
    contracts: Path | str | None = None,
) -> int:
    """Serve the dashboard for `warehouse` (its `.published.duckdb` snapshot) on `port`.

    Blocks until the server exits (Ctrl-C stops it) and returns its exit code. `address`
    is the interface to listen on (default 127.0.0.1, this machine only; "0.0.0.0" opens it to the network);
    `contracts` is the contracts.yml whose targets the Settlement page shows (default:
    CITYCLOUD_CONTRACTS or the project's contracts/contracts.yml).
    """
    env = dict(os.environ)
    env["CITYCLOUD_WAREHOUSE"] = str(Path(warehouse).expanduser().resolve())
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    proc = subprocess.Popen(command(warehouse, port, headless, address, contracts), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

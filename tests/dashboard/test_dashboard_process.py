"""`citycloud dashboard` stops with its pid: SIGTERM to the command frees the port (no Streamlit
child left holding it), so the next start on the same port succeeds."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import dashboard_handmade as handmade
from dashboard_support import CITYCLOUD, ROOT, free_port


def start(warehouse: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([str(CITYCLOUD), "dashboard", "--warehouse", str(warehouse), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dashboard exited {proc.returncode}: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"dashboard did not answer in 60s: {log.read_text()[-2000:]}")


def port_is_free(port: int, wait: float = 10) -> bool:
    """Whether a server can listen on `port` now (SO_REUSEADDR, as Streamlit's server binds:
    connections closed a moment ago in TIME_WAIT do not count), waiting up to `wait` s."""
    deadline = time.monotonic() + wait
    while not _bindable(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _bindable(port)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def listeners(port: int) -> list[str]:
    """Processes whose command line serves `port` (a Streamlit left behind would show here)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--server.port" in cmd and str(port).encode() in cmd:
            found.append(pid)
    return found


@pytest.mark.skipif(not CITYCLOUD.exists(), reason="the citycloud command is not installed in this venv")
def test_sigterm_to_the_dashboard_command_frees_its_port(tmp_path):
    warehouse = tmp_path / "wh.duckdb"
    handmade.build(warehouse)
    port = free_port()
    first = start(warehouse, port, tmp_path / "first.log")
    try:
        os.kill(first.pid, signal.SIGTERM)  # the pid a user sees for `citycloud dashboard`, not its group
        first.wait(timeout=20)
        assert port_is_free(port), f"port {port} still held by {listeners(port)}"
        assert listeners(port) == []
        second = start(warehouse, port, tmp_path / "second.log")
        second.send_signal(signal.SIGINT)  # Ctrl-C stops it as well
        second.wait(timeout=20)
        assert listeners(port) == [] and port_is_free(port)
    finally:  # on failure, leave nothing behind: whatever this test started on its port
        if first.poll() is None:
            first.kill()
            first.wait()
        for pid in listeners(port):
            os.kill(int(pid), signal.SIGKILL)

"""Fixtures for the dashboard tests: a warehouse snapshot, a served dashboard, a browser."""
from __future__ import annotations

import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_browser import Browser, chromium_path  # noqa: E402
from dashboard_support import Dashboard, build_warehouse_under_test  # noqa: E402


@pytest.fixture(scope="session")
def warehouse_future(tmp_path_factory, tiny_built):
    """Starts settling a copy of the session's worked example (tests/conftest.py) in the
    background, so that a test that does not need it can run meanwhile."""
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(build_warehouse_under_test, tmp_path_factory.mktemp("dashboard-warehouse"), tiny_built)
    yield future
    executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def warehouse_under_test(warehouse_future) -> dict:
    try:
        facts = warehouse_future.result(timeout=600)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    print(f"\ndashboard tests use: {facts['note']}", file=sys.stderr)
    if facts["kind"] != "tiny":
        warnings.warn(f"dashboard browser tests ran on a hand-built snapshot: {facts['note']}", stacklevel=1)
    return facts


@pytest.fixture(scope="session")
def browser():
    if not chromium_path():
        pytest.fail("chromium is not installed: run `make browser` (or scripts/install_chromium.sh)")
    with Browser(width=1440, height=1000) as b:
        yield b


@pytest.fixture(scope="session")
def dashboard(warehouse_under_test, tmp_path_factory):
    log = tmp_path_factory.mktemp("dashboard-log") / "streamlit.log"
    d = Dashboard(warehouse_under_test["warehouse"], log)
    yield d
    d.stop()

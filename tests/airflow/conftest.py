"""Fixtures for the Airflow tests; the harness (temporary AIRFLOW_HOME) is in airflow_harness.py."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import airflow_harness as harness  # sets AIRFLOW_HOME & co. before any test imports Airflow


@pytest.fixture(scope="session", autouse=True)
def _remove_airflow_home():
    yield
    shutil.rmtree(harness.AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` once per session (SQLite), plus the one-slot pool."""
    return harness.migrate_db()

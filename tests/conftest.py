"""Shared fixtures: a PII key, hand-made landing folders, and warehouse helpers."""
from __future__ import annotations

import gzip
import hashlib
import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

from citycloud.config import Settings

TEST_KEY = "test-key-not-secret-but-32-bytes-long"
TINY = Path(__file__).parent / "data" / "tiny"


@pytest.fixture(autouse=True)
def pii_key_env(monkeypatch):
    monkeypatch.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
    monkeypatch.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "2GB")


# What the test session's own process may pass on to a process that must not see its settings.
PROCESS_VARIABLES = ("PATH", "HOME", "PYTHONPATH")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The worked example run once through the whole pipeline, for the tests that only read it
    (golden marts, quality checks, user operations, the semantic layer, the scorecard): (Settings,
    RunReport, the build process's environment variable names). Tests that change a warehouse
    copy it first. Built in a process whose environment has no CITYCLOUD_* variable, from a
    `Settings` object alone (tests/tiny_build.py): the pipeline must not read the environment."""
    import pickle
    import shutil
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("tiny_built")
    shutil.copytree(TINY / "landing", tmp / "landing")
    (tmp / "home").mkdir()
    env = {name: os.environ[name] for name in PROCESS_VARIABLES if name in os.environ}
    env["HOME"] = str(tmp / "home")  # nothing from the user's dotfiles either
    proc = subprocess.run([sys.executable, "-m", "tests.tiny_build", str(tmp), TEST_KEY], env=env,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    variables, report, settings = pickle.loads((tmp / "report.pickle").read_bytes())
    return settings, report, variables


@pytest.fixture(scope="session")
def tiny_built(tiny_run) -> Settings:
    """The worked example's Settings, built once (`tiny_run`)."""
    return tiny_run[0]


# The generated landing area the tests on generated data read (marts, semantic layer,
# scorecard): three cities (310000, 430100, 510100), January and February 2026 complete (late
# events, dirt and all).
GENERATED_START, GENERATED_DAYS, GENERATED_CITIES = date(2026, 1, 1), 59, 3


@pytest.fixture(scope="session")
def generated_built(tmp_path_factory) -> Settings:
    """The generated landing area (GENERATED_*) run once through the whole pipeline, for the
    tests on generated data (marts, the semantic layer, the scorecard). Tests that change it
    (late deliveries, scoring a month) copy it first."""
    from citycloud import pipeline
    from citycloud.generate import generate

    tmp = tmp_path_factory.mktemp("generated_built")
    generate(tmp / "landing", cities=GENERATED_CITIES, start=GENERATED_START, days=GENERATED_DAYS, users=300,
             seed=11)
    settings = make_settings(tmp, tmp / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        mp.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "2GB")
        assert pipeline.run(settings).published
    return settings


def copy_warehouse(settings: Settings, tmp_path: Path, landing: Path | None = None) -> Settings:
    """A copy of `settings`' warehouse and snapshot under tmp_path, for a test that writes to it
    (reading `landing`, by default the same landing area)."""
    import shutil

    copy = make_settings(tmp_path, landing or settings.landing)
    copy.warehouse.parent.mkdir(parents=True)
    shutil.copy(settings.warehouse, copy.warehouse)
    shutil.copy(settings.published, copy.published)
    return copy


def write_delivery(landing: Path, city: str, source: str, dt: str, files: dict[str, str | bytes],
                   complete: bool = True) -> Path:
    """Write one delivery folder; names ending .gz are gzip-compressed (mtime 0)."""
    folder = landing / city / source / f"dt={dt}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        if name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        (folder / name).write_bytes(data)
    if complete:
        (folder / "_SUCCESS").write_bytes(b"")
    return folder


def make_settings(tmp_path: Path, landing: Path | None = None) -> Settings:
    s = Settings()
    s.landing = landing or tmp_path / "landing"
    s.warehouse = tmp_path / "wh" / "citycloud.duckdb"
    s.output = tmp_path / "output"
    return s


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def table_fingerprints(warehouse: Path, schemas=("raw", "audit", "staging", "intermediate", "marts_build", "marts"),
                       exclude_columns=()) -> dict[str, str]:
    """sha256 of every table's sorted content: equal fingerprints = identical tables."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            f"AND table_schema IN ({', '.join(repr(s) for s in schemas)}) ORDER BY ALL").fetchall()
        out = {}
        for schema, table in tables:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", [schema, table]).fetchall() if c not in exclude_columns]
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {schema}.{table} ORDER BY ALL").fetchall()
            out[f"{schema}.{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return out
    finally:
        con.close()


# The generated landing area of the Alerts page and the Users page's journeys (tests/dashboard,
# tests/access): two cities (310000, 510100) from 2026-01-05 for 66 days with the holidays and two
# injected drops (Shanghai's accesses of 2026-03-10 and -11), built with the demo's funnels; one
# busy Chengdu service's catalogue name is markup (shown as text, never rendered).
JOURNEYS_START, JOURNEYS_DAYS = date(2026, 1, 5), 66
HOSTILE_SERVICE = "S5101000724"
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>**办证**[链接](javascript:alert(1))"


@pytest.fixture(scope="session")
def alerts_journeys_built(tmp_path_factory) -> Settings:
    """The landing area above run once through the whole pipeline (about 30 s)."""
    import csv

    from pydantic import SecretStr

    from citycloud import pipeline
    from citycloud.config import PROJECT_ROOT
    from citycloud.generate import generate

    tmp = tmp_path_factory.mktemp("alerts_journeys")
    generate(tmp / "landing", cities=2, start=JOURNEYS_START, days=JOURNEYS_DAYS, users=300, dirt=False,
             holidays=True, inject_drops=2, seed=3)
    for catalog in (tmp / "landing" / "510100" / "service_catalog").rglob("catalog.csv*"):
        opener = gzip.open if catalog.suffix == ".gz" else open
        with opener(catalog, "rt", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            if row["service_id"] == HOSTILE_SERVICE:
                row["service_name"] = HOSTILE_NAME
        with opener(catalog, "wt", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    settings = make_settings(tmp, tmp / "landing")
    settings.funnels = PROJECT_ROOT / "pipeline" / "demo_funnels.yml"
    settings.pii_key = SecretStr(TEST_KEY)  # a session fixture runs before the autouse key fixture
    settings.memory_limit = "2GB"
    assert pipeline.run(settings).published
    return settings

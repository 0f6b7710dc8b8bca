"""Shared fixtures: a PII key, hand-made landing folders, and warehouse helpers."""
from __future__ import annotations

import gzip
import hashlib
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


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory) -> Settings:
    """The worked example run once through the whole pipeline, for the tests that only read it
    (golden marts, user operations, the semantic layer, the scorecard). Tests that change a
    warehouse copy it first."""
    import shutil

    from citycloud import pipeline

    tmp = tmp_path_factory.mktemp("tiny_built")
    shutil.copytree(TINY / "landing", tmp / "landing")
    settings = make_settings(tmp, tmp / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        mp.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "2GB")
        assert pipeline.run(settings).published
    return settings


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

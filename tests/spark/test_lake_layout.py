"""The lake's layout (citycloud/spark/lake.py): registrations partitioned by delivery (dt), and a
lake written in the earlier layout (registrations by event day, a ledger with no layout) exported
again once, its Spark table declared again until a build has done it. DuckDB only: no Spark."""
from __future__ import annotations

import json
import shutil

import duckdb

from citycloud import pipeline
from citycloud.db import connect
from citycloud.spark import lake
from tests.conftest import TINY, make_settings


def _files(root) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*.parquet"))}


def _sync(settings) -> dict:
    con = connect(settings.warehouse, settings=settings)
    try:
        return lake.sync(con, settings)
    finally:
        con.close()


def test_an_old_layout_lake_is_exported_again_once_and_its_table_declared_again(tmp_path, monkeypatch):
    shutil.copytree(TINY / "landing", tmp_path / "landing")
    settings = make_settings(tmp_path, tmp_path / "landing")
    pipeline.ingest(settings)
    root = lake.lake_dir(settings)
    with monkeypatch.context() as old_code:  # the lake as the code before the change wrote it
        old_code.setattr(lake, "DAY_COLUMN", {**lake.DAY_COLUMN, "registrations": "event_day"})
        _sync(settings)
    ledger = json.loads((root / lake.MANIFEST).read_text())
    del ledger["_layout"]
    (root / lake.MANIFEST).write_text(json.dumps(ledger))
    assert {p.parent.name.split("=")[0] for p in (root / "registrations").rglob("*.parquet")} == {"event_day"}
    accesses = _files(root / "service_access")

    tables = _sync(settings)
    assert {name: table["redeclare"] for name, table in tables.items() if "redeclare" in table} == {
        "raw.registrations": True, "raw.service_access": False, "raw.ratings": False,
        "raw.review_tickets": False, "raw.service_catalog": False}
    assert tables["raw.registrations"]["partitioned_by"] == ["city_code", "dt"]
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    dts = {f"city_code={city}/dt={dt}" for city, dt in con.execute(
        "SELECT city_code, dt FROM audit.deliveries WHERE source = 'registrations' AND rows_loaded > 0").fetchall()}
    raw = con.execute("SELECT city_code, event_id, dt, batch_id FROM raw.registrations ORDER BY ALL").fetchall()
    exported = con.execute(f"SELECT city_code::VARCHAR, event_id, dt::DATE, batch_id FROM read_parquet("
                           f"'{root}/registrations/*/*/*.parquet', hive_partitioning = true) ORDER BY ALL").fetchall()
    con.close()
    folders = {str(p.parent.relative_to(root / "registrations")) for p in (root / "registrations").rglob("*.parquet")}
    assert folders == dts and len(dts) == 32
    assert exported == raw and len(raw) == 260
    assert _files(root / "service_access") == accesses, "a source whose layout is unchanged was written again"

    # Until a build has declared the table again (a build cut off after the export), it stays marked.
    assert _sync(settings)["raw.registrations"]["redeclare"] is True
    registrations = _files(root / "registrations")
    lake.declared(settings)
    assert _sync(settings)["raw.registrations"]["redeclare"] is False
    assert _files(root / "registrations") == registrations

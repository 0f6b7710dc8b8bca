"""One branch for blocking failures: the DAG's check task fails the way `citycloud run` does
(pipeline.stop_if_blocked): the same message, the build marked blocked, nothing published."""
from __future__ import annotations

import datetime as dt

import pytest
import quality_warehouse as warehouse
from airflow.sdk.exceptions import AirflowFailException

from citycloud.pipeline import orchestration
from citycloud.db import connect
from tests.conftest import TEST_KEY


def test_check_step_blocks_the_build_like_citycloud_run(tmp_path, monkeypatch):
    settings = warehouse.make_settings(tmp_path)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con)
    # a mart row with dau > wau: blocking (the 2 cities' other checks pass)
    con.execute("UPDATE marts_build.kpi_daily SET dau = wau + 1 WHERE city_code = '310000' AND kpi_date = ?",
                [warehouse.day(35)])
    con.execute("INSERT INTO audit.builds (build_id, batch_id, status) VALUES (1, 2, 'built')")
    con.close()
    for name, value in (("WAREHOUSE", settings.warehouse), ("LANDING", settings.landing),
                        ("OUTPUT", settings.output), ("CONTRACTS", settings.contracts), ("PII_KEY", TEST_KEY)):
        monkeypatch.setenv(f"CITYCLOUD_{name}", str(value))

    with pytest.raises(AirflowFailException) as err:
        orchestration.check_step({"logical_date": dt.datetime(2026, 2, 10, 2, tzinfo=orchestration.BUSINESS_TZ)})

    message = str(err.value)
    page = settings.output / "data_docs" / "citycloud-quality.html"
    assert message.startswith("blocking data-quality failures, marts NOT published:\n  ")
    assert message.endswith(f"\nThe previous marts stay published. Quality page: {page}")
    assert "310000" in message and "dau" in message
    con = connect(settings.warehouse, settings=settings, read_only=True)
    (status, recorded), = con.execute("SELECT status, message FROM audit.builds").fetchall()
    con.close()
    assert status == "blocked"
    assert message.startswith(recorded)

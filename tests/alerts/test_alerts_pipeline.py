"""Through the real pipeline: a generated city with one injected drop is flagged and sent; a late
re-export of that day with its true data moves it back inside the band, and `resolved` is sent
once for each of its alerts; with nothing new, nothing more is sent."""
from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta

import pytest

from citycloud import pipeline
from citycloud.alerts import send_alerts
from citycloud.config import BUSINESS_TZ
from citycloud.generate import generate
from tests.alerts.conftest import write_config
from tests.conftest import TEST_KEY, make_settings, query

# Three generated pipeline runs: the end-to-end tier (`make test-e2e`, which CI runs after `make
# test`; #30). `make test` keeps the parts: anomalies found through the pipeline on injected drops
# (tests/dashboard/test_dashboard_alerts_journeys.py, on the session's alerts_journeys_built),
# sending once and `resolved` once, and missing deliveries (test_alerts.py, on hand-made tables).
pytestmark = [pytest.mark.slow, pytest.mark.e2e]

AS_OF = datetime(2026, 3, 12, 8, 0, tzinfo=BUSINESS_TZ)  # every day due: no missing deliveries


def test_a_late_reexport_resolves_the_anomaly_once(tmp_path, receiver, robots, monkeypatch):
    monkeypatch.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
    monkeypatch.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "1GB")
    landing, true_landing = tmp_path / "landing", tmp_path / "true"
    summary = generate(landing, cities=1, start=date(2026, 1, 5), days=66, dirt=False, holidays=True, inject_drops=1)
    generate(true_landing, cities=1, start=date(2026, 1, 5), days=66, dirt=False, holidays=True)
    [dropped] = summary["injected_drops"]  # 310000/service_access/dt=...
    day = date.fromisoformat(dropped.rsplit("=", 1)[1])
    settings = make_settings(tmp_path, landing)
    settings.alert_retry_wait_seconds = 0
    assert pipeline.run(settings).published
    flagged = query(settings.warehouse, "select metric, service_id from marts.kpi_anomalies order by all")
    assert query(settings.warehouse, "select distinct kpi_date from marts.kpi_anomalies") == [(day,)]
    assert ("total_accesses", None) in flagged and ("dau", None) in flagged
    config = write_config(tmp_path / "alerts.yml", receiver)
    send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    opened = [b for b in receiver.bodies("/hook") if b["kind"] == "anomaly"]
    assert sorted(((b["metric"], b["service_id"], b["status"]) for b in opened), key=str) == \
        sorted(((m, s, "open") for m, s in flagged), key=str)
    assert all(b["day"] == day.isoformat() and b["direction"] == "down" for b in opened)

    # the city re-exports that day with its true data, late
    shutil.rmtree(landing / dropped)
    shutil.copytree(true_landing / dropped, landing / dropped)
    assert pipeline.run(settings).published
    assert query(settings.warehouse, "select count(*) from marts.kpi_anomalies") == [(0,)]
    before = len(receiver.posts)
    send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    resolved = receiver.bodies("/hook")[before:]
    assert sorted(((b["metric"], b["service_id"], b["status"]) for b in resolved), key=str) == \
        sorted(((m, s, "resolved") for m, s in flagged), key=str)
    assert all(b["message"].startswith("已恢复:") for b in resolved)
    # nothing new: nothing sent
    assert send_alerts(settings, config, as_of=AS_OF, say=lambda _: None).endswith("0 message(s) sent, 0 pending")
    assert len(receiver.posts) == before + len(flagged)


def test_injected_missing_deliveries_are_reported_and_nothing_else(tmp_path, receiver, robots, monkeypatch):
    monkeypatch.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
    monkeypatch.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "1GB")
    landing = tmp_path / "landing"
    summary = generate(landing, cities=1, start=date(2026, 3, 2), days=14, dirt=False, inject_missing=2)
    assert len(summary["injected_missing"]) == 2
    assert not any((landing / folder).exists() for folder in summary["injected_missing"])
    settings = make_settings(tmp_path, landing)
    assert pipeline.run(settings).published
    lines: list[str] = []
    # the morning after the last day's deadline (2026-03-15 + 1 day + 6 h)
    send_alerts(settings, write_config(tmp_path / "alerts.yml", receiver),
                as_of=datetime(2026, 3, 16, 7, 0, tzinfo=BUSINESS_TZ), dry_run=True, say=lines.append)
    expected = []
    for folder in summary["injected_missing"]:
        _, source, dt_part = folder.split("/")
        day = date.fromisoformat(dt_part.removeprefix("dt="))
        due = f"{day + timedelta(days=1)} 06:00"
        expected.append(f"  would send to ops-hook (open): 上海 {day} {source} 数据截止 {due} 未收到完整交付")
    assert lines == sorted(expected, key=lambda line: (line.split()[6], line.split()[7]))

"""The one settings object: every CITYCLOUD_* variable, defaults, the secret key, one-line errors."""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from citycloud.config import CitycloudError, Settings, pii_key

KEY = "test-key-not-secret-but-32-bytes-long"


def test_defaults_follow_home_and_warehouse(monkeypatch, tmp_path):
    monkeypatch.setenv("CITYCLOUD_HOME", str(tmp_path))
    s = Settings(warehouse=tmp_path / "wh" / "w.duckdb")
    assert s.landing == tmp_path / "landing"
    assert s.contracts == tmp_path / "contracts" / "contracts.yml"
    assert s.evaluation == tmp_path / "contracts" / "evaluation.yml"
    assert s.assessments is None  # only when the file exists
    assert s.spill_dir == tmp_path / "wh" / ".spill"
    assert s.published == tmp_path / "wh" / "w.published.duckdb"
    assert not s.chosen("output") and s.chosen("warehouse")


def test_every_historical_variable_is_read(monkeypatch, tmp_path):
    values = {"CITYCLOUD_LANDING": "~/land", "CITYCLOUD_WAREHOUSE": str(tmp_path / "w.duckdb"),
              "CITYCLOUD_CONTRACTS": str(tmp_path / "c.yml"), "CITYCLOUD_OUTPUT": str(tmp_path / "out"),
              "CITYCLOUD_EVALUATION": str(tmp_path / "e.yml"), "CITYCLOUD_ASSESSMENTS": str(tmp_path / "a.yml"),
              "CITYCLOUD_DUCKDB_MEMORY_LIMIT": "3GB", "CITYCLOUD_DUCKDB_THREADS": "3",
              "CITYCLOUD_SPILL_DIR": str(tmp_path / "spill"), "CITYCLOUD_DELIVERY_TIMEOUT_HOURS": "0.5",
              "CITYCLOUD_DELIVERY_POKE_MINUTES": "1", "CITYCLOUD_EXPECTED_LOOKBACK_DAYS": "0",
              "CITYCLOUD_SETTLEMENT_WAIT_HOURS": "2", "CITYCLOUD_SETTLEMENT_POKE_MINUTES": "3",
              "CITYCLOUD_TASK_RETRIES": "4", "CITYCLOUD_RETRY_DELAY_MINUTES": "5", "CITYCLOUD_DASHBOARD_TTL": "7",
              "CITYCLOUD_LATE_AFTER_DEADLINE": "1"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.landing, s.warehouse, s.contracts, s.output) == (
        Path("~/land").expanduser(), tmp_path / "w.duckdb", tmp_path / "c.yml", tmp_path / "out")
    assert (s.evaluation, s.assessments, s.spill_dir) == (tmp_path / "e.yml", tmp_path / "a.yml", tmp_path / "spill")
    assert (s.memory_limit, s.threads, s.dashboard_ttl) == ("3GB", 3, 7)
    assert (s.delivery_timeout_hours, s.delivery_poke_minutes, s.expected_lookback_days) == (0.5, 1.0, 0)
    assert (s.settlement_wait_hours, s.settlement_poke_minutes, s.task_retries, s.retry_delay_minutes) == (2, 3, 4, 5)
    assert s.late_after_hours == 24.5
    assert s.chosen("output")
    # keyword arguments win over the environment (CLI options, tests)
    assert Settings(memory_limit="1GB", landing=tmp_path).memory_limit == "1GB"


def test_one_delivery_deadline_for_the_dag_and_the_dashboard(monkeypatch):
    from citycloud.pipeline import orchestration

    monkeypatch.setenv("CITYCLOUD_DELIVERY_TIMEOUT_HOURS", "2")
    assert orchestration.delivery_deadline(dt.date(2026, 3, 3)).isoformat() == "2026-03-04T02:00:00+08:00"
    assert Settings().late_after_hours is None  # the dashboard judges by it only when asked
    monkeypatch.setenv("CITYCLOUD_LATE_AFTER_DEADLINE", "true")
    assert Settings().late_after_hours == 26


def test_the_former_dashboard_deadline_is_a_deprecated_alias(monkeypatch):
    monkeypatch.setenv("CITYCLOUD_DELIVERY_DEADLINE_HOURS", "30")  # hours after the start of the day
    with pytest.warns(DeprecationWarning, match="CITYCLOUD_DELIVERY_TIMEOUT_HOURS"):
        s = Settings()
    assert (s.delivery_timeout_hours, s.late_after_hours) == (6, 30)
    monkeypatch.setenv("CITYCLOUD_DELIVERY_TIMEOUT_HOURS", "1")  # the new name wins
    with pytest.warns(DeprecationWarning):
        assert Settings().delivery_timeout_hours == 1


def test_pii_key_is_secret_in_repr_and_logs(monkeypatch, caplog):
    monkeypatch.setenv("CITYCLOUD_PII_KEY", KEY)
    s = Settings()
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings %s %r", s, s)
    for text in (repr(s), str(s), s.model_dump_json(), caplog.text):
        assert KEY not in text
    assert "**********" in repr(s)
    assert pii_key() == KEY.encode() and pii_key(settings=s) == KEY.encode()


def test_pii_key_missing_or_weak(monkeypatch):
    monkeypatch.delenv("CITYCLOUD_PII_KEY")
    assert pii_key(required=False) is None
    with pytest.raises(CitycloudError, match="CITYCLOUD_PII_KEY is not set"):
        pii_key()
    monkeypatch.setenv("CITYCLOUD_PII_KEY", "short")
    with pytest.raises(CitycloudError, match=r"too weak \(5 bytes"):
        pii_key()


def test_bad_value_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CITYCLOUD_DUCKDB_THREADS", "many")
    with pytest.raises(CitycloudError) as exc:
        Settings()
    assert str(exc.value).startswith("setting CITYCLOUD_DUCKDB_THREADS='many': Input should be a valid integer")
    assert "\n" not in str(exc.value)
    monkeypatch.delenv("CITYCLOUD_DUCKDB_THREADS")
    monkeypatch.setenv("CITYCLOUD_TASK_RETRIES", "-1")
    with pytest.raises(CitycloudError, match=r"^setting CITYCLOUD_TASK_RETRIES='-1': Input should be greater"):
        Settings()


@pytest.mark.parametrize("variable", ["CITYCLOUD_DUCKDB_MEMORY_LIMIT", "CITYCLOUD_DUCKDB_INGEST_MEMORY_LIMIT"])
def test_a_memory_limit_duckdb_cannot_read_is_refused_before_any_run(monkeypatch, variable):
    # DuckDB itself would raise a parser error only when the step's connection opens.
    for bad in ("lots", "0", "GB", "3 XB"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(CitycloudError) as exc:
            Settings()
        assert str(exc.value) == (f"setting {variable}={bad!r}: Value error, not a DuckDB memory size: "
                                  "a number and a unit, e.g. 3GB, 512MB, 80%")
    for good in ("3GB", "512 MB", "1.5GiB", "80%", "-1"):
        monkeypatch.setenv(variable, good)
        assert good in (Settings().memory_limit, Settings().ingest_memory_limit)


def test_a_bad_key_setting_never_echoes_the_key(monkeypatch):
    with pytest.raises(CitycloudError) as exc:
        Settings(pii_key=12345678901234567890123456789012)
    assert "12345678901234567890123456789012" not in str(exc.value)

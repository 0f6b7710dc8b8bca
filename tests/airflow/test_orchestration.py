"""citycloud.pipeline.orchestration without a scheduler: expected deliveries, the sensors' decisions,
the day/month a run is for, the PII key, alerts."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from citycloud.pipeline import orchestration as orch

REPO = Path(__file__).resolve().parents[2]
TINY_CONTRACTS = REPO / "tests" / "data" / "tiny" / "contracts.yml"
UTC = dt.timezone.utc


def deliver(landing: Path, city: str, source: str, day: dt.date, complete: bool = True) -> None:
    folder = landing / city / source / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("x\n", encoding="utf-8")
    if complete:
        (folder / "_SUCCESS").write_bytes(b"")


def ctx(day: dt.date | None = None, params: dict | None = None, run_after: dt.datetime | None = None) -> dict:
    """A task context for day/month D: logical date D 02:00 Shanghai, like a scheduled run."""
    logical = dt.datetime.combine(day, dt.time(2), tzinfo=orch.BUSINESS_TZ) if day else None
    dag_run = SimpleNamespace(logical_date=logical, run_after=run_after or dt.datetime.now(UTC), run_id="r1")
    return {"logical_date": logical, "dag_run": dag_run, "params": params or {}}


@pytest.fixture
def landing(tmp_path, monkeypatch) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("CITYCLOUD_LANDING", str(landing))
    return landing


D = dt.date(2026, 3, 2)


def test_expected_deliveries(landing):
    prev = D - dt.timedelta(days=1)
    for source in ("registrations", "service_access", "ratings", "service_catalog"):
        deliver(landing, "310000", source, prev)
        deliver(landing, "510100", source, prev)
    for source in ("registrations", "service_access", "ratings"):
        deliver(landing, "310000", source, D)
    deliver(landing, "510100", "registrations", D, complete=False)  # still being written
    deliver(landing, "460100", "registrations", D)  # a new city: ingested, never waited for
    deliver(landing, "411700", "ratings", D - dt.timedelta(days=45))  # silent for too long
    (landing / "README").write_text("not a city")

    state = orch.delivery_state(landing, D)
    assert ("310000", "service_catalog") not in state.expected  # never waited for
    assert sorted(state.expected) == sorted(
        [(c, s) for c in ("310000", "510100") for s in ("registrations", "service_access", "ratings")]
    )
    assert sorted(state.complete) == [("310000", s) for s in ("ratings", "registrations", "service_access")]
    assert state.incomplete == [("510100", "registrations")]
    assert sorted(state.absent) == [("510100", "ratings"), ("510100", "service_access")]
    assert "510100/registrations (no _SUCCESS yet)" in state.describe_missing()
    assert "510100/ratings (not delivered)" in state.describe_missing()
    # lookback 0 = anything seen before counts
    assert ("411700", "ratings") in orch.delivery_state(landing, D, lookback_days=0).expected


def test_first_day_expects_nothing(landing):
    deliver(landing, "310000", "registrations", D)
    state = orch.delivery_state(landing, D)
    assert state.expected == [] and state.missing == []


def _sensor():
    return orch.DeliverySensor(task_id="wait_for_deliveries")


def test_sensor_does_not_wait_when_all_is_there(landing):
    for day in (D - dt.timedelta(days=1), D):
        for source in orch.WAITED_SOURCES:
            deliver(landing, "430100", source, day)
    result = _sensor().poke(ctx(D))
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert result.xcom_value["missing"] == [] and len(result.xcom_value["complete"]) == 3


def test_sensor_waits_before_the_deadline(landing):
    today = dt.datetime.now(orch.BUSINESS_TZ).date()
    for source in orch.WAITED_SOURCES:
        deliver(landing, "430100", source, today - dt.timedelta(days=1))
    deliver(landing, "430100", "registrations", today)
    assert _sensor().poke(ctx(today)) is False
    assert orch.delivery_deadline(today) > dt.datetime.now(UTC)


def test_sensor_alerts_at_the_deadline_instead_of_hanging(landing):
    old = dt.date(2026, 2, 11)  # long past its deadline: a backfill never waits
    for source in orch.WAITED_SOURCES:
        deliver(landing, "430100", source, old - dt.timedelta(days=1))
        deliver(landing, "310000", source, old - dt.timedelta(days=1))
        deliver(landing, "310000", source, old)
    with pytest.raises(AirflowSensorTimeout) as err:
        _sensor().poke(ctx(old))
    message = str(err.value)
    assert "430100/registrations (not delivered)" in message and "310000" not in message
    assert "3 complete ones" in message


def test_deadline_is_end_of_day_plus_timeout(monkeypatch):
    monkeypatch.setenv("CITYCLOUD_DELIVERY_TIMEOUT_HOURS", "6")
    assert orch.delivery_deadline(D) == dt.datetime(2026, 3, 3, 6, 0, tzinfo=orch.BUSINESS_TZ)
    monkeypatch.setenv("CITYCLOUD_DELIVERY_TIMEOUT_HOURS", "0.5")
    assert orch.delivery_deadline(D) == dt.datetime(2026, 3, 3, 0, 30, tzinfo=orch.BUSINESS_TZ)


def test_business_day():
    assert orch.business_day(ctx(D)) == D
    # `airflow dags test citycloud_daily 2026-03-03`: midnight UTC is 08:00 in Shanghai
    assert orch.business_day({"logical_date": dt.datetime(2026, 3, 3, tzinfo=UTC)}) == dt.date(2026, 3, 3)
    # scheduled run for 2026-03-03: logical date 02:00 Shanghai = 18:00 UTC the day before
    assert orch.business_day({"logical_date": dt.datetime(2026, 3, 2, 18, tzinfo=UTC)}) == dt.date(2026, 3, 3)
    # no logical date: the last day that has ended
    no_logical = ctx(None, run_after=dt.datetime(2026, 3, 3, 1, tzinfo=UTC))
    assert orch.business_day(no_logical) == dt.date(2026, 3, 2)


def test_settlement_request():
    assert orch.settlement_request(ctx(dt.date(2026, 2, 1))) == ("2026-02", False)
    assert orch.settlement_request(ctx(dt.date(2026, 3, 1), {"month": "2026-01"})) == ("2026-01", False)
    assert orch.settlement_request(ctx(None, {"month": "2026-02", "final": True})) == ("2026-02", True)
    no_logical = ctx(None, run_after=dt.datetime(2026, 3, 15, tzinfo=UTC))
    assert orch.settlement_request(no_logical) == ("2026-02", False)
    with pytest.raises(AirflowFailException, match="must name its month"):
        orch.settlement_request(ctx(dt.date(2026, 2, 1), {"final": True}))
    with pytest.raises(AirflowFailException, match="YYYY-MM"):
        orch.settlement_request(ctx(None, {"month": "2026-13"}))


def test_month_bounds():
    assert orch.month_bounds("2026-02") == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert orch.month_bounds("2026-12") == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))


@pytest.fixture
def published(tmp_path, monkeypatch):
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    warehouse.parent.mkdir()
    monkeypatch.setenv("CITYCLOUD_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CITYCLOUD_CONTRACTS", str(TINY_CONTRACTS))

    def publish_up_to(day: dt.date) -> None:
        path = orch.Settings().published
        path.unlink(missing_ok=True)
        con = duckdb.connect(str(path))
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.kpi_daily (city_code VARCHAR, kpi_date DATE)")
        con.execute("INSERT INTO marts.kpi_daily VALUES ('430100', ?), ('999999', DATE '2026-01-01')", [day])
        con.close()

    return publish_up_to


def test_settlement_sensor(published):
    sensor = orch.PublishedMonthSensor(task_id="wait_for_month_published")
    feb = ctx(dt.date(2026, 2, 1))
    assert sensor.poke(feb) is False  # nothing published yet
    published(dt.date(2026, 2, 27))
    assert sensor.poke(feb) is False  # the month's last day is not published yet
    published(dt.date(2026, 2, 28))  # 999999 has no contract: not waited for
    result = sensor.poke(feb)
    assert result.is_done and result.xcom_value == {"month": "2026-02", "final": False}


def test_settlement_sensor_fails_fast_on_a_city_with_no_data_at_all(published, landing):
    """The tiny contract's city 430100: while it has any delivery folder the sensor waits for its
    data to be published; with none at all, and nothing published, it fails at once saying so."""
    feb = ctx(dt.date(2026, 2, 1))
    with pytest.raises(AirflowFailException, match=r"1 city with a contract in 2026-02 has no data at all "
                       rf"\(nothing published, no delivery in {landing}\): 430100\."):
        orch.PublishedMonthSensor(task_id="w").poke(feb)
    deliver(landing, "430100", "ratings", dt.date(2026, 2, 27), complete=False)  # on its way: wait
    assert orch.PublishedMonthSensor(task_id="w").poke(feb) is False


def test_settlement_sensor_refuses_a_month_not_ended(published):
    this_month = dt.datetime.now(orch.BUSINESS_TZ).date().replace(day=1)
    with pytest.raises(AirflowFailException, match="has not ended"):
        orch.PublishedMonthSensor(task_id="w").poke(ctx(this_month))


def test_settlement_sensor_fails_fast_on_a_bad_contract_file(published, tmp_path, monkeypatch):
    bad = tmp_path / "contracts.yml"
    bad.write_text(TINY_CONTRACTS.read_text(encoding="utf-8").replace("weight: 0.2}", "weight: 0.25}", 1))
    monkeypatch.setenv("CITYCLOUD_CONTRACTS", str(bad))
    published(dt.date(2026, 2, 28))
    with pytest.raises(AirflowFailException, match="CS-2026-003"):
        orch.PublishedMonthSensor(task_id="w").poke(ctx(dt.date(2026, 2, 1)))


def test_pii_key_from_environment_variable_or_connection(monkeypatch):
    import airflow.sdk

    monkeypatch.setenv("CITYCLOUD_PII_KEY", "from-env")
    assert orch.resolve_pii_key() == "environment"

    monkeypatch.delenv("CITYCLOUD_PII_KEY")
    # outside a task there is no Variable/Connection API: no key, and the pipeline refuses
    assert orch.resolve_pii_key() == "none"
    assert "CITYCLOUD_PII_KEY" not in os.environ

    monkeypatch.setattr(airflow.sdk.Variable, "get", classmethod(lambda cls, key, default=None: "from-variable"))
    assert orch.resolve_pii_key() == "Airflow Variable citycloud_pii_key"
    assert os.environ["CITYCLOUD_PII_KEY"] == "from-variable"

    monkeypatch.delenv("CITYCLOUD_PII_KEY")
    monkeypatch.setattr(airflow.sdk.Variable, "get", classmethod(lambda cls, key, default=None: default))
    monkeypatch.setattr(
        airflow.sdk.Connection, "get", classmethod(lambda cls, conn_id: SimpleNamespace(password="from-conn"))
    )
    assert orch.resolve_pii_key() == "Airflow Connection citycloud_pii"
    assert os.environ["CITYCLOUD_PII_KEY"] == "from-conn"


def test_failure_callback_logs_one_clear_alert(caplog):
    ti = SimpleNamespace(dag_id="citycloud_daily", task_id="check", run_id="scheduled__x", try_number=1)
    context = {**ctx(D), "ti": ti, "exception": AirflowFailException("blocking data-quality failures")}
    with caplog.at_level(logging.ERROR, logger="citycloud.airflow"):
        orch.on_task_failure(context)
    (line,) = [r.getMessage() for r in caplog.records if orch.ALERT_PREFIX in r.getMessage()]
    assert "citycloud_daily.check FAILED for day 2026-03-02" in line
    assert "blocking data-quality failures" in line and "NOT published" in line


def test_dag_failure_callback_logs_one_clear_alert(caplog):
    dag_run = SimpleNamespace(dag_id="citycloud_monthly_settlement", run_id="scheduled__2026-03-01")
    with caplog.at_level(logging.ERROR, logger="citycloud.airflow"):
        orch.on_dag_failure({"dag_run": dag_run, "reason": "task_failure"})
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(orch.ALERT_PREFIX) and "citycloud_monthly_settlement scheduled__2026-03-01 FAILED" in line


def test_summary_is_small_and_json_safe():
    @dataclasses.dataclass
    class Report:
        deliveries: list
        rows_loaded: int
        when: dt.date

        def summary_line(self):
            return "ingest: 2 deliveries"

    out = orch.summary(Report([object()] * 5000, 7, D))
    assert out == {"summary": "ingest: 2 deliveries", "deliveries_count": 5000, "rows_loaded": 7, "when": "2026-03-02"}


def test_the_alerts_task_sends_to_the_configured_channels_and_nothing_without_them(tmp_path, monkeypatch):
    import threading

    from tests.alerts.conftest import Receiver, make_warehouse, write_config

    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    make_warehouse(warehouse)
    monkeypatch.setenv("CITYCLOUD_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CITYCLOUD_PII_KEY", "ab" * 32)
    monkeypatch.delenv("CITYCLOUD_ALERTS", raising=False)
    assert orch.alerts_step(ctx(D)) == {"sent": None}
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CITYCLOUD_WECOM_CS_URL", f"{server.url}/robot/wecom")
        monkeypatch.setenv("CITYCLOUD_DINGTALK_URL", f"{server.url}/robot/dingtalk")
        monkeypatch.setenv("CITYCLOUD_ALERTS", str(write_config(tmp_path / "alerts.yml", server)))
        out = orch.alerts_step(ctx(D))
        assert out == {"summary": "alerts: 1 open, 1 message(s) sent, 0 pending"}
        assert [b["key"] for b in server.bodies("/hook")] == ["anomaly|430100|dau||2026-03-10"]
    finally:
        server.shutdown()
        server.server_close()

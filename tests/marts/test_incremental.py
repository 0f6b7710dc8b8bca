"""Incremental builds must equal a full rebuild, whatever order and lateness data arrives in."""
from __future__ import annotations

import json
import shutil
from datetime import date

import pytest

from citycloud import pipeline
from tests.conftest import make_settings, query, table_fingerprints, write_delivery
from tests.marts.conftest import DAY_BY_DAY, copy_tiny_day_by_day

pytestmark = pytest.mark.slow

MARTS = ("marts_build",)


def _build(settings, end=None, full_refresh=False):
    pipeline.ingest(settings, end=end)
    return pipeline.build(settings, full_refresh=full_refresh)


def test_day_by_day_incremental_build_equals_full_refresh(tiny_day_by_day, tmp_path):
    """Every mart, the funnels and service paths of the worked example's funnels.yml included
    (tests/marts/conftest.py's tiny_day_by_day: built up to 02-03, 02-12, 02-20, then a whole run)."""
    built, reports = tiny_day_by_day
    assert [r.skipped for r in reports] == [False] * (len(DAY_BY_DAY) + 1)
    incremental = table_fingerprints(built.warehouse, MARTS)
    assert {"marts_build.funnel_conversion", "marts_build.service_paths"} <= incremental.keys()
    settings = copy_tiny_day_by_day(built, tmp_path)
    assert _build(settings).skipped  # nothing new → dbt does not run
    _build(settings, full_refresh=True)
    assert table_fingerprints(settings.warehouse, MARTS) == incremental


def _access(event_id, when, user, outcome="success"):
    return json.dumps({"event_id": event_id, "user_id": user, "service_id": "S1", "event_time": when,
                       "channel": "ios", "outcome": outcome, "duration_ms": 5, "client_ip": "1.1.1.1"})


def test_latest_delivery_wins_and_late_events_reach_their_own_and_later_days(tmp_path):
    landing = tmp_path / "landing"
    city = "510100"
    write_delivery(landing, city, "service_catalog", "2026-03-01", {
        "c.csv": "service_id,service_name,department,category,online_date,offline_date\nS1,社保卡办理,市人社局,社保,2026-01-01,\n"})
    write_delivery(landing, city, "registrations", "2026-03-01", {"r.csv": "\n".join([
        "event_id,event_type,user_id,event_time",
        "R1,register,U1,2026-02-20 10:00:00",
        "R2,register,U2,2026-03-01 10:00:00",
    ])})
    # a1 twice in one file (identical), then redelivered on 03-02 with another outcome: 03-02 wins
    write_delivery(landing, city, "service_access", "2026-03-01", {"p.jsonl": "\n".join([
        _access("a1", "2026-03-01T09:00:00+08:00", "U1", "failure"),
        _access("a1", "2026-03-01T09:00:00+08:00", "U1", "failure"),
        _access("a2", "2026-03-01T10:00:00+08:00", "U2"),
    ])})
    write_delivery(landing, city, "service_access", "2026-03-02", {"p.jsonl": "\n".join([
        _access("a1", "2026-03-01T09:00:00+08:00", "U1", "success"),
        _access("a3", "2026-03-02T10:00:00+08:00", "U2"),
    ])})
    settings = make_settings(tmp_path, landing)
    _build(settings)
    daily = "SELECT kpi_date, registered_users, dau, wau, total_accesses, successful_accesses FROM marts_build.kpi_daily ORDER BY 1"
    assert query(settings.warehouse, daily) == [
        (date(2026, 3, 1), 2, 2, 2, 2, 2),
        (date(2026, 3, 2), 2, 1, 2, 1, 1),
    ]
    # Late: a registration and an access for 03-01 arrive in the 03-03 delivery.
    write_delivery(landing, city, "registrations", "2026-03-03", {"r.csv": "\n".join([
        "event_id,event_type,user_id,event_time", "R3,register,U3,2026-03-01 12:00:00"])})
    write_delivery(landing, city, "service_access", "2026-03-03", {"p.jsonl": _access("a4", "2026-03-01T12:00:00+08:00", "U3")})
    _build(settings)
    assert query(settings.warehouse, daily) == [
        (date(2026, 3, 1), 3, 3, 3, 3, 3),
        (date(2026, 3, 2), 3, 1, 3, 1, 1),
        (date(2026, 3, 3), 3, 0, 3, 0, 0),
    ]
    # March is only partly covered: no monthly row yet, but its building block counted the late user
    assert query(settings.warehouse, "SELECT count(*) FROM marts_build.kpi_monthly")[0][0] == 0
    assert query(settings.warehouse, "SELECT mau FROM intermediate.int_active_users_aggregated_to_months "
                                     "WHERE month = DATE '2026-03-01'") == [(3,)]


# Three from-scratch rebuilds besides the increments (~33 s): the e2e tier (#30). make test keeps the
# day-by-day increment equal to a full refresh and the late-event and latest-delivery cases above.
@pytest.mark.e2e
def test_event_level_increment_equals_a_full_rebuild_through_redeliveries_and_a_reexport(tmp_path):
    """Days a batch only added to re-rank just the events it delivered; a re-export that removes
    rows rebuilds its days whole. After every build, staging and everything above it equal a
    full rebuild of the same landing."""
    landing = tmp_path / "landing"
    city = "510100"
    settings = make_settings(tmp_path, landing)
    winners = ("SELECT event_id, outcome, delivered_dt FROM staging.stg_landing__service_access "
               "WHERE event_day = DATE '2026-03-01' ORDER BY 1")

    def build_and_compare():
        _build(settings)
        incremental = table_fingerprints(settings.warehouse, ("staging", "intermediate", "marts_build"))
        result = query(settings.warehouse, winners)
        full = tmp_path / "full"
        shutil.rmtree(full, ignore_errors=True)
        full_settings = make_settings(full, landing)
        _build(full_settings)
        assert table_fingerprints(full_settings.warehouse, ("staging", "intermediate", "marts_build")) == incremental
        return result

    write_delivery(landing, city, "service_catalog", "2026-03-01", {
        "c.csv": "service_id,service_name,department,category,online_date,offline_date\nS1,社保卡办理,市人社局,社保,2026-01-01,\n"})
    write_delivery(landing, city, "registrations", "2026-03-01", {"r.csv": "\n".join([
        "event_id,event_type,user_id,event_time", "R1,register,U1,2026-02-20 10:00:00"])})
    write_delivery(landing, city, "service_access", "2026-03-01", {"p.jsonl": "\n".join([
        _access("a1", "2026-03-01T09:00:00+08:00", "U1", "failure"),
        _access("a2", "2026-03-01T10:00:00+08:00", "U1"),
    ])})
    assert build_and_compare() == [("a1", "failure", date(2026, 3, 1)), ("a2", "success", date(2026, 3, 1))]

    # 03-02 only adds to 03-01: a1 again (the later copy wins), a new late event a5; R1 again.
    write_delivery(landing, city, "registrations", "2026-03-02", {"r.csv": "\n".join([
        "event_id,event_type,user_id,event_time", "R1,register,U1,2026-02-20 10:00:00",
        "R2,register,U2,2026-03-01 11:00:00"])})
    write_delivery(landing, city, "service_access", "2026-03-02", {"p.jsonl": "\n".join([
        _access("a1", "2026-03-01T09:00:00+08:00", "U1", "timeout"),
        _access("a5", "2026-03-01T23:00:00+08:00", "U1"),
        _access("a3", "2026-03-02T10:00:00+08:00", "U1"),
    ])})
    assert build_and_compare() == [("a1", "timeout", date(2026, 3, 2)), ("a2", "success", date(2026, 3, 1)),
                                   ("a5", "success", date(2026, 3, 2))]

    # 03-02 re-exported without a1 and a5: 03-01 loses rows, so it is rebuilt whole; a1's
    # 03-01 copy wins again, a5 is gone.
    (landing / city / "service_access" / "dt=2026-03-02" / "p.jsonl").unlink()
    write_delivery(landing, city, "service_access", "2026-03-02", {"p2.jsonl": _access("a3", "2026-03-02T10:00:00+08:00", "U1")})
    assert build_and_compare() == [("a1", "failure", date(2026, 3, 1)), ("a2", "success", date(2026, 3, 1))]

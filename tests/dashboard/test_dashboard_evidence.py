"""The dashboard's reading of hand-made data (fast, no browser): which day is shown for a day
outside the data, folders delivered without `_SUCCESS`, the pooled satisfaction rate, and
"what moved" citing only evidence that can carry a movement."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

import dashboard_fivecities as fivecities
from citycloud.dashboards import data, moves
from citycloud.access import Scope

EVERY_CITY = Scope.local(())  # local mode: every city, nothing filtered

FIRST, LAST = dt.date(2026, 2, 1), dt.date(2026, 3, 28)
SAT = dt.date(2026, 3, 28)  # a Saturday
CITY = "430100"


def test_a_day_outside_the_data_says_which_day_is_shown_and_why():
    assert data.resolve_day(None, FIRST, LAST, LAST) == (LAST, None)
    assert data.resolve_day("2026-03-01", FIRST, LAST, LAST) == (dt.date(2026, 3, 1), None)
    day, note = data.resolve_day("2025-12-01", FIRST, LAST, LAST)
    assert day == FIRST and note.endswith(
        "2025-12-01 is before the first day with data (2026-02-01); showing 2026-02-01.")
    day, note = data.resolve_day("2027-01-01", FIRST, LAST, dt.date(2026, 3, 20))
    assert day == LAST and "2027-01-01 is after the last day with data (2026-03-28); showing 2026-03-28." in note
    day, note = data.resolve_day("yesterday", FIRST, LAST, LAST)
    assert day == LAST and "“yesterday” is not a date" in note


def test_a_folder_without_success_is_delivered_but_incomplete_and_named():
    raw = pd.DataFrame({"path": ["430100/ratings/dt=2026-03-28", "430100/service_access/dt=2026-03-27/",
                                 "310000/ratings/dt=2026-03-28", "430100/ratings/dt=2026-01-01",
                                 "430100/ratings/x.csv"],
                        "kind": ["incomplete_delivery", "empty_delivery", "incomplete_delivery",
                                 "incomplete_delivery", "incomplete_delivery"],
                        "reason": ["no _SUCCESS yet"] * 5})
    folders = data.landing_folders(raw, [CITY], LAST - dt.timedelta(days=6), LAST)
    assert list(folders["folder"]) == ["430100/ratings/dt=2026-03-28", "430100/service_access/dt=2026-03-27"]
    deliveries = pd.DataFrame([{"city_code": CITY, "source": "registrations", "dt": LAST, "files": 1,
                                "rows_read": 5, "rows_loaded": 5, "rows_rejected": 0,
                                "ingested_at": pd.Timestamp("2026-03-29 01:00"), "after_later_day": False}])
    status = data.delivery_status(deliveries, CITY, LAST, days=2, landing_issues=folders).set_index(["source", "dt"])
    assert status.loc[("ratings", LAST), "status"] == "incomplete"
    assert status.loc[("ratings", LAST), "folder"] == "430100/ratings/dt=2026-03-28"
    assert status.loc[("service_access", LAST - dt.timedelta(days=1)), "status"] == "empty"
    assert status.loc[("service_access", LAST), "status"] == "missing"  # nothing delivered at all
    assert status.loc[("registrations", LAST), "status"] == "on_time"


def test_pooled_satisfaction_is_good_over_ratings_of_seven_days_not_a_mean_of_rates():
    days = pd.date_range("2026-03-01", periods=9)
    df = pd.DataFrame({"city_code": CITY, "kpi_date": days,
                       "ratings": [10, 0, 1, 10, 10, 10, 10, 10, 2],
                       "good_ratings": [9, 0, 0, 5, 10, 10, 10, 10, 2]})
    df = df.drop(index=5)  # 03-06 has no row at all: no ratings that day
    pooled = data.pooled_satisfaction(df, 7)
    assert pooled[0] == pytest.approx(0.9)  # 9 / 10
    assert pooled[1] == pytest.approx(0.9)  # a day without ratings: still the window's 9 / 10
    assert pooled[2] == pytest.approx(9 / 11)
    # 03-07: 03-01..03-07 = (9+0+0+5+10+10) / (10+0+1+10+10+10) = 34 / 41 (the mean of rates would be 0.66)
    assert pooled[6] == pytest.approx(34 / 41)
    # 03-09: 03-03..03-09 = (0+5+10+10+10+2) / (1+10+10+10+10+2) = 37 / 43
    assert pooled[8] == pytest.approx(37 / 43)
    none = data.pooled_satisfaction(pd.DataFrame({"city_code": CITY, "kpi_date": days[:2], "ratings": [0, 0],
                                                  "good_ratings": [0, 0]}))
    assert none.isna().all()


# ---------------------------------------------------------------- what moved


def kpis(values: dict[dt.date, int], **rates) -> pd.DataFrame:
    """kpi_daily rows of CITY as load_today returns them: total_accesses per day, as_of = SAT."""
    rows = [{"city_code": CITY, "kpi_date": day, "total_accesses": n, "successful_accesses": n,
             "success_rate": rates.get("success_rate", {}).get(day, 0.95), "as_of": SAT}
            for day, n in values.items()]
    return pd.DataFrame(rows)


def history(saturdays: int, friday: int, today: int, other: int = 400) -> dict[dt.date, int]:
    """29 days up to SAT: `other` on most days, `saturdays` on the previous four Saturdays."""
    out = {}
    for back in range(28, -1, -1):
        day = SAT - dt.timedelta(days=back)
        out[day] = saturdays if day.weekday() == 5 else other
    out[SAT - dt.timedelta(days=1)] = friday
    out[SAT] = today
    return out


def services(day_totals: dict[dt.date, dict[str, tuple[int, int]]]) -> pd.DataFrame:
    return pd.DataFrame([{"city_code": CITY, "kpi_date": day, "service_id": sid, "service_name": f"服务{sid}",
                          "total_accesses": total, "failed_accesses": failed}
                         for day, per in day_totals.items() for sid, (total, failed) in per.items()])


def rejected(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"city_code": CITY, "source": "service_access", "dt": SAT, "reason": "malformed JSON",
                          "rows": n}])


def only(kpi: str, frame: pd.DataFrame) -> dict:
    (move,) = [m for m in data.movers(frame, CITY) if m["kpi"] == kpi]
    return move


def test_an_80_access_drop_is_not_blamed_on_one_rejected_row():
    frame = kpis(history(saturdays=400, friday=400, today=320))
    move = only("total_accesses", frame)
    assert (move["offset"], move["current"], move["base"]) == (7, 320, 400)
    even = services({SAT - dt.timedelta(days=7): {f"S{i}": (100, 5) for i in range(4)},
                     SAT: {f"S{i}": (80, 4) for i in range(4)}})  # every service a little: no one service
    assert moves.explain(move, frame, CITY, rejected_rows=rejected(1), service_days=even) == []
    # rejected rows that can carry it (at least half the drop of 80) are cited
    assert moves.explain(move, frame, CITY, rejected_rows=rejected(60), service_days=even) == [
        "访问日志 service_access 当日拒收 60 行（变化 80）"]


def test_a_drop_that_is_the_weekday_pattern_says_so_and_nothing_else():
    frame = kpis(history(saturdays=318, friday=400, today=320))
    move = only("total_accesses", frame)
    assert move["offset"] == 1  # against the day before; the same weekday a week before is flat
    assert moves.explain(move, frame, CITY, rejected_rows=rejected(80)) == [
        "每周规律：前 4 周的星期六为 318，当日与之相当"]


def test_a_service_whose_volume_dropped_carries_the_movement():
    frame = kpis(history(saturdays=400, friday=400, today=320))
    move = only("total_accesses", frame)
    week_before = SAT - dt.timedelta(days=7)
    days = services({week_before: {"S1": (200, 10), "S2": (100, 5), "S3": (100, 5)},
                     SAT: {"S1": (130, 10), "S2": (95, 5), "S3": (95, 5)}})
    assert moves.explain(move, frame, CITY, service_days=days) == [
        "服务「服务S1」访问 200 → 130（-70，占全市访问变化 -80 的 88%）"]
    # a failing service behind a drop of the success rate
    rates = {SAT - dt.timedelta(days=7): 0.95, SAT: 0.80}
    frame = kpis(history(saturdays=400, friday=400, today=400), success_rate=rates)
    move = only("success_rate", frame)
    days = services({week_before: {"S1": (200, 10), "S2": (200, 10)}, SAT: {"S1": (200, 60), "S2": (200, 20)}})
    assert moves.explain(move, frame, CITY, service_days=days) == [
        "服务「服务S1」失败 10 → 60（+50，占全市失败变化 +60 的 83%）"]


def test_an_incomplete_delivery_of_the_feeding_source_is_named_with_its_folder():
    frame = kpis(history(saturdays=400, friday=400, today=40))
    move = only("total_accesses", frame)
    status = pd.DataFrame([{"source": "service_access", "dt": SAT, "status": "incomplete",
                            "folder": "430100/service_access/dt=2026-03-28"}])
    assert moves.explain(move, frame, CITY, status=status) == [
        "访问日志 service_access 当日交付未完成（无 _SUCCESS）：`430100/service_access/dt=2026-03-28`"]
    late = status.assign(status="late", folder=None)  # ingested after all: not a cause
    assert moves.explain(move, frame, CITY, status=late) == []


def test_the_snapshot_loads_landing_issues_and_service_days(tmp_path: Path):
    facts = fivecities.build(tmp_path / "wh.duckdb")
    last = facts["last_day"]
    d = data.run_load(facts["warehouse"], EVERY_CITY, data.load_today, (CITY,), last)
    assert list(d["landing_issues"]["folder"]) == [facts["incomplete_folder"]]
    status = data.delivery_status(d["deliveries"], CITY, last, landing_issues=d["landing_issues"])
    assert status[(status["dt"] == last) & (status["source"] == "ratings")]["status"].item() == "incomplete"
    # four weeks of history for the weekday pattern, and the services of the compared days
    assert min(d["kpis"]["kpi_date"]) == last - dt.timedelta(days=28)
    assert {last, last - dt.timedelta(days=1), last - dt.timedelta(days=7)} <= set(d["service_days"]["kpi_date"])


# ---------------------------------------------------------------- moves chance explains


def ratings(days: dict[dt.date, tuple[int, int]]) -> pd.DataFrame:
    """kpi_daily rows of CITY with (good, all) ratings per day, as_of = SAT."""
    return pd.DataFrame([{"city_code": CITY, "kpi_date": day, "ratings": n, "satisfaction_rate": good / n,
                          "as_of": SAT} for day, (good, n) in days.items()])


def test_a_rate_on_two_ratings_moves_by_chance_and_is_not_listed():
    # 1 good of 2 the day before, 0 of 2 today: −50 points, what two ratings do by chance
    frame = ratings({SAT - dt.timedelta(days=1): (1, 2), SAT: (0, 2)})
    assert [m["kpi"] for m in data.movers(frame, CITY)] == []
    assert data.chance_explains(0.5, 2, 0.0, 2)


def test_a_rate_on_many_ratings_is_listed_with_its_sample():
    frame = ratings({SAT - dt.timedelta(days=1): (800, 1000), SAT: (700, 1000)})
    (move,) = data.movers(frame, CITY)
    assert move["text"] == "满意度（好评率） 较前一日 -10.00个百分点（评价数 1,000 → 1,000）"
    assert not data.chance_explains(0.8, 1000, 0.7, 1000)

"""Scores, totals, grades, ranks and the scoring-time indicators on hand-computed cases
(an in-memory DuckDB holding hand-made marts; dbt's own unit tests pin the measures mart)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest

from citycloud.scorecard import store
from citycloud.scorecard.evaluate import evaluate, months_back
from citycloud.scorecard.rules import latest_assessments, load_assessments, load_schemes
from citycloud.scorecard.scoring import Scored, dimension_scores, indicator_score, total_score
from tests.scorecard.test_scorecard_rules import ENTRY, assessments_file, scheme_file

TODAY = date(2026, 11, 30)


@pytest.mark.parametrize("value, target, expected", [
    (0.8325, Decimal(1), "83.3"),       # half-up at .x5 (the double 0.8325 is just below: read via its repr)
    (333 / 400, Decimal(1), "83.3"),
    (0.8324999, Decimal(1), "83.2"),
    (0.41625, Decimal("0.5"), "83.3"),  # 83.25 after dividing by the target
    (38, Decimal(40), "95.0"),
    (45, Decimal(40), "100.0"),         # capped at 100
    (0.0, Decimal("0.9"), "0.0"),
])
def test_indicator_score_half_up_to_a_tenth(value, target, expected):
    assert indicator_score(value, target) == (Decimal(expected), False)


def test_a_null_value_scores_zero_flagged_no_data():
    assert indicator_score(None, Decimal("0.95")) == (Decimal("0.0"), True)


def test_total_and_dimensions_are_weighted_and_rounded_half_up():
    scored = [Scored("availability", Decimal("0.5"), Decimal("90.1")),  # 45.05
              Scored("activity", Decimal("0.25"), Decimal("80.0")),     # 20
              Scored("team", Decimal("0.25"), Decimal("0.0"))]          # 0 -> total 65.05 -> 65.1
    assert total_score(scored) == Decimal("65.1")
    # capability: (45.05 + 0) / 0.75 = 60.0666 -> 60.1; results 80.0; no content/mechanism indicator: None
    assert dimension_scores(scored) == {"content": None, "mechanism": None, "capability": Decimal("60.1"),
                                        "results": Decimal("80.0")}


def _warehouse(days: dict[date, tuple[int, int]], covered_days: int | None = None) -> duckdb.DuckDBPyConnection:
    """marts.kpi_daily for city 430100 (day -> (total, successful)) and a matching scorecard_measures row."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.kpi_daily (city_code VARCHAR, kpi_date DATE, total_accesses BIGINT, "
                "successful_accesses BIGINT)")
    con.executemany("INSERT INTO marts.kpi_daily VALUES ('430100', ?, ?, ?)", [(d, t, s) for d, (t, s) in days.items()])
    n = covered_days if covered_days is not None else len(days)
    con.execute("""CREATE TABLE marts.scorecard_measures AS SELECT '430100' AS city_code, DATE '2026-02-01' AS month,
                   ? AS days_covered, 28 AS days_in_month, 38.0::DOUBLE AS service_coverage,
                   0.9::DOUBLE AS availability, NULL::DOUBLE AS timeliness, 1.0::DOUBLE AS continuity,
                   0.5::DOUBLE AS utilisation, NULL::DOUBLE AS user_coverage, 0.3::DOUBLE AS activity,
                   0.9::DOUBLE AS satisfaction, NULL::DOUBLE AS rectification_on_time,
                   NULL::DOUBLE AS callback_rate""", [n])
    return con


FEB = [date(2026, 2, 1) + timedelta(days=i) for i in range(28)]


def test_reliability_counts_only_days_with_accesses_and_the_threshold_is_exact(tmp_path):
    # 26 days at exactly the threshold (9/10 >= 0.9 counts), one at 17/20 = 0.85 (below) and one
    # without accesses (left out of the denominator): 26 / 27.
    days = {d: (10, 9) for d in FEB}
    days[FEB[3]] = (20, 17)
    days[FEB[4]] = (0, 0)
    con = _warehouse(days)
    (scheme,) = load_schemes(scheme_file(tmp_path))
    ev = evaluate(con, scheme, ["430100"], ["2026-02"], {}, TODAY)
    got = {i.indicator: (i.value, i.score, i.no_data) for i in ev.results[("430100", "2026-02")].indicators}
    assert got["reliability"] == (pytest.approx(26 / 27, abs=1e-12), Decimal("96.3"), False)
    assert got["availability"] == (0.9, Decimal("94.7"), False)     # 0.9 / 0.95 = 94.74
    assert got["team"] == (None, Decimal("0.0"), True)              # not assessed


def test_superseded_assessment_counts_the_latest(tmp_path):
    con = _warehouse({d: (10, 9) for d in FEB})
    (scheme,) = load_schemes(scheme_file(tmp_path))
    team = ENTRY.replace("content", "team")
    entries = load_assessments(assessments_file(tmp_path, team.replace("score: 80", "score: 95").replace("03-04", "03-09"),
                                                team))
    ev = evaluate(con, scheme, ["430100"], ["2026-02"], latest_assessments(entries), TODAY)
    (team_row,) = [i for i in ev.results[("430100", "2026-02")].indicators if i.indicator == "team"]
    assert (team_row.value, team_row.score, team_row.no_data, team_row.assessment.date) == (95.0, Decimal("95.0"), False,
                                                                                             date(2026, 3, 9))


def test_months_not_ended_or_not_covered_are_refused_with_the_reason(tmp_path):
    con = _warehouse({d: (10, 9) for d in FEB[:20]}, covered_days=20)
    (scheme,) = load_schemes(scheme_file(tmp_path))
    ev = evaluate(con, scheme, ["430100", "510100"], ["2026-02"], {}, TODAY)
    assert ev.results == {}
    assert ev.refused == {("430100", "2026-02"): "2026-02 is not covered: marts.kpi_daily has 20 of 28 days of it for this city",
                          ("510100", "2026-02"): "2026-02 is not covered: marts.kpi_daily has no day of it for this city"}
    ev = evaluate(con, scheme, ["430100"], ["2026-02"], {}, date(2026, 2, 28))
    assert ev.refused == {("430100", "2026-02"): "2026-02 has not ended (today is 2026-02-28 in Asia/Shanghai)"}
    assert months_back("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]


def test_equal_totals_share_a_rank_and_rescoring_replaces_the_month(tmp_path):
    con = _warehouse({d: (10, 9) for d in FEB})
    (scheme,) = load_schemes(scheme_file(tmp_path))
    (one,) = evaluate(con, scheme, ["430100"], ["2026-02"], {}, TODAY).results.values()
    from dataclasses import replace
    results = [replace(one, city_code=c, total=Decimal(t)) for c, t in
               (("430100", "88.1"), ("510100", "90.0"), ("310000", "88.1"), ("460100", "70.0"))]
    at = datetime(2026, 3, 15, 9, 0)
    assert store.replace_month(con, "2026-02", results, [("S1", "411700", "not covered")], at)
    assert store.ranks(con, "2026-02") == {("S1", "510100"): 1, ("S1", "430100"): 2, ("S1", "310000"): 2,
                                           ("S1", "460100"): 4}
    # the same rows again, later: nothing is written, scored_at stays
    assert not store.replace_month(con, "2026-02", results, [("S1", "411700", "not covered")], at + timedelta(days=1))
    assert con.execute("SELECT DISTINCT scored_at FROM marts.scorecard_monthly").fetchall() == [(at,)]
    assert store.replace_month(con, "2026-02", results[:1], [], at)
    assert con.execute("SELECT count(*) FROM marts.scorecard_monthly").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM marts.scorecard_indicators").fetchone()[0] == len(one.indicators)
    assert con.execute("SELECT count(*) FROM marts.scorecard_refusals").fetchone()[0] == 0


def test_report_values_read_as_a_reviewer_reads_them():
    from citycloud.scorecard.reports import format_value
    assert [format_value(v, i) for v, i in ((0.000133, "user_coverage"), (0.948, "availability"), (1459, "service_coverage"),
                                             (86, "content"), (None, "team"))] == ["0.0133%", "94.8%", "1,459", "86.0", "无数据"]

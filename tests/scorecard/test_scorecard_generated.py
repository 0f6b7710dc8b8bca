"""Two schemes in force at once (one for all cities, one for two) over generated data: rows per
scheme, every measured value against an independent recomputation, totals, grades, ranks, the
assessments (superseded, missing), a city refused while the others are scored, and the reports."""
from __future__ import annotations

import subprocess
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from citycloud.scorecard.service import score_month
from tests.conftest import copy_warehouse, query
from tests.scorecard.conftest import TODAY

pytestmark = pytest.mark.slow
JAN = [date(2026, 1, 1) + timedelta(days=i) for i in range(31)]
MEASURED = """\
      - {indicator: service_coverage, weight: 0.1, target: 40}
      - {indicator: availability, weight: 0.1, target: 0.98}
      - {indicator: reliability, weight: 0.1, target: 1.0, day_threshold: 0.9}
      - {indicator: timeliness, weight: 0.1, target: 0.95}
      - {indicator: continuity, weight: 0.1, target: 1.0}
      - {indicator: utilisation, weight: 0.1, target: 0.8}
      - {indicator: user_coverage, weight: 0.1, target: 0.0001}
      - {indicator: activity, weight: 0.1, target: 0.3}
      - {indicator: satisfaction, weight: 0.1, target: 0.9}
"""
SCHEMES = f"""\
schemes:
  - scheme_id: ALL-2026
    cities: all
    start_month: 2026-01
    end_month: 2026-12
    indicators:
{MEASURED}      - {{indicator: content, weight: 0.05, target: 100}}
      - {{indicator: mechanism, weight: 0.05, target: 100}}
    grades:
      - {{min_score: 90, grade: 优秀}}
      - {{min_score: 80, grade: 良好}}
      - {{min_score: 60, grade: 合格}}
      - {{min_score: 0, grade: 不合格}}
  - scheme_id: PAIR-2026
    name: 两市专项评价
    cities: ["310000", "510100"]
    start_month: 2026-01
    end_month: 2026-06
    indicators:
      - {{indicator: availability, weight: 0.5, target: 0.98}}
      - {{indicator: content, weight: 0.25, target: 90}}
      - {{indicator: reliability, weight: 0.25, target: 0.9, day_threshold: 0.95}}
    grades:
      - {{min_score: 75, grade: 达标}}
      - {{min_score: 0, grade: 未达标}}
  - scheme_id: HAIKOU-2026
    cities: ["460100"]
    start_month: 2026-01
    end_month: 2026-12
    indicators:
      - {{indicator: availability, weight: 1, target: 0.98}}
    grades:
      - {{min_score: 0, grade: 参评}}
  - scheme_id: OLD-2025
    cities: all
    start_month: 2025-01
    end_month: 2025-12
    indicators:
      - {{indicator: availability, weight: 1, target: 0.98}}
    grades:
      - {{min_score: 0, grade: 参评}}
"""
ASSESSMENTS = """\
assessments:
  - {city_code: "310000", month: 2026-01, indicator: content, score: 70, evaluator: 王敏, date: 2026-02-03, evidence: "初查"}
  - {city_code: "310000", month: 2026-01, indicator: content, score: 88.5, evaluator: 王敏, date: 2026-02-20, evidence: "复核"}
  - {city_code: "510100", month: 2026-01, indicator: content, score: 95, evaluator: 李雷, date: 2026-02-05, evidence: "目录核查"}
  - {city_code: "510100", month: 2026-01, indicator: mechanism, score: 60, evaluator: 李雷, date: 2026-02-05, evidence: "制度文件"}
"""


@pytest.fixture(scope="module")
def generated(generated_built, tmp_path_factory):
    """January 2026 scored on a copy of the session's generated warehouse (three cities)."""
    tmp = tmp_path_factory.mktemp("scorecard_gen")
    settings = copy_warehouse(generated_built, tmp)
    (tmp / "evaluation.yml").write_text(SCHEMES, encoding="utf-8")
    (tmp / "assessments.yml").write_text(ASSESSMENTS, encoding="utf-8")
    report = score_month(settings, tmp / "evaluation.yml", "2026-01", tmp / "assessments.yml",
                         out_dir=tmp / "reports", today=TODAY)
    return settings, report, tmp


def _rows(settings, sql, params=None):
    return query(settings.published, sql, params)


def test_rows_per_scheme_in_force(generated):
    settings, report, _ = generated
    counts = _rows(settings, "SELECT scheme_id, city_code, count(*) FROM marts.scorecard_indicators GROUP BY ALL ORDER BY ALL")
    assert counts == [("ALL-2026", "310000", 11), ("ALL-2026", "430100", 11), ("ALL-2026", "510100", 11),
                      ("PAIR-2026", "310000", 3), ("PAIR-2026", "510100", 3)]
    assert _rows(settings, "SELECT scheme_id, city_code, reason FROM marts.scorecard_refusals") == [
        ("HAIKOU-2026", "460100", "2026-01 is not covered: marts.kpi_daily has no day of it for this city")]
    assert [(s, c) for s, c, _ in report.refused] == [("HAIKOU-2026", "460100")]


def test_measured_values_match_an_independent_recomputation(generated):
    settings, _, _ = generated
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        daily = defaultdict(dict)
        for city, day, conn, active, reg, total, ok in con.execute(
                "SELECT city_code, kpi_date, connected_services, active_services, registered_users, total_accesses, "
                "successful_accesses FROM marts.kpi_daily").fetchall():
            daily[city][day] = (conn, active, reg, total, ok)
        delivered = defaultdict(set)
        for city, source, dt in con.execute("SELECT city_code, source, dt FROM audit.deliveries").fetchall():
            delivered[(city, dt)].add(source)
        events = defaultdict(lambda: [0, 0])
        for source in ("registrations", "service_access", "ratings"):
            for city, day, dt in con.execute(f"SELECT city_code, event_day, delivered_dt FROM staging.stg_landing__{source} "
                                             "WHERE event_day BETWEEN DATE '2026-01-01' AND DATE '2026-01-31'").fetchall():
                events[city][0] += 1
                events[city][1] += dt <= day + timedelta(days=1)
        population = dict(con.execute("SELECT city_code, resident_population FROM marts.city_reference").fetchall())
        stored = {(c, i): v for c, i, v in con.execute(
            "SELECT city_code, indicator, value FROM marts.scorecard_indicators WHERE scheme_id = 'ALL-2026'").fetchall()}
    finally:
        con.close()
    for city, days in daily.items():
        jan = [days[d] for d in JAN]
        with_access = [d for d in jan if d[3] > 0]
        expected = {
            "service_coverage": days[JAN[-1]][0],
            "availability": sum(d[4] for d in jan) / sum(d[3] for d in jan),
            "reliability": sum(1 for d in with_access if d[4] / d[3] >= 0.9) / len(with_access),
            "continuity": sum(1 for d in JAN if {"registrations", "service_access", "ratings"} <= delivered[(city, d)]) / 31,
            "utilisation": sum(d[1] / d[0] for d in jan if d[0]) / sum(1 for d in jan if d[0]),
            "user_coverage": days[JAN[-1]][2] / population[city],
            "timeliness": events[city][1] / events[city][0],
        }
        got = {k: stored[(city, k)] for k in expected}
        assert got == pytest.approx(expected, rel=1e-12), city
    # the generator delivers late events and skips nothing here: timeliness is a real fraction
    assert all(0 < stored[(c, "timeliness")] <= 1 for c in daily)


def test_totals_grades_and_ranks_follow_from_the_stored_scores(generated):
    settings, _, _ = generated
    scores = defaultdict(Decimal)
    for scheme, city, weight, score in _rows(settings, "SELECT scheme_id, city_code, weight, score FROM marts.scorecard_indicators"):
        scores[(scheme, city)] += Decimal(repr(weight)) * score
    monthly = _rows(settings, "SELECT scheme_id, city_code, total_score, grade, rank FROM marts.scorecard_monthly ORDER BY ALL")
    grades = {"ALL-2026": [(90, "优秀"), (80, "良好"), (60, "合格"), (0, "不合格")], "PAIR-2026": [(75, "达标"), (0, "未达标")]}
    for scheme, city, total, grade, rank in monthly:
        assert total == scores[(scheme, city)].quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        assert grade == next(g for floor, g in grades[scheme] if total >= floor)
        peers = [t for s, _, t, _, _ in monthly if s == scheme]
        assert rank == 1 + sum(1 for t in peers if t > total)


def test_assessments_latest_wins_and_missing_is_no_data(generated):
    settings, _, _ = generated
    rows = _rows(settings, "SELECT scheme_id, city_code, indicator, value, score, no_data, evaluator, assessed_on "
                           "FROM marts.scorecard_indicators WHERE indicator IN ('content', 'mechanism') ORDER BY ALL")
    assert rows == [
        ("ALL-2026", "310000", "content", 88.5, Decimal("88.5"), False, "王敏", date(2026, 2, 20)),
        ("ALL-2026", "310000", "mechanism", None, Decimal("0.0"), True, None, None),
        ("ALL-2026", "430100", "content", None, Decimal("0.0"), True, None, None),
        ("ALL-2026", "430100", "mechanism", None, Decimal("0.0"), True, None, None),
        ("ALL-2026", "510100", "content", 95.0, Decimal("95.0"), False, "李雷", date(2026, 2, 5)),
        ("ALL-2026", "510100", "mechanism", 60.0, Decimal("60.0"), False, "李雷", date(2026, 2, 5)),
        ("PAIR-2026", "310000", "content", 88.5, Decimal("98.3"), False, "王敏", date(2026, 2, 20)),  # 88.5 / 90
        ("PAIR-2026", "510100", "content", 95.0, Decimal("100.0"), False, "李雷", date(2026, 2, 5)),
    ]


def test_reports_per_city_and_comparison(generated):
    _, report, tmp = generated
    folder = tmp / "reports" / "2026-01"
    pdfs = sorted(p.name for p in folder.glob("*.pdf"))
    assert pdfs == ["310000_上海_运营评价报告.pdf", "430100_长沙_运营评价报告.pdf", "510100_成都_运营评价报告.pdf",
                    "城市对比_comparison.pdf"]
    shanghai = subprocess.run(["pdftotext", str(folder / pdfs[0]), "-"], capture_output=True, text=True, check=True).stdout
    assert all(w in shanghai for w in ("上海（310000）运营评价报告", "ALL-2026", "PAIR-2026", "两市专项评价", "失分原因"))
    comparison = subprocess.run(["pdftotext", str(folder / pdfs[-1]), "-"], capture_output=True, text=True, check=True).stdout
    assert all(w in comparison for w in ("上海", "成都", "长沙", "海口", "本月未评分"))

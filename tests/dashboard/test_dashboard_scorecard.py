"""The Scorecard page (运营评价) in headless Chromium on the worked example scored for 2026-02 by
the real `citycloud scorecard` (tests/data/tiny/evaluation.yml + assessments.yml): it shows the
recorded total, grade, rank, dimension and indicator scores (expected/scorecard_*_2026-02.csv),
and, before any scoring, says so and names the command."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

import dashboard_handmade as handmade
import duckdb
from dashboard_support import CITYCLOUD, TINY, Dashboard, table_row

from citycloud.config import published_path
from citycloud.scorecard.store import COLUMNS

from citycloud.dashboards import data
from citycloud.dashboards import scorecard_data as sc
from citycloud.access import Scope

EVERY_CITY = Scope.local(())  # local mode: every city, nothing filtered

CITY = "430100"
FEB = dt.date(2026, 2, 1)
JAN = dt.date(2026, 1, 1)
DEC = dt.date(2025, 12, 1)
# expected/scorecard_monthly_2026-02.csv, as the page shows it (mechanism: no indicator in the scheme)
RANKING = ["1", "长沙市（430100）", "87.5", "良好", "86.0", "—", "88.1", "86.3"]


@pytest.fixture(scope="module")
def scored_warehouse(warehouse_under_test, tmp_path_factory):
    """A copy of the worked example's warehouse (the shared one stays unscored), scored for
    February by the CLI, which republishes the snapshot."""
    if warehouse_under_test["kind"] != "tiny":
        pytest.skip(f"the Scorecard page needs the worked example's warehouse: {warehouse_under_test['note']}")
    folder = tmp_path_factory.mktemp("scorecard-warehouse")
    source = warehouse_under_test["warehouse"]
    warehouse = folder / source.name
    shutil.copy2(source, warehouse)
    shutil.copy2(published_path(source), published_path(warehouse))
    env = dict(os.environ, CITYCLOUD_OUTPUT=str(folder / "output"))  # scoring reads no personal data: no key
    run = subprocess.run([str(CITYCLOUD), "scorecard", "--warehouse", str(warehouse), "--scheme",
                          str(TINY / "evaluation.yml"), "--assessments", str(TINY / "assessments.yml"),
                          "--month", "2026-02", "--out", str(folder / "reports")],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "EVAL-TINY #1 430100 87.5 良好" in run.stdout
    return warehouse


@pytest.fixture(scope="module")
def scored_dashboard(scored_warehouse, tmp_path_factory):
    d = Dashboard(scored_warehouse, tmp_path_factory.mktemp("scorecard-log") / "streamlit.log")
    yield d
    d.stop()


@pytest.mark.slow
def test_scorecard_page_shows_the_recorded_scores(scored_dashboard, browser, tmp_path):
    browser.open(f"{scored_dashboard.url}/scorecard?city={CITY}",
                 ["运营评价 Scorecard", "城市排名", "指标得分", "总分趋势", "EVAL-TINY", "2026年02月"])
    browser.wait_settled()
    text = browser.text()
    assert "Traceback" not in text and "Error:" not in text, text[:3000]
    tables = browser.tables()
    assert table_row(tables, "1") == RANKING
    # indicators with labels from indicators.yml; team was not assessed: no value, scored 0, flagged
    assert table_row(tables, "运营团队") == ["运营团队", "运营能力", "无数据 no data", "100.0", "5%", "0.0", "5.00", "⚠ 无数据"]
    assert table_row(tables, "服务覆盖") == ["服务覆盖", "运营能力", "38", "40", "15%", "95.0", "0.75", ""]
    assert table_row(tables, "可用性") == ["可用性", "运营能力", "90.22%", "95.00%", "15%", "95.0", "0.75", ""]
    assert table_row(tables, "资源利用率") == ["资源利用率", "运营成效", "53.98%", "80.00%", "10%", "67.5", "3.25", ""]
    assert table_row(tables, "运营内容") == ["运营内容", "运营内容", "86.0", "100.0", "5%", "86.0", "0.70", ""]
    assert len([r for r in tables if r and r[-1] in ("", "⚠ 无数据") and len(r) == 8]) == 10
    # the trend: one month scored so far
    assert table_row(tables, "2026年02月") == ["2026年02月", "87.5"]
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 1
    # into the test's folder; `make docs-img` sets CITYCLOUD_SCREENSHOT_DIR to refresh docs/img
    browser.screenshot(Path(os.environ.get("CITYCLOUD_SCREENSHOT_DIR") or tmp_path) / "dashboard_scorecard.png")


@pytest.mark.slow
def test_scorecard_page_before_scoring_names_the_command(dashboard, browser, warehouse_under_test):
    # the shared warehouse was run and settled but never scored
    text = browser.open(f"{dashboard.url}/scorecard", ["运营评价 Scorecard", "尚未计算运营评价",
                                                       "citycloud scorecard --warehouse"])
    assert f"--warehouse {warehouse_under_test['warehouse'].resolve()} --scheme evaluation.yml" in text
    assert "--month YYYY-MM" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_scorecard_data_as_recorded(scored_warehouse, warehouse_under_test):
    d = data.run_load(scored_warehouse, EVERY_CITY, sc.load_scorecard)
    assert (d["missing"], d["months"], d["month"]) == ([], [FEB], FEB)
    assert sc.ranking_table(d["monthly"], FEB, "EVAL-TINY").values.tolist() == [RANKING]
    ind = sc.indicator_table(d["indicators"], "EVAL-TINY", CITY)
    assert ind["得分 Score"].tolist() == ["95.0", "95.0", "92.6", "98.7", "96.4", "0.0", "67.5", "100.0", "91.3", "86.0"]
    assert ind["无数据 No data"].tolist().count("⚠ 无数据") == 1
    # weight × (100 − score); 100 − their sum is Σ weight × score = 87.45, the total 87.5 rounded half-up
    lost = ind["失分 Points lost"].tolist()
    assert lost == ["0.75", "0.75", "0.74", "0.13", "0.36", "5.00", "3.25", "0.00", "0.87", "0.70"]
    assert 100 - sum(Decimal(x) for x in lost) == Decimal("87.45")
    assert d["refusals"].empty
    trend = sc.trend(d["monthly"], "EVAL-TINY")
    assert trend[["city_code", "total_score", "grade", "rank"]].values.tolist() == [[CITY, 87.5, "良好", 1]]
    # a month not scored falls back to the latest scored one
    assert data.run_load(scored_warehouse, EVERY_CITY, sc.load_scorecard, "2026-01-01")["month"] == FEB
    # before scoring: no months, and the tables the snapshot lacks are named
    unscored = data.run_load(warehouse_under_test["warehouse"], EVERY_CITY, sc.load_scorecard)
    assert unscored["months"] == [] and unscored["missing"] == [sc.MONTHLY, sc.INDICATORS]


# ---- hand-built: two schemes, two months, equal totals, a refusal, a city not scored in January ----
MONTHLY_ROWS = [  # city, month, scheme, total, grade, content, mechanism, capability, results, rank
    ("430100", FEB, "EVAL-ALL", 80.0, "良好", 70.0, None, 85.0, 80.0, 1),
    ("310000", FEB, "EVAL-ALL", 80.0, "良好", 90.0, None, 75.0, 82.5, 1),
    ("510100", FEB, "EVAL-ALL", 55.0, "不合格", 50.0, None, 55.0, 57.5, 3),
    ("430100", JAN, "EVAL-ALL", 70.0, "合格", 70.0, None, 72.0, 68.0, 2),
    ("310000", JAN, "EVAL-ALL", 75.0, "合格", 80.0, None, 74.0, 75.0, 1),
    ("430100", FEB, "EVAL-TWO", 90.0, "优秀", None, 90.0, 90.0, None, 1),
]
INDICATOR_ROWS = [  # city, month, scheme, indicator, dimension, value, target, weight, score, no_data
    ("430100", FEB, "EVAL-TWO", "team", "capability", None, 100.0, 0.4, 0.0, True),
    ("430100", FEB, "EVAL-TWO", "availability", "capability", 0.9, 0.95, 0.6, 94.7, False),
]


@pytest.fixture(scope="module")
def handmade_scored(tmp_path_factory):
    """The hand-built snapshot plus scorecard tables made with the store's own column list."""
    warehouse = tmp_path_factory.mktemp("scorecard-handmade") / "handmade.duckdb"
    handmade.build(warehouse)
    con = duckdb.connect(str(published_path(warehouse)))
    try:
        for table, columns in COLUMNS.items():
            con.execute(f"CREATE TABLE marts.{table} ({columns})")
        con.executemany("INSERT INTO marts.scorecard_monthly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                        MONTHLY_ROWS)
        con.executemany("INSERT INTO marts.scorecard_indicators VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, now())", INDICATOR_ROWS)
        con.execute("INSERT INTO marts.scorecard_refusals VALUES "
                    "('460100', DATE '2026-02-01', 'EVAL-TWO', '2026-02 is not covered', now()), "
                    "('430100', DATE '2025-12-01', 'EVAL-ALL', '2025-12 is not covered', now())")
    finally:
        con.close()
    return warehouse


def test_scorecard_data_of_two_schemes_and_months(handmade_scored):
    d = data.run_load(handmade_scored, EVERY_CITY, sc.load_scorecard)
    assert (d["months"], d["month"]) == ([FEB, JAN, DEC], FEB)
    assert sc.schemes_of(d) == ["EVAL-ALL", "EVAL-TWO"]
    # equal totals share rank 1, the next city is 3rd; the code breaks the tie in the listing
    assert sc.ranking_table(d["monthly"], FEB, "EVAL-ALL").values.tolist() == [
        ["1", "上海市（310000）", "80.0", "良好", "90.0", "—", "75.0", "82.5"],
        ["1", "长沙市（430100）", "80.0", "良好", "70.0", "—", "85.0", "80.0"],
        ["3", "成都市（510100）", "55.0", "不合格", "50.0", "—", "55.0", "57.5"]]
    assert sc.ranking_table(d["monthly"], FEB, "EVAL-TWO").values.tolist() == [
        ["1", "长沙市（430100）", "90.0", "优秀", "—", "90.0", "90.0", "—"]]
    assert d["refusals"].values.tolist() == [["EVAL-TWO", "460100", "2026-02 is not covered"]]
    ind = sc.indicator_table(d["indicators"], "EVAL-TWO", "430100")  # catalogue order: availability first
    assert ind.values.tolist() == [["可用性", "运营能力", "90.00%", "95.00%", "60%", "94.7", "3.18", ""],
                                   ["运营团队", "运营能力", "无数据 no data", "100.0", "40%", "0.0", "40.00", "⚠ 无数据"]]
    table = sc.trend_table(sc.trend(d["monthly"], "EVAL-ALL"))
    assert list(table.columns) == ["月份 Month", "上海市（310000）", "成都市（510100）", "长沙市（430100）"]
    assert table.values.tolist() == [["2026年02月", "80.0", "55.0", "80.0"], ["2026年01月", "75.0", "—", "70.0"]]
    # an earlier month on request: its indicators and refusals only
    jan = data.run_load(handmade_scored, EVERY_CITY, sc.load_scorecard, JAN)
    assert jan["month"] == JAN and jan["indicators"].empty and jan["refusals"].empty
    assert sc.schemes_of(jan) == ["EVAL-ALL"]
    # December: every city refused, nothing scored; the month is listed and says why
    dec = data.run_load(handmade_scored, EVERY_CITY, sc.load_scorecard, DEC)
    assert sc.schemes_of(dec) == ["EVAL-ALL"] and sc.ranking_table(dec["monthly"], DEC, "EVAL-ALL").empty
    assert dec["refusals"].values.tolist() == [["EVAL-ALL", "430100", "2025-12 is not covered"]]


@pytest.mark.slow
def test_scorecard_page_with_two_schemes(handmade_scored, browser, tmp_path):
    d = Dashboard(handmade_scored, tmp_path / "streamlit.log")
    try:
        browser.open(f"{d.url}/scorecard", ["评价方案 Scheme EVAL-ALL", "评价方案 Scheme EVAL-TWO", "海口市（460100）",
                                            "总分趋势"])
        browser.wait_settled()
        text = browser.text()
        assert "Traceback" not in text and "Error:" not in text, text[:3000]
        assert "海口市（460100） 未评分 (not scored): 2026-02 is not covered" in text
        tables = browser.tables()
        assert [r[:3] for r in tables if r and r[0] in ("1", "3")] == [
            ["1", "上海市（310000）", "80.0"], ["1", "长沙市（430100）", "80.0"], ["3", "成都市（510100）", "55.0"],
            ["1", "长沙市（430100）", "90.0"]]
        assert table_row(tables, "2026年01月") == ["2026年01月", "75.0", "—", "70.0"]
        assert table_row(tables, "运营团队")[-2:] == ["40.00", "⚠ 无数据"]
        assert browser.evaluate("document.querySelectorAll('.vega-embed').length") == 2
        browser.screenshot(tmp_path / "dashboard_scorecard_two_schemes.png")
        # January through the URL: only EVAL-ALL was scored then, Shanghai ahead of Changsha
        browser.open(f"{d.url}/scorecard?month=2026-01", ["评价方案 Scheme EVAL-ALL", "2026年01月"],
                     absent=["评价方案 Scheme EVAL-TWO"])
        browser.wait_settled()
        tables = browser.tables()
        assert [r[:4] for r in tables if r and r[0] in ("1", "2")] == [
            ["1", "上海市（310000）", "75.0", "合格"], ["2", "长沙市（430100）", "70.0", "合格"]]
        assert "评价方案 Scheme EVAL-TWO" not in browser.text()
        browser.open(f"{d.url}/scorecard?month=2025-12", ["2025年12月", "长沙市（430100） 未评分 (not scored): 2025-12"])
        assert "Traceback" not in browser.text()
    finally:
        d.stop()


def test_scorecard_month_from_the_url():
    assert sc.parse_month("2026-01") == JAN
    assert [sc.parse_month(t) for t in (None, "", "2026-13", "2026-01-05", "январь")] == [None] * 5

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

import pytest

from dashboard_support import CITYCLOUD, TINY, Dashboard

from citycloud.config import published_path

from dashboards import data
from dashboards import scorecard_data as sc

pytestmark = pytest.mark.slow

CITY = "430100"
FEB = dt.date(2026, 2, 1)
# expected/scorecard_monthly_2026-02.csv, as the page shows it (mechanism: no indicator in the scheme)
RANKING = ["1", "长沙市（430100）", "87.5", "良好", "86.0", "—", "88.1", "86.3"]


def _row(tables: list[list[str]], first: str) -> list[str]:
    for r in tables:
        if r and r[0] == first:
            return r
    raise AssertionError(f"no table row starting with {first!r}; rows: {tables[:60]}")


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
    env = dict(os.environ, CITYCLOUD_PII_KEY=os.environ.get("CITYCLOUD_PII_KEY") or "ab" * 32,
               CITYCLOUD_OUTPUT=str(folder / "output"))
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


def test_scorecard_page_shows_the_recorded_scores(scored_dashboard, browser, tmp_path):
    browser.open(f"{scored_dashboard.url}/scorecard?city={CITY}",
                 ["运营评价 Scorecard", "城市排名", "指标得分", "总分趋势", "EVAL-TINY", "2026年02月"])
    browser.wait_settled()
    text = browser.text()
    assert "Traceback" not in text and "Error:" not in text, text[:3000]
    tables = browser.tables()
    assert _row(tables, "1") == RANKING
    # indicators with labels from indicators.yml; team was not assessed: no value, scored 0, flagged
    assert _row(tables, "运营团队") == ["运营团队", "运营能力", "无数据 no data", "100.0", "5%", "0.0", "5.00", "⚠ 无数据"]
    assert _row(tables, "服务覆盖") == ["服务覆盖", "运营能力", "38", "40", "15%", "95.0", "0.75", ""]
    assert _row(tables, "可用性") == ["可用性", "运营能力", "90.22%", "95.00%", "15%", "95.0", "0.75", ""]
    assert _row(tables, "资源利用率") == ["资源利用率", "运营成效", "53.98%", "80.00%", "10%", "67.5", "3.25", ""]
    assert _row(tables, "运营内容") == ["运营内容", "运营内容", "86.0", "100.0", "5%", "86.0", "0.70", ""]
    assert len([r for r in tables if r and r[-1] in ("", "⚠ 无数据") and len(r) == 8]) == 10
    # the trend: one month scored so far
    assert _row(tables, "2026年02月") == ["2026年02月", "87.5"]
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 1
    browser.screenshot(tmp_path / "dashboard_scorecard.png")


def test_scorecard_page_before_scoring_names_the_command(dashboard, browser, warehouse_under_test):
    # the shared warehouse was run and settled but never scored
    text = browser.open(f"{dashboard.url}/scorecard", ["运营评价 Scorecard", "尚未计算运营评价",
                                                       "citycloud scorecard --warehouse"])
    assert f"--warehouse {warehouse_under_test['warehouse'].resolve()} --scheme evaluation.yml" in text
    assert "--month YYYY-MM" in text
    assert "Traceback" not in text


def test_scorecard_data_as_recorded(scored_warehouse, warehouse_under_test):
    d = data.run_load(scored_warehouse, sc.load_scorecard)
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
    assert data.run_load(scored_warehouse, sc.load_scorecard, "2026-01-01")["month"] == FEB
    # before scoring: no months, and the tables the snapshot lacks are named
    unscored = data.run_load(warehouse_under_test["warehouse"], sc.load_scorecard)
    assert unscored["months"] == [] and unscored["missing"] == [sc.MONTHLY, sc.INDICATORS]

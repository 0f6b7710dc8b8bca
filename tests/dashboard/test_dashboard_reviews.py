"""The reviews page (好差评) on hand-made review marts (tests/review_report/review_marts.py,
counted by hand there): its loaders without a browser, then the page in headless Chromium read
as a person reads it, in local mode (every city). The scoped view of a logged-in person is
tests/access/test_reviews_access.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "review_report"))

import review_marts  # noqa: E402
from dashboard_support import Dashboard, table_row  # noqa: E402

from citycloud import review_figures as rf  # noqa: E402
from citycloud.access import Scope  # noqa: E402
from citycloud.dashboards import data  # noqa: E402
from citycloud.dashboards import reviews_data as rd  # noqa: E402

EVERY_CITY = Scope.local(())
CHANGSHA_OPERATOR = Scope("ops.changsha@example.org", "operator", ("430100",))
LOOP = ["长沙市（430100）", "40", "8", "28.6%", "33.3%", "1", "3", "否 may still change", "2026-03-10"]
DEPARTMENTS = [["市人社局", "3", "0", "1", "1", "1", "33.3%", "2", "1", "50.0%", "2"],
               ["市公安局", "3", "1", "0", "0", "1", "0.0%", "0", "0", "—", "0"],
               ["<i>市医保局</i>", "1", "0", "1", "0", "0", "100.0%", "0", "0", "—", "1"],
               ["未分派（无工单） unassigned", "1", "0", "0", "0", "1", "0.0%", "1", "0", "0.0%", "0"]]
OVERDUE = [["T-0003", "市人社局", "2026-03-05", "2026-02-09"], ["T-0005", "市公安局", "2026-03-06", "2026-02-10"],
           ["无工单 no ticket", "未分派（无工单） unassigned", "2026-03-09", "2026-02-13"]]


@pytest.fixture(scope="module")
def reviews_warehouse(tmp_path_factory):
    return review_marts.build_dashboard(tmp_path_factory.mktemp("reviews-dashboard") / "handmade.duckdb")


def test_loaders_give_the_hand_counted_figures(reviews_warehouse):
    d = data.run_load(reviews_warehouse, EVERY_CITY, rd.load_reviews, ("430100",))
    assert (d["missing"], d["months"], d["month"]) == ([], [review_marts.FEB, review_marts.JAN], review_marts.FEB)
    figures = d["figures"]
    assert rd.loop_table(figures).values.tolist() == [LOOP]
    assert rd.department_table(figures, several=False).values.tolist() == DEPARTMENTS
    assert rd.overdue_table(figures, several=False).values.tolist() == OVERDUE
    assert rd.top_tags(figures).values.tolist() == [["办事效率", 3], ["指南不准", 1], ["服务态度", 1], ["流程繁琐", 1],
                                                    ["系统故障", 1], ["未分类 untagged", 1]]
    # January: no bad review; a month asked for that has no figures falls back to the latest
    jan = data.run_load(reviews_warehouse, EVERY_CITY, rd.load_reviews, ("430100",), review_marts.JAN)["figures"]
    assert rd.loop_table(jan).values.tolist() == [["长沙市（430100）", "5", "0", "—", "—", "0", "0", "是 settled",
                                                   "2026-03-10"]]
    assert jan.departments.empty and jan.overdue.empty
    assert data.run_load(reviews_warehouse, EVERY_CITY, rd.load_reviews, ("430100",),
                         rd.parse_month("2025-07"))["month"] == review_marts.FEB


def test_a_scoped_load_never_holds_another_city(reviews_warehouse):
    """Asked for Shanghai too, Changsha's operator gets Changsha's rows only (the scoped connection)."""
    d = data.run_load(reviews_warehouse, CHANGSHA_OPERATOR, rd.load_reviews, ("430100", "310000"))
    figures = d["figures"]
    for frame in (figures.overview, figures.departments, figures.tags, figures.channels, figures.overdue):
        assert set(frame["city_code"]) == {"430100"}
    assert "SH-T-9001" not in set(figures.overdue["ticket_id"].dropna())
    shanghai_only = data.run_load(reviews_warehouse, CHANGSHA_OPERATOR, rd.load_reviews, ("310000",))
    assert shanghai_only["months"] == [] and shanghai_only["figures"] is None


@pytest.fixture(scope="module")
def reviews_dashboard(reviews_warehouse, tmp_path_factory):
    d = Dashboard(reviews_warehouse, tmp_path_factory.mktemp("reviews-log") / "streamlit.log")
    yield d
    d.stop()


@pytest.mark.slow
def test_the_page_reads_as_the_figures(reviews_dashboard, browser, tmp_path):
    browser.open(f"{reviews_dashboard.url}/reviews?city=430100&month=2026-02",
                 ["好差评 Reviews", "本月闭环", "差评标签", "各部门", "逾期未整改", "2026年02月"])
    browser.wait_settled()
    text = browser.text()
    assert "Traceback" not in text and "Error:" not in text, text[:3000]
    tables = browser.tables()
    assert table_row(tables, "长沙市（430100）") == LOOP
    for row in DEPARTMENTS:
        assert table_row(tables, row[0]) == row
    for row in OVERDUE:
        assert table_row(tables, row[0]) == row
    assert table_row(tables, "办事效率") == ["办事效率", "3"]
    assert "T-0007" not in text  # open, not due yet
    assert "其中 1 条无工单" in text
    # a delivered name with markup is text: no <i> element, the tags shown as typed
    assert browser.evaluate("Array.from(document.querySelectorAll('i')).filter(e => e.innerText.includes('市医保局'))"
                            ".length") == 0
    # one city: the cards
    assert rf.both("on_time_rate") in text and "28.6%" in text
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 1
    browser.screenshot(tmp_path / "dashboard_reviews.png")


@pytest.mark.slow
def test_every_city_in_local_mode_and_the_month_in_the_url(reviews_dashboard, browser):
    browser.open(f"{reviews_dashboard.url}/reviews?month=2026-02", ["好差评 Reviews", "上海市（310000）", "SH-T-9001"])
    browser.wait_settled()
    tables = browser.tables()
    assert table_row(tables, "上海市（310000）")[:5] == ["上海市（310000）", "10", "2", "50.0%", "—"]
    assert ["上海市（310000）", "SH-T-9001", "上海市大数据中心", "2026-02-27", "2026-02-03"] in tables
    browser.open(f"{reviews_dashboard.url}/reviews?city=430100&month=2026-01", ["好差评 Reviews", "2026年01月"])
    browser.wait_settled()
    assert table_row(browser.tables(), "长沙市（430100）")[:3] == ["长沙市（430100）", "5", "0"]
    assert "无记录" in browser.text()  # no department, no overdue

"""The pages stay readable with the demo's five cities (headless Chromium, 1440 px wide):
a day outside the data is named, an incomplete folder is shown as such, settlement amounts
are whole and totalled, the Services page stays short, trend legends show every city."""
from __future__ import annotations

import datetime as dt

import pytest

import dashboard_fivecities as fivecities
from dashboard_browser import CUT_CHART_TEXT_JS
from dashboard_support import Dashboard, snapshot_query, table_row
from test_dashboard_browser import assert_clean

from citycloud.dashboards import fmt

pytestmark = pytest.mark.slow

# Every legend label inside its chart's box (a legend cut off at the chart's edge fails).
LEGENDS_JS = """
Array.from(document.querySelectorAll('.vega-embed')).map(embed => {
  const box = embed.getBoundingClientRect();
  return Array.from(embed.querySelectorAll('.role-legend-label text')).map(t => {
    const r = t.getBoundingClientRect();
    return [t.textContent, r.left >= box.left - 1 && r.right <= box.right + 1];
  });
}).filter(labels => labels.length)
"""
# The category labels of each bar chart (its y axis), chart by chart.
BAR_LABELS_JS = """
Array.from(document.querySelectorAll('.vega-embed')).filter(e => e.querySelector('.mark-rect'))
  .map(e => Array.from(e.querySelectorAll('.role-axis-label text')).map(t => t.textContent))
"""
# Elements showing an amount that does not fit (cut off with an ellipsis or clipped).
CUT_AMOUNTS_JS = """
Array.from(document.querySelectorAll('[data-testid="stMain"] *'))
  .filter(e => e.children.length === 0 && e.textContent.includes('¥') && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent)
"""


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    folder = tmp_path_factory.mktemp("five-cities")
    facts = fivecities.build(folder / "wh.duckdb")
    d = Dashboard(facts["warehouse"], folder / "streamlit.log")
    yield d, facts
    d.stop()


def test_a_day_outside_the_data_is_named(five, browser):
    d, facts = five
    first, last = facts["first_day"], facts["last_day"]
    text = browser.open(f"{d.url}/?day=2025-12-01", [f"showing {first}", "全部指标"])
    assert f"2025-12-01 is before the first day with data ({first}); showing {first}." in text
    assert_clean(text)
    text = browser.open(f"{d.url}/trends?day=2027-01-01&city=430100", [f"showing {last}"])
    assert f"2027-01-01 is after the last day with data ({last}); showing {last}." in text


def test_a_folder_without_success_is_incomplete_not_missing(five, browser):
    d, facts = five
    folder, last = facts["incomplete_folder"], facts["last_day"]
    text = browser.open(f"{d.url}/?city=430100", ["交付", folder])
    browser.wait_settled()
    assert_clean(text)
    grid = browser.wait_row(fmt.SOURCE_LABELS["ratings"])
    assert grid[-1] == "⚠️ 未完成"  # the last day's column
    assert f"已交付但未完成（无 _SUCCESS），未读取：{folder}" in browser.text()
    summary = browser.open(f"{d.url}/", ["各城市"])
    assert_clean(summary)
    # the summary line uses the grid's symbol: ⚠️ for incomplete (❌ is for missing)
    assert browser.wait_row("长沙市（430100）")[-1] == f"⚠️ ratings 未完成（无 _SUCCESS）：{folder}"


def test_settlement_amounts_are_whole_and_totalled(five, browser):
    d, _ = five
    text = browser.open(f"{d.url}/settlement", ["结算单版本", "SH-2026-001", "合计"])
    browser.wait_settled()
    assert_clean(text)
    tables = browser.tables()
    assert table_row(tables, "SH-2026-001")[-1] == "¥1,250,000.00"
    # the latest version of each contract: 1,250,000.00 + 33,800.00 (v2 of CS-2026-003)
    assert table_row(tables, "合计 Total（2 个合同）")[-2:] == ["¥1,552,000.00", "¥1,283,800.00"]
    assert browser.evaluate(CUT_AMOUNTS_JS) == []


def test_settlement_weights_and_factors_read_as_terms(five, browser):
    """Weights and factors are stored as DECIMAL(38,18): shown as 30% and 0.90, not 0.300000000000000000."""
    d, _ = five
    text = browser.open(f"{d.url}/settlement?city=430100", ["指标达成", "CS-2026-003"])
    browser.wait_settled()
    assert_clean(text)
    tables = browser.tables()
    # kpi, actual, target, attainment, weight, factor (v2 of CS-2026-003)
    assert table_row(tables, fmt.kpi_label("registered_users"))[-2:] == ["30%", "0.00"]
    assert table_row(tables, fmt.kpi_label("satisfaction_rate"))[-2:] == ["20%", "1.00"]
    assert "000000" not in browser.text()


def test_services_with_all_cities_stays_short(five, browser):
    d, facts = five
    text = browser.open(f"{d.url}/services", ["按部门", "其余"])
    browser.wait_settled()
    assert_clean(text)
    departments = [r for r in browser.tables() if r and r[0].startswith("其余 ")]
    assert departments[0][0] == "其余 300 个 (rest)"  # 310 departments of a city: 10 named, the rest one line
    height = browser.page_height()
    assert height < 4000, f"Services page is {height} px tall with {facts['departments']} departments"


def test_departments_are_a_citys_and_the_rest_is_no_bar(five, browser):
    """市公安局 of each city is its own row, with its city; the rest is a note, not a bar that
    sets the chart's scale."""
    d, facts = five
    text = browser.open(f"{d.url}/services", ["按部门", "其余"])
    browser.wait_settled()
    assert_clean(text)
    start = facts["last_day"] - dt.timedelta(days=6)
    expected = dict(snapshot_query(facts["warehouse"], "SELECT city_code, sum(total_accesses) FROM marts.service_daily "
                                   "WHERE department = ? AND kpi_date >= ? GROUP BY 1",
                                   [fivecities.SHARED_DEPARTMENT, start]))
    rows = [r for r in browser.tables() if len(r) == 6 and r[1] == fivecities.SHARED_DEPARTMENT]
    assert sorted(r[0] for r in rows) == sorted(fmt.city_name(c) for c in expected)
    for r in rows:
        city = next(c for c in expected if fmt.city_name(c) == r[0])
        assert r[4] == fmt.fmt_int(expected[city]), r
    bars = browser.evaluate(BAR_LABELS_JS)
    assert f"{fivecities.SHARED_DEPARTMENT}（长沙市）" in bars[0] and f"{fivecities.SHARED_DEPARTMENT}（海口市）" in bars[0]
    assert not any(label.startswith(("其余", "其他")) for chart in bars for label in chart), bars
    assert "另有 300 个部门共" in text and "未画入图中" in text


def test_trend_legends_show_every_city(five, browser):
    d, _ = five
    text = browser.open(f"{d.url}/trends", ["活跃用户指标", "近7日合并好评率", "样本量"])
    browser.wait_settled()
    assert_clean(text)
    cities = {fmt.city_name(c) for c in fivecities.CITIES}
    legends = browser.evaluate(LEGENDS_JS)
    assert len(legends) >= 6
    for labels in legends:
        assert {name for name, _ in labels} >= cities, labels
        assert all(inside for _, inside in labels), f"legend cut off: {labels}"
    assert browser.evaluate(CUT_CHART_TEXT_JS) == []  # no axis title or label shortened or cut either
    # one active-users metric at a time for several cities: five lines, no metric legend
    assert "日活跃用户 DAU Daily active users" in text

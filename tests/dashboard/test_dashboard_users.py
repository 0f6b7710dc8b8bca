"""The Users page (用户运营) in headless Chromium: its tables show the published user-operations
marts' figures, and its data functions sum cities and recompute rates from counts."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest

from dashboard_browser import CUT_CHART_TEXT_JS
from dashboard_support import ROOT, snapshot_query, table_row

from citycloud.dashboards import data, fmt, user_ops
from citycloud.access import Scope

EVERY_CITY = Scope.local(())  # local mode: every city, nothing filtered

pytestmark = pytest.mark.slow

# Tests write only to temporary folders; `make docs-img` points this at docs/img to refresh the docs.
SHOTS = Path(os.environ.get("CITYCLOUD_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="citycloud-shots-"))
CITY = "430100"


@pytest.fixture(scope="module")
def tiny_snapshot(warehouse_under_test):
    if warehouse_under_test["kind"] != "tiny":
        pytest.skip(f"the Users page needs the worked example's snapshot: {warehouse_under_test['note']}")
    return warehouse_under_test["warehouse"]


def test_users_page_shows_the_published_figures(dashboard, browser, tiny_snapshot):
    (week, active, new, returning, resurrecting, dormant) = snapshot_query(
        tiny_snapshot, "SELECT period_start, active_users, new_users, returning_users, resurrecting_users, "
                       "dormant_users FROM marts.user_lifecycle WHERE city_code = ? AND grain = 'week' "
                       "ORDER BY period_start DESC LIMIT 1", [CITY])[0]
    text = browser.open(f"{dashboard.url}/users?city={CITY}",
                        ["用户运营", "用户生命周期", "月度留存", "7日激活", "月活跃天数分布", "渠道构成", fmt.fmt_date(week)])
    browser.wait_settled()
    text = browser.text()
    assert "Traceback" not in text and "Error:" not in text, text[:3000]
    tables = browser.tables()
    # the worked example's last covered week: 96 active = 18 new + 64 returning + 14 resurrecting, 12 dormant
    assert table_row(tables, fmt.fmt_date(week))[1:6] == [fmt.fmt_int(v) for v in
                                                     (active, new, returning, resurrecting, dormant)]
    assert table_row(tables, "2026-02-23")[1:6] == ["96", "18", "64", "14", "12"]
    # February's cohort, all channels, month 0: 43 of 64 users
    assert table_row(tables, "2026年02月")[1:5] == ["0", "64", "43", "67.19%"]
    # stickiness of February: 20 users came on exactly one day (of 110 active)
    assert table_row(tables, "1")[1:3] == ["20", fmt.fmt_pct(20 / 110)]
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 5
    # channels by their names (citycloud/channels.py), in the table and the chart's legend, never as codes
    assert table_row(tables, "支付宝小程序")[0] == "支付宝小程序"
    legend = browser.evaluate("Array.from(document.querySelectorAll('.role-legend-label text')).map(t => t.textContent)")
    assert {"支付宝小程序", "微信小程序"} <= set(legend), legend
    assert "alipay_mini" not in browser.text() + " ".join(legend)
    browser.screenshot(SHOTS / "dashboard_users.png")


# The bars of the daily activation chart: their description (day, step, users) and where they stand.
ACTIVATION_BARS_JS = """
Array.from(document.querySelectorAll('.vega-embed .mark-rect path[aria-label*="注册日"]')).map(p => {
  const r = p.getBoundingClientRect();
  return [p.getAttribute('aria-label'), Math.round(r.left), Math.round(r.bottom), Math.round(r.height)];
})
"""


def test_users_charts_show_their_text_whole(dashboard, browser, tiny_snapshot):
    """At 1440 px no axis title, axis label or legend label is shortened or cut at the chart's edge."""
    browser.open(f"{dashboard.url}/users?city={CITY}", ["7日激活", "月活跃天数分布", "渠道构成"])
    browser.wait_settled()
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") >= 5
    assert browser.evaluate(CUT_CHART_TEXT_JS) == []


def test_activation_steps_stand_side_by_side(dashboard, browser, tiny_snapshot):
    """A funnel: each day's three steps are bars next to each other, all from the zero line
    (stacked, 19 + 11 + 6 would read as 36)."""
    browser.open(f"{dashboard.url}/users?city={CITY}", ["7日激活", "月活跃天数分布"])
    browser.wait_settled()
    bars = browser.evaluate(ACTIVATION_BARS_JS)
    assert len(bars) >= 3 * 20, bars[:5]
    by_day: dict[str, list] = {}
    for label, left, bottom, height in bars:
        by_day.setdefault(label.split("注册日: ")[1].split(";")[0], []).append((left, bottom, height))
    baseline = max(bottom for _, bottom, _ in (b for day in by_day.values() for b in day))
    for day, steps in by_day.items():
        assert len(steps) == 3, (day, steps)
        assert len({left for left, _, _ in steps}) == 3, f"{day}: steps drawn on top of each other {steps}"
        assert all(abs(bottom - baseline) <= 1 for _, bottom, h in steps if h), f"{day}: stacked {steps}"


def test_users_data_sums_cities_and_recomputes_rates(tiny_snapshot):
    d = data.run_load(tiny_snapshot, EVERY_CITY, user_ops.load_users, [CITY, "999999"], dt.date(2026, 3, 3))
    assert d["missing"] == []
    feb = d["retention"][(d["retention"]["channel"] == "all")
                         & (d["retention"]["cohort_month"] == "2026-02-01")].iloc[0]
    assert (feb["cohort_users"], feb["retained_users"], feb["retention_rate"]) == (64, 43, 43 / 64)
    f = user_ops.funnel(d["activation"])
    # the 30 registration days up to 03-03 whose 7-day window is complete: 02-02 .. 02-25
    assert f["users"].tolist() == [54, 27, 15]
    long = user_ops.lifecycle_long(d["lifecycle"], "week")
    dormant = long[(long["kind"] == "dormant_users") & (long["period_start"] == "2026-02-23")]
    assert dormant["signed"].tolist() == [-12]

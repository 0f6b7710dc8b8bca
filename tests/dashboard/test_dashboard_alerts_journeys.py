"""The Alerts page and the Users page's journeys in headless Chromium, on a generated two-city
warehouse built once per session (tests/conftest.py's alerts_journeys_built: the worked example
has one city, no anomaly and no funnels): the pages show what the snapshot holds, exactly, and
a catalogue name that is markup is shown as text."""
from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
from pathlib import Path

import pytest

from dashboard_browser import CUT_CHART_TEXT_JS
from dashboard_support import Dashboard, snapshot_query
from citycloud.config import PROJECT_ROOT
from citycloud.dashboards import fmt
from tests.conftest import HOSTILE_NAME, HOSTILE_SERVICE

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("CITYCLOUD_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="citycloud-shots-"))
DAY = dt.date(2026, 3, 11)  # the data's last day; the page lists the 14 days up to it
FUNNELS = PROJECT_ROOT / "pipeline" / "demo_funnels.yml"
WEEKDAYS = "一二三四五六日"


@pytest.fixture(scope="module")
def served(alerts_journeys_built, tmp_path_factory):
    d = Dashboard(alerts_journeys_built.warehouse, tmp_path_factory.mktemp("aj-dashboard") / "streamlit.log",
                  env={"CITYCLOUD_FUNNELS": str(FUNNELS)})
    d.warehouse = alerts_journeys_built.warehouse
    yield d
    d.stop()


def _figure(metric: str, value: float) -> str:
    return f"{value:.1%}" if fmt.is_rate(metric) else f"{value:,.0f}"


def expected_message(city_name: str, day: dt.date, metric: str, value, expected, low, high, direction) -> str:
    """alerts.md's line, written out here from the spec's example (not from citycloud/alerts)."""
    f = lambda v: _figure(metric, v)  # noqa: E731
    side = "高于" if direction == "up" else "低于"
    return (f"{city_name} {day}(周{WEEKDAYS[day.weekday()]}){fmt.kpi_label(metric)} {f(value)},"
            f"近8个周{WEEKDAYS[day.weekday()]}中位数 {f(expected)},{side}预期区间 {f(low)}–{f(high)}")


def contiguous(rows: list[list[str]], block: list[list[str]]) -> bool:
    return any(rows[i:i + len(block)] == block for i in range(len(rows) - len(block) + 1))


def test_alerts_page_lists_the_anomalies_with_their_same_weekday_history(served, browser):
    wh = served.warehouse
    anomalies = snapshot_query(wh, "SELECT a.city_code, c.city_name, a.kpi_date, a.metric, a.value, a.expected, "
                                   "a.lower_bound, a.upper_bound, a.direction FROM marts.kpi_anomalies a "
                                   "JOIN marts.city_reference c USING (city_code) WHERE a.service_id IS NULL "
                                   "ORDER BY a.kpi_date DESC, a.metric")
    shown = [a for a in anomalies if DAY - dt.timedelta(days=13) <= a[2] <= DAY]
    hidden = [a for a in anomalies if a[2] < DAY - dt.timedelta(days=13)]
    assert len(shown) == 4 and {a[0] for a in shown} == {"310000"} and hidden  # the injected drops; older ones
    browser.open(f"{served.url}/alerts?day={DAY}", ["告警 Alerts", "当前告警", "同星期历史"])
    browser.wait_settled()
    text = browser.text()
    assert "Traceback" not in text and "Error:" not in text, text[:3000]
    tables = browser.tables()
    for city, name, day, metric, value, expected, low, high, direction in shown:
        message = expected_message(name, day, metric, value, expected, low, high, direction)
        row = next((r for r in tables if r and r[-1] == message), None)
        assert row is not None, (message, tables[:12])
        assert row[:8] == [fmt.city_label(city), str(day), "指标异常", fmt.kpi_label(metric), _figure(metric, value),
                           _figure(metric, expected), f"{_figure(metric, low)}–{_figure(metric, high)}", "低于区间"]
        assert message in text  # the history's heading line
    for a in hidden:
        assert not any(r and r[-1].startswith(f"{a[1]} {a[2]}") for r in tables)
    # Shanghai's DAU of 2026-03-11 against the eight Wednesdays before it: 2026-02-18 is 春节
    # (a holiday, left out), the median of the other seven is the band's centre
    days = [DAY - dt.timedelta(weeks=w) for w in range(8, -1, -1)]
    dau = dict(snapshot_query(wh, "SELECT kpi_date, dau FROM marts.kpi_daily WHERE city_code = '310000' "
                                  "AND kpi_date BETWEEN ? AND ?", [days[0], DAY]))
    holidays = {d for (d,) in snapshot_query(wh, "SELECT day FROM marts.holiday_calendar WHERE kind = 'holiday'")}
    assert dt.date(2026, 2, 18) in holidays
    roles = ["当日（告警）" if d == DAY else "节假日（不计入）" if d in holidays else "基线" for d in days]
    block = [[str(d), "周三", fmt.fmt_int(dau[d]), role] for d, role in zip(days, roles)]
    assert contiguous(tables, block), block
    expected_dau = next(a[5] for a in shown if a[2] == DAY and a[3] == "dau")
    assert statistics.median(dau[d] for d, r in zip(days, roles) if r == "基线") == expected_dau
    assert browser.evaluate("document.querySelectorAll('.vega-embed').length") == len(shown)
    assert browser.evaluate(CUT_CHART_TEXT_JS) == []  # no axis or legend text shortened or cut off
    browser.screenshot(SHOTS / "dashboard_alerts.png")


def test_users_journeys_show_the_funnel_and_the_next_services(served, browser):
    wh = served.warehouse
    ((week,),) = snapshot_query(wh, "SELECT max(period_start) FROM marts.funnel_conversion "
                                    "WHERE city_code = '510100' AND grain = 'week'")  # the page's default period
    assert week == dt.date(2026, 3, 2)  # the last covered week
    steps = snapshot_query(wh, "SELECT channel, step, step_label, users, conversion_from_start, "
                               "conversion_from_previous, window_complete FROM marts.funnel_conversion "
                               "WHERE city_code = '510100' AND funnel = 'registration_to_first_service' "
                               "AND grain = 'week' AND period_start = ? ORDER BY channel <> 'all', channel, step",
                           [week])
    assert len(steps) >= 4  # all channels and at least one channel, two steps each
    browser.open(f"{served.url}/users?city=510100&day={DAY}", ["用户旅程", "转化漏斗", "下一步办什么", "之后 · next"])
    browser.wait_settled()
    text = browser.text()
    # the funnel by its label in funnels.yml (the selector's value)
    assert "注册→7天内首次办事成功（registration_to_first_service）" in browser.page.content()
    assert "Traceback" not in text and "Error:" not in text, text[:3000]
    tables = browser.tables()
    from citycloud.channels import channel_label
    for channel, step, label, users, from_start, from_previous, complete in steps:
        row = [("全部渠道" if channel == "all" else channel_label(channel)), f"{step}. {label}", fmt.fmt_int(users),
               fmt.fmt_pct(from_start), fmt.fmt_pct(from_previous)]
        assert any(r[:5] == row and r[6] == ("窗口已满 complete" if complete else "窗口未满 incomplete")
                   for r in tables), (row, tables[-40:])
    # the conversion trend (all channels): entries and completions of every covered week
    trend = snapshot_query(wh, "SELECT period_start, max(users) FILTER (step = 1), max(users) FILTER (step = 2) "
                               "FROM marts.funnel_conversion WHERE city_code = '510100' AND channel = 'all' "
                               "AND funnel = 'registration_to_first_service' AND grain = 'week' GROUP BY 1")
    for start, entries, done in trend:
        assert any(r[:4] == [str(start), fmt.fmt_int(entries), fmt.fmt_int(done),
                             fmt.fmt_pct(done / entries if entries else None)] for r in tables), start
    # next services after the month's busiest service (the catalogue's name of each, markup as text)
    ((month,),) = snapshot_query(wh, "SELECT max(month) FROM marts.service_paths WHERE city_code = '510100'")
    (busiest,) = snapshot_query(wh, "SELECT from_service_id FROM marts.service_paths WHERE city_code = '510100' "
                                    "AND month = ? AND from_service_id <> '(start)' GROUP BY 1 "
                                    "ORDER BY sum(steps) DESC, 1 LIMIT 1", [month])[0]
    nxt = snapshot_query(wh, "SELECT to_service_id, steps, users, steps / sum(steps) OVER () FROM marts.service_paths "
                             "WHERE city_code = '510100' AND month = ? AND from_service_id = ? "
                             "ORDER BY steps DESC, to_service_id LIMIT 10", [month, busiest])
    names = dict(snapshot_query(wh, "SELECT service_id, arg_max(service_name, kpi_date) FROM marts.service_daily "
                                    "WHERE city_code = '510100' GROUP BY 1"))
    assert names[HOSTILE_SERVICE] == HOSTILE_NAME
    label = lambda s: "（当天不再办事）" if s == "(end)" else f"{names[s]}（{s}）"  # noqa: E731
    block = [[label(s), fmt.fmt_int(n), fmt.fmt_int(u), fmt.fmt_pct(share)] for s, n, u, share in nxt]
    assert contiguous(tables, block), (block, tables[-12:])
    assert f"{HOSTILE_NAME}（{HOSTILE_SERVICE}）" in text  # the chosen service's line or the table: as written
    assert browser.evaluate("document.querySelectorAll('img[src=\"x\"], a[href^=\"javascript\"]').length") == 0
    assert browser.evaluate("window.__pwned === undefined")
    assert browser.evaluate(CUT_CHART_TEXT_JS) == []
    # the journeys part as a reader scrolls to it (the whole page is dashboard_users.png)
    browser.page.get_by_text("用户旅程 · Journeys").scroll_into_view_if_needed()
    browser.page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollBy(0, -20)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.page.set_viewport_size({"width": browser.width, "height": 1700})
    browser.page.get_by_text("用户旅程 · Journeys").scroll_into_view_if_needed()
    browser.wait_settled()
    browser.page.screenshot(path=str(SHOTS / "dashboard_journeys.png"))
    browser.page.set_viewport_size({"width": browser.width, "height": browser.height})


def test_the_ledger_says_where_each_alert_went_and_which_went_away(alerts_journeys_built, tmp_path):
    """audit.alert_notifications as `citycloud alerts` writes it (notify.apply), in a copy of the
    snapshot: an open alert sent to one channel and pending on another, one never routed, and one
    resolved that is no longer open (a re-export moved its day back into the band)."""
    import shutil

    import duckdb

    from citycloud.access import Scope
    from citycloud.alerts import notify
    from citycloud.config import published_path
    from citycloud.dashboards import alerts_data, data

    warehouse = tmp_path / "wh.duckdb"
    shutil.copy(published_path(alerts_journeys_built.warehouse), published_path(warehouse))
    sent, pending, gone = ("anomaly|310000|dau||2026-03-11", "anomaly|310000|total_accesses||2026-03-11",
                           "anomaly|310000|dau||2026-03-05")
    body = lambda key, message: {"key": key, "kind": "anomaly", "city_code": "310000",  # noqa: E731
                                 "day": key[-10:], "message": message}
    con = duckdb.connect(str(published_path(warehouse)))
    notify.apply(con, [("add", sent, "ops-hook", "open", body(sent, "m1")),
                       ("add", pending, "ops-hook", "open", body(pending, "m2")),
                       ("add", pending, "cs-wecom", "open", body(pending, "m2")),
                       ("add", gone, "ops-hook", "open", body(gone, "上海 2026-03-05 旧告警"))])
    con.execute("UPDATE audit.alert_notifications SET status = 'sent' WHERE channel = 'ops-hook'")
    notify.apply(con, [("add", gone, "ops-hook", "resolved", body(gone, "已恢复:上海 2026-03-05 旧告警"))])
    con.close()
    moment = alerts_data.as_of(DAY, dt.datetime.now(dt.timezone.utc))
    d = data.run_load(warehouse, Scope.local(("310000", "510100")), alerts_data.load_alerts, ["310000", "510100"],
                      DAY, moment, 14)
    notified = dict(zip(d["open"]["key"], d["open"]["notified"]))
    assert notified == {sent: "ops-hook 已发送", pending: "cs-wecom 待发送；ops-hook 已发送",
                        "anomaly|310000|dau||2026-03-10": "尚无通知记录",
                        "anomaly|310000|total_accesses||2026-03-10": "尚无通知记录"}
    assert d["gone"][["key", "day", "how", "channels", "message"]].values.tolist() == \
        [[gone, dt.date(2026, 3, 5), "已恢复", "ops-hook", "上海 2026-03-05 旧告警"]]
    assert d["gone"]["ended"].iloc[0].startswith(dt.date.today().isoformat()[:4])  # when it was resolved


def test_a_missing_delivery_is_an_open_alert_of_its_city(alerts_journeys_built, tmp_path):
    """Chengdu's ratings of 2026-03-09 taken out of a copy of the snapshot: one `missing` alert, due at
    the start of 03-10 plus the delivery timeout, shown to Chengdu's scope and not to Shanghai's."""
    import shutil

    import duckdb

    from citycloud.access import Scope
    from citycloud.config import Settings, published_path
    from citycloud.dashboards import alerts_data, data

    warehouse = tmp_path / "wh.duckdb"
    shutil.copy(published_path(alerts_journeys_built.warehouse), published_path(warehouse))
    con = duckdb.connect(str(published_path(warehouse)))
    con.execute("DELETE FROM audit.deliveries WHERE city_code = '510100' AND source = 'ratings' AND dt = '2026-03-09'")
    con.close()
    moment = alerts_data.as_of(DAY, dt.datetime.now(dt.timezone.utc))
    chengdu = data.run_load(warehouse, Scope("ops", "operator", ("510100",)), alerts_data.load_alerts, ["510100"],
                            DAY, moment, 14)
    rows = chengdu["open"][["kind", "city_code", "day", "what", "message"]].values.tolist()
    due = f"2026-03-10 {int(Settings().delivery_timeout_hours):02d}:00"  # the dashboard's settings
    assert rows == [["delivery", "510100", dt.date(2026, 3, 9), f"{fmt.SOURCE_LABELS['ratings']} 缺失",
                     f"成都 2026-03-09 ratings 数据截止 {due} 未收到完整交付"]]
    shanghai = data.run_load(warehouse, Scope("ops", "operator", ("310000",)), alerts_data.load_alerts, ["310000"],
                             DAY, moment, 14)
    assert set(shanghai["open"]["kind"]) == {"anomaly"} and set(shanghai["open"]["city_code"]) == {"310000"}

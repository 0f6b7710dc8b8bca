"""The Alerts page and the Users page's journeys scoped by person, through a real login in headless
Chromium on the generated two-city warehouse (tests/conftest.py's alerts_journeys_built): Chengdu's
operator sees Chengdu's alert and funnel figures, and nothing of Shanghai's (its four alerts, its
name, its code, its users added into a total); asking for Shanghai by URL is refused."""
from __future__ import annotations

import datetime as dt

import pytest

import access_support as support
from dashboard_support import Dashboard, snapshot_query
from test_dashboard_access import assert_only, wait_log

from citycloud.config import PROJECT_ROOT
from citycloud.dashboards import fmt

pytestmark = pytest.mark.slow

CHENGDU_OPS = "ops.chengdu@example.org"
PEOPLE = [(CHENGDU_OPS, "operator", ["510100"]), ("office@example.org", "admin", "all")]
DAY = dt.date(2026, 3, 11)


@pytest.fixture(scope="module")
def served(alerts_journeys_built, provider, secret_env, tmp_path_factory, written):
    folder = tmp_path_factory.mktemp("access-alerts-journeys")
    written.append(folder)
    access = support.write_access(folder / "access.yml", provider, PEOPLE)
    d = Dashboard(alerts_journeys_built.warehouse, folder / "streamlit.log",
                  extra=["--access", str(access), "--access-log", str(folder / "access_log.jsonl")],
                  env={**secret_env, "CITYCLOUD_FUNNELS": str(PROJECT_ROOT / "pipeline" / "demo_funnels.yml")})
    d.access_log = folder / "access_log.jsonl"
    d.warehouse = alerts_journeys_built.warehouse
    yield d
    d.stop()


def test_an_operator_sees_only_its_citys_alerts(served, person):
    shanghai = snapshot_query(served.warehouse, "SELECT count(*) FROM marts.kpi_anomalies WHERE city_code = '310000' "
                                                "AND kpi_date BETWEEN ? AND ?", [DAY - dt.timedelta(days=27), DAY])
    assert shanghai == [(4,)]  # in the 28 days shown: Shanghai's injected drops, which must not show
    ((day, value, expected),) = snapshot_query(
        served.warehouse, "SELECT kpi_date, value, expected FROM marts.kpi_anomalies WHERE city_code = '510100'")
    b = person()
    support.login(b, served.url, CHENGDU_OPS, ["今日概览 Today"])
    b.open(f"{served.url}/alerts?day={DAY}", ["告警 Alerts", "当前告警"], timeout=60)
    b.page.get_by_role("radio", name="近 28 天").click()
    text = b.wait_for([f"成都 {day}(周二)访问成功率 {value:.1%},近8个周二中位数 {expected:.1%}"], timeout=30)
    b.wait_settled()
    assert_only(b, ["510100"], "alerts")
    rows = [r for r in b.tables() if r and r[0].endswith("（510100）")]
    assert [r[:4] for r in rows] == [["成都市（510100）", str(day), "指标异常", fmt.kpi_label("success_rate")]]
    assert "上海" not in text
    wait_log(served, lambda e: e["action"] == "view" and e["subject"] == CHENGDU_OPS and e["target"] == "alerts"
             and e["cities"] == ["510100"])
    b.open(f"{served.url}/alerts?city=310000", ["no access"], timeout=60)
    assert not [n for n in ("上海", "310000") if n in b.page.content()]


def test_an_operator_sees_only_its_citys_journeys(served, person):
    ((week,),) = snapshot_query(served.warehouse, "SELECT max(period_start) FROM marts.funnel_conversion "
                                                  "WHERE city_code = '510100' AND grain = 'week'")  # the page's default
    funnel = "SELECT step, users FROM marts.funnel_conversion WHERE city_code IN ({}) AND channel = 'all' " \
             "AND funnel = 'registration_to_first_service' AND grain = 'week' AND period_start = ? ORDER BY step"
    mine = snapshot_query(served.warehouse, funnel.format("'510100'"), [week])
    both = snapshot_query(served.warehouse, "SELECT step, sum(users) FROM (" + funnel.format("'510100', '310000'")
                          + ") GROUP BY 1 ORDER BY 1", [week])
    assert mine and mine != both  # Shanghai's entrants would change the figures
    b = person()
    support.login(b, served.url, CHENGDU_OPS, ["今日概览 Today"])
    b.open(f"{served.url}/users?day={DAY}", ["用户旅程", "转化漏斗", "之后 · next"], timeout=60)
    b.wait_settled(timeout=30)
    assert_only(b, ["510100"], "users")
    steps = [r for r in b.tables() if len(r) == 7 and r[0] == "全部渠道"]
    assert [(int(r[1].split(".")[0]), int(r[2].replace(",", ""))) for r in steps] == mine

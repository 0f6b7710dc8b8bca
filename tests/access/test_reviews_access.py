"""The reviews page (好差评) for a logged-in person (a real login at the provider, headless
Chromium): Changsha's operator sees Changsha's loop, departments and overdue tickets and nothing
of Shanghai's, whose rows are in the same snapshot; asking for Shanghai by URL is refused and
logged. Hand-made review marts: tests/review_report/review_marts.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import access_support as support
from dashboard_support import Dashboard
from test_dashboard_access import assert_only, log_lines, wait_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "review_report"))

import review_marts  # noqa: E402

pytestmark = pytest.mark.slow
TITLE = "好差评 Reviews"
SHANGHAI_ROWS = ["SH-T-9001", "SH-T-9002", review_marts.SH_DEPT]


@pytest.fixture(scope="module")
def served_reviews(provider, access_path, secret_env, tmp_path_factory, written):
    folder = tmp_path_factory.mktemp("access-reviews")
    written.append(folder)
    warehouse = review_marts.build_dashboard(folder / "wh.duckdb")
    log = folder / "access_log.jsonl"
    d = Dashboard(warehouse, folder / "streamlit.log", extra=["--access", str(access_path), "--access-log", str(log)],
                  env=secret_env)
    d.access_log = log
    yield d
    d.stop()


def test_the_operator_sees_only_its_citys_rows(served_reviews, person):
    b = person()
    support.login(b, served_reviews.url, support.OPERATOR, ["今日概览 Today"])
    b.open(f"{served_reviews.url}/reviews?month=2026-02", [TITLE, "本月闭环", "T-0003", "逾期未整改"], timeout=60)
    b.wait_settled(timeout=30)
    html, text = b.page.content(), b.text()
    assert "长沙市（430100）" in text and "28.6%" in text
    assert [r for r in SHANGHAI_ROWS if r in html or r in text] == []
    assert_only(b, ["430100"], "reviews")
    sidebar = b.page.evaluate("Array.from(document.querySelectorAll('[data-testid=\"stSidebar\"] a'))"
                              ".map(a => a.innerText)")
    assert any(TITLE in link for link in sidebar)
    view = wait_log(served_reviews, lambda e: e["action"] == "view" and e["subject"] == support.OPERATOR
                    and e["target"] == "reviews")
    assert view["cities"] == ["430100"]


def test_asking_for_shanghai_by_url_is_refused(served_reviews, person):
    b = person()
    support.login(b, served_reviews.url, support.OPERATOR, ["今日概览 Today"])
    b.open(f"{served_reviews.url}/reviews?city=310000&month=2026-02", ["no access"], timeout=60)
    b.wait_settled(timeout=20)
    html = b.page.content()
    assert [r for r in SHANGHAI_ROWS + ["上海"] if r in html] == []
    assert any(e["action"] == "denied" and e["subject"] == support.OPERATOR for e in log_lines(served_reviews))


def test_the_contract_manager_has_no_reviews_page(served_reviews, person):
    """access.md: contract managers see today, trends, settlement and scorecard only."""
    b = person()
    support.login(b, served_reviews.url, support.MANAGER, ["今日概览 Today"])
    b.open(f"{served_reviews.url}/reviews", ["no access"], timeout=60)
    b.wait_settled(timeout=20)
    assert "SH-T-9001" not in b.page.content() and "T-0003" not in b.page.content()
    wait_log(served_reviews, lambda e: e["action"] == "denied" and e["subject"] == support.MANAGER
             and e["target"] == "reviews")

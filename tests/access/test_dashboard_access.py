"""Each person sees only its cities, through a real login at the provider in headless Chromium:
every allowed page (with every city the selector offers) names no other city and no figure of
one; pages outside the role are absent from the navigation and refused by URL; a URL asking for
another city is refused; an unknown person sees "no access"; everything is in the access log;
removing a person from access.yml takes effect without a restart."""
from __future__ import annotations

import csv
import json
import time

import pytest

import access_support as support
from citycloud.access.cities import CITY_REFERENCE

pytestmark = pytest.mark.slow

TITLES = {"today": "今日概览 Today", "trends": "趋势 Trends", "services": "服务 Services",
          "settlement": "结算 Settlement", "users": "用户运营 Users", "alerts": "告警 Alerts",
          "scorecard": "运营评价 Scorecard", "reviews": "好差评 Reviews",
          "access_log": "访问日志 Access log"}
SHANGHAI_PAYMENT = "1,250,000.00"  # dashboard_fivecities: Shanghai's February statement


def names_of(code: str) -> list[str]:
    """Everything that names a city: its code and its names in the seed."""
    with CITY_REFERENCE.open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["city_code"] == code)
    return [code, row["city_name"], row["official_name"], row["city_name_en"]]


def foreign_names(allowed: list[str]) -> list[str]:
    with CITY_REFERENCE.open(encoding="utf-8") as fh:
        codes = [r["city_code"] for r in csv.DictReader(fh)]
    return [n for c in codes if c not in allowed for n in names_of(c)]


def url_of(served, page: str, city: str | None = None) -> str:
    path = "" if page == "today" else page
    return f"{served.url}/{path}" + (f"?city={city}" if city else "")


def open_page(b, served, page: str, city: str | None = None) -> str:
    b.open(url_of(served, page, city), [TITLES[page]], timeout=60)
    b.wait_settled(timeout=30)
    return b.text()


def assert_only(b, allowed: list[str], page: str) -> None:
    """Neither the text nor the HTML (SVG charts, hidden options) names a city outside `allowed`."""
    html, text = b.page.content(), b.text()
    assert "Traceback" not in text and "no access" not in text, f"{page}: {text[:2000]}"
    leaked = [n for n in foreign_names(allowed) if n in html or n in text]
    assert not leaked, f"{page} names {leaked}"


def sidebar_pages(b) -> set[str]:
    links = b.page.evaluate("Array.from(document.querySelectorAll('[data-testid=\"stSidebar\"] a'))"
                            ".map(a => a.innerText)")
    return {name for name, title in TITLES.items() if any(title in link for link in links)}


def log_lines(served) -> list[dict]:
    raw = served.access_log.read_bytes().decode("utf-8")
    assert raw.endswith("\n")
    return [json.loads(line) for line in raw.splitlines()]


def wait_log(served, match, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in log_lines(served) if match(e)]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no such access log line; log: {log_lines(served)[-10:]}")


def refused(b, served, subject: str, page: str) -> None:
    b.open(url_of(served, page), ["no access"], timeout=60)
    b.wait_settled(timeout=20)
    wait_log(served, lambda e: e["action"] == "denied" and e["subject"] == subject and e["target"] == page)


def check_person(b, served, subject: str, allowed_cities: list[str], pages: set[str]) -> None:
    for page in sorted(pages):
        text = open_page(b, served, page)
        assert sidebar_pages(b) == pages
        assert_only(b, allowed_cities, page)
        # every city the selector offers, one at a time
        for city in allowed_cities if len(allowed_cities) > 1 else []:
            open_page(b, served, page, city)
            assert_only(b, allowed_cities, f"{page}?city={city}")
        assert "Traceback" not in text
        wait_log(served, lambda e: e["action"] == "view" and e["subject"] == subject and e["target"] == page)
    for page in sorted(set(TITLES) - pages):
        refused(b, served, subject, page)


def test_operator_of_one_city(served, person):
    b = person()
    support.login(b, served.url, support.OPERATOR, [TITLES["today"], "长沙"])
    login = wait_log(served, lambda e: e["action"] == "login" and e["subject"] == support.OPERATOR)
    assert (login["role"], login["cities"], login["surface"]) == ("operator", ["430100"], "dashboard")
    check_person(b, served, support.OPERATOR, ["430100"], {"today", "trends", "services", "users", "alerts", "reviews"})
    view = wait_log(served, lambda e: e["action"] == "view" and e["subject"] == support.OPERATOR)
    assert view["cities"] == ["430100"]


def test_a_url_asking_for_another_city_is_refused_and_logged(served, person):
    b = person()
    support.login(b, served.url, support.OPERATOR, [TITLES["today"]])
    for page in ("today", "trends"):
        b.open(url_of(served, page, "310000"), ["no access"], timeout=60)
        b.wait_settled(timeout=20)
        html = b.page.content()
        assert not [n for n in foreign_names(["430100"]) if n in html]
        entry = wait_log(served, lambda e: e["action"] == "denied" and e["subject"] == support.OPERATOR
                         and e["target"] == "city")
        assert entry["detail"] == "query parameter city outside the scope" and entry["cities"] == []


def test_contract_manager_of_two_cities(served, person):
    b = person()
    support.login(b, served.url, support.MANAGER, [TITLES["today"]])
    allowed = ["430100", "510100"]
    check_person(b, served, support.MANAGER, allowed, {"today", "trends", "settlement", "scorecard"})
    # ranks among all five: "k of N", no other city's row, score or grade
    open_page(b, served, "scorecard")
    rows = {tuple(r) for r in b.tables() if r and r[0].endswith("of 5")}
    assert [list(r[:4]) for r in sorted(rows)] == [["2 of 5", "成都市（510100）", "85.5", "良好"],
                                             ["3 of 5", "长沙市（430100）", "80.0", "良好"]]
    assert "91.0" not in b.text() and "优秀" not in b.text()
    text = open_page(b, served, "settlement")
    assert SHANGHAI_PAYMENT not in text


def test_supervisor_sees_every_page_but_the_access_log(served, person):
    b = person()
    support.login(b, served.url, support.SUPERVISOR, [TITLES["today"]])
    pages = set(TITLES) - {"access_log"}
    open_page(b, served, "today")
    assert sidebar_pages(b) == pages
    for page in ("settlement", "scorecard"):
        open_page(b, served, page)
        assert_only(b, ["430100"], page)
    refused(b, served, support.SUPERVISOR, "access_log")


def test_admin_sees_every_city_and_the_access_log(served, person):
    b = person()
    support.login(b, served.url, support.ADMIN, [TITLES["today"]])
    open_page(b, served, "today")
    assert sidebar_pages(b) == set(TITLES)
    text = open_page(b, served, "settlement")
    assert SHANGHAI_PAYMENT in text and "成都" in text
    open_page(b, served, "scorecard")
    assert ["1", "上海市（310000）", "91.0", "优秀"] in [r[:4] for r in b.tables()]
    text = open_page(b, served, "access_log")
    assert support.OPERATOR in text or support.ADMIN in text
    wait_log(served, lambda e: e["action"] == "view" and e["subject"] == support.ADMIN and e["target"] == "access_log")
    b.page.get_by_role("button", name="退出登录 Log out").click()
    wait_log(served, lambda e: e["action"] == "logout" and e["subject"] == support.ADMIN)
    # Streamlit ends the session at the provider too (its end_session endpoint), then comes back
    b.wait_for(["End Session"], timeout=60)
    b.page.get_by_role("button", name="End session").click()
    b.wait_for(["登录 Log in"], timeout=60)
    assert SHANGHAI_PAYMENT not in b.text()


def test_unknown_person_sees_no_access_naming_no_city(served, person):
    b = person()
    text = support.login(b, served.url, support.UNKNOWN, ["no access"])
    b.wait_settled(timeout=20)
    html = b.page.content()
    assert not [n for n in foreign_names([]) if n in html or n in b.text()], text[:1000]
    entry = wait_log(served, lambda e: e["action"] == "denied" and e["subject"] == support.UNKNOWN)
    assert (entry["role"], entry["cities"], entry["detail"]) == (None, [], "not in access.yml")


def test_removal_from_access_yml_takes_effect_without_restart(served, person, provider, access_path):
    b = person()
    support.login(b, served.url, support.OPERATOR, [TITLES["today"], "长沙"])
    try:
        support.write_access(access_path, provider, [p for p in support.PEOPLE if p[0] != support.OPERATOR])
        b.open(url_of(served, "trends"), ["no access"], timeout=60)
        assert not [n for n in foreign_names([]) if n in b.page.content()]
        wait_log(served, lambda e: e["action"] == "denied" and e["subject"] == support.OPERATOR
                 and e["detail"] == "not in access.yml")
    finally:
        support.write_access(access_path, provider)
    open_page(b, served, "trends")  # back in the file: back in
    assert_only(b, ["430100"], "trends")


def test_access_log_lines_are_whole_json(served):
    lines = log_lines(served)
    assert lines and all(set(e) == {"ts", "subject", "role", "surface", "action", "target", "cities", "detail"}
                         for e in lines)
    assert all(e["ts"].endswith("+00:00") for e in lines)


def test_local_mode_has_no_login_and_says_so(five, person, tmp_path):
    from dashboard_support import Dashboard

    log = tmp_path / "local_access_log.jsonl"
    d = Dashboard(five["warehouse"], tmp_path / "streamlit.log", extra=["--access-log", str(log)])
    try:
        b = person()
        text = b.open(d.url, ["local mode: no login, every city visible", TITLES["today"], "各城市 · All cities"], timeout=60)
        assert "登录 Log in" not in text
        b.open(f"{d.url}/settlement", [TITLES["settlement"], SHANGHAI_PAYMENT], timeout=60)
    finally:
        d.stop()
    views = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert {(e["subject"], e["role"], e["action"]) for e in views} == {(None, None, "view")}

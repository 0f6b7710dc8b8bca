"""`citycloud api` with real tokens of the provider: the caller's cities exactly as `citycloud
query` answers them (JSON and CSV), 401 without or with a bad token, 403 for another city, a
JWT checked against the provider's keys and an opaque token checked at userinfo, the access
log, and a removal from access.yml taking effect without a restart."""
from __future__ import annotations

import json
import subprocess

import httpx
import pytest

import access_support as support
from dashboard_support import CITYCLOUD

pytestmark = pytest.mark.slow
METRICS = "wau,total_accesses,new_registrations"  # answered by week (dau and mau are refused)


def cli_query(warehouse, *args: str) -> str:
    run = subprocess.run([str(CITYCLOUD), "query", "--warehouse", str(warehouse), "--metrics", METRICS,
                          "--grain", "week", *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.rsplit("\n", 1)[0] if not run.stdout.endswith("\n") else run.stdout


def get(api, path: str, token: str | None = None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{api['url']}{path}", params=params, headers=headers, timeout=120)


def log(api) -> list[dict]:
    return [json.loads(line) for line in api["log"].read_text(encoding="utf-8").splitlines()]


def test_health_and_openapi_need_no_login(api):
    assert get(api, "/healthz").json() == {"status": "ok"}
    spec = get(api, "/openapi.json").json()
    assert {"/v1/metrics", "/v1/cities", "/healthz"} <= set(spec["paths"])
    assert get(api, "/docs").status_code == 200


def test_missing_and_bad_tokens_are_401_and_logged(api):
    r = get(api, "/v1/metrics", metrics="dau", grain="day")
    assert r.status_code == 401 and r.json() == {"error": "missing bearer token"}
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = get(api, "/v1/cities", token="not-a-token-the-provider-issued")
    assert r.status_code == 401 and r.json() == {"error": "invalid token"}
    last = log(api)[-2:]
    assert [(e["action"], e["target"], e["subject"], e["surface"]) for e in last] == [
        ("denied", "/v1/metrics", None, "api"), ("denied", "/v1/cities", None, "api")]
    assert last[0]["detail"] == "no bearer token"


def test_opaque_token_answers_exactly_as_citycloud_query(api, tokens_of):
    token = tokens_of(support.OPERATOR)["access_token"]
    assert token.count(".") != 2  # the provider's access tokens are opaque: checked at userinfo
    r = get(api, "/v1/metrics", token, metrics=METRICS, grain="week", format="csv")
    assert r.status_code == 200, r.text
    expected = cli_query(api["warehouse"], "--city", "430100")
    assert r.text == expected and expected.count("\n") > 2
    # JSON: the same rows and values
    rows = get(api, "/v1/metrics", token, metrics=METRICS, grain="week").json()
    header, *lines = expected.strip().split("\n")
    assert [list(map(str, row.values())) for row in rows] == [line.split(",") for line in lines]
    assert list(rows[0]) == header.split(",")
    # without city: every city in scope, which is this one
    assert get(api, "/v1/metrics", token, metrics=METRICS, grain="week", format="csv").text == expected
    entry = log(api)[-1]
    assert (entry["subject"], entry["role"], entry["action"], entry["target"], entry["cities"]) == (
        support.OPERATOR, "operator", "request", "/v1/metrics", ["430100"])


def test_jwt_checked_against_the_providers_keys(api, tokens_of):
    jwt_token = tokens_of(support.MANAGER)["id_token"]
    assert jwt_token.count(".") == 2
    r = get(api, "/v1/cities", jwt_token)
    assert r.status_code == 200 and r.json() == [{"city_code": "430100", "city_name": "长沙市"},
                                                 {"city_code": "510100", "city_name": "成都市"}]
    csv_text = get(api, "/v1/metrics", jwt_token, metrics=METRICS, grain="week", format="csv").text
    everything = cli_query(api["warehouse"])
    header, *lines = everything.strip().split("\n")
    mine = [ln for ln in lines if ln.split(",")[0] in ("430100", "510100")]
    assert csv_text.strip().split("\n") == [header, *mine] and len(mine) < len(lines)
    # a forged signature is not the provider's
    head, body, sig = jwt_token.split(".")
    forged = ".".join([head, body, sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")])
    assert get(api, "/v1/cities", forged).status_code == 401


def test_another_city_is_403_and_logged(api, tokens_of):
    token = tokens_of(support.OPERATOR)["access_token"]
    r = get(api, "/v1/metrics", token, metrics="dau", grain="day", city="310000")
    assert r.status_code == 403 and r.json() == {"error": "no access"}
    assert "310000" not in r.text
    entry = log(api)[-1]
    assert (entry["action"], entry["subject"], entry["detail"]) == ("denied", support.OPERATOR,
                                                                    "city outside the scope")


def test_unknown_person_is_403(api, tokens_of):
    r = get(api, "/v1/cities", tokens_of(support.UNKNOWN)["access_token"])
    assert r.status_code == 403 and r.json() == {"error": "no access"}
    assert log(api)[-1]["subject"] == support.UNKNOWN


def test_removal_takes_effect_at_the_next_request(api, tokens_of, provider):
    token = tokens_of(support.MANAGER)["id_token"]
    assert get(api, "/v1/cities", token).status_code == 200
    try:
        support.write_access(api["access"], provider, [p for p in support.PEOPLE if p[0] != support.MANAGER],
                             audience=support.CLIENT_ID)
        assert get(api, "/v1/cities", token).status_code == 403
    finally:
        support.write_access(api["access"], provider, audience=support.CLIENT_ID)
    assert get(api, "/v1/cities", token).status_code == 200


def test_a_jwt_for_another_audience_is_refused(api, tokens_of, provider):
    token = tokens_of(support.MANAGER)["id_token"]
    try:
        support.write_access(api["access"], provider, audience="another-api")
        assert get(api, "/v1/cities", token).status_code == 401
    finally:
        support.write_access(api["access"], provider, audience=support.CLIENT_ID)

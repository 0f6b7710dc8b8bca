"""Real local receivers for the alert channels: an HTTP server (webhook and the robots' endpoints)
and an SMTP server (aiosmtpd), both on 127.0.0.1, and a small warehouse holding the tables
`citycloud alerts` reads (the anomaly model itself is pinned by dbt unit tests)."""
from __future__ import annotations

import json
import socket
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import make_settings


class Receiver(ThreadingHTTPServer):
    """Records every POST (path, query, headers, JSON); answers 500 to the first `fail[path]`
    requests of a path. Paths under /robot/ answer like 企业微信 and 钉钉 robots: {"errcode": 0}."""

    def __init__(self):
        self.posts: list[dict] = []
        self.fail: dict[str, int] = {}
        self.tries: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.tries[url.path] = outer.tries.get(url.path, 0) + 1
                if outer.fail.get(url.path, 0) > 0:
                    outer.fail[url.path] -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.posts.append({"path": url.path, "query": parse_qs(url.query), "headers": dict(self.headers),
                                    "json": body})
                answer = json.dumps({"errcode": 0, "errmsg": "ok"} if url.path.startswith("/robot/") else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[dict]:
        return [p["json"] for p in self.posts if p["path"] == path]


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class _Inbox:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's start() connects to the port it was given)
        probe.bind(("127.0.0.1", 0))
        inbox.port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


ANOMALY = ("430100", date(2026, 3, 10), "dau", None, 1234.0, 4100.0, 3650.0, 4520.0, "down", 2.1)


def make_warehouse(path: Path, anomalies=(ANOMALY,), deliveries=(), issues=()) -> None:
    """The tables `citycloud alerts` reads, with these rows; deliveries are
    (city, source, dt, rows_read, rows_rejected), issues (path, kind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts; create schema if not exists audit")
    con.execute("create or replace table marts.city_reference as select * from (values ('430100', '长沙'), "
                "('310000', '上海')) t(city_code, city_name)")
    con.execute("create or replace table marts.holiday_calendar (day date, kind varchar, name varchar, source varchar)")
    con.execute("insert into marts.holiday_calendar values ('2026-05-09', 'workday', '劳动节', 'test')")
    con.execute("create or replace table marts.kpi_anomalies (city_code varchar, kpi_date date, metric varchar, "
                "service_id varchar, value double, expected double, lower_bound double, upper_bound double, "
                "direction varchar, score double)")
    if anomalies:
        con.executemany("insert into marts.kpi_anomalies values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(anomalies))
    con.execute("create or replace table audit.deliveries (city_code varchar, source varchar, dt date, "
                "rows_read bigint, rows_rejected bigint)")
    if deliveries:
        con.executemany("insert into audit.deliveries values (?, ?, ?, ?, ?)", list(deliveries))
    con.execute("create or replace table audit.landing_issues (path varchar, kind varchar, reason varchar, "
                "first_seen timestamp)")
    if issues:
        con.executemany("insert into audit.landing_issues values (?, ?, 'test', null)", list(issues))
    con.close()


@pytest.fixture
def settings(tmp_path):
    s = make_settings(tmp_path)
    s.alert_retry_wait_seconds = 0  # tenacity's back-off without waiting in tests
    return s


def write_config(path: Path, receiver: Receiver, smtp_port: int | None = None, extra_routes: str = "") -> Path:
    email = (f"  finance: {{type: email, smtp_host: 127.0.0.1, smtp_port: {smtp_port}, from: citycloud@example.org, "
             f"to: [finance@example.org], password_env: CITYCLOUD_SMTP_PASSWORD, starttls: false}}\n") if smtp_port else ""
    path.write_text(
        "channels:\n"
        f"  ops-hook: {{type: webhook, url: \"{receiver.url}/hook\"}}\n"
        "  cs-wecom: {type: wecom, url_env: CITYCLOUD_WECOM_CS_URL}\n"
        "  cs-dingtalk: {type: dingtalk, url_env: CITYCLOUD_DINGTALK_URL, secret_env: CITYCLOUD_DINGTALK_SECRET}\n"
        + email +
        "routes:\n"
        "  - {cities: all, kinds: [anomaly, delivery], channels: [ops-hook]}\n"
        f"  - {{cities: [\"430100\"], kinds: [delivery], channels: [cs-wecom, cs-dingtalk{', finance' if smtp_port else ''}]}}\n"
        + extra_routes, encoding="utf-8")
    return path


@pytest.fixture
def robots(receiver, monkeypatch):
    monkeypatch.setenv("CITYCLOUD_WECOM_CS_URL", f"{receiver.url}/robot/wecom?key=k1")
    monkeypatch.setenv("CITYCLOUD_DINGTALK_URL", f"{receiver.url}/robot/dingtalk?access_token=t1")
    monkeypatch.setenv("CITYCLOUD_DINGTALK_SECRET", "SEC-test-secret")
    monkeypatch.delenv("CITYCLOUD_SMTP_PASSWORD", raising=False)

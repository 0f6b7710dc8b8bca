"""`citycloud alerts` (alerts.md): each alert once per channel, one `resolved` when it goes away,
failing channels retried and left pending without blocking the others, the robots' documented
JSON, e-mail through a real SMTP server, delivery problems as of a moment."""
from __future__ import annotations

import base64
import email
import hashlib
import hmac
from datetime import date, datetime
from email import policy

import duckdb

from citycloud.alerts import send_alerts
from citycloud.pipeline.cli import main
from citycloud.config import BUSINESS_TZ
from tests.alerts.conftest import make_warehouse, write_config

AS_OF = datetime(2026, 3, 12, 9, 0, tzinfo=BUSINESS_TZ)
MESSAGE = "长沙 2026-03-10(周二)日活跃用户 DAU 1,234,近8个周二中位数 4,100,低于预期区间 3,650–4,520"
KEY = "anomaly|430100|dau||2026-03-10"


def _ledger(settings):
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute("select key, channel, message, status, attempts, resolved_at is not null "
                           "from audit.alert_notifications order by all").fetchall()
    finally:
        con.close()


def test_an_anomaly_is_sent_once_and_resolved_once(settings, receiver, robots, tmp_path):
    make_warehouse(settings.warehouse)
    config = write_config(tmp_path / "alerts.yml", receiver)
    assert send_alerts(settings, config, as_of=AS_OF, say=lambda _: None) == "alerts: 1 open, 1 message(s) sent, 0 pending"
    assert receiver.bodies("/hook") == [{
        "key": KEY, "kind": "anomaly", "status": "open", "city_code": "430100", "day": "2026-03-10",
        "source": None, "problem": None, "metric": "dau", "service_id": None, "value": 1234.0, "expected": 4100.0,
        "lower_bound": 3650.0, "upper_bound": 4520.0, "direction": "down", "message": MESSAGE}]
    assert receiver.posts[0]["headers"]["Idempotency-Key"] == KEY
    # nothing new: nothing sent
    assert send_alerts(settings, config, as_of=AS_OF, say=lambda _: None) == "alerts: 1 open, 0 message(s) sent, 0 pending"
    assert len(receiver.posts) == 1
    # a re-export moved the day back inside the band: the model no longer lists it
    make_warehouse(settings.warehouse, anomalies=())
    send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    resolved = receiver.bodies("/hook")[1:]
    assert [(b["key"], b["status"], b["message"]) for b in resolved] == [(KEY, "resolved", "已恢复:" + MESSAGE)]
    assert _ledger(settings) == [(KEY, "ops-hook", "open", "sent", 1, True), (KEY, "ops-hook", "resolved", "sent", 1, False)]


def test_a_failing_channel_is_retried_stays_pending_and_blocks_no_other(settings, receiver, robots, smtp, tmp_path):
    make_warehouse(settings.warehouse, anomalies=(), deliveries=[("430100", "ratings", date(2026, 3, 10), 100, 0)])
    config = write_config(tmp_path / "alerts.yml", receiver, smtp_port=smtp.port)
    receiver.fail["/hook"] = 3  # three 500s: all of this run's attempts
    summary = send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    # 2026-03-11 is due (deadline 03-12 06:00) and missing; 03-12 is not due yet
    assert summary == "alerts: 1 open, 3 message(s) sent, 1 pending (channels failing: ops-hook)"
    assert receiver.tries["/hook"] == 3
    assert len(receiver.bodies("/robot/wecom")) == 1 and len(receiver.bodies("/robot/dingtalk")) == 1
    assert len(smtp.messages) == 1
    key = "delivery|430100|ratings||2026-03-11"
    assert _ledger(settings) == [(key, "cs-dingtalk", "open", "sent", 1, False), (key, "cs-wecom", "open", "sent", 1, False),
                                 (key, "finance", "open", "sent", 1, False), (key, "ops-hook", "open", "pending", 3, False)]
    # the hook is back: it gets its message, the others nothing again
    assert send_alerts(settings, config, as_of=AS_OF, say=lambda _: None) == "alerts: 1 open, 1 message(s) sent, 0 pending"
    assert [b["message"] for b in receiver.bodies("/hook")] == ["长沙 2026-03-11 ratings 数据截止 2026-03-12 06:00 未收到完整交付"]
    assert len(receiver.posts) == 3 and len(smtp.messages) == 1


def test_robot_payloads_follow_wecom_and_dingtalk_formats(settings, receiver, robots, tmp_path):
    make_warehouse(settings.warehouse, anomalies=(), deliveries=[("430100", "ratings", date(2026, 3, 11), 100, 9)])
    config = write_config(tmp_path / "alerts.yml", receiver)
    send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    line = "长沙 2026-03-11 ratings 数据拒收 9 行,占 9.0%,超过 5%"
    wecom = next(p for p in receiver.posts if p["path"] == "/robot/wecom")
    assert wecom["query"] == {"key": ["k1"]}
    assert wecom["json"] == {"msgtype": "markdown", "markdown": {"content": (
        "### citycloud 数据交付 430100 2026-03-11\n> <font color=\"warning\">" + line + "</font>\n\n"
        "`delivery|430100|ratings||2026-03-11`")}}
    ding = next(p for p in receiver.posts if p["path"] == "/robot/dingtalk")
    assert set(ding["json"]) == {"msgtype", "markdown"} and ding["json"]["msgtype"] == "markdown"
    assert ding["json"]["markdown"]["title"] == "citycloud 数据交付 430100 2026-03-11"
    assert line in ding["json"]["markdown"]["text"]
    # 钉钉's 加签: sign = base64(HMAC-SHA256(secret, "<timestamp>\n<secret>")), checked as the robot does
    timestamp, sign = ding["query"]["timestamp"][0], ding["query"]["sign"][0]
    expected = base64.b64encode(hmac.new(b"SEC-test-secret", f"{timestamp}\nSEC-test-secret".encode(),
                                         hashlib.sha256).digest()).decode()
    assert ding["query"]["access_token"] == ["t1"] and sign == expected


def test_email_is_plain_text_and_html(settings, receiver, robots, smtp, tmp_path):
    make_warehouse(settings.warehouse, anomalies=(), issues=[("430100/ratings/dt=2026-03-11", "empty_delivery")],
                   deliveries=[("430100", "ratings", date(2026, 3, 10), 100, 0)])
    config = write_config(tmp_path / "alerts.yml", receiver, smtp_port=smtp.port)
    send_alerts(settings, config, as_of=AS_OF, say=lambda _: None)
    msg = email.message_from_bytes(smtp.messages[0], policy=policy.default)
    assert msg["Subject"] == "citycloud 数据交付 430100 2026-03-11"
    assert msg["To"] == "finance@example.org" and msg["From"] == "citycloud@example.org"
    line = "长沙 2026-03-11 ratings 数据交付为空(有 _SUCCESS 但没有数据)"
    assert msg.get_body(("plain",)).get_content().splitlines()[0] == line
    assert f"<p>{line}</p>" in msg.get_body(("html",)).get_content()


def test_delivery_problems_as_of_a_moment(settings, receiver, robots, tmp_path):
    make_warehouse(settings.warehouse, anomalies=(), deliveries=[
        ("430100", "ratings", date(2026, 3, 7), 19, 3),  # 16 % of a delivery under 20 rows: chance
        ("430100", "ratings", date(2026, 3, 8), 100, 5),  # 5 %: not more than 5 %
        ("430100", "ratings", date(2026, 3, 9), 100, 0)],
        issues=[("430100/ratings/dt=2026-03-10", "incomplete_delivery")])
    config = write_config(tmp_path / "alerts.yml", receiver)
    lines: list[str] = []
    # 03-11 06:00 is 03-10's deadline: a minute before, nothing is due yet
    send_alerts(settings, config, as_of=datetime(2026, 3, 11, 5, 59, tzinfo=BUSINESS_TZ), dry_run=True, say=lines.append)
    assert lines == []
    send_alerts(settings, config, as_of=datetime(2026, 3, 11, 6, 0, tzinfo=BUSINESS_TZ), dry_run=True, say=lines.append)
    assert lines == ["  would send to ops-hook (open): 长沙 2026-03-10 ratings 数据交付不完整(缺少 _SUCCESS 标记),"
                     "截止 2026-03-11 06:00 仍未补齐",
                     "  would send to cs-wecom (open): 长沙 2026-03-10 ratings 数据交付不完整(缺少 _SUCCESS 标记),"
                     "截止 2026-03-11 06:00 仍未补齐",
                     "  would send to cs-dingtalk (open): 长沙 2026-03-10 ratings 数据交付不完整(缺少 _SUCCESS 标记),"
                     "截止 2026-03-11 06:00 仍未补齐"]
    assert receiver.posts == []  # dry run: nothing sent ...
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    assert con.execute("select count(*) from information_schema.tables where table_name = 'alert_notifications'").fetchone() == (0,)
    con.close()  # ... nor recorded


def test_a_broken_alerts_file_is_one_line_and_exit_2(settings, tmp_path, capsys):
    make_warehouse(settings.warehouse)
    bad = tmp_path / "alerts.yml"
    bad.write_text("channels:\n  a: {type: webhook, url: http://x}\nroutes:\n  - {cities: all, channels: [b]}\n")
    assert main(["alerts", "--warehouse", str(settings.warehouse), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"citycloud alerts: error: {bad}: routes: route 1 names channel 'b', which channels does not define"


def test_run_refuses_a_broken_alerts_file_before_it_builds(settings, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CITYCLOUD_PII_KEY", "ab" * 32)
    bad = tmp_path / "alerts.yml"
    bad.write_text("channels: {}\nroutes: []\n")
    assert main(["run", "--landing", str(tmp_path / "landing"), "--warehouse", str(settings.warehouse),
                 "--alerts", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (f"citycloud run: error: {bad}: channels: Dictionary should have at least "
                                               "1 item after validation, not 0")
    assert not settings.warehouse.exists()

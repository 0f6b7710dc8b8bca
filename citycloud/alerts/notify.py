"""Send each alert once, and one `resolved` when it goes away: the ledger audit.alert_notifications.

One row per alert key, channel and message (`open` or `resolved`), with its status:
- `pending`: to send (new, or a channel failed last time: tried again next invocation);
- `sending`: the intent, committed before the message leaves; `sent`: committed right after;
- `dropped`: the problem went away before its `open` ever reached the channel (nothing to resolve).
A kill before the send leaves `sending`, which the next invocation sends (nothing is lost); a kill
after the `sent` commit sends nothing again. Only a kill in the milliseconds between the channel's
answer and that commit can repeat one message (the webhook carries an Idempotency-Key for that).
A channel that still fails after its retries keeps its messages pending and is not tried again in
this invocation; the other channels go on."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from citycloud import fault_hook
from citycloud.alerts import channels as senders
from citycloud.alerts.config import AlertsConfig
from citycloud.alerts.detect import Alert
from citycloud.config import CitycloudError, Settings

TABLE = "audit.alert_notifications"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    key VARCHAR NOT NULL, channel VARCHAR NOT NULL, message VARCHAR NOT NULL,  -- open | resolved
    status VARCHAR NOT NULL,  -- pending | sending | sent | dropped
    kind VARCHAR, city_code VARCHAR, day DATE, body VARCHAR,
    created_at TIMESTAMPTZ, first_attempt TIMESTAMPTZ, last_attempt TIMESTAMPTZ, attempts INTEGER DEFAULT 0,
    sent_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, last_error VARCHAR,
    PRIMARY KEY (key, channel, message))
"""


@dataclass
class Outcome:
    queued: list[str] = field(default_factory=list)  # "channel: message line" added this time
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # channel -> why (its messages stay pending)
    pending: int = 0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def plan(con: duckdb.DuckDBPyConnection, config: AlertsConfig, alerts: list[Alert]) -> list[tuple]:
    """The rows to add and the rows to change so that the ledger matches the open alerts:
    ("add", key, channel, message, alert-body), ("drop", key, channel) or ("resolve", key, channel)."""
    exists = con.execute("select count(*) from information_schema.tables "
                         "where table_schema = 'audit' and table_name = 'alert_notifications'").fetchone()[0]
    rows = con.execute(f"select key, channel, message, status, body from {TABLE}").fetchall() if exists else []
    ledger = {(k, c, m): (s, b) for k, c, m, s, b in rows}
    now_open = {a.key: a for a in alerts}
    actions: list[tuple] = []
    for a in alerts:
        for channel in config.channels_for(a.kind, a.city_code):
            if (a.key, channel, "open") not in ledger:
                actions.append(("add", a.key, channel, "open", a.body("open")))
            elif (a.key, channel, "resolved") in ledger:  # back again after it was resolved: a new alert
                actions.append(("reopen", a.key, channel, "open", a.body("open")))
    for (key, channel, message), (status, body) in ledger.items():
        if message != "open" or key in now_open or status == "dropped" or (key, channel, "resolved") in ledger:
            continue
        if status == "sent":
            actions.append(("add", key, channel, "resolved", json.loads(body) | {"status": "resolved",
                            "message": "已恢复:" + json.loads(body)["message"]}))
        else:  # never reached the channel: nothing to resolve
            actions.append(("drop", key, channel, "open", None))
    return actions


def apply(con: duckdb.DuckDBPyConnection, actions: list[tuple]) -> None:
    con.execute(DDL)
    now = _now()
    for action, key, channel, message, body in actions:
        if action == "add":
            con.execute(f"insert into {TABLE} (key, channel, message, status, kind, city_code, day, body, created_at) "
                        "values (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                        [key, channel, message, body["kind"], body["city_code"], body["day"],
                         json.dumps(body, ensure_ascii=False), now])
            if message == "resolved":
                con.execute(f"update {TABLE} set resolved_at = ? where key = ? and channel = ? and message = 'open'",
                            [now, key, channel])
        elif action == "reopen":
            con.execute(f"delete from {TABLE} where key = ? and channel = ?", [key, channel])
            apply(con, [("add", key, channel, message, body)])
        else:  # drop
            con.execute(f"update {TABLE} set status = 'dropped', resolved_at = ? "
                        "where key = ? and channel = ? and message = 'open'", [now, key, channel])


def send_pending(con: duckdb.DuckDBPyConnection, config: AlertsConfig, settings: Settings) -> Outcome:
    out = Outcome()
    rows = con.execute(f"select key, channel, message, body from {TABLE} where status in ('pending', 'sending') "
                       "order by created_at, day, key, channel, message desc").fetchall()  # open before resolved
    for key, channel_name, message, body_text in rows:
        where = [key, channel_name, message]
        if channel_name in out.failed or channel_name not in config.channels:
            continue  # down this time, or no longer configured: stays pending
        body = json.loads(body_text)
        con.execute(f"update {TABLE} set status = 'sending', first_attempt = coalesce(first_attempt, ?) "
                    "where key = ? and channel = ? and message = ?", [_now(), *where])  # the intent
        fault_hook.pause_at("alerts.before_send", key=key, channel=channel_name, message=message)
        try:
            for attempt in Retrying(stop=stop_after_attempt(settings.alert_attempts), reraise=True,
                                    wait=wait_exponential(multiplier=settings.alert_retry_wait_seconds),
                                    retry=retry_if_exception_type(senders.SendFailed)):
                with attempt:
                    con.execute(f"update {TABLE} set attempts = attempts + 1, last_attempt = ? "
                                "where key = ? and channel = ? and message = ?", [_now(), *where])
                    senders.send(channel_name, config.channels[channel_name], body, settings.alert_timeout_seconds)
        except (senders.SendFailed, CitycloudError) as exc:
            out.failed[channel_name] = str(exc)
            con.execute(f"update {TABLE} set status = 'pending', last_error = ? "
                        "where key = ? and channel = ? and message = ?", [str(exc), *where])
            continue
        con.execute(f"update {TABLE} set status = 'sent', sent_at = ?, last_error = null "
                    "where key = ? and channel = ? and message = ?", [_now(), *where])
        out.sent.append(f"{channel_name}: {body['message']}")
        fault_hook.pause_at("alerts.after_sent", key=key, channel=channel_name, message=message)
    out.pending = con.execute(f"select count(*) from {TABLE} where status in ('pending', 'sending')").fetchone()[0]
    return out

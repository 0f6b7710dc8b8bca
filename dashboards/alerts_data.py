"""Data of the Alerts page (告警): the delivery problems and KPI anomalies open as of a moment,
found by the same code `citycloud alerts` sends them with (citycloud/alerts/detect.py, so the keys
and the Chinese lines are the ones people received), their notification state from
audit.alert_notifications, the alerts that went away, and each anomaly's same-weekday history.

Read from the published snapshot through the person's scoped connection like every other page
(no Streamlit import: tested without a browser). The ledger reaches the snapshot at the next
publish (alerts are sent after a run publishes), so its state is "as of the last publish".
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Sequence

import pandas as pd

from citycloud.alerts import detect
from citycloud.config import BUSINESS_TZ, Settings
from citycloud.dashboards import fmt
from citycloud.dashboards.data import Snapshot

WINDOW_DAYS = (7, 14, 28, 90)  # the page lists the alerts of this many days up to the chosen day
NEEDED = ("marts.kpi_anomalies", "audit.deliveries", "audit.landing_issues", "marts.city_reference",
          "marts.holiday_calendar")
LEDGER = "audit.alert_notifications"
HISTORY_WEEKS = 8  # docs/alerts.md: an ordinary day against the same weekday of the previous 8 weeks
MAKEUP_DAYS = 28  # a make-up working day (调休) against the ordinary workdays of the previous 28 days
WEEKDAYS = "一二三四五六日"
KINDS = {"delivery": "交付", "anomaly": "指标异常"}
# What each day of an anomaly's history is to the method (docs/alerts.md): in the baseline, the
# alert's day, or left out and why.
BASELINE, ALERT_DAY, HOLIDAY, MAKEUP, FLAGGED, NO_DATA = ("基线", "当日（告警）", "节假日（不计入）", "调休（不计入）",
                                                          "已告警（不计入）", "无数据")
ROLES = (BASELINE, ALERT_DAY, HOLIDAY, MAKEUP, FLAGGED, NO_DATA)
PROBLEMS = {"missing": "缺失", "incomplete": "未完成", "empty": "空交付", "rejected": "拒收过多"}


def as_of(day: dt.date, published_at: dt.datetime, settings: Settings | None = None) -> dt.datetime:
    """The moment alerts are judged for a chosen day: that day's delivery deadline (the morning
    after it, as `citycloud alerts` runs), or the snapshot's publication when that is earlier."""
    return min(published_at, detect.deadline(settings or Settings(), day))


def weekday(day: dt.date) -> str:
    return f"周{WEEKDAYS[day.weekday()]}"


def load_alerts(snap: Snapshot, cities: Sequence[str], day: dt.date, moment: dt.datetime, days: int) -> dict:
    """The alerts of `cities` whose day falls in the `days` days up to `day`, as open at `moment`:
    open (delivery problems, then anomalies), gone (resolved or dropped, from the ledger) and the
    history of each open anomaly (key -> frame)."""
    out: dict = {"missing": [t for t in NEEDED if t not in snap.tables], "open": None, "gone": None, "history": {}}
    if out["missing"]:
        return out
    first = day - dt.timedelta(days=days - 1)
    names = dict(snap.con.execute("SELECT city_code::VARCHAR, city_name FROM marts.city_reference").fetchall())
    found = detect.delivery_problems(snap.con, Settings(), moment, names) + detect.anomalies(snap.con, moment, names)
    found = [a for a in found if a.city_code in set(cities) and first <= a.day <= day]
    found.sort(key=lambda a: (-a.day.toordinal(), a.kind != "delivery", a.city_code))  # newest first
    ledger = _ledger(snap, cities, first, day)
    out["open"] = pd.DataFrame([_open_row(a, ledger) for a in found], columns=OPEN_COLUMNS)
    out["gone"] = _gone(ledger, {a.key for a in found})
    calendar = dict(snap.con.execute("SELECT day, kind FROM marts.holiday_calendar").fetchall())
    flagged = set(snap.con.execute("SELECT city_code::VARCHAR, metric, coalesce(service_id, ''), kpi_date "
                                   "FROM marts.kpi_anomalies").fetchall())
    for a in found:
        if a.kind == "anomaly":
            out["history"][a.key] = history(snap, a, calendar, flagged)
    return out


OPEN_COLUMNS = ["key", "kind", "city_code", "day", "what", "value", "expected", "band", "direction", "notified",
                "message", "metric", "figure", "centre", "lower_bound", "upper_bound"]  # the last five: numbers


def _open_row(a: detect.Alert, ledger: pd.DataFrame) -> dict:
    if a.kind == "anomaly":
        what = (f"服务 {a.service_id} " if a.service_id else "") + fmt.kpi_label(a.metric)
        figures = {"value": fmt.fmt_kpi(a.metric, a.value), "expected": fmt.fmt_kpi(a.metric, a.expected),
                   "band": f"{fmt.fmt_kpi(a.metric, a.lower_bound)}–{fmt.fmt_kpi(a.metric, a.upper_bound)}",
                   "direction": "高于区间" if a.direction == "up" else "低于区间"}
    else:
        what = f"{fmt.SOURCE_LABELS.get(a.source, a.source)} {PROBLEMS[a.problem]}"
        figures = {"value": "", "expected": "", "band": "", "direction": ""}
    mine = ledger[(ledger["key"] == a.key) & (ledger["message"] == "open")] if ledger is not None else None
    return {"key": a.key, "kind": a.kind, "city_code": a.city_code, "day": a.day, "what": what, **figures,
            "notified": _notified(mine), "message": a.message, "metric": a.metric, "figure": a.value,
            "centre": a.expected, "lower_bound": a.lower_bound, "upper_bound": a.upper_bound}


NOTIFICATION_STATES = {"sent": "已发送", "pending": "待发送", "sending": "发送中", "dropped": "未发送"}


def _notified(rows: pd.DataFrame | None) -> str:
    """Where the alert went, channel by channel ("ops-hook 已发送"), as of the last publish."""
    if rows is None:
        return "未记录（快照中无通知台账）"
    if rows.empty:
        return "尚无通知记录"  # not sent yet, or no route sends it
    return "；".join(f"{r.channel} {NOTIFICATION_STATES.get(r.status, r.status)}" for r in rows.sort_values("channel").itertuples())


def _ledger(snap: Snapshot, cities: Sequence[str], first: dt.date, day: dt.date) -> pd.DataFrame | None:
    """The notification rows of the window's alerts (None: the snapshot has no ledger yet)."""
    if LEDGER not in snap.tables:
        return None
    marks = ", ".join("?" for _ in cities) or "NULL"
    return snap.df(f"SELECT key, channel, message, status, day, body, resolved_at, sent_at FROM {LEDGER} "
                   f"WHERE city_code IN ({marks}) AND day BETWEEN ? AND ? ORDER BY day DESC, key, channel",
                   [*cities, first, day])


def _gone(ledger: pd.DataFrame | None, still_open: set[str]) -> pd.DataFrame | None:
    """Alerts of the ledger that are no longer open: resolved (a `resolved` message followed) or
    dropped (gone before any channel heard of them). One row per alert, its channels joined."""
    if ledger is None:
        return None
    rows = ledger[(ledger["message"] == "open") & ~ledger["key"].isin(still_open)
                  & (ledger["resolved_at"].notna() | (ledger["status"] == "dropped"))]
    out = []
    for key, group in rows.groupby("key", sort=False):
        body = json.loads(group["body"].iloc[0])
        ended = pd.to_datetime(group["resolved_at"]).max()
        out.append({"key": key, "city_code": body["city_code"], "day": dt.date.fromisoformat(body["day"]),
                    "kind": body["kind"], "message": body["message"],
                    "ended": "" if pd.isna(ended) else fmt.fmt_ts(ended.to_pydatetime()),
                    "how": "已恢复" if (group["status"] != "dropped").any() else "未通知即消失",
                    "channels": "、".join(sorted(group["channel"]))})
    return pd.DataFrame(out, columns=["key", "city_code", "day", "kind", "message", "ended", "how", "channels"])


def baseline_days(day: dt.date, calendar: dict) -> list[dt.date]:
    """The days the anomaly model compares `day` with before leaving out holidays, make-up days and
    flagged days: the same weekday of the previous 8 weeks, or for a make-up working day the
    Monday–Friday days of the previous 28 days."""
    if calendar.get(day) == "workday":
        return [day - dt.timedelta(days=n) for n in range(MAKEUP_DAYS, 0, -1)
                if (day - dt.timedelta(days=n)).weekday() < 5]
    return [day - dt.timedelta(weeks=w) for w in range(HISTORY_WEEKS, 0, -1)]


def history(snap: Snapshot, a: detect.Alert, calendar: dict, flagged: set) -> pd.DataFrame:
    """The figure on the alert's day and on its comparable earlier days: day, value and its role
    (基线 baseline, or why it is left out: 节假日 holiday, 调休 make-up day, 已告警 flagged, 无数据)."""
    days = baseline_days(a.day, calendar)
    if a.service_id:
        sql = ("SELECT kpi_date, total_accesses::DOUBLE FROM marts.service_daily "
               "WHERE city_code = ? AND service_id = ? AND kpi_date BETWEEN ? AND ?")
        params = [a.city_code, a.service_id, days[0], a.day]
    else:
        column = fmt.registry().in_mart("kpi_daily")[a.metric]
        sql = f"SELECT kpi_date, {column}::DOUBLE FROM marts.kpi_daily WHERE city_code = ? AND kpi_date BETWEEN ? AND ?"
        params = [a.city_code, days[0], a.day]
    values = {d: v for d, v in snap.con.execute(sql, params).fetchall()}
    rows = []
    for d in [*days, a.day]:
        value = values.get(d)
        if d == a.day:
            role = ALERT_DAY
        elif value is None:
            role = NO_DATA
        elif calendar.get(d) in ("holiday", "workday"):
            role = HOLIDAY if calendar[d] == "holiday" else MAKEUP
        elif (a.city_code, a.metric, a.service_id or "", d) in flagged:
            role = FLAGGED
        else:
            role = BASELINE
        rows.append({"day": d, "weekday": weekday(d), "value": value, "role": role})
    return pd.DataFrame(rows)


def local_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(BUSINESS_TZ).date()

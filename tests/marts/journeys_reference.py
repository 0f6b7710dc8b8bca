"""An independent reading of user_ops.md's funnels and service paths in plain Python, over the
warehouse's counted events (staging) and the series days (kpi_daily): the golden and generated
tests compare marts.funnel_conversion and marts.service_paths with it cell for cell."""
from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, timedelta

import duckdb

from citycloud.funnels import Funnel


def _covered(days: set[date]) -> list[tuple[str, date, date]]:
    out = []
    for grain in ("week", "month"):
        starts = {d - timedelta(days=d.weekday()) if grain == "week" else d.replace(day=1) for d in days}
        for s in sorted(starts):
            end = s + timedelta(days=6) if grain == "week" else (s.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            if all(s + timedelta(days=i) in days for i in range((end - s).days + 1)):
                out.append((grain, s, end))
    return out


def _series(con) -> dict[str, set[date]]:
    series = defaultdict(set)
    for city, day in con.execute("SELECT city_code, kpi_date FROM marts.kpi_daily").fetchall():
        series[city].add(day)
    return series


def service_paths(warehouse) -> dict[tuple, tuple[int, int]]:
    """(city, month, from, to) -> (steps, users)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        series = _series(con)
        rows = con.execute("SELECT city_code, user_key, event_day, event_ts_utc, event_id, service_id "
                           "FROM staging.stg_landing__service_access WHERE outcome = 'success' AND user_key IS NOT NULL").fetchall()
    finally:
        con.close()
    by_day = defaultdict(list)
    for city, user, day, ts, event_id, service in rows:
        if day in series[city]:
            by_day[(city, user, day)].append((ts, event_id, service))
    steps, users = defaultdict(int), defaultdict(set)
    for (city, user, day), events in by_day.items():
        sequence = []
        for _, _, service in sorted(events):
            if not sequence or sequence[-1] != service:
                sequence.append(service)
        path = ["(start)", *sequence, "(end)"]
        covered = {(g, s) for g, s, _ in _covered(series[city])}
        if ("month", day.replace(day=1)) not in covered:
            continue
        for a, b in zip(path, path[1:]):
            key = (city, day.replace(day=1), a, b)
            steps[key] += 1
            users[key].add(user)
    return {k: (steps[k], len(users[k])) for k in steps}


def _events(con) -> list[dict]:
    snapshots = defaultdict(list)
    catalog = {}
    for city, dt, service, category, department in con.execute(
            "SELECT city_code, snapshot_dt, service_id, category, department FROM staging.stg_landing__service_catalog").fetchall():
        catalog[(city, dt, service)] = (category, department)
        snapshots[city].append(dt)
    for city in snapshots:
        snapshots[city] = sorted(set(snapshots[city]))
    out = []
    for city, user, event_id, ts, day, channel, service, outcome in con.execute(
            "SELECT city_code, user_key, event_id, event_ts_utc, event_day, channel, service_id, outcome "
            "FROM staging.stg_landing__service_access WHERE user_key IS NOT NULL").fetchall():
        snaps = [s for s in snapshots.get(city, []) if s <= day]
        category, department = catalog.get((city, snaps[-1], service), (None, None)) if snaps else (None, None)
        out.append(dict(city=city, user=user, key=("a", event_id), event_id=event_id, ts=ts, day=day, channel=channel,
                        event="access", service_id=service, outcome=outcome, category=category,
                        department=department, auth_level=None))
    for city, user, event_id, kind, ts, day, channel, auth in con.execute(
            "SELECT city_code, user_key, event_id, event_type, event_ts_utc, event_day, channel, auth_level "
            "FROM staging.stg_landing__registrations WHERE user_key IS NOT NULL AND event_type IN ('register', 'verify')").fetchall():
        out.append(dict(city=city, user=user, key=("g", event_id), event_id=event_id, ts=ts, day=day, channel=channel,
                        event=kind, service_id=None, outcome=None, category=None, department=None, auth_level=auth))
    return sorted(out, key=lambda e: (e["ts"], e["event_id"]))


def _matches(e: dict, step) -> bool:
    if e["event"] != step.event:
        return False
    if step.min_auth_level is not None and (e["auth_level"] is None or e["auth_level"] < step.min_auth_level):
        return False
    channel = e["channel"] or "unknown"
    return all(getattr(step, f) is None or getattr(step, f) == (channel if f == "channel" else e[f])
               for f in ("service_id", "category", "department", "outcome", "channel"))


def funnel_conversion(warehouse, funnels: list[Funnel]) -> dict[tuple, dict]:
    """(city, funnel, grain, period_start, channel, step) -> the mart's other columns."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        series = _series(con)
        events = _events(con)
    finally:
        con.close()
    by_user = defaultdict(list)
    for e in events:
        by_user[(e["city"], e["user"])].append(e)
    out = {}
    for f in funnels:
        window = timedelta(days=f.window_days)
        for city, days in series.items():
            last_day = max(days)
            for grain, start, end in _covered(days):
                reached = defaultdict(list)  # (channel, step) -> seconds from previous
                entries = defaultdict(list)  # channel -> entry days
                for (c, _), user_events in by_user.items():
                    if c != city:
                        continue
                    first = f.steps[0]
                    candidates = [e for e in user_events if _matches(e, first)]
                    if first.first:
                        candidates = candidates[:1]
                    candidates = [e for e in candidates if start <= e["day"] <= end]
                    if not candidates:
                        continue
                    entry = candidates[0]
                    channel = entry["channel"] or "unknown"
                    entries[channel].append(entry["day"])
                    used, previous, chain = {entry["key"]}, entry, [None]
                    for step in f.steps[1:]:
                        nxt = next((e for e in user_events if e["key"] not in used and e["ts"] >= previous["ts"]
                                    and e["ts"] <= entry["ts"] + window and _matches(e, step)), None)
                        if nxt is None:
                            break
                        chain.append((nxt["ts"] - previous["ts"]).total_seconds())
                        used.add(nxt["key"])
                        previous = nxt
                    for k, seconds in enumerate(chain, 1):
                        for ch in (channel, "all"):
                            reached[(ch, k)].append(seconds)
                channels = ["all", *sorted(entries)]
                for ch in channels:
                    entry_days = [d for c2, ds in entries.items() for d in ds if ch in ("all", c2)]
                    complete = all(d + timedelta(days=f.window_days) <= last_day for d in entry_days)
                    counts = [len(reached[(ch, k)]) for k in range(1, len(f.steps) + 1)]
                    for k, step in enumerate(f.steps, 1):
                        users = counts[k - 1]
                        seconds = reached[(ch, k)]
                        out[(city, f.name, grain, start, ch, k)] = dict(
                            step_label=step.label or step.default_label(), users=users,
                            conversion_from_start=users / counts[0] if counts[0] else None,
                            conversion_from_previous=(1.0 if users else None) if k == 1 else
                            (users / counts[k - 2] if counts[k - 2] else None),
                            median_seconds_from_previous=statistics.median(seconds) if k > 1 and seconds else None,
                            window_complete=complete)
    return out

"""User-operations marts on generated data: they agree cell for cell with an independent
polars recomputation (set arithmetic over the staged rows, not the models' windows and
deltas); late events delivered weeks after the fact change exactly the periods, cohorts and
days they reach; and the incremental result equals a --full-refresh build.

The tests run in file order on one warehouse: the late-events test changes it.
"""
from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from citycloud import pipeline
from citycloud.config import pii_key
from citycloud.ingestion.pii import hmac_hex
from tests.conftest import make_settings, table_fingerprints, write_delivery
from tests.marts.conftest import HISTORY_DAYS as DAYS, HISTORY_KEY as KEY, HISTORY_START as START

pytestmark = pytest.mark.slow
LAST = START + timedelta(days=DAYS - 1)
MARTS = ("user_lifecycle", "retention_monthly", "activation_daily", "stickiness_monthly", "channel_daily")
KEYS = {
    "user_lifecycle": ("city_code", "grain", "period_start"),
    "retention_monthly": ("city_code", "cohort_month", "channel", "months_since"),
    "activation_daily": ("city_code", "registration_day"),
    "stickiness_monthly": ("city_code", "month", "active_days"),
    "channel_daily": ("city_code", "kpi_date", "channel"),
}
USER_OPS_TABLES = [f"marts_build.{m}" for m in MARTS] + [
    f"intermediate.{t}" for t in ("int_user_activity_aggregated_to_periods", "int_users_first_registered",
                                  "int_city_periods_covered", "int_channel_accesses_aggregated_to_days")]


@pytest.fixture(scope="module")
def history(two_city_history, tmp_path_factory):
    """A copy (landing area and warehouse folder) of tests/marts/conftest.py's 45 generated days
    for 2 cities, built in three incremental steps, the last one published: the late-events
    test writes to it."""
    tmp = tmp_path_factory.mktemp("user_ops_gen")
    settings = make_settings(tmp, tmp / "landing")
    settings.funnels, settings.pii_key = two_city_history.funnels, two_city_history.pii_key
    shutil.copytree(two_city_history.landing, settings.landing)
    shutil.copytree(two_city_history.warehouse.parent, settings.warehouse.parent)
    return settings


# ---- the independent recomputation ----------------------------------------------------------

def _week(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _month(d: date) -> date:
    return d.replace(day=1)


def _next_month(m: date) -> date:
    return (m + timedelta(days=32)).replace(day=1)


def _previous(grain: str, p: date) -> date:
    return p - timedelta(days=7) if grain == "week" else (p - timedelta(days=1)).replace(day=1)


def _channel(value) -> str:
    return value if value else "unknown"


def recompute(db) -> dict[str, dict[tuple, tuple]]:
    """Every mart as {key: values}, from staging rows and the day series only."""
    con = duckdb.connect(str(db), read_only=True)
    acc = con.sql("SELECT city_code, event_day, user_key, outcome, channel FROM staging.stg_landing__service_access").pl()
    reg = con.sql("SELECT city_code, user_key, event_id, event_type, event_ts_utc, event_day, channel, auth_level "
                  "FROM staging.stg_landing__registrations").pl()
    series = dict(((c, (a, b)) for c, a, b in con.execute(
        "SELECT city_code, min(kpi_date), max(kpi_date) FROM marts.kpi_daily GROUP BY 1").fetchall()))
    con.close()
    out: dict[str, dict[tuple, tuple]] = {m: {} for m in MARTS}
    ok = acc.filter((pl.col("outcome") == "success") & pl.col("user_key").is_not_null())
    for city, (first, last) in series.items():
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        active_days: dict[str, set[date]] = defaultdict(set)
        for user, day in ok.filter(pl.col("city_code") == city).select("user_key", "event_day").iter_rows():
            active_days[user].add(day)
        # periods: users active in each week / month
        for grain, start_of in (("week", _week), ("month", _month)):
            users_in: dict[date, set[str]] = defaultdict(set)
            for user, ds in active_days.items():
                for d in ds:
                    users_in[start_of(d)].add(user)
            starts = sorted({start_of(d) for d in days})
            for p in starts:
                end = p + timedelta(days=6) if grain == "week" else _next_month(p) - timedelta(days=1)
                if p < first or end > last:
                    continue
                now, before = users_in.get(p, set()), users_in.get(_previous(grain, p), set())
                earlier = set().union(*[u for q, u in users_in.items() if q < _previous(grain, p)])
                ever = earlier | before
                out["user_lifecycle"][(city, grain, p)] = (
                    len(now), len(now - ever), len(now & before), len((now - before) & earlier), len(before - now))
                if grain == "month":
                    counts: dict[int, int] = defaultdict(int)
                    for user in now:
                        counts[sum(1 for d in active_days[user] if start_of(d) == p)] += 1
                    for n, users in counts.items():
                        out["stickiness_monthly"][(city, p, n)] = (users,)
        covered_months = sorted(m for (c, g, m) in out["user_lifecycle"] if c == city and g == "month")
        # first registrations
        regs = reg.filter(pl.col("city_code") == city)
        first_reg = (regs.filter(pl.col("event_type") == "register").sort(["event_ts_utc", "event_id"])
                     .group_by("user_key", maintain_order=True).first())
        cohorts: dict[tuple[date, str], set[str]] = defaultdict(set)
        registered_on: dict[date, set[str]] = defaultdict(set)
        for user, day, chan in first_reg.select("user_key", "event_day", "channel").iter_rows():
            for c in (_channel(chan), "all"):
                cohorts[(_month(day), c)].add(user)
            registered_on[day].add(user)
        for (cohort, chan), members in cohorts.items():
            for m in covered_months:
                if m < cohort:
                    continue
                k = (m.year - cohort.year) * 12 + m.month - cohort.month
                kept = sum(1 for u in members if any(_month(d) == m for d in active_days.get(u, ())))
                out["retention_monthly"][(city, cohort, chan, k)] = (len(members), kept, kept / len(members))
        levels = regs.filter(pl.col("event_type").is_in(["register", "verify"]))
        for r in days:
            users = registered_on.get(r, set())
            window = {r + timedelta(days=i) for i in range(7)}
            activated = sum(1 for u in users if active_days.get(u, set()) & window)
            top = (levels.filter(pl.col("user_key").is_in(list(users)) & (pl.col("event_day") <= r + timedelta(days=6)))
                   .group_by("user_key").agg(pl.col("auth_level").max()))
            verified = top.filter(pl.col("auth_level") >= 2).height
            out["activation_daily"][(city, r)] = (len(users), activated, verified, r + timedelta(days=6) <= last)
        # channels
        per_channel: dict[tuple, list] = defaultdict(lambda: [0, 0, set(), 0])
        for day, user, outcome, chan in (acc.filter(pl.col("city_code") == city)
                                         .select("event_day", "user_key", "outcome", "channel").iter_rows()):
            row = per_channel[(day, _channel(chan))]
            row[0] += 1
            if outcome == "success":
                row[1] += 1
                if user is not None:
                    row[2].add(user)
        for day, chan in (regs.filter(pl.col("event_type") == "register").select("event_day", "channel").iter_rows()):
            per_channel[(day, _channel(chan))][3] += 1
        for (day, chan), (total, success, users, registrations) in per_channel.items():
            if first <= day <= last:
                out["channel_daily"][(city, day, chan)] = (total, success, len(users), registrations)
    return out


def read_marts(db, schema="marts") -> dict[str, dict[tuple, tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for mart, key in KEYS.items():
            cur = con.execute(f"SELECT * FROM {schema}.{mart}")
            names = [d[0] for d in cur.description]
            idx = [names.index(k) for k in key]
            out[mart] = {tuple(r[i] for i in idx): tuple(v for i, v in enumerate(r) if i not in idx)
                         for r in cur.fetchall()}
        return out
    finally:
        con.close()


def _differences(expected: dict, actual: dict) -> list:
    diffs = []
    for key in sorted(set(expected) | set(actual), key=repr):
        e, a = expected.get(key), actual.get(key)
        if e is None or a is None or len(e) != len(a) or any(
                abs(x - y) > 1e-9 if isinstance(x, float) else x != y for x, y in zip(e, a)):
            diffs.append((key, e, a))
    return diffs


def assert_agrees_with_recomputation(settings):
    expected, actual = recompute(settings.warehouse), read_marts(settings.published)
    for mart in MARTS:
        assert len(expected[mart]) > 0, mart
        assert _differences(expected[mart], actual[mart])[:5] == [], mart


def test_marts_agree_with_an_independent_polars_recomputation(history):
    assert_agrees_with_recomputation(history)
    lifecycle = read_marts(history.published)["user_lifecycle"]
    grains = {g for (_, g, _) in lifecycle}
    assert grains == {"week", "month"}
    # January is covered in both cities, February is not yet
    assert {(c, p) for (c, g, p) in lifecycle if g == "month"} == {(c, date(2026, 1, 1)) for (c, _, _) in lifecycle}


# ---- late events ----------------------------------------------------------------------------

def _user_ids(landing, city) -> dict[str, str]:
    """user_key -> delivered user_id, for the users of the city's access deliveries."""
    key = pii_key()
    ids = set()
    for f in (landing / city / "service_access").rglob("*.jsonl*"):
        try:
            data = f.read_bytes()
            text = (gzip.decompress(data) if f.name.endswith(".gz") else data).decode("utf-8", errors="replace")
        except (OSError, EOFError):  # the generator's truncated gzip file
            continue
        for line in text.splitlines():
            try:
                uid = json.loads(line).get("user_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(uid, str) and uid:
                ids.add(uid)
    return {hmac_hex(key, f"{city}:{uid}"): uid for uid in ids}


def _changed(before: dict, after: dict) -> dict[str, set]:
    return {m: {k for k in set(before[m]) | set(after[m]) if before[m].get(k) != after[m].get(k)} for m in MARTS}


def test_late_events_weeks_after_change_exactly_what_they_reach_and_equal_a_full_refresh(history, monkeypatch):
    monkeypatch.setenv("CITYCLOUD_PII_KEY", KEY)
    settings = history
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    city = con.execute("SELECT min(city_code) FROM marts.kpi_daily").fetchone()[0]
    weeks: dict[str, set[date]] = defaultdict(set)
    for user, week in con.execute("SELECT user_key, period_start FROM intermediate.int_user_activity_aggregated_to_periods "
                                  "WHERE city_code = ? AND grain = 'week'", [city]).fetchall():
        weeks[user].add(week)
    january_days = dict(con.execute(
        "SELECT user_key, active_days FROM intermediate.int_user_activity_aggregated_to_periods "
        "WHERE city_code = ? AND grain = 'month' AND period_start = DATE '2026-01-01'", [city]).fetchall())
    first_regs = con.execute("SELECT user_key, registration_day FROM intermediate.int_users_first_registered "
                             "WHERE city_code = ? ORDER BY user_key", [city]).fetchall()
    con.close()
    ids = _user_ids(settings.landing, city)
    # X: active in the week of 01-05, dormant in the week of 01-12: a late access on 01-14 makes it returning
    w1, w2 = date(2026, 1, 5), date(2026, 1, 12)
    x = next(u for u in sorted(weeks) if u in ids and w1 in weeks[u] and w2 not in weeks[u])
    late_day = date(2026, 1, 14)
    # Y: first registered in February: a late register event of 01-08 moves it into January
    y, y_day = next(r for r in first_regs if r[0] in ids and r[1] >= date(2026, 2, 1))
    # delivered weeks later, in a re-export of a complete delivery of both sources
    redelivered = max(p.name[3:] for p in (settings.landing / city / "service_access").iterdir()
                      if (p / "_SUCCESS").exists() and p.name[3:] < (LAST - timedelta(days=1)).isoformat()
                      and (settings.landing / city / "registrations" / p.name / "_SUCCESS").exists())
    before = read_marts(settings.published)
    write_delivery(settings.landing, city, "service_access", redelivered, {"late.jsonl": json.dumps(
        {"event_id": "UO-LATE-A1", "user_id": ids[x], "service_id": "S-late", "channel": "ios",
         "event_time": f"{late_day}T09:00:00+08:00", "outcome": "success", "duration_ms": 10})})
    write_delivery(settings.landing, city, "registrations", redelivered, {"late.csv": (
        "event_id,event_type,user_id,event_time,channel,auth_level\n"
        f"UO-LATE-R1,register,{ids[y]},2026-01-08 10:00:00,uo_kiosk,1\n")})
    assert pipeline.run(settings).published
    after = read_marts(settings.published)
    changed = _changed(before, after)

    lifecycle_b, lifecycle_a = before["user_lifecycle"], after["user_lifecycle"]
    week_key = (city, "week", w2)
    x_next_active = w2 + timedelta(days=7) in weeks[x]
    # week of 01-12: one more active, returning user; one dormant fewer
    assert [a - b for a, b in zip(lifecycle_a[week_key], lifecycle_b[week_key])] == [1, 0, 1, 0, -1]
    # week of 01-19: X was resurrecting (if active) and is now returning; else X is dormant there now
    following = (city, "week", w2 + timedelta(days=7))
    assert [a - b for a, b in zip(lifecycle_a[following], lifecycle_b[following])] == (
        [0, 0, 1, -1, 0] if x_next_active else [0, 0, 0, 0, 1])
    # X was already active in January (week of 01-05): the month rows do not change
    assert changed["user_lifecycle"] == {week_key, following}
    # X comes on one more day in January
    n = january_days[x]
    assert changed["stickiness_monthly"] == {(city, date(2026, 1, 1), n), (city, date(2026, 1, 1), n + 1)}
    # Y joins the January cohort (all and the new channel 'uo_kiosk'); its February cohort has no
    # covered month yet, so it has no rows to change
    assert changed["retention_monthly"] == {(city, date(2026, 1, 1), "all", 0), (city, date(2026, 1, 1), "uo_kiosk", 0)}
    assert after["retention_monthly"][(city, date(2026, 1, 1), "uo_kiosk", 0)][0] == 1
    assert after["retention_monthly"][(city, date(2026, 1, 1), "all", 0)][0] == (
        before["retention_monthly"][(city, date(2026, 1, 1), "all", 0)][0] + 1)
    # activation: Y counts on 01-08 now and no longer on its old day; X's late access may activate
    # registrants of 01-08 .. 01-14 (the days whose 7-day window holds 01-14)
    act = changed["activation_daily"]
    assert {(city, date(2026, 1, 8)), (city, y_day)} <= act
    assert act <= {(city, date(2026, 1, 8)), (city, y_day)} | {(city, late_day - timedelta(days=i)) for i in range(7)}
    assert after["activation_daily"][(city, y_day)][0] == before["activation_daily"][(city, y_day)][0] - 1
    # channels: the late access on 01-14 through ios, the late registration on 01-08 through uo_kiosk
    assert changed["channel_daily"] == {(city, late_day, "ios"), (city, date(2026, 1, 8), "uo_kiosk")}

    assert_agrees_with_recomputation(settings)
    incremental = table_fingerprints(settings.warehouse, ("marts_build", "intermediate"))
    pipeline.build(settings, full_refresh=True)
    full = table_fingerprints(settings.warehouse, ("marts_build", "intermediate"))
    assert {t: incremental[t] for t in USER_OPS_TABLES} == {t: full[t] for t in USER_OPS_TABLES}

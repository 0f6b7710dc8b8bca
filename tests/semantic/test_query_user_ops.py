"""The user-operations metrics (models/semantic/user_ops_metrics.yml): `citycloud query` equals the
user-ops marts cell for cell at their natural grains on the worked example, the marts equal
the worked example's expected tables, and grains where a sum would be wrong are refused."""
from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys

import duckdb
import pytest

from citycloud import query
from citycloud.access.cities import city_names
from citycloud.config import CitycloudError
from tests.conftest import GENERATED_CITIES, GENERATED_DAYS, TINY

pytestmark = pytest.mark.slow

# metric -> the mart column holding it (user_ops.md's names; three renamed, see user_ops_metrics.yml)
LIFECYCLE = {"lifecycle_active_users": "active_users", "new_users": "new_users", "returning_users": "returning_users",
             "resurrecting_users": "resurrecting_users", "dormant_users": "dormant_users"}
ACTIVATION = {"first_registrations": "registrations", "activated_7d": "activated_7d", "verified_7d": "verified_7d"}
CHANNEL = {"channel_total_accesses": "total_accesses", "channel_successful_accesses": "successful_accesses",
           "channel_new_registrations": "new_registrations"}


def _rows(settings, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(str(settings.published), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _ask(settings, metrics, grain, **kw) -> list[tuple]:
    df = query.query(settings, query.QueryRequest(metrics=tuple(metrics), grain=grain, **kw))
    assert list(df.columns) == ["city_code", "period", *metrics]
    return [(r[0], r[1].date(), *(None if v != v else v for v in r[2:])) for r in df.itertuples(index=False)]


def _expected(name: str) -> list[dict]:
    return list(csv.DictReader((TINY / "expected" / f"{name}.csv").open()))


def test_registry_carries_the_user_ops_metrics(tiny_registry):
    reg = tiny_registry
    for name in [*LIFECYCLE, *ACTIVATION, "activation_rate", *CHANNEL]:
        m = reg.metrics[name]
        assert m.label and m.label != name and m.label_en and m.description and m.unit
        assert m.payable is False and m.grains == ()  # not kpis.md KPIs: off the KPI tables
    assert reg.metrics["new_users"].periods == ("week", "month")
    assert reg.metrics["new_users"].by_grain == {"week": "weekly_new_users"}
    assert reg.in_mart("user_lifecycle") == LIFECYCLE
    assert reg.in_mart("activation_daily") == ACTIVATION
    assert reg.in_mart("channel_daily") == CHANNEL


@pytest.mark.parametrize("grain,rows", [("week", 4), ("month", 1)])
def test_lifecycle_equals_mart_at_week_and_month(tiny_settings, grain, rows):
    mart = _rows(tiny_settings, f"SELECT city_code, period_start, {', '.join(LIFECYCLE.values())} "
                                "FROM marts.user_lifecycle "
                                "WHERE grain = ? ORDER BY 1, 2", [grain])
    got = _ask(tiny_settings, LIFECYCLE, grain)
    assert len(mart) == rows and got == mart
    expected = [(e["city_code"], dt.date.fromisoformat(e["period_start"]), *(int(e[c]) for c in LIFECYCLE.values()))
                for e in _expected("user_lifecycle") if e["grain"] == grain]
    assert got == expected
    # active users of a whole period are the distinct users of its user-days (user_activity_daily;
    # `dau` itself answers days only)
    distinct = dict(((c, p), n) for c, p, n in _rows(
        tiny_settings, f"SELECT city_code, CAST(date_trunc('{grain}', event_day) AS DATE), count(DISTINCT user_key) "
                       "FROM marts.user_activity_daily GROUP BY ALL", []))
    assert [r[:3] for r in got] == [(c, p, distinct[(c, p)]) for c, p, *_ in got]


def test_lifecycle_worked_example_first_week_by_hand(tiny_settings):
    # user_lifecycle.csv, week of 2026-02-02: 68 active = 31 new + 37 returning + 0 resurrecting; 2 dormant
    got = _ask(tiny_settings, LIFECYCLE, "week", city="430100")
    assert got[0] == ("430100", dt.date(2026, 2, 2), 68, 31, 37, 0, 2)


@pytest.mark.parametrize("metric,grain", [("new_users", "day"), ("dormant_users", "day"),
                                          ("weekly_new_users", "month"), ("weekly_lifecycle_active_users", "day")])
def test_lifecycle_refuses_grains_where_a_sum_is_wrong(tiny_settings, metric, grain):
    with pytest.raises(CitycloudError, match=f"--grain {grain}: {metric} is a figure of a whole period"):
        query.query(tiny_settings, query.QueryRequest(metrics=(metric,), grain=grain))


def test_activation_equals_mart_by_registration_day(tiny_settings):
    mart = _rows(tiny_settings, f"SELECT city_code, registration_day, {', '.join(ACTIVATION.values())}, "
                                "CASE WHEN registrations > 0 THEN activated_7d / registrations END "
                                "FROM marts.activation_daily ORDER BY 1, 2")
    got = _ask(tiny_settings, [*ACTIVATION, "activation_rate"], "day")
    assert len(mart) == 33 and got == mart
    expected = [(e["city_code"], dt.date.fromisoformat(e["registration_day"]),
                 *(int(e[c]) for c in ACTIVATION.values()))
                for e in _expected("activation_daily")]
    assert [r[:5] for r in got] == expected


def test_activation_month_is_the_sum_of_its_days(tiny_settings):
    mart = _rows(tiny_settings, "SELECT city_code, date_trunc('month', registration_day)::DATE AS m, "
                                "sum(registrations), sum(activated_7d), sum(verified_7d), "
                                "sum(activated_7d) / sum(registrations) FROM marts.activation_daily "
                                "WHERE registration_day BETWEEN DATE '2026-02-01' AND DATE '2026-02-28' "
                                "GROUP BY ALL ORDER BY 1, 2")
    got = _ask(tiny_settings, [*ACTIVATION, "activation_rate"], "month")
    assert got == mart  # March is still running: no row (complete periods only)
    # the worked example's February, summed by hand from activation_daily.csv
    feb = [e for e in _expected("activation_daily") if e["registration_day"].startswith("2026-02")]
    assert got[0][2:5] == tuple(sum(int(e[c]) for e in feb) for c in ACTIVATION.values())


@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_channel_metrics_by_city_equal_the_mart_summed_over_channels(tiny_settings, grain):
    trunc = {"day": "kpi_date", "week": "date_trunc('week', kpi_date)::DATE",
             "month": "date_trunc('month', kpi_date)::DATE"}[grain]
    got = _ask(tiny_settings, list(CHANNEL), grain)
    periods = [(r[0], r[1]) for r in got]
    sums = {(r[0], r[1]): r[2:] for r in _rows(
        tiny_settings, f"SELECT city_code, {trunc} AS p, {', '.join(f'sum({c})' for c in CHANNEL.values())} "
                       "FROM marts.channel_daily GROUP BY ALL")}
    # a day without accesses or registrations (2026-02-11) has no channel_daily row: zeros
    assert got == [(c, p, *sums.get((c, p), (0, 0, 0))) for c, p in periods]
    assert len(got) == {"day": 33, "week": 4, "month": 1}[grain]
    # and summed over channels they are the KPIs of kpi_daily (user_ops.md)
    kpis = _ask(tiny_settings, ["total_accesses", "successful_accesses", "new_registrations"], grain)
    assert [r[2:] for r in got] == [r[2:] for r in kpis]


@pytest.mark.parametrize("grain", ["day", "week"])
def test_query_by_channel_equals_mart_cell_for_cell(tiny_settings, grain):
    """`--by channel`: one row per city, period and channel, equal to marts.channel_daily (at
    day its rows, at week their sums) and at day to the worked example's channel_daily.csv."""
    period = {"day": "kpi_date", "week": "date_trunc('week', kpi_date)::DATE"}[grain]
    mart = _rows(tiny_settings, f"SELECT city_code, {period} AS p, channel, "
                                f"{', '.join(f'sum({c})' for c in CHANNEL.values())} FROM marts.channel_daily "
                                "GROUP BY ALL ORDER BY 1, 2, 3")
    if grain == "week":  # complete weeks only (the series runs 2026-01-30 .. 2026-03-03)
        mart = [r for r in mart if dt.date(2026, 2, 2) <= r[1] <= dt.date(2026, 2, 23)]
    df = query.query(tiny_settings, query.QueryRequest(metrics=tuple(CHANNEL), grain=grain, by="channel"))
    assert list(df.columns) == ["city_code", "period", "channel", *CHANNEL]
    got = [(r[0], r[1].date(), *r[2:]) for r in df.itertuples(index=False)]
    assert got == mart and len(got) > 20
    if grain == "day":
        expected = [(e["city_code"], dt.date.fromisoformat(e["kpi_date"]), e["channel"],
                     *(int(e[c]) for c in CHANNEL.values())) for e in _expected("channel_daily")]
        assert got == expected


def test_query_by_bad_dimension_one_line_error(tiny_settings):
    with pytest.raises(CitycloudError, match="--by nope: no semantic model has a categorical dimension"):
        query.query(tiny_settings, query.QueryRequest(metrics=tuple(CHANNEL), grain="day", by="nope"))
    with pytest.raises(CitycloudError) as err:  # a user-day has no channel: name the metrics that have one
        query.query(tiny_settings, query.QueryRequest(metrics=("dau", *CHANNEL), grain="day", by="channel"))
    assert str(err.value) == ("--by channel: dau cannot be cut by channel (no channel in its semantic model); "
                              f"metrics that can: {', '.join(CHANNEL)}")


@pytest.mark.parametrize("verb", ["query", "user-ops"])
def test_unknown_city_is_one_line_naming_the_known_ones(tiny_settings, verb):
    """--city 999999 is not an empty success: one line, exit 2, the cities there are."""
    extra = ["--metrics", "total_accesses", "--grain", "day"] if verb == "query" else ["--month", "2026-02"]
    proc = subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", verb, "--warehouse", str(tiny_settings.warehouse),
                           "--city", "999999", *extra], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    known = ", ".join(sorted(city_names()))  # the seed's cities (the worked example's are among them)
    assert proc.stderr == (f"citycloud {verb}: error: --city 999999: unknown city (known: {known}; cities "
                           "come from dbt_project/seeds/city_reference.csv and their deliveries)\n")


def test_cli_lifecycle_week_csv_and_refusal(tiny_settings, tmp_path):
    out = tmp_path / "weeks.csv"
    cli = [sys.executable, "-m", "citycloud.pipeline.cli", "query", "--warehouse", str(tiny_settings.warehouse)]
    proc = subprocess.run([*cli, "--metrics", ",".join(LIFECYCLE), "--grain", "week", "--csv", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    expected = [{"city_code": e["city_code"], "period": e["period_start"], **{m: e[c] for m, c in LIFECYCLE.items()}}
                for e in _expected("user_lifecycle") if e["grain"] == "week"]
    assert list(csv.DictReader(out.open())) == expected
    proc = subprocess.run([*cli, "--metrics", "new_users", "--grain", "day"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "new_users is a figure of a whole period, answered only at --grain week or month" in proc.stderr


@pytest.mark.parametrize("grain", ["day", "week"])
def test_metricflow_itself_refuses_the_month_figure_below_a_month(tiny_registry, grain):
    """In MetricFlow new_users is the month figure (time granularity month): asked at a finer
    grain, MetricFlow refuses; only citycloud query's by_grain turns --grain week into weekly_new_users."""
    with pytest.raises(CitycloudError, match="MetricFlow cannot answer this"):
        query.plan_sql(tiny_registry.manifest, query.QueryRequest(metrics=("new_users",), grain=grain))


def test_cli_query_by_channel_csv(tiny_settings, tmp_path):
    out = tmp_path / "channels.csv"
    proc = subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", "query", "--warehouse", str(tiny_settings.warehouse),
                           "--metrics", ",".join(CHANNEL), "--grain", "day", "--by", "channel", "--csv", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    expected = [{"city_code": e["city_code"], "period": e["kpi_date"], "channel": e["channel"],
                 **{m: e[c] for m, c in CHANNEL.items()}} for e in _expected("channel_daily")]
    assert list(csv.DictReader(out.open())) == expected


# Generated data (conftest.py): three cities, January and February (late events, dirt and all); weeks cross months.
def test_user_ops_equal_marts_on_generated_data(generated):
    for grain in ("week", "month"):
        mart = _rows(generated, f"SELECT city_code, period_start, {', '.join(LIFECYCLE.values())} "
                                "FROM marts.user_lifecycle WHERE grain = ? ORDER BY 1, 2", [grain])
        assert len(mart) == GENERATED_CITIES * (7 if grain == "week" else 2)  # weeks of 2026-01-05 .. 02-16; Jan, Feb
        assert _ask(generated, LIFECYCLE, grain) == mart
    mart = _rows(generated, f"SELECT city_code, registration_day, {', '.join(ACTIVATION.values())} "
                            "FROM marts.activation_daily ORDER BY 1, 2")
    assert len(mart) == GENERATED_CITIES * GENERATED_DAYS and _ask(generated, ACTIVATION, "day") == mart
    mart = _rows(generated, f"SELECT city_code, kpi_date, channel, {', '.join(CHANNEL.values())} "
                            "FROM marts.channel_daily ORDER BY 1, 2, 3")
    df = query.query(generated, query.QueryRequest(metrics=tuple(CHANNEL), grain="day", by="channel"))
    assert [(r[0], r[1].date(), *r[2:]) for r in df.itertuples(index=False)] == mart

"""On a generated landing area: late events move exactly the days they reach, the marts agree
with an independent polars recomputation, and no personal value lands anywhere."""
from __future__ import annotations

import gzip
import json
import re
import shutil
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from citycloud import pipeline
from tests.conftest import GENERATED_DAYS, GENERATED_START, copy_warehouse, query, write_delivery

pytestmark = pytest.mark.slow
START, DAYS = GENERATED_START, GENERATED_DAYS  # January complete: kpi_monthly has its row


@pytest.fixture(scope="module")
def generated(generated_built):
    return generated_built


def _daily(settings, city):
    cols = "kpi_date, registered_users, new_registrations, dau, wau, mau_30d, total_accesses, successful_accesses"
    return {r[0]: r[1:] for r in query(settings.warehouse,
                                       f"SELECT {cols} FROM marts.kpi_daily WHERE city_code = ? ORDER BY 1", [city])}


def test_marts_agree_with_an_independent_polars_recomputation(generated):
    con = duckdb.connect(str(generated.warehouse), read_only=True)
    acc = con.sql("SELECT city_code, event_day, user_key, outcome FROM staging.stg_landing__service_access").pl()
    reg = con.sql("SELECT city_code, user_key, event_type, event_ts_utc, event_day, auth_level "
                      "FROM staging.stg_landing__registrations").pl()
    marts = con.execute("SELECT city_code, kpi_date, registered_users, verified_users, dau, wau, mau_30d, "
                        "total_accesses FROM marts.kpi_daily ORDER BY 1, 2").fetchall()
    con.close()
    ok = acc.filter((pl.col("outcome") == "success") & pl.col("user_key").is_not_null())
    for city, day, registered, verified, dau, wau, mau, total in marts:
        def active(days):
            return ok.filter((pl.col("city_code") == city) & pl.col("event_day").is_between(day - timedelta(days - 1), day)
                             )["user_key"].n_unique()
        assert (dau, wau, mau) == (active(1), active(7), active(30)), (city, day)
        assert total == acc.filter((pl.col("city_code") == city) & (pl.col("event_day") == day)).height
        upto = reg.filter((pl.col("city_code") == city) & (pl.col("event_day") <= day))
        status = (upto.filter(pl.col("event_type") != "verify")
                  .with_columns(rank=(pl.col("event_type") == "cancel").cast(pl.Int8))
                  .sort(["event_ts_utc", "rank"]).group_by("user_key").agg(pl.col("event_type").last()))
        reg_users = set(status.filter(pl.col("event_type") == "register")["user_key"])
        assert registered == len(reg_users), (city, day)
        levels = (upto.filter(pl.col("event_type") != "cancel").group_by("user_key")
                  .agg(pl.col("auth_level").max()).filter(pl.col("auth_level") >= 2))
        assert verified == len(reg_users & set(levels["user_key"])), (city, day)


def test_late_events_change_exactly_the_days_and_months_they_reach(generated, tmp_path):
    shutil.copytree(generated.landing, tmp_path / "landing")  # the late deliveries are written there
    settings = copy_warehouse(generated, tmp_path, tmp_path / "landing")
    city = "510100"
    before = _daily(settings, city)
    months_before = dict(query(settings.warehouse, "SELECT month, mau FROM marts.kpi_monthly WHERE city_code = ?", [city]))
    late_day = START + timedelta(days=5)
    new_dt = START + timedelta(days=DAYS)
    write_delivery(settings.landing, city, "registrations", new_dt.isoformat(), {"late.csv": (
        "event_id,event_type,user_id,event_time\nRLATE1,register,ULATE1," f"{late_day} 10:00:00\n")})
    write_delivery(settings.landing, city, "service_access", new_dt.isoformat(), {"late.jsonl": json.dumps(
        {"event_id": "ALATE1", "user_id": "ULATE1", "service_id": "S-none", "event_time": f"{late_day}T11:00:00+08:00",
         "outcome": "success"})})
    pipeline.run(settings)
    after = _daily(settings, city)
    for day, old in before.items():
        offset = (day - late_day).days
        expected = list(old)
        if offset >= 0:
            expected[0] += 1                    # registered_users from that day on
            expected[3] += offset < 7           # wau
            expected[4] += offset < 30          # mau_30d
        if offset == 0:
            expected[1] += 1                    # new_registrations
            expected[2] += 1                    # dau
            expected[5] += 1                    # total_accesses
            expected[6] += 1                    # successful_accesses
        assert list(after[day]) == expected, day
    assert new_dt in after
    months_after = dict(query(settings.warehouse, "SELECT month, mau FROM marts.kpi_monthly WHERE city_code = ?", [city]))
    assert months_after[date(2026, 1, 1)] == months_before[date(2026, 1, 1)] + 1


def _landing_pii(landing) -> set[str]:
    values: set[str] = set()
    for f in landing.rglob("*"):
        if not f.is_file() or f.name == "_SUCCESS":
            continue
        try:
            data = f.read_bytes()
            text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8-sig")
        except Exception:
            continue
        if "service_access" in f.parts or "ratings" in f.parts:
            for line in text.splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                values.update(str(obj[k]) for k in ("client_ip", "comment") if isinstance(obj, dict) and obj.get(k))
        elif "registrations" in f.parts:
            lines = text.splitlines()
            header = lines[0].split(",") if lines else []
            for line in lines[1:]:
                row = dict(zip(header, line.split(",")))
                values.update(v for k, v in row.items() if k in ("phone", "id_number") and v)
    return values


def test_no_personal_value_delivered_appears_in_any_table(generated):
    pii = _landing_pii(generated.landing)
    assert len(pii) > 100
    long_values = [v for v in pii if len(v) >= 7]
    for db in (generated.warehouse, generated.published):
        con = duckdb.connect(str(db), read_only=True)
        cols = con.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns "
                           "WHERE data_type = 'VARCHAR' AND table_schema NOT IN ('information_schema', 'pg_catalog')"
                           ).fetchall()
        con.execute("CREATE TEMP TABLE pii AS SELECT unnest(?::VARCHAR[]) AS v", [sorted(pii)])
        con.execute("CREATE TEMP TABLE pii_long AS SELECT unnest(?::VARCHAR[]) AS v", [sorted(long_values)])
        for schema, table, column in cols:
            exact = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" t JOIN pii ON t."{column}" = pii.v'
                                ).fetchall()[0][0]
            assert exact == 0, f"{schema}.{table}.{column} holds delivered personal values"
        raws = [r for (r,) in con.execute("SELECT raw FROM audit.rejected_rows").fetchall()]
        con.close()
        for raw in raws:
            tokens = set(re.split(r'[,"\s:{}]+', raw))
            assert not tokens & pii, raw
            assert not any(v in raw for v in long_values), raw

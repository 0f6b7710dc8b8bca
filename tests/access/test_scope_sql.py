"""The one place the rule is enforced: every relation of a scoped connection holds only the
scope's cities, whatever the SQL asks; the data layer cannot be called without a scope."""
from __future__ import annotations

import datetime as dt

import pytest

from citycloud.access import Scope, scoped_connection
from citycloud.config import published_path

from citycloud.dashboards import data
from citycloud.dashboards import scorecard_data as sc

ONE = Scope("ops.changsha@example.org", "operator", ("430100",))
TWO = Scope("finance@example.org", "contract_manager", ("430100", "510100"))


def relations(con) -> dict[str, list[str]]:
    rows = con.execute("SELECT schema_name, table_name, list(column_name) FROM duckdb_columns() "
                       "WHERE database_name = current_database() GROUP BY ALL").fetchall()
    return {f"{s}.{t}": cols for s, t, cols in rows}


@pytest.mark.parametrize("scope", [ONE, TWO], ids=["one city", "two cities"])
def test_every_relation_holds_only_the_scopes_cities(five, scope):
    con = scoped_connection(published_path(five["warehouse"]), scope)
    try:
        rels = relations(con)
        with_city = [r for r, cols in rels.items() if "city_code" in cols]
        assert {"marts.kpi_daily", "marts.service_daily", "marts.settlement_statements", "audit.deliveries",
                "marts.scorecard_monthly"} <= set(with_city)
        for rel in with_city:
            cities = {c for (c,) in con.execute(f"SELECT DISTINCT city_code::VARCHAR FROM {rel}").fetchall()}
            assert cities <= set(scope.cities), rel
        # the folder path names the city: only the scope's folders
        paths = [p for (p,) in con.execute("SELECT path FROM audit.landing_issues").fetchall()]
        assert paths == ["430100/ratings/dt=2026-03-03"]
        # a build's free text could name any city: blanked; no table without a city is shown whole
        assert con.execute("SELECT count(*) FILTER (WHERE message IS NOT NULL) FROM audit.builds").fetchone() == (0,)
        ranked = con.execute("SELECT city_code, rank, ranked_cities FROM marts.scorecard_monthly ORDER BY rank").fetchall()
        assert ranked == [(c, r, 5) for c, r in (("510100", 2), ("430100", 3)) if c in scope.cities]
        # the snapshot itself is only reachable under its private name, read-only
        with pytest.raises(Exception, match="read-only|read only"):
            con.execute("CREATE TABLE _snapshot_unscoped.marts.x (a INT)")
    finally:
        con.close()


def test_every_city_scope_filters_nothing(five):
    every = Scope("office@example.org", "admin", ("430100",), every_city=True)
    con = scoped_connection(published_path(five["warehouse"]), every)
    try:
        assert con.execute("SELECT count(DISTINCT city_code) FROM marts.kpi_daily").fetchone() == (5,)
    finally:
        con.close()


def test_the_data_layer_needs_a_scope(five):
    with pytest.raises(TypeError):
        data.run_load(five["warehouse"], data.load_overview)
    with pytest.raises(TypeError):
        data.run_load(five["warehouse"], None, data.load_overview)
    # a loader asked for every city answers for the scope's only
    d = data.run_load(five["warehouse"], ONE, data.load_today, ("310000", "430100", "510100"), dt.date(2026, 3, 3))
    assert set(d["kpis"]["city_code"]) == {"430100"} and set(d["deliveries"]["city_code"]) == {"430100"}
    s = data.run_load(five["warehouse"], TWO, data.load_settlement, ("310000", "430100"))
    assert set(s["statements"]["city_code"]) == {"430100"}
    ranking = sc.ranking_table(data.run_load(five["warehouse"], TWO, sc.load_scorecard)["monthly"],
                               dt.date(2026, 2, 1), "EVAL-ALL")
    assert ranking.values.tolist()[0][:4] == ["2 of 5", "成都市（510100）", "85.5", "良好"]

"""marts.scorecard_indicators / scorecard_monthly / scorecard_refusals: one month replaced at once."""
from __future__ import annotations

from datetime import datetime

import duckdb

from citycloud.scorecard import catalog
from citycloud.scorecard.evaluate import CityResult
from citycloud.scorecard.measures import month_start

_DIMENSIONS = ", ".join(f"{d} DECIMAL(4, 1)" for d in catalog.dimensions())
DDL = (
    """CREATE TABLE IF NOT EXISTS marts.scorecard_indicators (
        city_code VARCHAR, month DATE, scheme_id VARCHAR, indicator VARCHAR, dimension VARCHAR,
        value DOUBLE, target DOUBLE, weight DOUBLE, score DECIMAL(4, 1), no_data BOOLEAN,
        evaluator VARCHAR, assessed_on DATE, evidence VARCHAR, scored_at TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS marts.scorecard_monthly (
        city_code VARCHAR, month DATE, scheme_id VARCHAR, total_score DECIMAL(4, 1), grade VARCHAR,
        {_DIMENSIONS}, rank INTEGER, scored_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS marts.scorecard_refusals (
        city_code VARCHAR, month DATE, scheme_id VARCHAR, reason VARCHAR, scored_at TIMESTAMP)""",
)
TABLES = ("scorecard_indicators", "scorecard_monthly", "scorecard_refusals")


def replace_month(con: duckdb.DuckDBPyConnection, month: str, results: list[CityResult],
                  refused: list[tuple[str, str, str]], scored_at: datetime) -> None:
    """Delete the month's rows of every scheme and write these, in one transaction; ranks by SQL rank()."""
    start = month_start(month)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for ddl in DDL:
        con.execute(ddl)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in TABLES:
            con.execute(f"DELETE FROM marts.{table} WHERE month = ?", [start])
        ind_rows = [
            (r.city_code, start, r.scheme_id, i.indicator, i.dimension, i.value, float(i.target), float(i.weight),
             i.score, i.no_data, i.assessment.evaluator if i.assessment else None,
             i.assessment.date if i.assessment else None, i.assessment.evidence if i.assessment else None, scored_at)
            for r in results for i in r.indicators]
        if ind_rows:
            con.executemany("INSERT INTO marts.scorecard_indicators VALUES (" + ", ".join("?" * 14) + ")", ind_rows)
        dims = list(catalog.dimensions())
        con.execute(f"CREATE TEMP TABLE scorecard_new AS SELECT * EXCLUDE (rank) FROM marts.scorecard_monthly LIMIT 0")
        try:
            if results:
                con.executemany(
                    f"INSERT INTO scorecard_new VALUES ({', '.join('?' * (6 + len(dims)))})",
                    [(r.city_code, start, r.scheme_id, r.total, r.grade, *(r.dimensions[d] for d in dims), scored_at)
                     for r in results])
            con.execute(
                f"""INSERT INTO marts.scorecard_monthly
                    SELECT city_code, month, scheme_id, total_score, grade, {', '.join(dims)},
                           rank() OVER (PARTITION BY scheme_id, month ORDER BY total_score DESC), scored_at
                    FROM scorecard_new""")
        finally:
            con.execute("DROP TABLE scorecard_new")
        if refused:
            con.executemany("INSERT INTO marts.scorecard_refusals VALUES (?, ?, ?, ?, ?)",
                            [(city, start, scheme_id, reason, scored_at) for scheme_id, city, reason in refused])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def ranks(con: duckdb.DuckDBPyConnection, month: str) -> dict[tuple[str, str], int]:
    """(scheme_id, city_code) -> rank, as stored."""
    rows = con.execute("SELECT scheme_id, city_code, rank FROM marts.scorecard_monthly WHERE month = ?",
                       [month_start(month)]).fetchall()
    return {(s, c): r for s, c, r in rows}

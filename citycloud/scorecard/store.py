"""marts.scorecard_indicators / scorecard_monthly / scorecard_refusals: one month replaced at once."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

import duckdb

from citycloud.scorecard import catalog
from citycloud.scorecard.evaluate import CityResult
from citycloud.scorecard.measures import month_start

_DIMENSIONS = ", ".join(f"{d} DECIMAL(4, 1)" for d in catalog.dimensions())
COLUMNS = {
    "scorecard_indicators": """city_code VARCHAR, month DATE, scheme_id VARCHAR, indicator VARCHAR, dimension VARCHAR,
        value DOUBLE, target DOUBLE, weight DOUBLE, score DECIMAL(4, 1), no_data BOOLEAN,
        evaluator VARCHAR, assessed_on DATE, evidence VARCHAR, scored_at TIMESTAMP""",
    "scorecard_monthly": f"""city_code VARCHAR, month DATE, scheme_id VARCHAR, total_score DECIMAL(4, 1), grade VARCHAR,
        {_DIMENSIONS}, rank INTEGER, scored_at TIMESTAMP""",
    "scorecard_refusals": "city_code VARCHAR, month DATE, scheme_id VARCHAR, reason VARCHAR, scored_at TIMESTAMP",
}


def replace_month(con: duckdb.DuckDBPyConnection, month: str, results: list[CityResult],
                  refused: list[tuple[str, str, str]], scored_at: datetime,
                  before_commit: Callable[[dict[tuple[str, str], int]], None] | None = None) -> bool:
    """Replace the month's rows of every scheme with these, in one transaction; ranks by SQL rank().

    `before_commit` gets the new ranks ((scheme_id, city_code) -> rank) before anything is
    written: what fails there (the reports) leaves the tables as they were.
    When the new rows equal the stored ones (scored_at aside) nothing is written, so scoring a
    month again leaves the tables exactly as they were. Returns whether anything was written."""
    start = month_start(month)
    dims = list(catalog.dimensions())
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for table, columns in COLUMNS.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS marts.{table} ({columns})")
        con.execute(f"CREATE OR REPLACE TEMP TABLE new_{table} ({columns})")
    try:
        ind_rows = [
            (r.city_code, start, r.scheme_id, i.indicator, i.dimension, i.value, float(i.target), float(i.weight),
             i.score, i.no_data, i.assessment.evaluator if i.assessment else None,
             i.assessment.date if i.assessment else None, i.assessment.evidence if i.assessment else None, scored_at)
            for r in results for i in r.indicators]
        if ind_rows:
            con.executemany(f"INSERT INTO new_scorecard_indicators VALUES ({', '.join('?' * 14)})", ind_rows)
        if results:
            con.executemany(
                f"INSERT INTO new_scorecard_monthly VALUES ({', '.join('?' * (7 + len(dims)))})",
                [(r.city_code, start, r.scheme_id, r.total, r.grade, *(r.dimensions[d] for d in dims), None, scored_at)
                 for r in results])
            con.execute("""UPDATE new_scorecard_monthly n SET rank = r.rank
                           FROM (SELECT scheme_id, city_code,
                                        rank() OVER (PARTITION BY scheme_id, month ORDER BY total_score DESC) AS rank
                                 FROM new_scorecard_monthly) r
                           WHERE r.scheme_id = n.scheme_id AND r.city_code = n.city_code""")
        if refused:
            con.executemany("INSERT INTO new_scorecard_refusals VALUES (?, ?, ?, ?, ?)",
                            [(city, start, scheme_id, reason, scored_at) for scheme_id, city, reason in refused])
        if before_commit is not None:
            before_commit({(s, c): r for s, c, r in con.execute(
                "SELECT scheme_id, city_code, rank FROM new_scorecard_monthly").fetchall()})
        if all(_same(con, table, start) for table in COLUMNS):
            return False
        con.execute("BEGIN TRANSACTION")
        try:
            for table in COLUMNS:
                con.execute(f"DELETE FROM marts.{table} WHERE month = ?", [start])
                con.execute(f"INSERT INTO marts.{table} SELECT * FROM new_{table}")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return True
    finally:
        for table in COLUMNS:
            con.execute(f"DROP TABLE IF EXISTS new_{table}")


def _same(con: duckdb.DuckDBPyConnection, table: str, start) -> bool:
    """The new rows of `table` equal the stored rows of that month, scored_at aside."""
    old = f"(SELECT * EXCLUDE (scored_at) FROM marts.{table} WHERE month = $1)"
    new = f"(SELECT * EXCLUDE (scored_at) FROM new_{table})"
    (differ,) = con.execute(f"SELECT (SELECT count(*) FROM ({old} EXCEPT ALL {new})) "
                            f"+ (SELECT count(*) FROM ({new} EXCEPT ALL {old}))", [start]).fetchone()
    return differ == 0


def ranks(con: duckdb.DuckDBPyConnection, month: str) -> dict[tuple[str, str], int]:
    """(scheme_id, city_code) -> rank, as stored."""
    rows = con.execute("SELECT scheme_id, city_code, rank FROM marts.scorecard_monthly WHERE month = ?",
                       [month_start(month)]).fetchall()
    return {(s, c): r for s, c, r in rows}

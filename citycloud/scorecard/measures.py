"""Reading the indicator values from the warehouse: SQL over the published marts only.

The measured values are computed in dbt (marts.scorecard_measures); reliability, which needs
the scheme's day_threshold, is counted here from marts.kpi_daily, exactly (in DECIMAL: a day
reaches the threshold when successful_accesses >= threshold × total_accesses).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import duckdb

from citycloud import publish
from citycloud.scorecard import catalog

# Computed at scoring time (threshold from the scheme); every other measured indicator is a
# column of marts.scorecard_measures.
THRESHOLD_INDICATOR = "reliability"


@dataclass(frozen=True)
class Coverage:
    days_covered: int
    days_in_month: int

    @property
    def covered(self) -> bool:
        return self.days_covered == self.days_in_month


def month_start(month: str) -> date:
    return date.fromisoformat(month + "-01")


def coverage(con: duckdb.DuckDBPyConnection, months: list[str]) -> dict[tuple[str, str], Coverage]:
    """(city_code, YYYY-MM) -> days with a kpi_daily row vs days of the month."""
    rows = con.execute(
        "SELECT city_code, strftime(month, '%Y-%m'), days_covered, days_in_month FROM marts.scorecard_measures "
        "WHERE month IN (SELECT unnest(?::DATE[]))", [[month_start(m) for m in months]]).fetchall()
    return {(c, m): Coverage(d, n) for c, m, d, n in rows}


def measured_values(con: duckdb.DuckDBPyConnection, months: list[str],
                    day_threshold: Decimal | None) -> dict[tuple[str, str, str], float | None]:
    """(city_code, YYYY-MM, indicator) -> value, for every measured indicator of the catalogue."""
    columns = [name for name, i in catalog.indicators().items()
               if i.kind == "measured" and name != THRESHOLD_INDICATOR]
    starts = [month_start(m) for m in months]
    out: dict[tuple[str, str, str], float | None] = {}
    rows = con.execute(
        f"SELECT city_code, strftime(month, '%Y-%m'), {', '.join(columns)} FROM marts.scorecard_measures "
        "WHERE month IN (SELECT unnest(?::DATE[]))", [starts]).fetchall()
    for city, month, *values in rows:
        out.update({(city, month, name): value for name, value in zip(columns, values)})
    if day_threshold is not None:
        rows = con.execute(
            """SELECT city_code, strftime(date_trunc('month', kpi_date), '%Y-%m'),
                      count(*) FILTER (WHERE total_accesses > 0
                                       AND successful_accesses >= CAST(? AS DECIMAL(38, 18)) * total_accesses)
                      / nullif(count(*) FILTER (WHERE total_accesses > 0), 0)
               FROM marts.kpi_daily
               WHERE date_trunc('month', kpi_date) IN (SELECT unnest(?::DATE[]))
               GROUP BY ALL""", [str(day_threshold), starts]).fetchall()
        out.update({(city, month, THRESHOLD_INDICATOR): value for city, month, value in rows})
    return out


def known_cities(con: duckdb.DuckDBPyConnection) -> set[str]:
    return set(publish.known_cities(con))


def city_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT city_code, city_name FROM marts.city_reference").fetchall())


def cities_with_data(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT city_code FROM marts.kpi_daily ORDER BY 1").fetchall()]

"""What a person may see, enforced in one place: the connection every read goes through.

`scoped_connection(snapshot, scope)` opens the published snapshot read-only under a private
name and exposes each of its tables as a view of the same name (`marts.kpi_daily`, ...) that
keeps only the scope's cities, in SQL. The dashboard's loaders and the API's queries receive
this connection and nothing else, so a page or endpoint that "forgets" the scope still sees only
its cities. A table that holds city data but no `city_code` column is not shown to a person
entitled to fewer than every city (unless listed in CITY_COLUMN with how to find its city).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from citycloud.publish import attach_snapshot

ROLES = ("operator", "contract_manager", "supervisor", "admin")
# The dashboard's pages by name (dashboards/app.py gives each its title and file).
OPERATIONS_PAGES = ("today", "trends", "services", "users", "alerts", "reviews")
PAGES = (*OPERATIONS_PAGES, "settlement", "scorecard", "access_log")
ROLE_PAGES = {
    "operator": frozenset(OPERATIONS_PAGES),
    "contract_manager": frozenset({"today", "trends", "settlement", "scorecard"}),
    "supervisor": frozenset(p for p in PAGES if p != "access_log"),
    "admin": frozenset(PAGES),
}
UNSCOPED = "_snapshot_unscoped"  # the attached snapshot's name: only views read it
# Tables with a city but no city_code column: the SQL expression that gives their city.
CITY_COLUMN = {
    "audit.landing_issues": r"regexp_extract(path::VARCHAR, '(?:^|/)([^/]+)/[^/]+/dt=[0-9-]+/?$', 1)",
}
# Tables without any city's figures, shown to everyone.
CITY_FREE = {"marts.metricflow_time_spine", "marts.holiday_calendar", "main.holiday_calendar"}
# Shown to everyone with columns that could speak of another city blanked.
REDACTED = {"audit.builds": {"message"}}
# Columns added to a table before its rows are filtered: what may be said of the whole
# without naming another city ("rank k of N").
WHOLE = {"marts.scorecard_monthly": "count(*) OVER (PARTITION BY month, scheme_id) AS ranked_cities"}


class NoAccess(Exception):
    """A person asked for a page or a city outside its scope (the message names no other city)."""


@dataclass(frozen=True)
class Scope:
    """A person's role and cities; `every_city` when entitled to all of them (admin with
    `cities: all`, local mode): then nothing is filtered."""

    subject: str | None
    role: str | None
    cities: tuple[str, ...]
    every_city: bool = False

    @classmethod
    def local(cls, cities: tuple[str, ...]) -> "Scope":
        """Local mode (no --access): loopback only, every city, every page."""
        return cls(subject=None, role=None, cities=tuple(cities), every_city=True)

    @property
    def pages(self) -> frozenset[str]:
        return ROLE_PAGES["admin"] if self.role is None else ROLE_PAGES[self.role]

    def may_open(self, page: str) -> bool:
        return page in self.pages

    def allows(self, city: str | None) -> bool:
        return self.every_city or str(city) in self.cities

    def check_city(self, city: str) -> None:
        if not self.allows(city):
            raise NoAccess("no access to this city")

    def entitled_to(self, cities) -> bool:
        """True when the person may see every city of `cities` (a total over them, a ranking)."""
        return self.every_city or set(map(str, cities)) <= set(self.cities)


def _literal(codes: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + str(c).replace("'", "''") + "'" for c in codes) + "]::VARCHAR[]"


def view_sql(table: str, columns: list[str], scope: Scope) -> str | None:
    """The SELECT behind the view of `table` for `scope`, or None: not shown to this scope."""
    schema, name = table.split(".", 1)
    source = f'{UNSCOPED}."{schema}"."{name}"'
    if scope.every_city:
        return f"SELECT * FROM {source}"
    whole = WHOLE.get(table)
    if whole:
        source = f"(SELECT *, {whole} FROM {source})"
    city = "city_code" if "city_code" in columns else CITY_COLUMN.get(table)
    if city is not None:
        return f"SELECT * FROM {source} WHERE CAST({city} AS VARCHAR) IN (SELECT unnest({_literal(scope.cities)}))"
    if table in CITY_FREE:
        return f"SELECT * FROM {source}"
    if table in REDACTED:
        blank = REDACTED[table]
        return "SELECT " + ", ".join(f'NULL::VARCHAR AS "{c}"' if c in blank else f'"{c}"' for c in columns) + \
            f" FROM {source}"
    return None


def scoped_connection(snapshot: Path | str, scope: Scope, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose schemas mirror the snapshot's, each table a view
    filtered to `scope`'s cities. The snapshot is attached read-only (never locks a run out)."""
    if scope is None or not isinstance(scope, Scope):
        raise TypeError("scoped_connection needs a Scope")
    con = attach_snapshot(snapshot, UNSCOPED)
    try:
        con.execute(f"SET threads = {int(threads)}")
        rows = con.execute(
            "SELECT schema_name, table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
            f"WHERE database_name = '{UNSCOPED}' GROUP BY ALL").fetchall()
        statements = []
        for schema in sorted({r[0] for r in rows} - {"main"}):
            statements.append(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for schema, name, columns in rows:
            select = view_sql(f"{schema}.{name}", list(columns), scope)
            if select is not None:
                statements.append(f'CREATE VIEW "{schema}"."{name}" AS {select}')
        if statements:
            con.execute(";\n".join(statements))
    except Exception:
        con.close()
        raise
    return con

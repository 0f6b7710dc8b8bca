"""The 好差评 figures of a month as the report (`citycloud reviews`) and the dashboard's reviews
page read them: marts.review_monthly, review_tags_monthly, review_channel_monthly and
review_items (reviews.md; docs/reviews_report.md), from any connection to a published snapshot
(a scoped one on the dashboard). Nothing is recomputed: counts and rates are the marts'.

How these figures are named for a reader: the marts' column labels come from their YAML
(`config.meta`, read by `registry.mart_column_labels`, the one home), with the defaults below
for columns a mart's YAML does not label (and the derived `share` and `overdue`); the names of
`unassigned`, `untagged` and `unknown` live here.
No personal data is read: review_items has none, and only its ticket ids and days are shown.
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Sequence

import duckdb
import pandas as pd

from citycloud import registry
from citycloud.channels import channel_label
from citycloud.config import CitycloudError

MONTHLY = "marts.review_monthly"
TAGS = "marts.review_tags_monthly"
CHANNELS = "marts.review_channel_monthly"
ITEMS = "marts.review_items"
TABLES = (MONTHLY, TAGS, CHANNELS, ITEMS)

# score -> (Chinese, English) of reviews.md's five grades, best first
GRADES = {5: ("非常满意", "very satisfied"), 4: ("满意", "satisfied"), 3: ("基本满意", "basically satisfied"),
          2: ("不满意", "dissatisfied"), 1: ("非常不满意", "very dissatisfied")}
GRADE_COLUMNS = tuple(f"grade_{g}" for g in GRADES)
UNASSIGNED, UNTAGGED, UNKNOWN_CHANNEL = "unassigned", "untagged", "unknown"
NO_TICKET = "无工单 no ticket"


@dataclass(frozen=True)
class Label:
    label: str
    label_en: str
    format: str | None = None  # "percent": a share 0..1 shown as 87.5%


# The report's own columns (not columns of a mart); every mart column's label lives in its YAML.
COLUMN_LABELS = {
    "share": Label("占比", "Share", "percent"),
    "overdue": Label("逾期条数", "Overdue"),
}


@functools.lru_cache(maxsize=1)
def column_labels() -> dict[str, Label]:
    """Column -> label, from the review marts' YAML (`config.meta`, one home; the monthly mart's
    own labels win), plus the report's own columns; read once per process (a changed YAML takes
    a new build and a restart anyway)."""
    labels = dict(COLUMN_LABELS)
    for mart in (ITEMS, CHANNELS, TAGS, MONTHLY):
        found = registry.mart_column_labels(mart.split(".", 1)[1])
        labels.update({column: Label(x.label, x.label_en, x.format) for column, x in found.items()})
    return labels


@functools.lru_cache(maxsize=1)
def department_columns() -> tuple[str, ...]:
    """review_monthly's columns a department row fills, in the YAML's order: the department and
    `bad_reviews` … `replied` (the ratings and grades before them are the city's only)."""
    columns = list(registry.mart_column_labels(MONTHLY.split(".", 1)[1]))
    return ("department", *columns[columns.index("bad_reviews"):columns.index("replied") + 1])



def department_name(department: str) -> str:
    return "未分派（无工单） unassigned" if department == UNASSIGNED else department


def category_name(category: str) -> str:
    return "未分类 untagged" if category == UNTAGGED else category


def channel_name(channel: str) -> str:
    """channels.py's name; `unknown` (a rating with no matching access) said so."""
    return "未知渠道 unknown" if channel == UNKNOWN_CHANNEL else channel_label(channel)


def zh(column: str) -> str:
    """A column's Chinese label (the dashboard's table headers)."""
    return column_labels()[column].label


def both(column: str) -> str:
    """A column's label in Chinese and English."""
    label = column_labels()[column]
    return f"{label.label} {label.label_en}"


def rate_text(value) -> str:
    """A rate as a reader reads it: 0.875 -> 87.5%; none (nothing to divide) -> —."""
    if value is None or pd.isna(value):
        return "—"
    return f"{float(value) * 100:.1f}%"


def missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    present = {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = current_database()").fetchall()}
    return [t for t in TABLES if t not in present]


def months(con: duckdb.DuckDBPyConnection, cities: Sequence[str]) -> list[dt.date]:
    """The months with figures for any of `cities`, newest first."""
    rows = con.execute(f"SELECT DISTINCT month FROM {MONTHLY} WHERE department = 'all' AND city_code IN "
                       f"(SELECT unnest(?::VARCHAR[])) ORDER BY month DESC", [list(cities)]).fetchall()
    return [pd.Timestamp(m).date() for (m,) in rows]


@dataclass
class MonthFigures:
    """One month of the cities asked for, each frame with a city_code column."""

    month: dt.date
    overview: pd.DataFrame     # review_monthly's `all` rows
    departments: pd.DataFrame  # review_monthly's department rows, most bad reviews first (unassigned last of equals)
    tags: pd.DataFrame         # review_tags_monthly, most first (untagged last of equals)
    channels: pd.DataFrame     # review_channel_monthly, most ratings first
    overdue: pd.DataFrame      # review_items with outcome overdue_open: department, ticket id, days

    def overdue_without_ticket(self) -> pd.DataFrame:
        """Overdue bad reviews that have no ticket, counted per city and department."""
        rows = self.overdue[self.overdue["ticket_id"].isna()]
        return rows.groupby(["city_code", "department"], as_index=False).size().rename(columns={"size": "overdue"})


def _frame(con: duckdb.DuckDBPyConnection, sql: str, cities: Sequence[str], month: dt.date) -> pd.DataFrame:
    return con.execute(sql, [list(cities), month]).df()


def load_month(con: duckdb.DuckDBPyConnection, cities: Sequence[str], month: dt.date) -> MonthFigures:
    where = "city_code IN (SELECT unnest(?::VARCHAR[])) AND month = ?"
    overview = _frame(con, f"SELECT * FROM {MONTHLY} WHERE {where} AND department = 'all' ORDER BY city_code",
                      cities, month)
    departments = _frame(con, f"SELECT city_code, {', '.join(department_columns())} FROM {MONTHLY} WHERE {where} "
                              "AND department <> 'all' ORDER BY city_code, bad_reviews DESC, department = 'unassigned', department",
                         cities, month)
    tags = _frame(con, f"SELECT city_code, category, bad_reviews FROM {TAGS} WHERE {where} "
                       "ORDER BY city_code, bad_reviews DESC, category = 'untagged', category", cities, month)
    channels = _frame(con, f"SELECT city_code, channel, ratings, {', '.join(GRADE_COLUMNS)}, bad_reviews "
                           f"FROM {CHANNELS} WHERE {where} ORDER BY city_code, ratings DESC, channel",
                      cities, month)
    overdue = _frame(con, f"SELECT city_code, department, ticket_id, rating_day, due_day, status FROM {ITEMS} "
                          f"WHERE {where} AND outcome = 'overdue_open' "
                          "ORDER BY city_code, department = 'unassigned', department, due_day, ticket_id NULLS LAST", cities, month)
    for frame, column in ((overdue, "rating_day"), (overdue, "due_day"), (overview, "as_of_day")):
        frame[column] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in frame[column]]
    return MonthFigures(month, overview, departments, tags, channels, overdue)

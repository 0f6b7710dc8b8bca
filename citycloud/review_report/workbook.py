"""The XLSX of the monthly 好差评 report: one sheet per table of the PDF, titled and headed like
the user-operations workbook (Chinese and English header, the mart's column name below it),
rates as percentages, 是/否 for settled; the same bytes for the same figures."""
from __future__ import annotations

import datetime as dt

import pandas as pd
from openpyxl import Workbook

from citycloud import outputs, registry
from citycloud import review_figures as rf
from citycloud.user_ops_export import write_sheet



def summary_columns() -> list[str]:
    """The city's row of review_monthly as its YAML orders it, from `ratings` to `as_of_day`."""
    columns = list(registry.mart_column_labels(rf.MONTHLY.split(".", 1)[1]))
    return columns[columns.index("ratings"):]


def _named(df: pd.DataFrame) -> pd.DataFrame:
    """Delivered codes as a reader names them (departments, tags, channels)."""
    out = df.drop(columns=["city_code"], errors="ignore").copy()
    for column, name in (("department", rf.department_name), ("category", rf.category_name),
                         ("channel", rf.channel_name)):
        if column in out:
            out[column] = out[column].map(name)
    return out


def overdue_rows(figures: rf.MonthFigures) -> pd.DataFrame:
    """One row per overdue ticket; the overdue bad reviews without a ticket, one row per
    department with their count (they have no id to list)."""
    tickets = figures.overdue[figures.overdue["ticket_id"].notna()].assign(overdue=1)
    missing = figures.overdue_without_ticket().assign(ticket_id=rf.NO_TICKET)
    rows = pd.concat([tickets, missing], ignore_index=True) if not missing.empty else tickets
    columns = ["department", "ticket_id", "rating_day", "due_day", "status", "overdue"]
    return _named(rows.reindex(columns=columns)).astype({"overdue": "int64"})


def tag_rows(figures: rf.MonthFigures) -> pd.DataFrame:
    tags = figures.tags.copy()
    total = tags["bad_reviews"].sum()
    tags["share"] = tags["bad_reviews"] / total if total else None
    return _named(tags)


def channel_rows(figures: rf.MonthFigures) -> pd.DataFrame:
    """The channels and their total (the month's counted ratings, from the `all` row)."""
    channels = _named(figures.channels)
    whole = figures.overview.iloc[0]
    total = {"channel": "合计 Total", **{c: whole[c] for c in channels.columns if c != "channel"}}
    return pd.concat([channels, pd.DataFrame([total])], ignore_index=True)


def workbook_bytes(figures: rf.MonthFigures, title: str) -> bytes:
    book = Workbook()
    book.remove(book.active)
    summary = figures.overview.reindex(columns=summary_columns())
    sheets = [
        ("概览 Summary", "本月全市合计 The city's month · marts.review_monthly (department all)", summary),
        ("渠道 Channels", "各渠道评价等级分布 Grades by channel · marts.review_channel_monthly", channel_rows(figures)),
        ("标签 Tags", "差评标签 Bad reviews by tag · marts.review_tags_monthly", tag_rows(figures)),
        ("部门 Departments", "各部门差评与整改 Bad reviews by department · marts.review_monthly",
         _named(figures.departments)),
        ("逾期 Overdue", "逾期未整改差评（仅工单号） Overdue bad reviews, ticket ids only · marts.review_items",
         overdue_rows(figures)),
    ]
    labels = rf.column_labels()
    for name, subtitle, frame in sheets:
        write_sheet(book.create_sheet(name), title, subtitle, frame, labels)
    stamp = dt.datetime.combine(_as_of(figures) or figures.month, dt.time())  # the figures' day, not the clock
    return outputs.workbook_bytes(book, stamp, creator="citycloud reviews")


def _as_of(figures: rf.MonthFigures) -> dt.date | None:
    value = figures.overview["as_of_day"].iloc[0]
    return None if value is None or pd.isna(value) else value

"""Data of the reviews page (好差评): the month's loop per city, top tags, departments and the
overdue list, from the review marts through `citycloud.review_figures` (the same reads and names
as `citycloud reviews`), on the scoped snapshot like every other page (no Streamlit import).
Nothing is recomputed but the sum of tags over several cities."""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import pandas as pd

from citycloud import review_figures as rf

from citycloud.dashboards import fmt
from citycloud.dashboards.data import Snapshot


def parse_month(text: str | None) -> dt.date | None:
    """?month=2026-02 -> 2026-02-01; anything else -> None (the latest month)."""
    try:
        return dt.date.fromisoformat(f"{text}-01") if text else None
    except ValueError:
        return None


def load_reviews(snap: Snapshot, cities: Sequence[str], month: dt.date | None = None) -> dict:
    """Months with figures for `cities` (newest first) and the figures of `month` (default, or
    when it has none: the latest). `missing` names the review marts the snapshot lacks."""
    out: dict = {"missing": rf.missing_tables(snap.con), "months": [], "month": None, "figures": None}
    if out["missing"]:
        return out
    months = rf.months(snap.con, cities)
    if not months:
        return out
    chosen = month if month in months else months[0]
    out.update(months=months, month=chosen, figures=rf.load_month(snap.con, cities, chosen))
    return out


def _city(df: pd.DataFrame, several: bool) -> dict:
    return {"城市": df["city_code"].map(fmt.city_label)} if several else {}


def loop_table(figures: rf.MonthFigures) -> pd.DataFrame:
    """One row per city: the month's loop at a glance."""
    o = figures.overview
    return pd.DataFrame({
        "城市": o["city_code"].map(fmt.city_label),
        **{rf.zh(c): o[c].map(fmt.fmt_int) for c in ("ratings", "bad_reviews")},
        **{rf.zh(c): o[c].map(rf.rate_text) for c in ("on_time_rate", "callback_rate")},
        **{rf.zh(c): o[c].map(fmt.fmt_int) for c in ("unfounded", "overdue_open")},
        rf.zh("settled"): o["settled"].map(lambda s: "是 settled" if s else "否 may still change"),
        rf.zh("as_of_day"): o["as_of_day"].map(lambda d: fmt.fmt_date(d) if d is not None else "无工单交付 none"),
    })


def top_tags(figures: rf.MonthFigures) -> pd.DataFrame:
    """Bad reviews per tag, summed over the cities shown, most first (untagged last of equals)."""
    tags = figures.tags.groupby("category", as_index=False)["bad_reviews"].sum()
    tags["last"] = tags["category"] == rf.UNTAGGED
    tags = tags.sort_values(["bad_reviews", "last", "category"], ascending=[False, True, True])
    return pd.DataFrame({rf.zh("category"): tags["category"].map(rf.category_name),
                         rf.zh("bad_reviews"): tags["bad_reviews"].astype(int)})


def department_table(figures: rf.MonthFigures, several: bool) -> pd.DataFrame:
    d = figures.departments
    shown = {"department": rf.department_name}
    return pd.DataFrame({
        **_city(d, several),
        **{rf.zh(c): d[c].map(shown.get(c) or (rf.rate_text if c.endswith("_rate") else fmt.fmt_int))
           for c in rf.department_columns()},
    })


def overdue_table(figures: rf.MonthFigures, several: bool) -> pd.DataFrame:
    """The overdue bad reviews: ticket id, department, due day (no ticket: said so)."""
    o = figures.overdue
    return pd.DataFrame({
        **_city(o, several),
        rf.zh("ticket_id"): o["ticket_id"].map(lambda t: rf.NO_TICKET if t is None or pd.isna(t) else t),
        rf.zh("department"): o["department"].map(rf.department_name),
        rf.zh("due_day"): o["due_day"].map(fmt.fmt_date),
        rf.zh("rating_day"): o["rating_day"].map(fmt.fmt_date),
    })

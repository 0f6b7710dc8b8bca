"""Data of the Users page's journeys (user_ops.md, "Funnels" and `marts.service_paths`): each
funnel's steps per entry channel, its conversion by period, and the services users open next.

Several cities are added up as the rest of the page does (a user of two cities is two users);
conversions are recomputed from the summed counts, never averaged, and a median time between
steps is shown only for one city (medians do not add up). No Streamlit import.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

import pandas as pd

from citycloud.channels import channel_label
from citycloud.config import Settings
from citycloud.dashboards.data import Snapshot
from citycloud.funnels import load_funnels

START, END = "(start)", "(end)"
TOP_NEXT = 10  # the next services shown after a chosen one
FUNNEL_COLUMNS = ("city_code", "funnel", "grain", "period_start", "channel", "step", "step_label", "users",
                  "median_seconds_from_previous", "window_complete")
PATH_COLUMNS = ("city_code", "month", "from_service_id", "to_service_id", "steps", "users")


def funnel_labels(path: Path | str | None = None) -> dict[str, str]:
    """Funnel name -> its `label` in the funnels.yml the build read (CITYCLOUD_FUNNELS, the
    file's one home); a funnel without one, or without the file, is shown by its name."""
    path = path or Settings().funnels
    if not path or not Path(path).is_file():
        return {}
    return {f.name: f.label for f in load_funnels(path) if f.label}


def channel_name(code: str) -> str:
    return "全部渠道" if code == "all" else channel_label(code)


def _in(values: Sequence) -> str:
    return ", ".join("?" for _ in values) or "NULL"


def load_journeys(snap: Snapshot, cities: Sequence[str], day: dt.date) -> dict:
    """Funnel rows (periods starting on or before `day`), service paths (months up to `day`) and
    the services' names, summed over `cities`."""
    cities = list(cities)
    out: dict = {"missing": [], "funnels": None, "paths": None, "names": {}}
    where = f"city_code IN ({_in(cities)})"
    if snap.has("marts.funnel_conversion", *FUNNEL_COLUMNS):
        median = "any_value(median_seconds_from_previous)" if len(cities) == 1 else "NULL::DOUBLE"
        out["funnels"] = with_conversions(snap.df(f"""
            SELECT funnel, grain, period_start, channel, step, any_value(step_label) AS step_label,
                   sum(users)::BIGINT AS users, {median} AS median_seconds, bool_and(window_complete) AS window_complete
            FROM marts.funnel_conversion WHERE {where} AND period_start <= ?
            GROUP BY ALL ORDER BY funnel, grain, period_start, channel, step""", [*cities, day]))
    else:
        out["missing"].append("marts.funnel_conversion")
    if snap.has("marts.service_paths", *PATH_COLUMNS):
        out["paths"] = snap.df(f"""
            SELECT month, from_service_id::VARCHAR AS from_service_id, to_service_id::VARCHAR AS to_service_id,
                   sum(steps)::BIGINT AS steps, sum(users)::BIGINT AS users
            FROM marts.service_paths WHERE {where} AND month <= ?
            GROUP BY ALL ORDER BY month, from_service_id, steps DESC""", [*cities, day])
    else:
        out["missing"].append("marts.service_paths")
    if snap.has("marts.service_daily", "city_code", "kpi_date", "service_id", "service_name"):
        # the catalogue's latest name of each service (as the Services page names them)
        out["names"] = dict(snap.con.execute(f"""
            SELECT service_id::VARCHAR, arg_max(service_name, kpi_date) FROM marts.service_daily
            WHERE {where} AND service_name IS NOT NULL GROUP BY 1""", cities).fetchall())
    return out


def with_conversions(df: pd.DataFrame) -> pd.DataFrame:
    """Add conversion_from_start and conversion_from_previous, recomputed from the summed users
    (null where the step they divide by has none)."""
    keys = ["funnel", "grain", "period_start", "channel"]
    df = df.sort_values([*keys, "step"]).reset_index(drop=True)
    first = df.groupby(keys)["users"].transform("first").astype("float64")
    previous = df.groupby(keys)["users"].shift(1).astype("float64")
    previous = previous.where(df["step"] > 1, df["users"].astype("float64"))
    users = df["users"].astype("float64")
    df["conversion_from_start"] = (users / first).where(first > 0)
    df["conversion_from_previous"] = (users / previous).where(previous > 0)
    return df


def trend(funnels: pd.DataFrame, funnel: str, grain: str) -> pd.DataFrame:
    """Per period and channel: entries (step 1), completions (the last step) and their ratio."""
    rows = funnels[(funnels["funnel"] == funnel) & (funnels["grain"] == grain)]
    if rows.empty:
        return rows.assign(entries=[], completed=[], conversion=[])
    last = rows["step"].max()
    keys = ["period_start", "channel"]
    entries = rows[rows["step"] == 1].set_index(keys)["users"]
    done = rows[rows["step"] == last].set_index(keys)
    out = pd.DataFrame({"entries": entries, "completed": done["users"],
                        "window_complete": done["window_complete"]}).reset_index()
    out["conversion"] = (out["completed"] / out["entries"]).where(out["entries"] > 0)
    return out.sort_values(keys).reset_index(drop=True)


def next_services(paths: pd.DataFrame, month, service: str, names: dict[str, str]) -> pd.DataFrame:
    """The services opened right after `service` in `month` (and how many days ended there), by
    steps, with their share of the steps out of it."""
    rows = paths[(paths["month"] == month) & (paths["from_service_id"] == service)]
    rows = rows.sort_values(["steps", "to_service_id"], ascending=[False, True]).head(TOP_NEXT)
    total = paths[(paths["month"] == month) & (paths["from_service_id"] == service)]["steps"].sum()
    return pd.DataFrame({"to_service_id": rows["to_service_id"],
                         "name": rows["to_service_id"].map(lambda s: service_name(s, names)),
                         "steps": rows["steps"], "users": rows["users"],
                         "share": rows["steps"] / total if total else None}).reset_index(drop=True)


def service_name(service: str, names: dict[str, str]) -> str:
    """"名称（ID）", or what (start) / (end) mean."""
    if service == START:
        return "（当天第一次办事）"
    if service == END:
        return "（当天不再办事）"
    name = names.get(service)
    return f"{name}（{service}）" if name else service

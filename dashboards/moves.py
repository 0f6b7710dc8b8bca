"""Why a KPI moved: only evidence that can carry the movement, or nothing (no Streamlit here).

`data.movers` finds the KPIs of a day that moved against the day before or the same weekday a
week before. `explain` names, for one such movement, what in the snapshot can account for it:

- the weekday pattern: a move against the day before that brings the KPI back to where the
  same weekday stood in the previous weeks is the week's rhythm (and nothing else is sought);
- the feeding source's delivery of the day missing, incomplete (no `_SUCCESS`) or empty;
- one service whose accesses (or failures) moved by at least half the movement;
- rejected rows of the feeding source, only when there are at least half as many as the
  movement (a handful of rejected rows do not explain a drop of hundreds), and rejected
  files (of unknown size) only for a drop.
A late delivery was still ingested, and a failed quality check is no cause: neither is cited.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from citycloud.dashboards import data, fmt

CARRIES = 0.5  # evidence must account for at least half of the movement
RATE_TOLERANCE = 0.02  # a rate within 2 points of its weekday range counts as in it
COUNT_TOLERANCE = 0.05  # a count within 5% of its weekday range counts as in it
SERVICE_KPIS = ("total_accesses", "successful_accesses", "success_rate")


def explain(move: dict, kpis: pd.DataFrame, city: str, *, status: pd.DataFrame | None = None,
            rejected_rows: pd.DataFrame | None = None, rejected_files: pd.DataFrame | None = None,
            service_days: pd.DataFrame | None = None) -> list[str]:
    """Sentences of evidence that can carry `move` (a `data.movers` item) for `city`; [] if none."""
    today = data.kpi_values(kpis, city, 0)
    if today is None:
        return []
    as_of = today["as_of"]
    weekday = weekday_pattern(move, kpis, city)
    if weekday:
        return [weekday]
    kpi, source = move["kpi"], data.kpi_source(move["kpi"])
    found = []
    if status is not None and source:
        s = status[(status["source"] == source) & (status["dt"] == as_of)]
        if not s.empty and s.iloc[0]["status"] in ("missing", "incomplete", "empty"):
            r = s.iloc[0]
            folder = f"：`{r['folder']}`" if isinstance(r.get("folder"), str) else ""
            found.append(f"{fmt.SOURCE_LABELS.get(source, source)} 当日交付{data.DELIVERY_PROBLEMS[r['status']]}{folder}")
    if kpi in SERVICE_KPIS:
        found += service_moves(move, service_days, city, as_of)
    found += rejects(move, source, city, as_of, rejected_rows, rejected_files)
    return found


def weekday_pattern(move: dict, kpis: pd.DataFrame, city: str) -> str | None:
    """When a move against the day before lands within the range of the same weekday in the
    previous weeks (two at least), that weekday range, as a sentence."""
    if move.get("offset") != 1:
        return None
    rows = kpis[kpis["city_code"] == city]
    as_of = rows["as_of"].iloc[0]
    by_day = {r["kpi_date"]: r[move["kpi"]] for _, r in rows.iterrows()}
    past = [by_day.get(as_of - dt.timedelta(days=7 * w)) for w in range(1, data.WEEKS_OF_HISTORY + 1)]
    past = [float(v) for v in past if not fmt.is_missing(v)]
    if len(past) < 2:
        return None
    lo, hi = min(past), max(past)
    slack = RATE_TOLERANCE if fmt.is_rate(move["kpi"]) else COUNT_TOLERANCE * max(abs(lo), abs(hi))
    if not lo - slack <= move["current"] <= hi + slack:
        return None
    weekday = fmt.WEEKDAYS[as_of.weekday()]
    span = fmt.fmt_kpi(move["kpi"], lo) + ("" if lo == hi else f"–{fmt.fmt_kpi(move['kpi'], hi)}")
    return f"每周规律：前 {len(past)} 周的{weekday}为 {span}，当日与之相当"


def service_moves(move: dict, service_days: pd.DataFrame | None, city: str, as_of: dt.date) -> list[str]:
    """The one service whose accesses (success rate: failures) moved by half the KPI's movement."""
    if service_days is None:
        return []
    base_day = as_of - dt.timedelta(days=move["offset"])
    mine = service_days[service_days["city_code"] == city]
    column = "failed_accesses" if move["kpi"] == "success_rate" else "total_accesses"
    cur = mine[mine["kpi_date"] == as_of].set_index("service_id")
    old = mine[mine["kpi_date"] == base_day].set_index("service_id")
    if cur.empty and old.empty:
        return []
    both = pd.DataFrame({"cur": cur[column], "old": old[column]}).fillna(0)
    names = pd.concat([old["service_name"], cur["service_name"]])
    names = names[~names.index.duplicated(keep="last")]
    total = both["cur"].sum() - both["old"].sum()
    if total == 0:
        return []
    delta = both["cur"] - both["old"]
    sid = (delta if total > 0 else -delta).idxmax()
    if delta[sid] / total < CARRIES:
        return []
    what = "失败" if column == "failed_accesses" else "访问"
    return [f"服务「{names.get(sid, sid)}」{what} {fmt.fmt_int(both.at[sid, 'old'])} → {fmt.fmt_int(both.at[sid, 'cur'])}"
            f"（{int(delta[sid]):+,}，占全市{what}变化 {int(total):+,} 的 {delta[sid] / total:.0%}）"]


def rejects(move: dict, source: str | None, city: str, as_of: dt.date, rejected_rows: pd.DataFrame | None,
            rejected_files: pd.DataFrame | None) -> list[str]:
    """Rejected rows comparable to a count's movement; rejected files for a drop."""
    if not source:
        return []
    found = []
    moved = abs(move["current"] - move["base"])
    if rejected_rows is not None and not fmt.is_rate(move["kpi"]):
        n = int(rejected_rows[(rejected_rows["city_code"] == city) & (rejected_rows["dt"] == as_of)
                              & (rejected_rows["source"] == source)]["rows"].sum())
        if n and n >= CARRIES * moved:
            found.append(f"{fmt.SOURCE_LABELS.get(source, source)} 当日拒收 {n:,} 行（变化 {int(moved):,}）")
    if rejected_files is not None and move["current"] < move["base"]:
        n = int(((rejected_files["city_code"] == city) & (rejected_files["dt"] == as_of)
                 & (rejected_files["source"] == source)).sum())
        if n:
            found.append(f"{fmt.SOURCE_LABELS.get(source, source)} 当日拒收 {n} 个文件")
    return found

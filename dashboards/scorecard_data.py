"""Data of the Scorecard page (运营评价): marts.scorecard_monthly / scorecard_indicators /
scorecard_refusals as `citycloud scorecard` recorded them, read from the published snapshot like
every other page (no Streamlit import: tested without a browser). Nothing is rescored here.

Indicator and dimension labels and display formats come from citycloud/scorecard/indicators.yml
(the one home), city names from the city_reference seed (citycloud.dashboards.fmt).
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from citycloud.scorecard import catalog

from citycloud.dashboards import fmt
from citycloud.dashboards.data import Snapshot

MONTHLY = "marts.scorecard_monthly"
INDICATORS = "marts.scorecard_indicators"
REFUSALS = "marts.scorecard_refusals"
NO_DATA = "无数据 no data"
# What an operator runs when nothing has been scored yet (the page fills in the warehouse).
COMMAND = ("citycloud scorecard --warehouse {warehouse} --scheme evaluation.yml "
           "--assessments assessments.yml --month YYYY-MM")


def load_scorecard(snap: Snapshot, month: dt.date | str | None = None) -> dict:
    """Scored months (newest first; a month whose every city was refused counts: the page says
    why), every month's totals (for the trend), and the indicators and refusals of `month`
    (default: the latest). `months` is empty when no scorecard has been computed (or the tables
    are not in the snapshot: their names in `missing`)."""
    dims = list(catalog.dimensions())
    out: dict = {"missing": [t for t in (MONTHLY, INDICATORS) if not snap.has(t)], "months": [],
                 "month": None, "monthly": None, "indicators": None, "refusals": None}
    if out["missing"]:
        return out
    # ranked_cities: how many cities the scheme ranked that month, given by the scoped view to a
    # person who sees fewer than all of them ("rank k of N", citycloud.access.scope.WHOLE)
    ranked = "ranked_cities" if snap.has(MONTHLY, "ranked_cities") else "NULL::BIGINT AS ranked_cities"
    monthly = snap.df(f"""SELECT month, scheme_id, city_code, total_score::DOUBLE AS total_score, grade,
                                 {', '.join(f'{d}::DOUBLE AS {d}' for d in dims)}, rank, {ranked}
                          FROM {MONTHLY} ORDER BY month, scheme_id, rank, city_code""")
    monthly["month"] = pd.to_datetime(monthly["month"]).dt.date
    refused = f"UNION SELECT month FROM {REFUSALS}" if snap.has(REFUSALS) else ""
    months = [pd.Timestamp(m).date() for (m,) in snap.con.execute(
        f"SELECT month FROM {MONTHLY} {refused} ORDER BY month DESC").fetchall()]
    if not months:
        return out
    chosen = fmt.to_date(month) if month is not None else months[0]
    if chosen not in months:
        chosen = months[0]
    out.update(months=months, month=chosen, monthly=monthly)
    out["indicators"] = snap.df(f"""SELECT scheme_id, city_code, indicator, dimension, value, target, weight,
                                           score::DOUBLE AS score, no_data, evaluator, assessed_on
                                    FROM {INDICATORS} WHERE month = ? ORDER BY scheme_id, city_code""", [chosen])
    out["refusals"] = (snap.df(f"SELECT scheme_id, city_code, reason FROM {REFUSALS} WHERE month = ? "
                               "ORDER BY scheme_id, city_code", [chosen]) if snap.has(REFUSALS)
                       else pd.DataFrame(columns=["scheme_id", "city_code", "reason"]))
    return out


def schemes_of(d: dict) -> list[str]:
    """The schemes of the chosen month: those that scored a city or refused one."""
    scored = d["monthly"][d["monthly"]["month"] == d["month"]]["scheme_id"]
    return sorted(set(scored) | set(d["refusals"]["scheme_id"]))


def parse_month(text: str | None) -> dt.date | None:
    """`2026-01` (the URL's ?month=) → its first day; anything else → None (the latest month)."""
    try:
        return dt.datetime.strptime(str(text), "%Y-%m").date()
    except ValueError:
        return None


def fmt_score(value) -> str:
    """Scores as stored: one decimal (87.5, 86.0); a dimension without indicators shows —."""
    return fmt.MISSING if fmt.is_missing(value) else f"{float(value):.1f}"


def fmt_indicator_value(value, indicator: str) -> str:
    """A value or target in the indicator's display format (indicators.yml: count, rate, score)."""
    if fmt.is_missing(value):
        return NO_DATA
    kind = catalog.indicators()[indicator].format
    if kind == "rate":
        return fmt.fmt_pct(value)
    if kind == "count":
        return fmt.fmt_int(value)
    return fmt_score(value)


def points_lost(weight, score) -> str:
    """What the indicator cost the total: weight × (100 − score), to 0.01 (as the reports show it)."""
    if fmt.is_missing(weight) or fmt.is_missing(score):
        return fmt.MISSING
    lost = Decimal(str(weight)) * (Decimal(100) - Decimal(str(score)))
    return str(lost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def ranking_table(monthly: pd.DataFrame, month: dt.date, scheme_id: str) -> pd.DataFrame:
    """The scheme's cities in the month, best first: rank, city, total, grade, the four dimensions."""
    rows = monthly[(monthly["month"] == month) & (monthly["scheme_id"] == scheme_id)]
    rows = rows.sort_values(["rank", "city_code"])
    # a person who does not see every ranked city: its rank "k of N", no other city's row
    partial = rows["ranked_cities"].notna() & (rows["ranked_cities"] > len(rows)) if "ranked_cities" in rows \
        else pd.Series(False, index=rows.index)
    ranks = [f"{fmt.fmt_int(k)} of {fmt.fmt_int(n)}" if part else fmt.fmt_int(k)
             for k, n, part in zip(rows["rank"], rows.get("ranked_cities", rows["rank"]), partial)]
    table = pd.DataFrame({"排名 Rank": ranks,
                          "城市 City": rows["city_code"].map(fmt.city_label),
                          "总分 Total": rows["total_score"].map(fmt_score),
                          "等级 Grade": rows["grade"]})
    for dim, d in catalog.dimensions().items():
        table[f"{d.label} {d.label_en}"] = rows[dim].map(fmt_score)
    return table


def indicator_table(indicators: pd.DataFrame, scheme_id: str, city: str) -> pd.DataFrame:
    """The city's indicators in the catalogue's order: label, dimension, value, target, weight,
    score, the points it cost the total, and whether the value was missing (scored 0, flagged no_data)."""
    order = {name: i for i, name in enumerate(catalog.indicators())}
    rows = indicators[(indicators["scheme_id"] == scheme_id) & (indicators["city_code"] == city)].copy()
    rows = rows.assign(_order=rows["indicator"].map(order)).sort_values("_order")
    names, dims = catalog.indicators(), catalog.dimensions()
    return pd.DataFrame({
        "指标 Indicator": rows["indicator"].map(lambda i: names[i].label),
        "维度 Dimension": rows["dimension"].map(lambda d: dims[d].label),
        "实际值 Value": [fmt_indicator_value(v, i) for v, i in zip(rows["value"], rows["indicator"])],
        "目标 Target": [fmt_indicator_value(v, i) for v, i in zip(rows["target"], rows["indicator"])],
        "权重 Weight": rows["weight"].map(fmt.fmt_weight),
        "得分 Score": rows["score"].map(fmt_score),
        "失分 Points lost": [points_lost(w, v) for w, v in zip(rows["weight"], rows["score"])],
        "无数据 No data": rows["no_data"].map(lambda flag: "⚠ 无数据" if flag else ""),
    })


def trend(monthly: pd.DataFrame, scheme_id: str) -> pd.DataFrame:
    """Each city's total score over the months scored under the scheme (one row per city and month)."""
    rows = monthly[monthly["scheme_id"] == scheme_id].sort_values(["city_code", "month"])
    return pd.DataFrame({"month": pd.to_datetime(rows["month"]), "city_code": rows["city_code"],
                         "城市": rows["city_code"].map(fmt.city_label), "total_score": rows["total_score"],
                         "grade": rows["grade"], "rank": rows["rank"]})


def trend_table(trend_rows: pd.DataFrame) -> pd.DataFrame:
    """The trend's numbers, a row per month (newest first) and a column per city."""
    wide = trend_rows.pivot(index="month", columns="城市", values="total_score").sort_index(ascending=False)
    table = pd.DataFrame({"月份 Month": [fmt.fmt_month(m) for m in wide.index]})
    for city in wide.columns:
        table[city] = [fmt_score(v) for v in wide[city]]
    return table

"""Trends: registered users, DAU/WAU/MAU, activity, success and satisfaction over a range."""
from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from citycloud.dashboards import data, fmt, ui

st.title("趋势 Trends")
sel = ui.selection()
start, end = ui.day_range(sel, 30, key="trend_range")
POOL_DAYS = 7
# loaded from POOL_DAYS - 1 days earlier: the pooled satisfaction of the range's first day needs them
df = ui.load("load_trends", tuple(sel["cities"]), max(sel["first_day"], start - dt.timedelta(days=POOL_DAYS - 1)), end)
if df is None:
    st.info("快照中没有 `marts.kpi_daily`。 Run `citycloud run` first.")
    st.stop()
if df.empty:
    st.info("所选范围内无数据。 No data in the chosen range.")
    st.stop()

df = df.copy()
df["satisfaction_pooled"] = data.pooled_satisfaction(df, POOL_DAYS)
df = df[df["kpi_date"] >= pd.Timestamp(start)]
df["城市"] = df["city_code"].map(fmt.city_name)  # short names: five of them fit a chart's legend
multi = len(sel["cities"]) > 1
st.caption(f"{fmt.city_label(sel['city'])} · {fmt.fmt_date(start)} 至 {fmt.fmt_date(end)}")


# The day trend of 30-day active users over registered users (not the monthly activity_rate KPI).
TREND_LABELS = {"activity_30d_rate": "30日活跃用户占注册用户比例",
                "satisfaction_pooled": f"近{POOL_DAYS}日合并好评率"}


def label(kpi: str) -> str:
    return TREND_LABELS.get(kpi) or fmt.kpi_label(kpi)


def chart(cols: list[str], y_title: str, title: str | None = None) -> None:
    """One chart of the KPIs `cols`; titled with their registry labels (Chinese and English)."""
    reg = fmt.registry().metrics
    kind = "rate" if all(fmt.is_rate(c) for c in cols) else "count"
    st.markdown("**" + (title or " / ".join(f"{label(c)} {reg[c].label_en}" if c in reg else label(c)
                                           for c in cols)) + "**")
    long = df.melt(id_vars=["kpi_date", "城市"], value_vars=cols, var_name="kpi", value_name="value")
    long["指标"] = long["kpi"].map(label)
    if multi and len(cols) > 1:
        ui.line_chart(long, "kpi_date", "value", "城市", x_title="日期", y_title=y_title, kind=kind,
                      color_title="城市", dash="指标")
    elif multi:
        ui.line_chart(long, "kpi_date", "value", "城市", x_title="日期", y_title=y_title, kind=kind,
                      color_title="城市")
    else:
        ui.line_chart(long, "kpi_date", "value", "指标" if len(cols) > 1 else None, x_title="日期",
                      y_title=y_title, kind=kind, color_title="指标")


def active_users() -> None:
    """DAU, WAU and 30-day MAU: together for one city; one at a time, a line per city, for several."""
    active = ["dau", "wau", "mau_30d"]
    if not multi:
        chart(active, "活跃用户数（人）", title="活跃用户 DAU / WAU / MAU（30日）")
        return
    kpi = st.segmented_control("活跃用户指标 Active users", active, default="dau", format_func=label,
                               key="trend_active", required=True) or "dau"
    chart([kpi], f"{label(kpi)}（人）")


def satisfaction() -> None:
    """Daily rate on few ratings swings wildly: show each day's sample (ratings) and a pooled line."""
    reg = fmt.registry().metrics["satisfaction_rate"]
    pooled = label("satisfaction_pooled")
    st.markdown(f"**{label('satisfaction_rate')} {reg.label_en}**")
    base = alt.Chart(df).encode(
        x=alt.X("kpi_date:T", title="日期", axis=alt.Axis(format="%m-%d", labelAngle=0)),
        tooltip=[alt.Tooltip("城市:N"), alt.Tooltip("kpi_date:T", title="日期", format="%Y-%m-%d"),
                 alt.Tooltip("ratings:Q", title=label("ratings"), format=",.0f"),
                 alt.Tooltip("satisfaction_rate:Q", title="当日", format=".1%"),
                 alt.Tooltip("satisfaction_pooled:Q", title=pooled, format=".1%")],
    )
    y = alt.Y("satisfaction_pooled:Q", title=pooled, axis=alt.Axis(format=".0%"), scale=alt.Scale(domain=[0, 1]))
    if multi:  # one pooled line per city; the daily points of five cities would be noise
        rate = base.mark_line(point=True).encode(y=y, color=alt.Color("城市:N", title="城市", legend=ui.legend()))
        counts = base.mark_line().encode(y=alt.Y("ratings:Q", title=f"{label('ratings')}（条）"),
                                         color=alt.Color("城市:N", title="城市", legend=None))
    else:
        daily = base.mark_circle(opacity=0.45).encode(
            y=alt.Y("satisfaction_rate:Q", title=pooled), size=alt.Size("ratings:Q", title=label("ratings"),
                                                                       legend=None))
        rate = alt.layer(daily, base.mark_line(strokeWidth=3).encode(y=y))
        counts = base.mark_bar(opacity=0.8).encode(y=alt.Y("ratings:Q", title=f"{label('ratings')}（条）"))
    ui.show(rate.properties(height=260))
    ui.show(counts.properties(height=150))
    window = df[df["kpi_date"] == df["kpi_date"].max()]
    n = int(window["ratings"].sum())
    st.caption(f"线：{pooled} = 近 {POOL_DAYS} 日{label('good_ratings')}之和 ÷ {label('ratings')}之和（不是日好评率的平均）"
               + ("" if multi else "；点：当日好评率，点越大当日评价越多") + f"。下图：每日{label('ratings')}（样本量）；"
               f"{fmt.fmt_date(window['kpi_date'].max())} 当日 {n:,} 条。")


# Page layout: which KPIs share a chart (labels, units and formats come from the registry).
left, right = st.columns(2)
with left:
    chart(["registered_users"], f"{label('registered_users')}（人）")
    chart(["activity_30d_rate"], label("activity_30d_rate"))
    chart(["success_rate"], label("success_rate"))
with right:
    active_users()
    chart(["total_accesses"], f"{label('total_accesses')}（次）")
    satisfaction()

# the range at a glance: first and last day, and the change, per city
rows = []
for city, g in df.sort_values("kpi_date").groupby("city_code"):
    first, last = g.iloc[0], g.iloc[-1]
    for kpi in [*fmt.daily_kpis(), "activity_30d_rate"]:
        if kpi not in g:
            continue
        values = g[kpi].dropna()
        rows.append({
            "城市": fmt.city_label(city),
            "指标": label(kpi),
            "区间": f"{fmt.fmt_date(first['kpi_date'])} 至 {fmt.fmt_date(last['kpi_date'])}",
            "期初": fmt.fmt_kpi(kpi, first[kpi]),
            "期末": fmt.fmt_kpi(kpi, last[kpi]),
            "变化": fmt.fmt_delta(kpi, last[kpi], first[kpi]),
            "区间均值": fmt.fmt_kpi(kpi, values.mean() if len(values) else None),
        })
title = "**区间变化 · Change over the range**"
if multi:  # a row per city and KPI: folded away unless asked for
    with st.expander(f"{title}（{len(rows)} 行）"):
        ui.table(pd.DataFrame(rows))
else:
    st.markdown(title)
    ui.table(pd.DataFrame(rows))

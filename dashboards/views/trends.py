"""Trends: registered users, DAU/WAU/MAU, activity, success and satisfaction over a range."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import fmt, ui

st.title("趋势 Trends")
sel = ui.selection()
start, end = ui.day_range(sel, 30, key="trend_range")
df = ui.load("load_trends", tuple(sel["cities"]), start, end)
if df is None:
    st.info("快照中没有 `marts.kpi_daily`。 Run `citycloud run` first.")
    st.stop()
if df.empty:
    st.info("所选范围内无数据。 No data in the chosen range.")
    st.stop()

df["城市"] = df["city_code"].map(fmt.city_label)
multi = len(sel["cities"]) > 1
st.caption(f"{fmt.city_label(sel['city'])} · {fmt.fmt_date(start)} 至 {fmt.fmt_date(end)}")


# The day trend of 30-day active users over registered users (not the monthly activity_rate KPI).
TREND_LABELS = {"activity_30d_rate": "30日活跃用户占注册用户比例"}


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


# Page layout: which KPIs share a chart (labels, units and formats come from the registry).
left, right = st.columns(2)
with left:
    chart(["registered_users"], f"{label('registered_users')}（人）")
    chart(["activity_30d_rate"], label("activity_30d_rate"))
    chart(["success_rate"], label("success_rate"))
with right:
    chart(["dau", "wau", "mau_30d"], "活跃用户数（人）", title="活跃用户 DAU / WAU / MAU（30日）")
    chart(["total_accesses"], f"{label('total_accesses')}（次）")
    chart(["satisfaction_rate"], label("satisfaction_rate"))

# the range at a glance: first and last day, and the change, per city
st.markdown("**区间变化 · Change over the range**")
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
ui.table(pd.DataFrame(rows))

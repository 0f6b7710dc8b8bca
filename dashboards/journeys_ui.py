"""The journeys part of the Users page (Streamlit side): per funnel its step bars per entry
channel (side by side from zero, never stacked), its conversion by period, and the next services
after a chosen service. Data: dashboards/journeys.py. Every chart has its numbers in a table."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from citycloud.dashboards import as_text, fmt, journeys, ui

INCOMPLETE = {True: "窗口已满 complete", False: "窗口未满 incomplete"}


def _duration(seconds) -> str:
    if fmt.is_missing(seconds):
        return fmt.MISSING
    hours = float(seconds) / 3600
    return f"{hours / 24:,.1f} 天" if hours >= 48 else f"{hours:,.1f} 小时"


def _steps(rows: pd.DataFrame) -> None:
    """One period's steps, channel by channel: bars side by side, pale while a window is open."""
    rows = rows.assign(步骤=rows["step"].astype(str) + ". " + rows["step_label"],
                       渠道=rows["channel"].map(journeys.channel_name),
                       窗口=rows["window_complete"].map(INCOMPLETE))
    codes = sorted(rows["channel"].unique(), key=lambda c: (c != "all", c))  # all first
    channels = [journeys.channel_name(c) for c in codes]
    ui.show(alt.Chart(rows).mark_bar().encode(
        x=alt.X("步骤:N", title="", sort=None, axis=alt.Axis(labelAngle=0, labelLimit=0)),
        xOffset=alt.XOffset("渠道:N", sort=channels),
        y=alt.Y("users:Q", title="用户数（人）", stack=None),
        color=alt.Color("渠道:N", sort=channels, title="渠道", legend=ui.legend()),
        opacity=alt.Opacity("窗口:N", scale=alt.Scale(domain=list(INCOMPLETE.values()), range=[1, 0.35]),
                            legend=None),
        tooltip=["步骤:N", "渠道:N", alt.Tooltip("users:Q", title="用户数"),
                 alt.Tooltip("conversion_from_start:Q", title="较第一步", format=".2%"), "窗口:N"],
    ).properties(height=260))
    shown = rows.assign(order=rows["channel"].map(codes.index)).sort_values(["order", "step"])
    ui.table(pd.DataFrame({"渠道": shown["渠道"], "步骤": shown["步骤"], "用户数": shown["users"].map(fmt.fmt_int),
                           "较第一步": shown["conversion_from_start"].map(fmt.fmt_pct),
                           "较上一步": shown["conversion_from_previous"].map(fmt.fmt_pct),
                           "距上一步中位时长": shown["median_seconds"].map(_duration),
                           "窗口": shown["窗口"]}))


def _trend(funnels: pd.DataFrame, funnel: str, grain: str) -> None:
    t = journeys.trend(funnels, funnel, grain)
    t = t[t["channel"] == "all"]
    if t.empty:
        st.caption("尚无完整周期 (no fully covered period yet)")
        return
    t = t.assign(周期=t["period_start"].map(fmt.fmt_date), 窗口=t["window_complete"].map(INCOMPLETE))
    ui.show(alt.Chart(t).mark_line(point=alt.OverlayMarkDef(size=60, filled=True)).encode(
        x=alt.X("周期:O", title="周期起始日", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("conversion:Q", title="完成率（末步/首步）", axis=alt.Axis(format=".0%")),
        tooltip=["周期:O", alt.Tooltip("entries:Q", title="进入"), alt.Tooltip("completed:Q", title="完成"),
                 alt.Tooltip("conversion:Q", title="完成率", format=".2%"), "窗口:N"],
    ).properties(height=220))
    t = t.sort_values("period_start", ascending=False)
    ui.table(pd.DataFrame({"周期起始": t["周期"], "进入": t["entries"].map(fmt.fmt_int),
                           "完成": t["completed"].map(fmt.fmt_int), "完成率": t["conversion"].map(fmt.fmt_pct),
                           "窗口": t["窗口"]}))


def funnels(d: dict, grain: str) -> None:
    f = d["funnels"]
    st.markdown("**转化漏斗 · Funnels**（funnels.yml 定义；浅色 = 还有用户的窗口未满，数字仍会增长）")
    if f is None or f.empty:
        st.caption("无漏斗数据（构建时未给 funnels.yml：citycloud run --funnels FILE） (no funnel rows)")
        return
    labels = journeys.funnel_labels()
    names = list(dict.fromkeys(f["funnel"]))
    funnel = st.selectbox("漏斗 Funnel", names, key="uo_funnel",
                          format_func=lambda n: f"{labels[n]}（{n}）" if n in labels else n)
    rows = f[(f["funnel"] == funnel) & (f["grain"] == grain)]
    if rows.empty:
        st.caption("尚无完整周期 (no fully covered period yet)")
        return
    periods = sorted(rows["period_start"].unique(), reverse=True)
    period = st.selectbox("周期 Period", periods, key="uo_funnel_period", format_func=fmt.fmt_date)
    left, right = st.columns(2)
    with left:
        st.markdown(f"各步骤人数，按进入渠道（{fmt.fmt_date(period)} 起的周期）")
        _steps(rows[rows["period_start"] == period])
    with right:
        st.markdown("完成率趋势（全部渠道）")
        _trend(f, funnel, grain)


def next_services(d: dict) -> None:
    paths, names = d["paths"], d["names"]
    st.markdown(f"**下一步办什么 · Next services**（同一天里紧接着办理的服务，前 {journeys.TOP_NEXT} 个）")
    if paths is None or paths.empty:
        st.caption("无记录 (none)")
        return
    months = sorted(paths["month"].unique(), reverse=True)
    left, right = st.columns(2)
    month = left.selectbox("月份 Month", months, key="uo_path_month", format_func=fmt.fmt_month)
    month_rows = paths[paths["month"] == month]
    busiest = month_rows.groupby("from_service_id")["steps"].sum().sort_values(ascending=False, kind="stable")
    services = [s for s in busiest.index if s != journeys.START]
    if not services:
        st.caption("无记录 (none)")
        return
    service = right.selectbox("服务 Service", services, key="uo_path_service",
                              format_func=lambda s: journeys.service_name(s, names))
    nxt = journeys.next_services(paths, month, service, names)
    # a catalogue name is delivered text: escaped for markdown (as_text.py), shown as written
    st.markdown(f"{as_text.markdown_literal(journeys.service_name(service, names))} 之后 · next")
    ui.bar_chart(nxt.assign(服务=nxt["name"]), "steps", "服务", x_title="次数（步）", y_title="")
    ui.table(pd.DataFrame({"下一步": nxt["name"], "次数": nxt["steps"].map(fmt.fmt_int),
                           "用户数": nxt["users"].map(fmt.fmt_int), "占比": nxt["share"].map(fmt.fmt_pct)}))

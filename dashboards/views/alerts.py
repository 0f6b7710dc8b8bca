"""告警 Alerts: the delivery problems and KPI anomalies open for the person's cities (alerts.md), the
ones that went away, and each anomaly's same-weekday history with the band it fell out of."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from citycloud.dashboards import alerts_data, as_text, data, fmt, gate, ui

SHOWN_HISTORIES = 12  # charts drawn; more open anomalies are listed in the table only
# the alert's day red, its baseline blue, the days the method leaves out grey
ROLE_COLOURS = dict(zip(alerts_data.ROLES, ("#4c78a8", "#e45756", "#bab0ac", "#bab0ac", "#9d9d9d", "#bab0ac")))


@st.cache_data(ttl=ui.CACHE_TTL_SECONDS, show_spinner=False, max_entries=64)
def _load(warehouse: str, version: tuple, scope, cities: tuple, day, moment, days: int) -> dict:
    return data.run_load(warehouse, scope, alerts_data.load_alerts, cities, day, moment, days)


def _history_chart(h: pd.DataFrame, row) -> None:
    """The comparable days as bars (grey when left out of the baseline), the alert's day in red,
    the band as a shaded strip and the expected value as a line."""
    shown = [r for r in ROLE_COLOURS if r in set(h["role"])]  # the legend names only what is drawn
    h = h.assign(日期=h["day"].map(lambda d: f"{fmt.fmt_date(d)[5:]} {alerts_data.weekday(d)}"))
    band = pd.DataFrame({"lower": [row.lower_bound], "upper": [row.upper_bound], "expected": [row.centre]})
    kind = "rate" if fmt.is_rate(row.metric) else "count"
    y = alt.Y("value:Q", title=fmt.kpi_label(row.metric), axis=alt.Axis(format=ui.axis_format(kind)))
    bars = alt.Chart(h).mark_bar().encode(
        x=alt.X("日期:O", title="", sort=None, axis=alt.Axis(labelAngle=-45)), y=y,
        color=alt.Color("role:N", title="", legend=ui.legend(),
                        scale=alt.Scale(domain=shown, range=[ROLE_COLOURS[r] for r in shown])),
        tooltip=[alt.Tooltip("日期:O"), alt.Tooltip("value:Q", title="值", format=ui.axis_format(kind)),
                 alt.Tooltip("role:N", title="说明")])
    strip = alt.Chart(band).mark_rect(opacity=0.15, color="#f58518").encode(y="lower:Q", y2="upper:Q")
    centre = alt.Chart(band).mark_rule(strokeDash=[4, 3], color="#f58518").encode(y="expected:Q")
    ui.show((strip + bars + centre).properties(height=200))


def _open_table(rows: pd.DataFrame) -> None:
    ui.table(pd.DataFrame({
        "城市": rows["city_code"].map(fmt.city_label), "日期": rows["day"].map(fmt.fmt_date),
        "类型": rows["kind"].map(alerts_data.KINDS), "内容": rows["what"], "当日值": rows["value"],
        "通常水平": rows["expected"], "预期区间": rows["band"], "偏离": rows["direction"],
        "通知": rows["notified"], "消息": rows["message"]}))


def _histories(opened: pd.DataFrame, histories: dict) -> None:
    anomalies = opened[opened["kind"] == "anomaly"]
    st.markdown("**同星期历史 · Same-weekday history**（灰色：节假日、调休、已告警或无数据的日子，不计入基线；"
                "橙色带：预期区间，虚线：中位数）")
    if anomalies.empty:
        st.caption("所选范围内无指标异常 (no KPI anomaly in the chosen range)")
        return
    if len(anomalies) > SHOWN_HISTORIES:
        st.caption(f"显示最近 {SHOWN_HISTORIES} 条指标异常的历史（共 {len(anomalies)} 条）")
    for row in anomalies.head(SHOWN_HISTORIES).itertuples():
        h = histories[row.key]
        st.markdown(as_text.markdown_literal(row.message))
        left, right = st.columns([3, 2])
        with left:
            _history_chart(h, row)
        with right:
            ui.table(pd.DataFrame({"日期": h["day"].map(fmt.fmt_date), "星期": h["weekday"],
                                   "值": h["value"].map(lambda v, m=row.metric: fmt.fmt_kpi(m, v)), "说明": h["role"]}))


st.title("告警 Alerts")
sel = ui.selection()
wh, version = ui.current_snapshot()
moment = alerts_data.as_of(sel["day"], version.published_at)
days = st.segmented_control("范围 Range", alerts_data.WINDOW_DAYS, default=14, key="al_days", required=True,
                            format_func=lambda n: f"近 {n} 天") or 14
try:
    d = _load(str(wh), (version.inode, version.mtime_ns, version.size), gate.current_scope(), tuple(sel["cities"]),
              sel["day"], moment, days)
except data.SnapshotMissing as exc:
    ui.missing_snapshot(exc.path)
except data.SnapshotBusy as exc:  # being replaced: the next rerun reads the new snapshot
    st.info(f"数据快照正在更新，请稍后刷新。 The snapshot is being replaced: reload in a few seconds. ({type(exc).__name__})")
    st.stop()
ui.missing_tables_note(d["missing"])
if d["open"] is None:
    st.stop()
st.caption(f"{fmt.city_label(sel['city'])} · {fmt.fmt_date(sel['day'])} 及之前 {days} 天的告警 · "
           f"按 {fmt.fmt_ts(moment)}（北京时间）判断，与 citycloud alerts 同一规则")
opened = d["open"]
counts = opened["kind"].value_counts()
c1, c2, c3 = st.columns(3)
c1.metric("交付问题 Delivery problems", f"{counts.get('delivery', 0):,}")
c2.metric("指标异常 KPI anomalies", f"{counts.get('anomaly', 0):,}")
c3.metric("已消失 Gone", "—" if d["gone"] is None else f"{len(d['gone']):,}")
st.markdown("**当前告警 · Open alerts**")
_open_table(opened)
_histories(opened, d["history"])
st.markdown("**最近已消失的告警 · Gone**（已发送 resolved，或在任何渠道收到之前就已消失；通知台账截至上次发布）")
gone = d["gone"]
if gone is None:
    st.caption("快照中尚无通知台账 audit.alert_notifications（运行 citycloud alerts 后的下一次发布带上它）")
else:
    ui.table(pd.DataFrame({"城市": gone["city_code"].map(fmt.city_label), "日期": gone["day"].map(fmt.fmt_date),
                           "类型": gone["kind"].map(alerts_data.KINDS), "结果": gone["how"], "时间": gone["ended"],
                           "渠道": gone["channels"], "消息": gone["message"]}))

"""运营评价 Scorecard: the month's scores per scheme and city as `citycloud scorecard` recorded
them (marts.scorecard_*), each city's indicators, and each city's total score over the months
scored. Every chart has its numbers in a table below it."""
from __future__ import annotations

import altair as alt
import streamlit as st

from citycloud.dashboards import data, fmt, gate, ui
from citycloud.dashboards import scorecard_data as sc


@st.cache_data(ttl=ui.CACHE_TTL_SECONDS, show_spinner=False, max_entries=64)
def _load(warehouse: str, version: tuple, scope, month) -> dict:
    return data.run_load(warehouse, scope, sc.load_scorecard, month)


st.title("运营评价 Scorecard")
wh, version = ui.current_snapshot()
# the month is mirrored in the URL (?month=2026-01) so a view can be shared; unscored → the latest
wanted = st.session_state.get("sc_month") or sc.parse_month(st.query_params.get("month"))
try:
    d = _load(str(wh), (version.inode, version.mtime_ns, version.size), gate.current_scope(), wanted)
except data.SnapshotMissing as exc:
    ui.missing_snapshot(exc.path)
except Exception as exc:  # being replaced: the next rerun reads the new snapshot
    st.info(f"数据快照正在更新，请稍后刷新。 The snapshot is being replaced: reload in a few seconds. ({type(exc).__name__})")
    st.stop()

if not d["months"]:
    st.info("尚未计算运营评价 (no scorecard has been computed yet"
            + (f": {', '.join(d['missing'])} not in the snapshot" if d["missing"] else "") + ").\n\n"
            "Score a month that has ended, then reload this page:\n\n"
            f"```\n{sc.COMMAND.format(warehouse=wh)}\n```")
    st.stop()

if st.session_state.get("sc_month") not in d["months"]:
    st.session_state["sc_month"] = d["month"]
month = st.selectbox("评价月份 Month", d["months"], format_func=fmt.fmt_month, key="sc_month")
if month != d["month"]:  # the selection changed after the load: read that month
    d = _load(str(wh), (version.inode, version.mtime_ns, version.size), gate.current_scope(), month)
if st.query_params.get("month") != month.strftime("%Y-%m"):
    st.query_params["month"] = month.strftime("%Y-%m")
monthly, indicators = d["monthly"], d["indicators"]
chosen = st.session_state.get("city", ui.ALL)  # the sidebar's city: its details only, else every city's
schemes = sc.schemes_of(d)
st.caption(f"{fmt.fmt_month(month)} · 评价方案 {len(schemes)} 个 · 按 `citycloud scorecard` 记录的结果，未重新计算")

for scheme in schemes:
    st.subheader(f"评价方案 Scheme {scheme}")
    st.markdown("**城市排名 · Ranking**（总分、等级与四个维度得分）")
    ui.table(sc.ranking_table(monthly, month, scheme))
    refusals = d["refusals"]
    for row in refusals[refusals["scheme_id"] == scheme].itertuples():
        st.warning(f"{fmt.city_label(row.city_code)} 未评分 (not scored): {row.reason}")

    cities = sorted(indicators[indicators["scheme_id"] == scheme]["city_code"].unique())
    shown = [chosen] if chosen in cities else cities
    for city in shown:
        st.markdown(f"**{fmt.city_label(city)} · 指标得分 Indicators**（无数据的指标记 0 分）")
        ui.table(sc.indicator_table(indicators, scheme, city))

    st.markdown("**总分趋势 · Trend**（各城市每个已评价月份的总分）")
    rows = sc.trend(monthly, scheme)
    if rows.empty:
        st.caption("该方案尚无评分 (no city scored under this scheme yet)")
        continue
    chart = alt.Chart(rows).mark_line(point=True).encode(
        x=alt.X("month:T", title="月份", axis=alt.Axis(format="%Y-%m", labelAngle=0, tickCount="month")),
        y=alt.Y("total_score:Q", title="总分", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("城市:N", title="城市", legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("城市:N"), alt.Tooltip("month:T", title="月份", format="%Y-%m"),
                 alt.Tooltip("total_score:Q", title="总分", format=".1f"), alt.Tooltip("grade:N", title="等级"),
                 alt.Tooltip("rank:Q", title="排名")],
    ).properties(height=260)
    st.altair_chart(chart, width="stretch")
    ui.table(sc.trend_table(rows))

"""好差评 Reviews: the month's rectification loop (reviews.md) at a glance for the chosen cities,
the top tags, the departments and the overdue bad reviews (ticket ids only), as the review
marts hold them (the same figures as `citycloud reviews`). Every chart has its numbers in a
table below it; delivered names (departments, tags) are shown as text."""
from __future__ import annotations

import altair as alt
import streamlit as st

from citycloud import review_figures as rf
from citycloud.dashboards import data, fmt, gate, ui
from citycloud.dashboards import reviews_data as rd


@st.cache_data(ttl=ui.CACHE_TTL_SECONDS, show_spinner=False, max_entries=64)
def _load(warehouse: str, version: tuple, scope, cities: tuple, month) -> dict:
    return data.run_load(warehouse, scope, rd.load_reviews, cities, month)


def load(cities: tuple, month) -> dict:
    wh, version = ui.current_snapshot()
    try:
        return _load(str(wh), (version.inode, version.mtime_ns, version.size), gate.current_scope(), cities, month)
    except data.SnapshotMissing as exc:
        ui.missing_snapshot(exc.path)
    except Exception as exc:  # being replaced: the next rerun reads the new snapshot
        st.info(f"数据快照正在更新，请稍后刷新。 The snapshot is being replaced: reload in a few seconds. "
                f"({type(exc).__name__})")
        st.stop()


def at_a_glance(figures: rf.MonthFigures) -> None:
    """One city: its figures as cards; always: one row per city."""
    if len(figures.overview) == 1:
        row = figures.overview.iloc[0]
        cards = st.columns(5)
        for card, column in zip(cards, ("bad_reviews", "on_time_rate", "callback_rate", "unfounded", "overdue_open")):
            shown = rf.rate_text if column.endswith("_rate") else fmt.fmt_int
            card.metric(rf.both(column), shown(row[column]))
    ui.table(rd.loop_table(figures))
    if not figures.overview["settled"].all():
        st.caption("未定稿：本月还有差评未到整改期限，数字仍会变化。 Not settled: some bad reviews of the month "
                   "are not due yet, the figures may still change.")


st.title("好差评 Reviews")
sel = ui.selection()
cities = tuple(sel["cities"])
wanted = st.session_state.get("rv_month") or rd.parse_month(st.query_params.get("month"))
d = load(cities, wanted)
ui.missing_tables_note(d["missing"])
if not d["months"]:
    st.info("快照中还没有好差评的数据 (no 好差评 figures for these cities yet): the review marts come with "
            "`citycloud run` once ratings (and review_tickets) are delivered.")
    st.stop()
if st.session_state.get("rv_month") not in d["months"]:
    st.session_state["rv_month"] = d["month"]
month = st.selectbox("评价月份 Month", d["months"], format_func=fmt.fmt_month, key="rv_month", width=260)
if month != d["month"]:  # chosen after the load: read that month
    d = load(cities, month)
if st.query_params.get("month") != month.strftime("%Y-%m"):
    st.query_params["month"] = month.strftime("%Y-%m")
figures: rf.MonthFigures = d["figures"]
several = len(cities) > 1
st.caption(f"{fmt.city_label(sel['city'])} · {fmt.fmt_month(month)} · 按评价日归月 (month of the rating)"
           + ("（各城市分列）" if several else ""))

st.subheader("本月闭环 · The month's loop")
at_a_glance(figures)

st.subheader("差评标签 · Top tags" + ("（各城市合计）" if several else ""))
tags = rd.top_tags(figures)
tag, count = tags.columns
if not tags.empty:  # counts: whole ticks only (the shared bar chart would tick 0.2, 0.4, … as 0 0 0 1)
    ui.show(alt.Chart(tags).mark_bar().encode(
        x=alt.X(f"{count}:Q", title=f"{count}（条）", axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y(f"{tag}:N", title=None, sort=list(tags[tag]), axis=alt.Axis(labelLimit=0)),
        tooltip=[alt.Tooltip(f"{tag}:N"), alt.Tooltip(f"{count}:Q", format=",d")],
    ).properties(height=alt.Step(24)))
ui.table(tags.assign(**{count: tags[count].map(fmt.fmt_int)}))

st.subheader("各部门 · By department")
ui.table(rd.department_table(figures, several))

st.subheader("逾期未整改 · Overdue")
overdue = rd.overdue_table(figures, several)
without = int(figures.overdue["ticket_id"].isna().sum())
st.caption(f"整改期限已过仍未整改：{len(overdue)} 条" + (f"，其中 {without} 条无工单 (no ticket)" if without else "")
           + "。仅列工单号，不含个人信息。 Ticket ids only, no personal data.")
ui.table(overdue)

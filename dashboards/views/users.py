"""用户运营 Users: lifecycle, cohort retention, 7-day activation, stickiness and channel mix
(the user-operations marts of user_ops.md). Every chart has its numbers in a table below it."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from citycloud.channels import channel_label
from citycloud.dashboards import data, fmt, gate, journeys, journeys_ui, ui, user_ops


@st.cache_data(ttl=ui.CACHE_TTL_SECONDS, show_spinner=False, max_entries=64)
def _load(warehouse: str, version: tuple, scope, cities: tuple, day) -> dict:
    return data.run_load(warehouse, scope, user_ops.load_users, cities, day)


st.title("用户运营 Users")
sel = ui.selection()
wh, version = ui.current_snapshot()
try:
    d = _load(str(wh), (version.inode, version.mtime_ns, version.size), gate.current_scope(), tuple(sel["cities"]),
              sel["day"])
except data.SnapshotMissing as exc:
    ui.missing_snapshot(exc.path)
except Exception as exc:  # being replaced: the next rerun reads the new snapshot
    st.info(f"数据快照正在更新，请稍后刷新。 The snapshot is being replaced: reload in a few seconds. ({type(exc).__name__})")
    st.stop()
ui.missing_tables_note(d["missing"])
st.caption(f"{fmt.city_label(sel['city'])} · 截至 {fmt.fmt_date(sel['day'])}"
           + ("（各城市合计）" if len(sel["cities"]) > 1 else ""))

# ---- lifecycle ------------------------------------------------------------------------------
GRAINS = {"week": "按周 Weekly", "month": "按月 Monthly"}
grain = st.segmented_control("周期 Period", list(GRAINS), default="week", format_func=GRAINS.get, key="uo_grain",
                             required=True) or "week"
st.markdown("**用户生命周期 · Lifecycle**（新增、留存、回流在上，流失在零线以下）")
lifecycle = d["lifecycle"]
if lifecycle is None or lifecycle[lifecycle["grain"] == grain].empty:
    st.caption("尚无完整周期 (no fully covered period yet)")
else:
    long = user_ops.lifecycle_long(lifecycle, grain)
    long["周期"] = long["period_start"].map(fmt.fmt_date)  # ordinal axis: one wide bar per period
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("周期:O", title="周期起始日", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("signed:Q", title="用户数（人）", stack="zero"),
        color=alt.Color("类别:N", sort=list(user_ops.lifecycle_labels().values()), legend=ui.legend()),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("period_start:T", title="周期起始日", format="%Y-%m-%d"), alt.Tooltip("类别:N"),
                 alt.Tooltip("users:Q", title="用户数", format=",.0f")],
    ).properties(height=280)
    ui.show(chart)
    rows = lifecycle[lifecycle["grain"] == grain].sort_values("period_start", ascending=False)
    table = pd.DataFrame({"周期起始": rows["period_start"].map(fmt.fmt_date),
                          "活跃用户": rows["active_users"].map(fmt.fmt_int)})
    for col, label in user_ops.lifecycle_labels().items():
        table[label] = rows[col].map(fmt.fmt_int)
    ui.table(table)

# ---- cohort retention -----------------------------------------------------------------------
st.markdown("**月度留存 · Cohort retention**（按首次注册月份与获客渠道）")
retention = d["retention"]
if retention is None or retention.empty:
    st.caption("尚无完整月份 (no fully covered month yet)")
else:
    channels = ["all"] + sorted(c for c in retention["channel"].unique() if c != "all")
    channel = st.selectbox("获客渠道 Channel", channels, key="uo_channel",
                           format_func=lambda c: "全部渠道 all" if c == "all" else channel_label(c))
    cohort = retention[retention["channel"] == channel].copy()
    recent = sorted(cohort["cohort_month"].unique())[-12:]  # the latest 12 cohorts in the heatmap
    cohort = cohort[cohort["cohort_month"].isin(recent)]
    cohort["队列"] = cohort["cohort_month"].map(fmt.fmt_month)
    base = alt.Chart(cohort).encode(
        x=alt.X("months_since:O", title="注册后第 k 月 (months since)"),
        y=alt.Y("队列:N", title="注册月份 cohort", sort=None),
        tooltip=[alt.Tooltip("队列:N"), alt.Tooltip("months_since:O", title="k"),
                 alt.Tooltip("cohort_users:Q", title="队列人数", format=",.0f"),
                 alt.Tooltip("retained_users:Q", title="留存人数", format=",.0f"),
                 alt.Tooltip("retention_rate:Q", title="留存率", format=".2%")],
    )
    heat = base.mark_rect().encode(color=alt.Color("retention_rate:Q", title="留存率",
                                                   scale=alt.Scale(domain=[0, 1], scheme="blues")))
    text = base.mark_text(fontSize=11).encode(text=alt.Text("retention_rate:Q", format=".0%"))
    ui.show((heat + text).properties(height=alt.Step(26)))
    shown = cohort.sort_values(["cohort_month", "months_since"], ascending=[False, True])
    ui.table(pd.DataFrame({"注册月份": shown["队列"], "第 k 月": shown["months_since"],
                           "队列人数": shown["cohort_users"].map(fmt.fmt_int),
                           "留存人数": shown["retained_users"].map(fmt.fmt_int),
                           "留存率": shown["retention_rate"].map(fmt.fmt_pct)}))

# ---- activation -----------------------------------------------------------------------------
left, right = st.columns(2)
activation = d["activation"]
with left:
    st.markdown("**7日激活 · Activation**（近 30 个注册日；浅色 = 7 日窗口未满，数字仍会增长）")
    if activation is None or activation.empty:
        st.caption("无记录 (none)")
    else:
        f = user_ops.funnel(activation)
        ui.bar_chart(f.assign(步骤=f["step"]), "users", "步骤", x_title="用户数（人）", y_title="")
        ui.table(pd.DataFrame({"步骤（窗口已满的注册日）": f["step"], "用户数": f["users"].map(fmt.fmt_int),
                               "占首次注册": f["share"].map(fmt.fmt_pct)}))
        daily = activation.melt(id_vars=["registration_day", "window_complete"], value_vars=list(user_ops.funnel_labels()),
                                var_name="step", value_name="users")
        daily["步骤"] = daily["step"].map(user_ops.funnel_labels())
        daily["窗口"] = daily["window_complete"].map({True: "已满 complete", False: "未满 incomplete"})
        daily["注册日"] = daily["registration_day"].map(lambda d: fmt.fmt_date(d)[5:])  # MM-DD
        # a funnel: the steps side by side from zero (grouped), never stacked; xOffset needs a
        # discrete x (on a time scale Vega-Lite ignores it and stacks the bars)
        ui.show(alt.Chart(daily).mark_bar().encode(
            x=alt.X("注册日:O", title="注册日", axis=alt.Axis(labelAngle=-45)),
            xOffset=alt.XOffset("步骤:N", sort=list(user_ops.funnel_labels().values())),
            y=alt.Y("users:Q", title="用户数（人）", stack=None),
            color=alt.Color("步骤:N", sort=list(user_ops.funnel_labels().values()),
                            legend=alt.Legend(orient="bottom", columns=1, labelLimit=0)),  # long names: one a row
            opacity=alt.Opacity("窗口:N", scale=alt.Scale(domain=["已满 complete", "未满 incomplete"], range=[1, 0.35]),
                                legend=None),
            tooltip=[alt.Tooltip("registration_day:T", title="注册日", format="%Y-%m-%d"), "步骤:N",
                     alt.Tooltip("users:Q", title="用户数"), "窗口:N"],
        ).properties(height=240))

# ---- stickiness -----------------------------------------------------------------------------
stickiness = d["stickiness"]
with right:
    st.markdown("**月活跃天数分布 · Stickiness**（一个月里来了几天）")
    if stickiness is None or stickiness.empty:
        st.caption("尚无完整月份 (no fully covered month yet)")
    else:
        months = sorted(stickiness["month"].unique(), reverse=True)
        month = st.selectbox("月份 Month", months, format_func=fmt.fmt_month, key="uo_month")
        m = stickiness[stickiness["month"] == month]
        ui.show(alt.Chart(m).mark_bar().encode(
            x=alt.X("active_days:O", title="活跃天数"),
            y=alt.Y("users:Q", title="用户数（人）"),
            tooltip=[alt.Tooltip("active_days:O", title="活跃天数"), alt.Tooltip("users:Q", title="用户数")],
        ).properties(height=240))
        total = m["users"].sum()
        ui.table(pd.DataFrame({"活跃天数": m["active_days"], "用户数": m["users"].map(fmt.fmt_int),
                               "占月活": (m["users"] / total).map(fmt.fmt_pct)}))

# ---- channels -------------------------------------------------------------------------------
st.markdown(f"**渠道构成 · Channel mix**（成功访问，近 {user_ops.CHANNEL_DAYS} 天）")
channels = d["channels"]
if channels is None or channels.empty:
    st.caption("无记录 (none)")
else:
    channels = channels.assign(渠道=channels["channel"].map(channel_label))
    ui.show(alt.Chart(channels).mark_area().encode(
        x=alt.X("kpi_date:T", title="日期", axis=alt.Axis(format="%m-%d", labelAngle=0)),
        y=alt.Y("successful_accesses:Q", title="成功访问（次）", stack="normalize", axis=alt.Axis(format=".0%")),
        color=alt.Color("渠道:N", title="渠道", legend=ui.legend()),
        tooltip=[alt.Tooltip("kpi_date:T", title="日期", format="%Y-%m-%d"), alt.Tooltip("渠道:N"),
                 alt.Tooltip("successful_accesses:Q", title="成功访问"), alt.Tooltip("active_users:Q", title="活跃用户"),
                 alt.Tooltip("new_registrations:Q", title="注册")],
    ).properties(height=260))
    mix = user_ops.channel_mix(channels)
    ui.table(pd.DataFrame({"渠道": mix["channel"].map(channel_label), fmt.kpi_label("total_accesses"): mix["total_accesses"].map(fmt.fmt_int),
                           "成功访问": mix["successful_accesses"].map(fmt.fmt_int),
                           "成功访问占比": mix["share"].map(fmt.fmt_pct),
                           "注册数": mix["new_registrations"].map(fmt.fmt_int)}))

# ---- journeys: funnels and next services (user_ops.md, "Funnels", marts.service_paths) --------


@st.cache_data(ttl=ui.CACHE_TTL_SECONDS, show_spinner=False, max_entries=64)
def _load_journeys(warehouse: str, version: tuple, scope, cities: tuple, day) -> dict:
    return data.run_load(warehouse, scope, journeys.load_journeys, cities, day)


st.divider()
st.subheader("用户旅程 · Journeys")
j = _load_journeys(str(wh), (version.inode, version.mtime_ns, version.size), gate.current_scope(),
                   tuple(sel["cities"]), sel["day"])
ui.missing_tables_note(j["missing"])
journeys_ui.funnels(j, grain)
journeys_ui.next_services(j)

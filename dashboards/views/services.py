"""Services: connected vs active services, top and failing services, by department and category."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from citycloud.dashboards import fmt, ui

st.title("服务 Services")
sel = ui.selection()
WINDOWS = {1: "当日", 7: "近 7 天", 30: "近 30 天"}
top = st.container(horizontal=True, vertical_alignment="bottom")
with top:
    window = st.segmented_control("统计窗口 Window", list(WINDOWS), default=7, format_func=WINDOWS.get,
                                  key="svc_window", required=True) or 7
    threshold = st.slider("失败服务：成功率低于 Failing below", 0.5, 1.0, 0.9, 0.01, format="%.2f", key="svc_thr",
                          width=320)
end = sel["day"]
start = max(sel["first_day"], end - dt.timedelta(days=window - 1))
cities = tuple(sel["cities"])
multi = len(cities) > 1
trend = ui.load("load_trends", cities, max(sel["first_day"], end - dt.timedelta(days=29)), end)
svc = ui.load("load_services", cities, start, end)
ui.missing_tables_note(svc["missing"])
st.caption(f"{fmt.city_label(sel['city'])} · {fmt.fmt_date(start)} 至 {fmt.fmt_date(end)}")

# connected vs active
if trend is not None and not trend.empty:
    last = trend[trend["kpi_date"] == trend["kpi_date"].max()]
    services = svc.get("services")
    m = st.columns(5)
    m[0].metric(f"{fmt.kpi_label('connected_services')}（期末）", fmt.fmt_int(last["connected_services"].sum()), border=True)
    m[1].metric(f"{fmt.kpi_label('active_services')}（当日）", fmt.fmt_int(last["active_services"].sum()), border=True)
    if services is not None:
        tot = services["total_accesses"].sum()
        ok = services["successful_accesses"].sum()
        m[2].metric(f"有访问服务（{WINDOWS[window]}）", fmt.fmt_int((services["successful_accesses"] > 0).sum()),
                    border=True)
        m[3].metric(f"访问（{WINDOWS[window]}）", fmt.fmt_int(tot), border=True)
        m[4].metric(f"成功率（{WINDOWS[window]}）", fmt.fmt_pct(ok / tot if tot else None), border=True)
    long = trend.melt(id_vars=["kpi_date", "city_code"], value_vars=["connected_services", "active_services"],
                      var_name="kpi", value_name="value")
    long["指标"] = long["kpi"].map(fmt.KPI_LABELS)
    long["城市"] = long["city_code"].map(fmt.city_label)
    st.markdown("**接入与活跃服务 · Connected vs active services**（近 30 天）")
    if multi:
        ui.line_chart(long, "kpi_date", "value", "城市", x_title="日期", y_title="服务数（个）", color_title="城市",
                      dash="指标")
    else:
        ui.line_chart(long, "kpi_date", "value", "指标", x_title="日期", y_title="服务数（个）", color_title="指标")

services = svc.get("services")
if services is None:
    st.info("快照中没有 `marts.service_daily`。 Run `citycloud run` first.")
    st.stop()
if services.empty:
    st.info("所选窗口内没有服务访问记录。 No service accesses in the window.")
    st.stop()

services = services.copy()
services["城市"] = services["city_code"].map(fmt.city_name)


def service_table(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "服务名称": frame["service_name"],
        "服务编码": frame["service_id"],
        "部门": frame["department"],
        "类别": frame["category"],
        fmt.kpi_label("total_accesses"): frame["total_accesses"].map(fmt.fmt_int),
        "失败次数": frame["failed_accesses"].map(fmt.fmt_int),
        "成功率": frame["success_rate"].map(fmt.fmt_pct),
        "日均用户": frame["avg_daily_users"].map(lambda v: fmt.fmt_num(v, 1)),
    })
    if multi:
        out.insert(0, "城市", frame["城市"].values)
    return out


st.markdown(f"**访问量前 10 的服务 · Top services**（{WINDOWS[window]}）")
ui.table(service_table(services.sort_values(["total_accesses", "service_id"], ascending=[False, True]).head(10)))
st.markdown(f"**失败服务 · Failing services**（成功率低于 {threshold:.0%}、访问至少 5 次，按失败次数）")
failing = services[(services["success_rate"] < threshold) & (services["total_accesses"] >= 5)]
if failing.empty:
    st.success(f"没有成功率低于 {threshold:.0%} 的服务。", icon=":material/check_circle:")
else:
    ui.table(service_table(failing.sort_values(["failed_accesses", "service_id"], ascending=[False, True]).head(10)))


TOP_GROUPS = 10  # departments / categories drawn by name; the rest are a note, never a bar on the same scale


def grouped(keys: list[str]) -> pd.DataFrame:
    """Services, accesses and success per group of `keys`, busiest first."""
    g = services.groupby(keys, as_index=False).agg(
        services=("service_id", "nunique"),
        active=("active_days", lambda s: int((s > 0).sum())),
        total=("total_accesses", "sum"),
        ok=("successful_accesses", "sum"),
    )
    g["rate"] = (g["ok"] / g["total"]).where(g["total"] > 0)
    return g.sort_values(["total", *keys], ascending=[False, *[True] * len(keys)], kind="stable")


def group_table(g: pd.DataFrame, keys: list[str], labels: list[str], rest: pd.DataFrame) -> pd.DataFrame:
    """The named groups, then one line for the rest (their sum, in the table only)."""
    # a fresh 0..n-1 index: the rest's line is appended at n, never over a group's row whose
    # index (from the sort) happens to be n
    out = pd.DataFrame({label: g[key].to_numpy() for key, label in zip(keys, labels)})
    if len(rest):
        out.loc[len(out)] = [f"其余 {len(rest)} 个 (rest)", *[""] * (len(keys) - 1)]
        g = pd.concat([g, pd.DataFrame([{"services": rest["services"].sum(), "active": rest["active"].sum(),
                                         "total": rest["total"].sum(), "ok": rest["ok"].sum()}])])
        g["rate"] = (g["ok"] / g["total"]).where(g["total"] > 0)
    out["服务数"] = g["services"].map(fmt.fmt_int).values
    out["有成功访问的服务"] = g["active"].map(fmt.fmt_int).values
    out[fmt.kpi_label("total_accesses")] = g["total"].map(fmt.fmt_int).values
    out["成功率"] = g["rate"].map(fmt.fmt_pct).values
    return out


def rest_note(rest: pd.DataFrame, noun: str) -> None:
    if len(rest):
        total = services["total_accesses"].sum()
        share = fmt.fmt_pct(rest["total"].sum() / total if total else None, 1)
        st.caption(f"另有 {len(rest)} 个{noun}共 {fmt.fmt_int(rest['total'].sum())} 次访问（占 {share}），"
                   f"未画入图中（见表格末行）。")


# A department is a city's: 市公安局 of 长沙 and of 海口 are two. A category is shared by the cities.
for column, label, title in (("department", "部门", "按部门 · By department"), ("category", "类别", "按类别 · By category")):
    st.markdown(f"**{title}**（{WINDOWS[window]}；访问量前 {TOP_GROUPS} 个）")
    keys, labels = (["城市", column], ["城市", label]) if column == "department" else ([column], [label])
    g = grouped(keys)
    top, rest = g.head(TOP_GROUPS), g.iloc[TOP_GROUPS:]
    c1, c2 = st.columns([2, 3])
    with c1:
        if column == "department":
            bars = top.assign(**{label: top[column] + ("（" + top["城市"] + "）" if multi else "")})
            ui.bar_chart(bars, "total", label, sort=list(bars[label]),
                         x_title=f"{fmt.kpi_label('total_accesses')}（次）", y_title=label)
        else:  # several cities: each category's bar split by city
            split = grouped([column, "城市"])
            bars = split[split[column].isin(top[column])].rename(columns={column: label})
            ui.bar_chart(bars, "total", label, sort=list(top[column]),
                         x_title=f"{fmt.kpi_label('total_accesses')}（次）", y_title=label,
                         color="城市" if multi else None, color_title="城市")
        rest_note(rest, label)
    with c2:
        ui.table(group_table(top, keys, labels, rest))

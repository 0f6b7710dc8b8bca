"""Settlement: monthly KPIs against each contract's targets and tiers; statement versions."""
from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

import pandas as pd
import streamlit as st

from dashboards import data, fmt, ui

st.title("结算 Settlement")
sel = ui.selection()
cities = tuple(sel["cities"])
d = ui.load("load_settlement", cities)
ui.missing_tables_note(d["missing"])
monthly = d.get("monthly")
statements = d.get("statements")
lines = d.get("lines")
contracts, problem = data.load_contracts(ui.contracts_path())

months: set[dt.date] = set()
if monthly is not None:
    months |= set(monthly["month"])
if statements is not None:
    months |= set(statements["month"])
if not months:
    st.info("快照中还没有月度指标 (no monthly KPIs yet): run `citycloud run` first.")
    st.stop()
last_day = {r.city_code: fmt.to_date(r.last_day) for r in d["last_day"].itertuples()} if d.get("last_day") is not None else {}


def month_end(m: dt.date) -> dt.date:
    return m.replace(day=calendar.monthrange(m.year, m.month)[1])


ordered = sorted(months, reverse=True)
ended = [m for m in ordered if last_day and month_end(m) <= max(last_day.values())]
default = ended[0] if ended else ordered[0]
month = st.selectbox("结算月份 Month", ordered, index=ordered.index(default), format_func=fmt.fmt_month,
                     key="settle_month", width=260)
if problem:
    st.caption(f"合同条款 (contract terms): {problem} — 目标与档位来自结算单。")

for city in cities:
    st.subheader(fmt.city_label(city))
    row = None
    if monthly is not None:
        match = monthly[(monthly["city_code"] == city) & (monthly["month"] == month)]
        row = None if match.empty else match.iloc[0].to_dict()
    if city in last_day and month_end(month) > last_day[city]:
        st.warning(f"{fmt.fmt_month(month)} 尚未结束或数据不全（数据截至 {fmt.fmt_date(last_day[city])}），指标为临时值。",
                   icon="🕒")
    if row is None:
        st.caption(f"{fmt.fmt_month(month)} 无月度指标。")
    city_contracts = [c for c in contracts if c["city_code"] == city and data.contract_covers(c, month)]
    stmt_ids = set()
    if statements is not None:
        stmt_ids = set(statements[(statements["city_code"] == city) & (statements["month"] == month)]["contract_id"])
    ids = [c["contract_id"] for c in city_contracts] + sorted(stmt_ids - {c["contract_id"] for c in city_contracts})
    if not ids:
        st.caption("本月没有覆盖该城市的合同。 No contract covers this city and month.")
    for cid in ids:
        contract = next((c for c in city_contracts if c["contract_id"] == cid), None)
        with st.container(border=True):
            operator = contract.get("operator", "") if contract else ""
            st.markdown(f"**合同 {cid}** · {operator}")
            st_rows = None
            if statements is not None:
                st_rows = statements[(statements["contract_id"] == cid) & (statements["month"] == month)]
                st_rows = st_rows.sort_values("version")
            cols = st.columns(4)
            if contract:
                cols[0].metric("月费（全额）", fmt.fmt_money(contract.get("monthly_fee_cny")), border=True)
            if contract and row is not None:
                est_lines, payment = data.estimate_settlement(contract, row)
                cols[1].metric("按当前指标预估支付", fmt.fmt_money(payment), border=True,
                               help="按合同条款与当前月度指标计算，仅供参考；以结算单为准。")
            if st_rows is not None and not st_rows.empty:
                latest = st_rows.iloc[-1]
                cols[2].metric(f"结算单 v{latest['version']}（{fmt.STATUS_LABELS.get(latest['status'], latest['status'])}）",
                               fmt.fmt_money(latest["payment_cny"]), border=True)
                cols[3].metric("结算时间", fmt.fmt_ts(latest["computed_at"])[:10], border=True,
                               help=f"{fmt.fmt_ts(latest['computed_at'])}，输入指纹 {str(latest['input_fingerprint'])[:12]}")
            else:
                cols[2].metric("结算单", "尚未结算", border=True, help="run `citycloud settle --month YYYY-MM`")

            left, right = st.columns([3, 2])
            with left:
                st.markdown("**指标达成 · Attainment**")
                if contract and row is not None:
                    ui.table(pd.DataFrame({
                        "指标": est_lines["kpi"].map(lambda k: fmt.KPI_LABELS.get(k, k)),
                        "实际": [fmt.fmt_kpi(k, v) for k, v in zip(est_lines["kpi"], est_lines["actual"])],
                        "目标": [fmt.fmt_kpi(k, v) for k, v in zip(est_lines["kpi"], est_lines["target"])],
                        "达成率": est_lines["attainment"].map(fmt.fmt_pct),
                        "权重": est_lines["weight"].map(lambda w: f"{Decimal(w):.2f}"),
                        "档位系数": est_lines["factor"].map(lambda f: f"{Decimal(f):.2f}"),
                    }))
                elif lines is not None and st_rows is not None and not st_rows.empty:
                    v = st_rows.iloc[-1]["version"]
                    mine = lines[(lines["contract_id"] == cid) & (lines["month"] == month) & (lines["version"] == v)]
                    ui.table(pd.DataFrame({
                        "指标": mine["kpi"].map(lambda k: fmt.KPI_LABELS.get(k, k)),
                        "实际": [fmt.fmt_kpi(k, x) for k, x in zip(mine["kpi"], mine["actual"])],
                        "目标": [fmt.fmt_kpi(k, x) for k, x in zip(mine["kpi"], mine["target"])],
                        "达成率": mine["attainment"].map(fmt.fmt_pct),
                        "权重": mine["weight"], "档位系数": mine["factor"],
                    }))
                else:
                    st.caption("无数据。")
            with right:
                st.markdown("**档位 · Tiers**")
                if contract:
                    tiers = sorted(contract.get("tiers") or [], key=lambda t: -float(t["min_attainment"]))
                    ui.table(pd.DataFrame({
                        "达成率不低于": [fmt.fmt_pct(t["min_attainment"], 0) for t in tiers],
                        "支付系数": [f"{Decimal(str(t['factor'])):.2f}" for t in tiers],
                    }))
                else:
                    st.caption("合同文件中没有该合同。")

            st.markdown("**结算单版本 · Statement versions**")
            if statements is None:
                st.caption("快照中还没有结算单表（`marts.settlement_statements`）：run `citycloud settle` first.")
            elif st_rows.empty:
                st.caption("本月尚未结算。 Not settled yet: `citycloud settle --month "
                           f"{month:%Y-%m}`.")
            else:
                last_final = None
                vrows = []
                for r in st_rows.itertuples():
                    diff = fmt.MISSING
                    if r.status == "restatement" and last_final is not None:
                        diff = fmt.fmt_signed_money(Decimal(r.payment_cny) - Decimal(last_final))
                    if r.status in ("final", "restatement"):
                        last_final = r.payment_cny
                    vrows.append({
                        "版本": f"v{r.version}",
                        "状态": fmt.STATUS_LABELS.get(r.status, r.status),
                        "支付金额": fmt.fmt_money(r.payment_cny),
                        "较上一最终版": diff,
                        "计算时间": fmt.fmt_ts(r.computed_at),
                        "输入指纹": str(r.input_fingerprint)[:12],
                    })
                ui.table(pd.DataFrame(vrows))
                if lines is not None and len(st_rows) > 1:
                    with st.expander("各版本指标明细 · Lines per version"):
                        mine = lines[(lines["contract_id"] == cid) & (lines["month"] == month)]
                        ui.table(pd.DataFrame({
                            "版本": mine["version"].map(lambda v: f"v{v}"),
                            "指标": mine["kpi"].map(lambda k: fmt.KPI_LABELS.get(k, k)),
                            "实际": [fmt.fmt_kpi(k, x) for k, x in zip(mine["kpi"], mine["actual"])],
                            "达成率": mine["attainment"].map(fmt.fmt_pct),
                            "档位系数": mine["factor"],
                        }))

    if monthly is not None:
        mine = monthly[monthly["city_code"] == city].sort_values("month", ascending=False)
        if not mine.empty:
            with st.expander(f"{fmt.city_name(city)} 月度指标 · Monthly KPIs"):
                ui.table(pd.DataFrame({
                    "月份": mine["month"].map(fmt.fmt_month),
                    "接入服务数": mine["connected_services"].map(fmt.fmt_int),
                    "注册用户数": mine["registered_users"].map(fmt.fmt_int),
                    "月活 MAU": mine["mau"].map(fmt.fmt_int),
                    "活跃率": mine["activity_rate"].map(fmt.fmt_pct),
                    "满意度": mine["satisfaction_rate"].map(fmt.fmt_pct),
                    "新增注册": mine["new_registrations"].map(fmt.fmt_int),
                    "访问次数": mine["total_accesses"].map(fmt.fmt_int),
                }))

"""Settlement: what `citycloud settle` recorded (marts.settlement_statements / _lines) and the
monthly KPIs. Nothing is recomputed here: payments, attainments and factors are the settled
figures, tiers the terms the statement was settled with."""
from __future__ import annotations

import calendar
import datetime as dt
import json
from decimal import Decimal

import pandas as pd
import streamlit as st

from citycloud.dashboards import fmt, ui

st.title("结算 Settlement")
sel = ui.selection()
cities = tuple(sel["cities"])
d = ui.load("load_settlement", cities)
ui.missing_tables_note(d["missing"])
monthly = d.get("monthly")
statements = d.get("statements")
lines = d.get("lines")

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


def terms_of(statement) -> dict:
    try:
        return json.loads(statement["contract_terms"]) if statement.get("contract_terms") else {}
    except (TypeError, ValueError):
        return {}


ordered = sorted(months, reverse=True)
ended = [m for m in ordered if last_day and month_end(m) <= max(last_day.values())]
default = ended[0] if ended else ordered[0]
month = st.selectbox("结算月份 Month", ordered, index=ordered.index(default), format_func=fmt.fmt_month,
                     key="settle_month", width=260)

def latest_statements(month: dt.date) -> pd.DataFrame:
    """The latest recorded version of each contract's statement for `month`."""
    if statements is None:
        return pd.DataFrame()
    rows = statements[statements["month"] == month].sort_values("version")
    return rows.groupby("contract_id", as_index=False).tail(1).sort_values(["city_code", "contract_id"])


def overview(month: dt.date) -> None:
    """One line per contract and the total across them: the recorded payments, summed (never
    re-derived), in full (a table wraps, a metric card would cut ¥1,250,00… off)."""
    latest = latest_statements(month)
    if latest.empty:
        return
    st.markdown(f"**{fmt.fmt_month(month)} 各合同结算 · Statements of the month**（最新版本）")
    rows = [{
        "合同": r.contract_id, "城市": fmt.city_label(r.city_code), "运营方": terms_of(r._asdict()).get("operator", ""),
        "版本": f"v{r.version}（{fmt.STATUS_LABELS.get(r.status, r.status)}）",
        "月费（全额）": fmt.fmt_money(r.monthly_fee_cny), "结算金额": fmt.fmt_money(r.payment_cny),
    } for r in latest.itertuples(index=False)]
    rows.append({"合同": f"合计 Total（{len(latest)} 个合同）", "城市": "", "运营方": "", "版本": "",
                 "月费（全额）": fmt.fmt_money(sum(Decimal(v) for v in latest["monthly_fee_cny"])),
                 "结算金额": fmt.fmt_money(sum(Decimal(v) for v in latest["payment_cny"]))})
    ui.table(pd.DataFrame(rows))


overview(month)
for city in cities:
    st.subheader(fmt.city_label(city))
    if city in last_day and month_end(month) > last_day[city]:
        st.warning(f"{fmt.fmt_month(month)} 尚未结束或数据不全（数据截至 {fmt.fmt_date(last_day[city])}），不能结算。",
                   icon="🕒")
    st_city = None
    if statements is not None:
        st_city = statements[(statements["city_code"] == city) & (statements["month"] == month)]
    if statements is None:
        st.caption("快照中还没有结算单表（`marts.settlement_statements`）：run `citycloud settle` first.")
    elif st_city.empty:
        st.caption(f"本月尚未结算。 Not settled yet: `citycloud settle --month {month:%Y-%m}`.")
    for cid in sorted(set(st_city["contract_id"])) if st_city is not None else []:
        st_rows = st_city[st_city["contract_id"] == cid].sort_values("version")
        latest = st_rows.iloc[-1]
        terms = terms_of(latest)
        with st.container(border=True):
            st.markdown(f"**合同 {cid}**" + (f" · {terms['operator']}" if terms.get("operator") else ""))
            # a table, not metric cards: amounts in the millions are shown in full at any width
            ui.table(pd.DataFrame([{
                "月费（全额）": fmt.fmt_money(latest["monthly_fee_cny"]),
                f"结算单 v{latest['version']}（{fmt.STATUS_LABELS.get(latest['status'], latest['status'])}）":
                    fmt.fmt_money(latest["payment_cny"]),
                "结算时间": fmt.fmt_ts(latest["computed_at"]),
                "输入指纹": str(latest["input_fingerprint"])[:12],
            }]))

            left, right = st.columns([3, 2])
            with left:
                st.markdown("**指标达成 · Attainment**")
                mine = None if lines is None else lines[
                    (lines["contract_id"] == cid) & (lines["month"] == month) & (lines["version"] == latest["version"])]
                if mine is None or mine.empty:
                    st.caption("无数据。")
                else:
                    ui.table(pd.DataFrame({
                        "指标": mine["kpi"].map(fmt.kpi_label),
                        "实际": [fmt.fmt_kpi(k, x) for k, x in zip(mine["kpi"], mine["actual"])],
                        "目标": [fmt.fmt_kpi(k, x) for k, x in zip(mine["kpi"], mine["target"])],
                        "达成率": mine["attainment"].map(fmt.fmt_pct),
                        "权重": mine["weight"].map(fmt.fmt_weight), "档位系数": mine["factor"].map(fmt.fmt_factor),
                    }))
            with right:
                st.markdown("**档位 · Tiers**（结算所用条款）")
                tiers = sorted(terms.get("tiers") or [], key=lambda t: -Decimal(str(t["min_attainment"])))
                if tiers:
                    ui.table(pd.DataFrame({
                        "达成率不低于": [fmt.fmt_pct(t["min_attainment"], 0) for t in tiers],
                        "支付系数": [fmt.fmt_factor(t["factor"]) for t in tiers],
                    }))
                else:
                    st.caption("结算单未记录档位。")

            st.markdown("**结算单版本 · Statement versions**")
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
                        "指标": mine["kpi"].map(fmt.kpi_label),
                        "实际": [fmt.fmt_kpi(k, x) for k, x in zip(mine["kpi"], mine["actual"])],
                        "达成率": mine["attainment"].map(fmt.fmt_pct),
                        "档位系数": mine["factor"].map(fmt.fmt_factor),
                    }))

    if monthly is not None:
        mine = monthly[monthly["city_code"] == city].sort_values("month", ascending=False)
        if not mine.empty:
            with st.expander(f"{fmt.city_name(city)} 月度指标 · Monthly KPIs"):
                table = {"月份": mine["month"].map(fmt.fmt_month)}
                for kpi in [c for c in mine.columns if c not in ("city_code", "month")]:
                    table[fmt.kpi_label(kpi)] = mine[kpi].map(lambda v, k=kpi: fmt.fmt_kpi(k, v))
                ui.table(pd.DataFrame(table))

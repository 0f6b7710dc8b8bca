"""Today: per city, the latest day's KPIs, what moved, and whether the figures can be trusted."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from citycloud.config import Settings

from citycloud.dashboards import as_text, data, fmt, moves, ui

st.title("今日概览 Today")
sel = ui.selection()
d = ui.load("load_today", tuple(sel["cities"]), sel["day"])
kpis: pd.DataFrame = d["kpis"]

DEADLINE = Settings().late_after_hours
LATE_RULE = "迟到 = 在更晚交付日期的数据入库之后才到达" + (f"，或入库晚于交付日零点后 {DEADLINE:g} 小时" if DEADLINE is not None else "")
# The headline cards: the metrics with config.meta.headline, in that order (the registry).
HEADLINE = fmt.registry().headline()[:6]
SUMMARY = HEADLINE[:5]  # the columns of the all-cities summary table


def build_banner(builds: pd.DataFrame | None) -> None:
    if builds is None or builds.empty:
        return
    last = builds.iloc[0]
    status = str(last["status"])
    when = fmt.fmt_ts(last["finished_at"] if not fmt.is_missing(last["finished_at"]) else last["started_at"])
    msg = "" if fmt.is_missing(last["message"]) else f"：{str(last['message'])[:200]}"
    if status == "published":
        st.success(f"最近一次构建 #{last['build_id']} 已发布（{when}）。 Latest build published.", icon="✅")
    else:
        st.error(
            f"最近一次构建 #{last['build_id']} 状态 {status}（{when}）{msg}。看板显示的是上一次成功发布的数据。 "
            "The latest build was not published: figures below are from the last published build.",
            icon="⛔",
        )


def quality_badge(q: dict) -> str:
    if not q["available"]:
        return "❔ 无质量检查结果"
    if q["blocking"]:
        return f"⛔ {q['blocking']} 项阻断失败"
    if q["warnings"]:
        return f"⚠️ {q['warnings']} 项警告"
    return f"✅ {q['checks']} 项检查全部通过" if q["checks"] else "❔ 当日无检查"


def rejects_on(frame: pd.DataFrame | None, city: str, day: dt.date, count_rows: bool = False) -> int | None:
    """Rejected rows (the `rows` column summed) or files (`count_rows`) of one delivery day."""
    if frame is None:
        return None
    f = frame[(frame["city_code"] == city) & (frame["dt"] == day)]
    return int(len(f)) if count_rows else int(f["rows"].sum())


def delivery_problems(status: pd.DataFrame | None, day: dt.date) -> pd.DataFrame:
    if status is None:
        return pd.DataFrame()
    return status[(status["dt"] == day) & status["status"].isin(list(data.DELIVERY_PROBLEMS))]


def deliveries_of(city: str, as_of: dt.date) -> pd.DataFrame | None:
    return data.delivery_status(d.get("deliveries"), city, as_of, landing_issues=d.get("landing_issues"))


def problem_text(r) -> str:
    """`ratings 未完成（无 _SUCCESS）：430100/ratings/dt=2026-03-03` (the folder when one was delivered)."""
    folder = f"：{r.folder}" if isinstance(r.folder, str) else ""
    return f"{r.source} {data.DELIVERY_PROBLEMS[r.status]}{folder}"


def summary_row(city: str) -> dict:
    today = data.kpi_values(kpis, city, 0)
    if today is None:
        return {"城市": fmt.city_label(city), "日期": "无数据"}
    as_of = today["as_of"]
    q = data.quality_summary(d.get("quality"), city, as_of)
    status = deliveries_of(city, as_of)
    problems = delivery_problems(status, as_of)
    rej_rows = rejects_on(d.get("rejected_rows"), city, as_of)
    rej_files = rejects_on(d.get("rejected_files"), city, as_of, count_rows=True)
    return {
        "城市": fmt.city_label(city),
        "日期": fmt.fmt_day(as_of),
        **{fmt.kpi_label(k): fmt.fmt_kpi(k, today[k]) for k in SUMMARY},
        "数据质量": quality_badge(q),
        "拒收行/文件": "—" if rej_rows is None else f"{rej_rows:,} / {rej_files or 0:,}",
        "交付": "—" if status is None else ("✅ 齐全" if problems.empty else "、".join(
            f"{data.delivery_symbol(r.status)} {problem_text(r)}" for r in problems.itertuples())),
    }


def city_detail(city: str) -> None:
    as_of, table = data.comparison_table(kpis, city)
    if as_of is None:
        st.info(f"{fmt.city_label(city)} 在 {fmt.fmt_date(sel['day'])} 及之前没有数据。 No data up to this date.")
        return
    st.subheader(f"{fmt.city_label(city)} · {fmt.fmt_day(as_of)}")
    if as_of != sel["day"]:
        st.caption(f"所选日期 {fmt.fmt_date(sel['day'])} 无数据，显示此前最近一天。")
    q = data.quality_summary(d.get("quality"), city, as_of)
    status = deliveries_of(city, as_of)

    # First whether the figures can be trusted, then the figures, then the evidence behind them.
    trust_badges(city, as_of, q, status)
    headline_metrics(city, as_of)
    all_kpis_and_movers(city, table, status)
    quality_section(q)
    st.markdown("**拒收 · Rejected rows and files**（按交付日期 dt）")
    rcol, fcol = st.columns(2)
    with rcol:
        rejected_rows_section(city, as_of)
    with fcol:
        rejected_files_section(city)
    deliveries_section(status)


def trust_badges(city: str, as_of: dt.date, q: dict, status: pd.DataFrame | None) -> None:
    """One row of badges: data quality, the day's rejects, the day's deliveries."""
    problems = delivery_problems(status, as_of)
    rej_rows = rejects_on(d.get("rejected_rows"), city, as_of)
    rej_files = rejects_on(d.get("rejected_files"), city, as_of, count_rows=True)
    trust = st.container(horizontal=True)
    with trust:
        color = "red" if q["blocking"] else ("orange" if q["warnings"] or not q["available"] else "green")
        st.badge("数据质量 " + quality_badge(q), color=color)
        if rej_rows is not None:
            st.badge(f"当日拒收 {rej_rows:,} 行 / {rej_files or 0:,} 个文件", color="orange" if rej_rows or rej_files else "green")
        if status is not None:
            if problems.empty:
                st.badge("当日交付齐全", color="green")
            for r in problems.itertuples():
                st.badge(f"{fmt.SOURCE_LABELS[r.source].split()[0]} {data.DELIVERY_PROBLEMS[r.status]}",
                         color="orange" if r.status == "late" else "red")


def headline_metrics(city: str, as_of: dt.date) -> None:
    """The headline KPIs: the day's value, its change from the day before (week before in the help)."""
    today = data.kpi_values(kpis, city, 0)
    prev = data.kpi_values(kpis, city, 1)
    week = data.kpi_values(kpis, city, 7)
    cols = st.columns(3) + st.columns(3)
    for col, kpi in zip(cols, HEADLINE):
        value = today.get(kpi)
        delta = fmt.fmt_delta(kpi, value, prev.get(kpi)) if prev else fmt.MISSING
        wow = fmt.fmt_delta(kpi, value, week.get(kpi)) if week else fmt.MISSING
        flat = delta in (fmt.MISSING, "持平")
        col.metric(
            fmt.kpi_label(kpi), fmt.fmt_kpi(kpi, value),
            delta=None if delta == fmt.MISSING else delta,
            delta_color="off" if flat else "normal", delta_arrow="off" if flat else "auto",
            delta_description="较前一日", border=True,
            help=f"较上周同日（{fmt.fmt_date(as_of - dt.timedelta(days=7))}）：{wow}",
        )


def all_kpis_and_movers(city: str, table: pd.DataFrame, status: pd.DataFrame | None) -> None:
    """Every KPI's comparison table, and beside it the KPIs that moved with their likely causes."""
    moved = data.movers(kpis, city)
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**全部指标 · All KPIs**（较前一日 / 较上周同日）")
        ui.table(table[["指标", "当日", "较前一日", "较上周同日", "前一日", "上周同日"]])
    with right:
        st.markdown("**变化与原因 · What moved**")
        if not moved:
            st.caption("与前一日和上周同日相比，没有超过 10%（比率：5 个百分点且超出偶然波动）的变化。"
                       " No KPI moved by more than 10% (rates: 5 points, beyond chance).")
        for m in moved:
            # only evidence that can carry the movement; none found: the movement alone
            why = moves.explain(m, kpis, city, status=status, rejected_rows=d.get("rejected_rows"),
                                rejected_files=d.get("rejected_files"), service_days=d.get("service_days"))
            arrow = "🔺" if m["change"] > 0 else "🔻"
            # service names in `why` are delivered text: shown as written, never as markdown
            st.markdown(f"- {arrow} **{as_text.markdown_literal(m['text'])}**"
                        + (" — " + "；".join(as_text.markdown_literal(w) for w in why) if why else ""))


def quality_section(q: dict) -> None:
    """The data-quality checks that failed for the day shown, or how many passed."""
    qcol = st.container()
    with qcol:
        st.markdown(f"**数据质量 · Data quality** — {quality_badge(q)}")
        if not q["available"]:
            st.caption("快照中没有 `audit.quality_results`（检查尚未运行）。")
        elif not q["failures"].empty:
            f = q["failures"]
            ui.table(pd.DataFrame({
                "级别": f["severity"].map(lambda s: fmt.SEVERITY_LABELS.get(s, s)),
                "检查套件": f["suite"],
                "检查项": f["expectation"],
                "日期": f["day"].map(lambda x: "全部" if fmt.is_missing(x) else fmt.fmt_date(x)),
                "观测值": f["observed_value"].fillna("—"),
                "说明": f["details"].fillna("").map(lambda s: s[:160]),
            }))
        else:
            st.caption(f"{q['passed']:,} 项检查通过。")


def rejected_rows_section(city: str, as_of: dt.date) -> None:
    """The day's rejected rows by source and reason (with the week's total), and sample rows."""
    rr = d.get("rejected_rows")
    if rr is None:
        st.caption("快照中没有 `audit.rejected_rows`。")
    else:
        mine = rr[rr["city_code"] == city]
        day_rows = mine[mine["dt"] == as_of]
        week_total = int(mine["rows"].sum())
        st.caption(f"当日 {int(day_rows['rows'].sum()):,} 行；近 7 天 {week_total:,} 行。")
        if not day_rows.empty:
            ui.table(pd.DataFrame({"来源": day_rows["source"], "原因": day_rows["reason"],
                                   "行数": day_rows["rows"].map(fmt.fmt_int)}))
    samples = d.get("rejected_samples")
    if samples is not None:
        mine = samples[(samples["city_code"] == city) & (samples["dt"] == as_of)]
        if not mine.empty:
            with st.expander(f"当日拒收行示例（{len(mine)} 行，个人信息已脱敏）"):
                st.dataframe(mine.drop(columns=["city_code"]), hide_index=True)


def rejected_files_section(city: str) -> None:
    """The week's rejected files of the city."""
    rf = d.get("rejected_files")
    if rf is None:
        st.caption("快照中没有 `audit.rejected_files`。")
    else:
        mine = rf[rf["city_code"] == city]
        if mine.empty:
            st.caption("近 7 天没有拒收文件。")
        else:
            st.caption(f"近 7 天拒收文件 {len(mine)} 个：")
            ui.table(pd.DataFrame({"交付日期": mine["dt"].map(fmt.fmt_date), "来源": mine["source"],
                                   "文件": mine["file"], "原因": mine["reason"]}))


def deliveries_section(status: pd.DataFrame | None) -> None:
    """A source × day grid of the week's delivery status, and a warning per folder delivered but not read."""
    st.markdown(f"**交付 · Deliveries**（近 7 天，按交付日期 dt；{LATE_RULE}）")
    if status is None:
        st.caption("快照中没有 `audit.deliveries`。")
        return
    grid = status.copy()
    grid["cell"] = [
        data.DELIVERY_STATUS_LABELS[s] + ("" if fmt.is_missing(n) else f" {fmt.fmt_int(n)}")
        for s, n in zip(grid["status"], grid["rows_loaded"])
    ]
    grid["来源"] = grid["source"].map(fmt.SOURCE_LABELS)
    grid["day"] = grid["dt"].map(lambda x: x.strftime("%m-%d"))
    pivot = grid.pivot(index="来源", columns="day", values="cell")
    pivot = pivot[sorted(pivot.columns)]
    pivot = pivot.reindex([fmt.SOURCE_LABELS[s] for s in fmt.SOURCE_LABELS])
    ui.table(pivot.reset_index())
    st.caption("单元格：状态 + 入库行数。服务目录不是每天交付，缺少快照属正常。")
    waiting = status[status["folder"].notna()]
    for r in waiting.itertuples():
        st.warning(f"{fmt.fmt_date(r.dt)} {fmt.SOURCE_LABELS[r.source]} 已交付但{data.DELIVERY_PROBLEMS[r.status]}，"
                   f"未读取：`{r.folder}`。 Delivered but not read: "
                   f"{'no _SUCCESS yet' if r.status == 'incomplete' else '_SUCCESS without data files'}.",
                   icon="⚠️")


build_banner(d.get("builds"))
ui.missing_tables_note(d["missing"])
if kpis.empty:
    st.info("所选城市在所选日期及之前没有数据。 No data up to the chosen date.")
    st.stop()
cities = [c for c in sel["cities"] if c in set(kpis["city_code"])]
if sel["city"] is None:  # all cities: one summary line each, then the details per city
    st.markdown("#### 各城市 · All cities")
    ui.table(pd.DataFrame([summary_row(c) for c in sel["cities"]]))
if len(cities) > 1:
    tabs = st.tabs([fmt.city_label(c) for c in cities])
    for tab, city in zip(tabs, cities):
        with tab:
            city_detail(city)
else:
    city_detail(cities[0] if cities else sel["cities"][0])

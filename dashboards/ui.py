"""Streamlit side of the dashboard: settings, cached loads, the shared sidebar, chart helpers.

Loads are cached for a short time (TTL) and keyed by the snapshot file's identity (inode,
mtime, size), so a newly published snapshot shows on the next rerun while repeated reruns on
the same snapshot cost nothing. A load that fails while the snapshot is being replaced shows
the last state read (with a note), never a lock error; a missing snapshot shows what to run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from citycloud.config import Settings

from citycloud.dashboards import as_text, data, fmt, gate

CACHE_TTL_SECONDS = Settings().dashboard_ttl
ALL = "all"

_last_good: dict = {}
_last_good_lock = threading.Lock()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--warehouse")
    parser.add_argument("--contracts")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


def warehouse() -> Path:
    args = _args()
    if args.warehouse:
        return Path(args.warehouse).expanduser().resolve()
    return Settings().warehouse


def contracts_path() -> Path:
    args = _args()
    if args.contracts:
        return Path(args.contracts).expanduser()
    return Settings().contracts


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=256)
def _cached(warehouse_path: str, version: tuple, scope, loader: str, args: tuple):
    return data.run_load(warehouse_path, scope, getattr(data, loader), *args)


def missing_snapshot(path: Path) -> None:
    st.warning(
        f"尚未发布数据快照：`{path}` 不存在。\n\n"
        "No published snapshot yet: run `citycloud run` first "
        f"(`citycloud run --landing DIR --warehouse {warehouse()}`), then reload this page."
    )
    st.stop()


def current_snapshot() -> tuple[Path, data.SnapshotVersion]:
    """The warehouse and the version of its published snapshot; the page stops with a note when
    there is none yet."""
    wh = warehouse()
    version = data.snapshot_version(wh)
    if version is None:
        missing_snapshot(data.snapshot_path(wh))
    return wh, version


def load(loader: str, *args):
    """Run a `citycloud.dashboards.data.load_*` loader on the current snapshot (cached)."""
    wh, version = current_snapshot()
    scope = gate.current_scope()
    key = (str(wh), scope, loader, args)
    try:
        result = _cached(str(wh), (version.inode, version.mtime_ns, version.size), scope, loader, args)
    except data.SnapshotMissing as exc:
        missing_snapshot(exc.path)
    except Exception as exc:  # busy, replaced mid-read, lock: fall back to the last state read
        with _last_good_lock:
            previous = _last_good.get(key)
        if previous is not None:
            st.info("数据快照正在更新，显示上一次发布的数据。 The snapshot is being replaced: showing the last published state.")
            return previous
        if isinstance(exc, data.SnapshotBusy) or "lock" in str(exc).lower():
            st.info("数据快照正在更新，请稍后刷新。 The snapshot is being replaced: reload in a few seconds.")
            st.stop()
        st.error(f"读取数据快照失败 (could not read the snapshot): {type(exc).__name__}: {str(exc)[:300]}")
        st.stop()
    with _last_good_lock:
        _last_good[key] = result
    return result


# ---------------------------------------------------------------- sidebar / selection


def sidebar() -> dict:
    """City and date selectors (bound to the URL: ?city=430100&day=2026-03-03) and the
    snapshot's freshness. Returns the selection; pages read it with `selection()`."""
    wh = warehouse()
    version = data.snapshot_version(wh)
    with st.sidebar:
        st.markdown("### 🏙️ 市民云运营看板")
        if version is None:
            st.caption("尚无数据快照 (no snapshot)")
            sel = {"cities": [], "city": None, "day": None, "first_day": None, "last_day": None}
            st.session_state["_sel"] = sel
            return sel
    overview = load("load_overview")
    cities_df = overview["cities"]
    present = [] if cities_df is None else list(cities_df["city_code"])  # the scope's cities with data
    scope = gate.current_scope()
    known = present + [c for c in scope.cities if c not in present]
    options = ([ALL] if len(known) > 1 else []) + known
    wanted = st.query_params.get("city")
    if wanted and wanted != ALL and not scope.allows(wanted):  # a city outside the scope asked for by URL
        gate.deny("city", "query parameter city outside the scope")
    with st.sidebar:
        # selections live in the session and mirror the URL (?city=430100&day=2026-03-03)
        if "city" not in st.session_state:
            wanted = st.query_params.get("city", options[0])
            st.session_state["city"] = wanted if wanted in options else options[0]
        elif st.session_state["city"] not in options:
            st.session_state["city"] = options[0]
        city = st.selectbox(
            "城市 City",
            options,
            format_func=lambda c: "全部城市 All cities" if c == ALL else (
                fmt.city_label(c) + ("" if c in present else "（暂无数据）")),
            key="city",
        )
        if cities_df is not None and not cities_df.empty:
            first = min(pd.to_datetime(cities_df["first_day"]).dt.date)
            newest = max(pd.to_datetime(cities_df["last_day"]).dt.date)
            last = newest
            if city != ALL and city in present:
                row = cities_df[cities_df["city_code"] == city].iloc[0]
                last = pd.to_datetime(row["last_day"]).date()
            previous_default = st.session_state.get("_day_default")
            if "day" not in st.session_state:
                # a requested day outside the data is shown as the nearest day with data, and said so
                day, note = data.resolve_day(st.query_params.get("day"), first, newest, last)
                st.session_state["day"] = day
                st.session_state["_day_note"] = (day, note) if note else None
            elif st.session_state["day"] == previous_default:
                st.session_state["day"] = last  # follow the newest day unless the operator picked one
            if not isinstance(st.session_state["day"], dt.date) or not first <= st.session_state["day"] <= newest:
                st.session_state["day"] = last
            st.session_state["_day_default"] = last
            day = st.date_input("日期 Date", min_value=first, max_value=newest, key="day", format="YYYY-MM-DD")
            if isinstance(day, (tuple, list)):
                day = day[0] if day else last
            day = day or last
        else:
            first = last = day = None
        _sync_url(city, day, last)
        st.divider()
        st.caption(f"数据快照发布于 {fmt.fmt_ts(version.published_at)}（北京时间）")
        st.caption(f"快照 snapshot: `{Path(version.path).name}` · 缓存 {CACHE_TTL_SECONDS} 秒")
        if st.button("刷新数据 Refresh", width="stretch"):
            _cached.clear()
            st.rerun()
    cities = present if city == ALL else [city]
    sel = {"cities": cities, "city": None if city == ALL else city, "day": day, "first_day": first, "last_day": last,
           "present": present, "overview": overview}
    st.session_state["_sel"] = sel
    return sel


def _sync_url(city: str, day: dt.date | None, default_day: dt.date | None) -> None:
    wanted = {"city": None if city == ALL else city,
              "day": None if day is None or day == default_day else day.isoformat()}
    for name, value in wanted.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value


def selection() -> dict:
    sel = st.session_state.get("_sel")
    if sel is None:
        sel = sidebar()
    if sel.get("day") is None:
        wh = warehouse()
        if data.snapshot_version(wh) is None:
            missing_snapshot(data.snapshot_path(wh))
        st.info("数据快照中还没有每日指标 (marts.kpi_daily is empty): run `citycloud run` first.")
        st.stop()
    if not sel["cities"]:
        st.info(f"{fmt.city_label(sel['city'])} 暂无数据 (no data for this city in the snapshot).")
        st.stop()
    day_note = st.session_state.get("_day_note")
    if day_note and day_note[0] == sel["day"]:  # until another day is picked
        st.info(day_note[1], icon=":material/event_busy:")
    return sel


def missing_tables_note(missing: list[str]) -> None:
    if missing:
        st.caption("快照中尚无表 (not in the snapshot yet): " + ", ".join(f"`{t}`" for t in missing))


# ---------------------------------------------------------------- charts


def axis_format(kind: str) -> str:
    return ".1%" if kind == "rate" else ",.0f"


def legend() -> alt.Legend:
    """A legend under the chart that wraps into rows of three (a single row is cut off at the
    chart's edge after three cities) and never shortens a label."""
    return alt.Legend(orient="bottom", columns=LEGEND_COLUMNS, labelLimit=0, symbolLimit=0)


LEGEND_COLUMNS = 3
# Charts render as SVG: their text (legends, labels) is in the page, readable and testable.
SVG = {"embedOptions": {"renderer": "svg"}}


# Only a chart's width fits its column; its plot keeps the height asked for, and a legend under it
# adds to the page's height instead of squeezing the plot (five cities' legend left a 90 px plot
# whose y-axis title was cut off at both ends).
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")


def show(chart) -> None:
    """Draw an Altair chart as SVG, as wide as its column, its plot as tall as asked."""
    st.altair_chart(chart.properties(autosize=FIT_WIDTH, usermeta=SVG), width="stretch")


def line_chart(df: pd.DataFrame, x: str, y: str, color: str | None, *, x_title: str, y_title: str,
               kind: str = "count", color_title: str = "", height: int = 260, dash: str | None = None) -> None:
    if df is None or df.empty:
        st.caption("所选范围内无数据 (no data in the chosen range)")
        return
    enc = {
        "x": alt.X(f"{x}:T", title=x_title, axis=alt.Axis(format="%m-%d", labelAngle=0)),
        "y": alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=axis_format(kind)),
                   scale=alt.Scale(zero=kind != "rate")),
        "tooltip": [alt.Tooltip(f"{x}:T", title=x_title, format="%Y-%m-%d"),
                    alt.Tooltip(f"{y}:Q", title=y_title, format=axis_format(kind) if kind != "rate" else ".2%")],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color_title, legend=legend())
        enc["tooltip"].insert(0, alt.Tooltip(f"{color}:N", title=color_title))
    if dash:
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", title="", legend=legend())
    show(alt.Chart(df).mark_line(point=len(df) <= 62).encode(**enc).properties(height=height))


def bar_chart(df: pd.DataFrame, x: str, y: str, *, x_title: str, y_title: str, kind: str = "count",
              color: str | None = None, color_title: str = "", height: int | None = None,
              sort: list[str] | None = None) -> None:
    if df is None or df.empty:
        st.caption("无数据 (no data)")
        return
    enc = {
        "x": alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format=axis_format(kind))),
        "y": alt.Y(f"{y}:N", title=y_title, sort=sort or "-x", axis=alt.Axis(labelLimit=0)),  # names in full
        "tooltip": [alt.Tooltip(f"{y}:N", title=y_title),
                    alt.Tooltip(f"{x}:Q", title=x_title, format=axis_format(kind))],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color_title, legend=legend())
    show(alt.Chart(df).mark_bar().encode(**enc).properties(height=alt.Step(24) if height is None else height))


def table(df: pd.DataFrame) -> None:
    """A static HTML table (its text is in the page, formatted as given), every cell shown as
    text: never st.table, which renders the markdown of delivered names (as_text.py)."""
    if df is None or df.empty:
        st.caption("无记录 (none)")
        return
    st.html(as_text.html_table(df))


def day_range(sel: dict, default_days: int, key: str) -> tuple[dt.date, dt.date]:
    end = sel["day"]
    start = max(sel["first_day"], end - dt.timedelta(days=default_days - 1))
    picked = st.date_input(
        "日期范围 Date range", value=(start, end), min_value=sel["first_day"], max_value=sel["last_day"] or end,
        key=key, format="YYYY-MM-DD",
    )
    if isinstance(picked, (tuple, list)):
        if len(picked) == 2:
            return picked[0], picked[1]
        if len(picked) == 1:
            return picked[0], picked[0]
    return start, end

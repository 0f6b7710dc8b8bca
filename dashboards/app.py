"""Streamlit entry point: `streamlit run dashboards/app.py -- --warehouse FILE [--access FILE]`.

Started by `citycloud.dashboards.serve()` (the `citycloud dashboard` verb). Reads only the published
snapshot beside the warehouse (see dashboards/data.py), as the person's scope allows: `gate.gate()`
decides who is looking (login with --access, local mode without). Pages a role may not open are
not in its navigation; opened by URL they show "no access" and are logged as denied.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from citycloud.dashboards import gate, ui

HERE = Path(__file__).resolve().parent
VIEWS = HERE / "views"

st.set_page_config(page_title="市民云运营看板 citycloud", page_icon="🏙️", layout="wide",
                   initial_sidebar_state="expanded")

# page name (access.md's roles) -> file, title, icon, URL path
PAGES = {
    "today": ("today.py", "今日概览 Today", ":material/today:", None),
    "trends": ("trends.py", "趋势 Trends", ":material/trending_up:", "trends"),
    "services": ("services.py", "服务 Services", ":material/account_balance:", "services"),
    "settlement": ("settlement.py", "结算 Settlement", ":material/payments:", "settlement"),
    "users": ("users.py", "用户运营 Users", ":material/group:", "users"),
    "alerts": ("alerts.py", "告警 Alerts", ":material/notifications_active:", "alerts"),
    "scorecard": ("scorecard.py", "运营评价 Scorecard", ":material/grading:", "scorecard"),
    "reviews": ("reviews.py", "好差评 Reviews", ":material/reviews:", "reviews"),
    "access_log": ("access_log.py", "访问日志 Access log", ":material/policy:", "access_log"),
}

scope = gate.gate()


def _refused(name: str):
    def page() -> None:
        gate.deny(name, f"role {scope.role} may not open page {name}")
    page.__name__ = f"no_access_{name}"
    return page


pages, shown = [], []
for name, (file, title, icon, url_path) in PAGES.items():
    target = VIEWS / file if scope.may_open(name) else _refused(name)
    kwargs = {"url_path": url_path} if url_path else {"default": True}
    page = st.Page(target, title=title, icon=icon, **kwargs)
    pages.append(page)
    if scope.may_open(name):
        shown.append(page)
current = st.navigation(pages, position="hidden")  # the sidebar lists only the allowed pages
with st.sidebar:
    for page in shown:
        st.page_link(page)
name = next(n for n, p in zip(PAGES, pages) if p.title == current.title)
if scope.may_open(name):
    sel = ui.sidebar()
    gate.log_view(name, sel.get("cities") or scope.cities if name != "access_log" else ())
current.run()

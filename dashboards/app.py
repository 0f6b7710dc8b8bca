"""Streamlit entry point: `streamlit run dashboards/app.py -- --warehouse FILE`.

Started by `citycloud.dashboards.serve()` (the `citycloud dashboard` verb). Reads only the published
snapshot beside the warehouse (see dashboards/data.py).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from citycloud.dashboards import ui

HERE = Path(__file__).resolve().parent
VIEWS = HERE / "views"

st.set_page_config(page_title="市民云运营看板 citycloud", page_icon="🏙️", layout="wide",
                   initial_sidebar_state="expanded")

pages = [
    st.Page(VIEWS / "today.py", title="今日概览 Today", icon=":material/today:", default=True),
    st.Page(VIEWS / "trends.py", title="趋势 Trends", icon=":material/trending_up:", url_path="trends"),
    st.Page(VIEWS / "services.py", title="服务 Services", icon=":material/account_balance:", url_path="services"),
    st.Page(VIEWS / "settlement.py", title="结算 Settlement", icon=":material/payments:", url_path="settlement"),
    st.Page(VIEWS / "users.py", title="用户运营 Users", icon=":material/group:", url_path="users"),
    st.Page(VIEWS / "scorecard.py", title="运营评价 Scorecard", icon=":material/grading:", url_path="scorecard"),
]
page = st.navigation(pages, position="sidebar")
ui.sidebar()
page.run()

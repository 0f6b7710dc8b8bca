"""访问日志 Access log: the latest lines of the access log (the admin's page, access.md)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from citycloud.dashboards import gate, ui

SHOWN = 500

st.title("访问日志 Access log")
log = gate.access_log()
entries = log.read()
st.caption(f"`{log.path}` · {len(entries):,} 行，显示最近 {min(len(entries), SHOWN)} 行（最新在上）")
if not entries:
    st.caption("无记录 (none)")
    st.stop()
frame = pd.DataFrame(entries[-SHOWN:][::-1])
frame["cities"] = frame["cities"].map(lambda c: ", ".join(c or []))
ui.table(frame[["ts", "subject", "role", "surface", "action", "target", "cities", "detail"]].fillna("—"))

"""The operators' Streamlit dashboard (read-only: it reads the published snapshot only).

`serve(warehouse, port)` becomes `python -m streamlit run dashboards/app.py` (the process is
replaced, so stopping it stops the server); the `citycloud dashboard --warehouse FILE
[--port N]` verb calls it. See dashboards/launch.py.
"""
from __future__ import annotations

from citycloud.dashboards.launch import APP, check_warehouse, command, serve

__all__ = ["APP", "check_warehouse", "command", "serve"]

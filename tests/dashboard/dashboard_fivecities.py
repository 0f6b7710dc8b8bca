"""The hand-built warehouse (dashboard_handmade.py) grown to the demo's five cities, with what
made the pages unreadable there: hundreds of departments, amounts in the millions, a folder
delivered without `_SUCCESS`.

Added on top of the hand-built one: Chengdu, Zhumadian and Haikou (Shanghai's days, scaled);
60 departments of two services each per city (300 in all; one of each city's is named
市公安局, as in every city); a Shanghai statement of
¥1,250,000.00 for February; Changsha's ratings of the last day delivered without `_SUCCESS`
(in audit.landing_issues, not in audit.deliveries).
"""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb

import dashboard_handmade as handmade
from citycloud.config import Settings
from citycloud.publish import export_snapshot

NEW_CITIES = {"510100": 0.8, "411700": 0.3, "460100": 0.1}  # scale of Shanghai's figures
CITIES = ("310000", "510100", "430100", "411700", "460100")
DEPARTMENTS_PER_CITY = 60
SHANGHAI_PAYMENT = "1250000.00"
SHARED_DEPARTMENT = "市公安局"  # every city has one of this name: five departments, not one
BUSIEST = 6  # its services' accesses are scaled up: each city's is among the ten busiest


def department(city: str, d: int) -> str:
    return SHARED_DEPARTMENT if d == 0 else f"{city}第{d:02d}局"


def build(warehouse: Path) -> dict:
    facts = handmade.build(warehouse)
    last: dt.date = facts["last_day"]
    con = duckdb.connect(str(warehouse))
    counts = ["connected_services", "active_services", "registered_users", "new_registrations", "cancellations",
              "verified_users", "dau", "wau", "mau_30d", "total_accesses", "successful_accesses", "ratings"]
    for city, scale in NEW_CITIES.items():
        scaled = ", ".join(f"round({c} * {scale})::BIGINT" for c in counts)
        con.execute(f"""INSERT INTO marts.kpi_daily (city_code, kpi_date, {", ".join(counts)}, success_rate,
                        satisfaction_rate)
                        SELECT '{city}', kpi_date, {scaled}, success_rate, satisfaction_rate
                        FROM marts.kpi_daily WHERE city_code = '310000'""")
    days = [r[0] for r in con.execute("SELECT DISTINCT kpi_date FROM marts.kpi_daily ORDER BY 1").fetchall()]
    rnd = random.Random(5)
    rows = []
    for city in CITIES:
        for d in range(DEPARTMENTS_PER_CITY):
            for k in range(2):
                sid = f"X{city}{d:03d}{k}"
                for day in days:
                    total = rnd.randint(0, 40) * (BUSIEST if d == 0 else 1)
                    rows.append((city, day, sid, f"服务{city}-{d}-{k}", department(city, d), f"类别{d % 8}",
                                 total, total - rnd.randint(0, total // 10), total // 2))
    handmade._bulk(con, "marts.service_daily", rows)
    con.execute("INSERT INTO marts.settlement_statements VALUES ('SH-2026-001', '310000', '2026-02-01', 1, 'final', "
                f"1500000.00, {SHANGHAI_PAYMENT}, '2026-03-02 09:00:00', '0123456789abcdef')")
    folder = f"430100/ratings/dt={last.isoformat()}"
    con.execute("DELETE FROM audit.deliveries WHERE city_code = '430100' AND source = 'ratings' AND dt = ?", [last])
    con.execute("CREATE TABLE audit.landing_issues (path VARCHAR, kind VARCHAR, reason VARCHAR, first_seen TIMESTAMP)")
    con.execute("INSERT INTO audit.landing_issues VALUES (?, 'incomplete_delivery', "
                "'no _SUCCESS yet: still being written, not read', '2026-03-04 02:00:00')", [folder])
    export_snapshot(con, Settings(warehouse=Path(warehouse)))
    con.close()
    return {**facts, "first_day": days[0], "incomplete_folder": folder,
            "departments": len(CITIES) * DEPARTMENTS_PER_CITY}

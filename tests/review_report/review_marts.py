"""Hand-made 好差评 marts (the columns agreed in notes/reviews_interface.md, as rv1's dbt models
build them), for the report and dashboard tests: Changsha's February has one bad review of
every kind, so each figure below is counted by hand.

Changsha (430100), 2026-02, as of 2026-03-10, due days given (15 working days):
  R1 市人社局 T-0001 rectified on time, real name, called back, replied      (办事效率, wechat_mini)
  R2 市人社局 T-0002 rectified late, replied                                  (服务态度, wechat_mini)
  R3 市人社局 T-0003 open, due 03-05: overdue, real name, not called back     (系统故障, wechat_mini)
  R4 市公安局 T-0004 appeal upheld: unfounded (real name, not counted there)  (办事效率, alipay_mini)
  R5 市公安局 T-0005 unresolvable, due 03-06: overdue                         (流程繁琐, alipay_mini)
  R6 no ticket (unassigned), due 03-09: overdue, real name                    (untagged, web)
  R7 市公安局 T-0007 open, due 03-20: not due yet -> the month is not settled (办事效率, web)
  R8 <i>市医保局</i> T-0008 rectified on time, replied (a name with markup)   (指南不准, unknown)
  -> 8 bad reviews, 1 unfounded, 2 on time, 1 late, 3 overdue; on-time 2/7 = 28.6 %;
     real-name bad 3 (R1, R3, R6), called back 1: 33.3 %; replied 3 (R1, R2, R8).
Changsha 2026-01: 5 ratings, no bad review, settled. Shanghai (310000) 2026-02: two bad
reviews of 上海市大数据中心, SH-T-9001 overdue and SH-T-9002 rectified on time.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from citycloud.access.cities import CITY_REFERENCE

FEB, JAN = dt.date(2026, 2, 1), dt.date(2026, 1, 1)
AS_OF = dt.date(2026, 3, 10)
GRADES = "grade_5 BIGINT, grade_4 BIGINT, grade_3 BIGINT, grade_2 BIGINT, grade_1 BIGINT"
DDL = {
    "review_monthly": f"""city_code VARCHAR(6), month DATE, department VARCHAR, ratings BIGINT, {GRADES},
        average_score DOUBLE, bad_reviews BIGINT, unfounded BIGINT, rectified_on_time BIGINT, rectified_late BIGINT,
        overdue_open BIGINT, on_time_rate DOUBLE, real_name_bad BIGINT, called_back BIGINT, callback_rate DOUBLE,
        replied BIGINT, settled BOOLEAN, as_of_day DATE""",
    "review_tags_monthly": "city_code VARCHAR(6), month DATE, category VARCHAR, bad_reviews BIGINT",
    "review_items": """city_code VARCHAR(6), month DATE, rating_day DATE, rating_event_id VARCHAR, service_id VARCHAR,
        channel VARCHAR, score INTEGER, real_name BOOLEAN, ticket_id VARCHAR, department VARCHAR, category VARCHAR,
        status VARCHAR, due_day DATE, rectified_at TIMESTAMP, replied BOOLEAN, called_back BOOLEAN, unfounded BOOLEAN,
        outcome VARCHAR, as_of_day DATE""",
    "review_channel_monthly": f"city_code VARCHAR(6), month DATE, channel VARCHAR, ratings BIGINT, {GRADES}, "
                              "bad_reviews BIGINT",
}
HR, PS, MED = "市人社局", "市公安局", "<i>市医保局</i>"
SH_DEPT = "上海市大数据中心"
D = dt.date
MONTHLY = [  # city, month, department, ratings, g5..g1, avg, bad, unf, on time, late, overdue, rate, rn, cb, cbr, replied
    ("430100", FEB, "all", 40, 20, 8, 4, 5, 3, 3.925, 8, 1, 2, 1, 3, 2 / 7, 3, 1, 1 / 3, 3),
    ("430100", FEB, HR, None, None, None, None, None, None, None, 3, 0, 1, 1, 1, 1 / 3, 2, 1, 0.5, 2),
    ("430100", FEB, PS, None, None, None, None, None, None, None, 3, 1, 0, 0, 1, 0.0, 0, 0, None, 0),
    ("430100", FEB, "unassigned", None, None, None, None, None, None, None, 1, 0, 0, 0, 1, 0.0, 1, 0, 0.0, 0),
    ("430100", FEB, MED, None, None, None, None, None, None, None, 1, 0, 1, 0, 0, 1.0, 0, 0, None, 1),
    ("430100", JAN, "all", 5, 4, 1, 0, 0, 0, 4.8, 0, 0, 0, 0, 0, None, 0, 0, None, 0),
    ("310000", FEB, "all", 10, 5, 2, 1, 1, 1, 3.9, 2, 0, 1, 0, 1, 0.5, 0, 0, None, 1),
    ("310000", FEB, SH_DEPT, None, None, None, None, None, None, None, 2, 0, 1, 0, 1, 0.5, 0, 0, None, 1),
]
SETTLED = {("430100", FEB): False, ("430100", JAN): True, ("310000", FEB): True}
TAGS = [("430100", FEB, "办事效率", 3), ("430100", FEB, "服务态度", 1), ("430100", FEB, "系统故障", 1),
        ("430100", FEB, "流程繁琐", 1), ("430100", FEB, "untagged", 1), ("430100", FEB, "指南不准", 1),
        ("310000", FEB, "系统故障", 2)]
CHANNELS = [("430100", FEB, "wechat_mini", 20, 12, 4, 1, 2, 1, 3), ("430100", FEB, "alipay_mini", 12, 5, 3, 2, 1, 1, 2),
            ("430100", FEB, "web", 6, 3, 1, 0, 1, 1, 2), ("430100", FEB, "unknown", 2, 0, 0, 1, 1, 0, 1),
            ("430100", JAN, "web", 5, 4, 1, 0, 0, 0, 0), ("310000", FEB, "ios", 10, 5, 2, 1, 1, 1, 2)]
# rating_event_id, day, channel, score, real_name, ticket, department, category, status, due, rectified_at,
# replied, called_back, unfounded, outcome
ITEMS = [
    ("R1", D(2026, 2, 2), "wechat_mini", 2, True, "T-0001", HR, "办事效率", "rectified", D(2026, 2, 26),
     dt.datetime(2026, 2, 20, 10), True, True, False, "rectified_on_time"),
    ("R2", D(2026, 2, 2), "wechat_mini", 1, False, "T-0002", HR, "服务态度", "rectified", D(2026, 2, 26),
     dt.datetime(2026, 3, 2, 10), True, False, False, "rectified_late"),
    ("R3", D(2026, 2, 9), "wechat_mini", 2, True, "T-0003", HR, "系统故障", "open", D(2026, 3, 5),
     None, False, False, False, "overdue_open"),
    ("R4", D(2026, 2, 10), "alipay_mini", 2, True, "T-0004", PS, "办事效率", "appeal_upheld", D(2026, 3, 6),
     None, False, False, True, "unfounded"),
    ("R5", D(2026, 2, 10), "alipay_mini", 1, False, "T-0005", PS, "流程繁琐", "unresolvable", D(2026, 3, 6),
     None, False, False, False, "overdue_open"),
    ("R6", D(2026, 2, 13), "web", 2, True, None, "unassigned", "untagged", None, D(2026, 3, 9),
     None, False, False, False, "overdue_open"),
    ("R7", D(2026, 2, 27), "web", 1, False, "T-0007", PS, "办事效率", "open", D(2026, 3, 20),
     None, False, False, False, "open_not_due"),
    ("R8", D(2026, 2, 3), "unknown", 2, False, "T-0008", MED, "指南不准", "rectified", D(2026, 2, 27),
     dt.datetime(2026, 2, 25, 9), True, False, False, "rectified_on_time"),
]
SH_ITEMS = [
    ("S1", D(2026, 2, 3), "ios", 1, False, "SH-T-9001", SH_DEPT, "系统故障", "open", D(2026, 2, 27),
     None, False, False, False, "overdue_open"),
    ("S2", D(2026, 2, 4), "ios", 2, False, "SH-T-9002", SH_DEPT, "系统故障", "rectified", D(2026, 2, 28),
     dt.datetime(2026, 2, 20, 9), True, False, False, "rectified_on_time"),
]


def add_review_marts(con: duckdb.DuckDBPyConnection) -> None:
    """Create and fill the four review marts in `con`'s schema marts."""
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for table, columns in DDL.items():
        con.execute(f"CREATE OR REPLACE TABLE marts.{table} ({columns})")
    con.executemany("INSERT INTO marts.review_monthly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?, ?)", [(*r, SETTLED[(r[0], r[1])], AS_OF) for r in MONTHLY])
    con.executemany("INSERT INTO marts.review_tags_monthly VALUES (?, ?, ?, ?)", TAGS)
    con.executemany("INSERT INTO marts.review_channel_monthly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", CHANNELS)
    items = [("430100", *r) for r in ITEMS] + [("310000", *r) for r in SH_ITEMS]
    con.executemany("INSERT INTO marts.review_items VALUES (?, ?, ?, ?, 'S001', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)", [(c, FEB, day, f"EVT-{ev}", *rest, AS_OF) for c, ev, day, *rest in items])


def add_city_reference(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(f"CREATE OR REPLACE TABLE marts.city_reference AS SELECT * FROM read_csv('{CITY_REFERENCE}', "
                "all_varchar = true)")


def build_minimal(warehouse: Path) -> Path:
    """A warehouse and its published snapshot with only what `citycloud reviews` reads (and
    Haikou's big month, add_big_month)."""
    from citycloud.config import Settings
    from citycloud.publish import export_snapshot

    con = duckdb.connect(str(warehouse))
    try:
        add_city_reference(con)
        con.execute("CREATE TABLE marts.kpi_daily (city_code VARCHAR, kpi_date DATE)")
        add_review_marts(con)
        add_big_month(con)
        export_snapshot(con, Settings(warehouse=Path(warehouse)))
    finally:
        con.close()
    return warehouse


def build_dashboard(warehouse: Path) -> Path:
    """The dashboard tests' hand-built warehouse (tests/dashboard/dashboard_handmade.py: Changsha
    and Shanghai) with the review marts added and the snapshot published again."""
    import sys

    from citycloud.config import Settings
    from citycloud.publish import export_snapshot

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
    import dashboard_handmade

    dashboard_handmade.build(warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        add_review_marts(con)
        export_snapshot(con, Settings(warehouse=Path(warehouse)))
    finally:
        con.close()
    return warehouse


def add_big_month(con: duckdb.DuckDBPyConnection, city: str = "460100", departments: int = 60) -> list[str]:
    """A month of `city` with `departments` departments of two overdue bad reviews each (a report
    over several pages); the overdue ticket ids."""
    n = 2 * departments
    con.execute("INSERT INTO marts.review_monthly VALUES (?, ?, 'all', ?, 0, 0, 0, ?, 0, 2.0, ?, 0, 0, 0, ?, 0.0, 0, 0, "
                "NULL, 0, true, ?)", [city, FEB, n, n, n, n, AS_OF])
    names = [f"海口市第{d:02d}局" for d in range(departments)]
    con.executemany("INSERT INTO marts.review_monthly VALUES (?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2, 0, "
                    "0, 0, 2, 0.0, 0, 0, NULL, 0, true, ?)", [(city, FEB, name, AS_OF) for name in names])
    con.execute("INSERT INTO marts.review_tags_monthly VALUES (?, ?, '办事效率', ?)", [city, FEB, n])
    con.execute("INSERT INTO marts.review_channel_monthly VALUES (?, ?, 'web', ?, 0, 0, 0, ?, 0, ?)", [city, FEB, n, n, n])
    tickets = [f"HK-{i:04d}" for i in range(n)]
    con.executemany("INSERT INTO marts.review_items VALUES (?, ?, ?, ?, 'S001', 'web', 2, false, ?, ?, '办事效率', "
                    "'open', ?, NULL, false, false, false, 'overdue_open', ?)",
                    [(city, FEB, D(2026, 2, 2), f"EVT-HK-{i}", t, names[i // 2], D(2026, 2, 26), AS_OF)
                     for i, t in enumerate(tickets)])
    return tickets

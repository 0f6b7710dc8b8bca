"""Golden test: the user-operations marts (user_ops.md) on the tiny worked example.

tests/data/tiny/expected/{user_lifecycle,retention_monthly,activation_daily,stickiness_monthly,
channel_daily}.csv are an independent reading of the spec: every row and every cell must match
(rates to 1e-9), in the readers' snapshot, after a full `citycloud run`.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import TINY, make_settings

pytestmark = pytest.mark.slow

# key columns (compared as text) of each mart; the other CSV columns are compared as numbers
USER_OPS_KEYS = {
    "user_lifecycle": ["city_code", "grain", "period_start"],
    "retention_monthly": ["city_code", "cohort_month", "channel", "months_since"],
    "activation_daily": ["city_code", "registration_day"],
    "stickiness_monthly": ["city_code", "month", "active_days"],
    "channel_daily": ["city_code", "kpi_date", "channel"],
}


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _same(expected: str, actual) -> bool:
    if expected in ("true", "false") or isinstance(actual, bool):
        return expected == _text(actual)
    if expected == "" or actual is None:
        return expected == _text(actual)
    return abs(float(expected) - float(actual)) <= 1e-9


def mismatches(db: Path, expected_dir: Path, table: str) -> list:
    """Every (key, column, expected, actual) that differs; missing and extra rows included."""
    expected = list(csv.DictReader((expected_dir / f"{table}.csv").open()))
    columns = list(expected[0])
    keys = USER_OPS_KEYS[table]
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(f"SELECT {', '.join(columns)} FROM marts.{table}")
        actual = {tuple(_text(v) for v in row[:len(keys)]): dict(zip(columns, row)) for row in cur.fetchall()}
    finally:
        con.close()
    out = []
    wanted = {tuple(e[k] for k in keys): e for e in expected}
    for key in sorted(set(wanted) | set(actual)):
        e, a = wanted.get(key), actual.get(key)
        if e is None or a is None:
            out.append((key, "row", "present" if e else "absent", "present" if a else "absent"))
            continue
        out += [(key, c, e[c], a[c]) for c in columns if c not in keys and not _same(e[c], a[c])]
    return out


@pytest.fixture(scope="module")
def tiny_published(tiny_built):
    return tiny_built.published


@pytest.mark.parametrize("table", list(USER_OPS_KEYS))
def test_user_ops_mart_matches_expected_row_for_row(tiny_published, table):
    assert mismatches(tiny_published, TINY / "expected", table) == []


def test_comparison_finds_a_changed_cell_and_a_missing_row(tiny_published, tmp_path):
    # the comparison itself must be able to fail: a rate off by 1e-6 and a dropped row
    for name in USER_OPS_KEYS:
        shutil.copy(TINY / "expected" / f"{name}.csv", tmp_path / f"{name}.csv")
    path = tmp_path / "retention_monthly.csv"
    lines = path.read_text().splitlines()
    lines = [ln.replace(",64,43,0.671875", ",64,43,0.671876") for ln in lines]
    path.write_text("\n".join(lines) + "\n")
    lifecycle = tmp_path / "user_lifecycle.csv"
    lifecycle.write_text("\n".join(lifecycle.read_text().splitlines()[:-1]) + "\n")
    assert mismatches(tiny_published, tmp_path, "retention_monthly") == [
        (("430100", "2026-02-01", "all", "0"), "retention_rate", "0.671876", 0.671875)]
    assert mismatches(tiny_published, tmp_path, "user_lifecycle") == [
        (("430100", "week", "2026-02-23"), "row", "absent", "present")]


def test_monthly_workbook_has_one_sheet_per_mart_with_the_months_rows(tiny_published, tmp_path):
    import datetime as dt

    from openpyxl import load_workbook

    from citycloud.config import CitycloudError
    from citycloud.user_ops_export import export_user_ops

    settings = make_settings(tmp_path)
    settings.warehouse = tiny_published.with_name("citycloud.duckdb")
    path = export_user_ops(settings, "430100", "2026-02", out_dir=tmp_path)
    book = load_workbook(path)
    assert book.sheetnames == ["生命周期 lifecycle", "留存 retention", "激活 activation", "粘性 stickiness", "渠道 channels"]
    ws = book["生命周期 lifecycle"]
    # titled like the statements; headers Chinese, English and the mart's column
    assert ws["A1"].value == "用户运营月报 User operations — 长沙（430100）2026-02" and ws["A1"].font.bold
    assert ws["A2"].value.endswith("· marts.user_lifecycle")
    assert [c.value for c in ws[4]][:4] == ["城市代码\nCity code\ncity_code", "周期\nPeriod\ngrain",
                                            "周期开始\nPeriod start\nperiod_start",
                                            "周期活跃用户\nActive users in the period\nactive_users"]
    lifecycle = [[c.value for c in r] for r in ws.iter_rows(min_row=5)]
    assert lifecycle[0][1:] == ["月 month", dt.datetime(2026, 2, 1), 110, 77, 33, 0, 0]
    assert [r[2] for r in lifecycle[1:]] == [dt.datetime(2026, 2, d) for d in (2, 9, 16, 23)]
    assert ws["D5"].number_format == "#,##0" and ws.freeze_panes == "A5"
    expected_rows = {name: sum(1 for _ in csv.DictReader((TINY / "expected" / f"{name}.csv").open()))
                     for name in USER_OPS_KEYS}
    retention = book["留存 retention"]
    # only February is covered; the cohorts registered before 2025-02 with < 20 users are one row per channel
    old = [r for r in csv.DictReader((TINY / "expected" / "retention_monthly.csv").open()) if r["cohort_month"] < "2025-02"
           and r["cohort_month"] in {a["cohort_month"] for a in csv.DictReader((TINY / "expected" / "retention_monthly.csv").open())
                                     if a["channel"] == "all" and int(a["cohort_users"]) < 20}]
    assert retention.max_row - 4 == expected_rows["retention_monthly"] - len(old) + len({r["channel"] for r in old})
    assert retention["B5"].value == (f"≤ {max(r['cohort_month'] for r in old)[:7]} 的 {len({r['cohort_month'] for r in old})} "
                                     f"个小同期群 {len({r['cohort_month'] for r in old})} small cohorts (< 20)")
    rate = next(i for i, c in enumerate(retention[4]) if c.value.endswith("retention_rate"))
    assert {r[rate].number_format for r in retention.iter_rows(min_row=5)} == {"0.0%"}
    assert book["粘性 stickiness"].max_row - 4 == expected_rows["stickiness_monthly"]
    activation = book["激活 activation"]
    assert activation.max_row - 4 == 28  # the registration days of February
    complete = next(i for i, c in enumerate(activation[4]) if c.value.endswith("window_complete"))
    assert {r[complete].value for r in activation.iter_rows(min_row=5)} == {"是", "否"}
    with pytest.raises(CitycloudError, match="month 2026-03: not fully covered"):
        export_user_ops(settings, "430100", "2026-03", out_dir=tmp_path)


def test_old_small_cohorts_are_one_row_per_channel():
    import datetime as dt

    import pandas as pd

    from citycloud.user_ops_export import group_old_small_cohorts

    rows = [("430100", dt.date(2019, 3, 1), 83, "all", 3, 1), ("430100", dt.date(2019, 3, 1), 83, "ios", 3, 1),
            ("430100", dt.date(2019, 5, 1), 81, "all", 5, 2), ("430100", dt.date(2019, 5, 1), 81, "ios", 5, 2),
            ("430100", dt.date(2024, 1, 1), 25, "all", 30, 3),  # old but not small: kept
            ("430100", dt.date(2026, 1, 1), 1, "all", 4, 4)]  # small but recent: kept
    df = pd.DataFrame(rows, columns=["city_code", "cohort_month", "months_since", "channel", "cohort_users",
                                     "retained_users"]).assign(retention_rate=lambda d: d.retained_users / d.cohort_users)
    got = group_old_small_cohorts(df, dt.date(2026, 2, 1))
    assert got.values.tolist() == [
        ["430100", "≤ 2019-05 的 2 个小同期群 2 small cohorts (< 20)", None, "all", 8, 3, 0.375],
        ["430100", "≤ 2019-05 的 2 个小同期群 2 small cohorts (< 20)", None, "ios", 8, 3, 0.375],
        ["430100", dt.date(2024, 1, 1), 25, "all", 30, 3, 0.1],
        ["430100", dt.date(2026, 1, 1), 1, "all", 4, 4, 1.0]]

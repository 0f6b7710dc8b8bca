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
    assert book.sheetnames == ["lifecycle", "retention", "activation", "stickiness", "channels"]
    lifecycle = [[c.value for c in r] for r in book["lifecycle"].iter_rows(min_row=2)]
    assert lifecycle[0][1:] == ["month", dt.datetime(2026, 2, 1), 110, 77, 33, 0, 0]
    assert [r[2] for r in lifecycle[1:]] == [dt.datetime(2026, 2, d) for d in (2, 9, 16, 23)]
    expected_rows = {name: sum(1 for _ in csv.DictReader((TINY / "expected" / f"{name}.csv").open()))
                     for name in USER_OPS_KEYS}
    assert book["retention"].max_row - 1 == expected_rows["retention_monthly"]  # only February is covered
    assert book["stickiness"].max_row - 1 == expected_rows["stickiness_monthly"]
    assert book["activation"].max_row - 1 == 28  # the registration days of February
    with pytest.raises(CitycloudError, match="month 2026-03: not fully covered"):
        export_user_ops(settings, "430100", "2026-03", out_dir=tmp_path)

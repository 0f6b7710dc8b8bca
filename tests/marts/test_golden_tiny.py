"""Golden test: the tiny worked example (shared/examples/tiny) reproduced exactly.

The expected figures are an independent reading of the spec; rates must match to 1e-9.
"""
from __future__ import annotations

import csv

import pytest

from citycloud import pipeline
from tests.conftest import PROCESS_VARIABLES, TINY, copy_warehouse, query, table_fingerprints

pytestmark = pytest.mark.slow

DAILY_COLUMNS = ["connected_services", "active_services", "registered_users", "new_registrations", "cancellations",
                 "verified_users", "dau", "wau", "mau_30d", "total_accesses", "successful_accesses", "success_rate",
                 "ratings", "satisfaction_rate"]
MONTHLY_COLUMNS = ["connected_services", "registered_users", "mau", "activity_rate", "satisfaction_rate",
                   "new_registrations", "total_accesses"]


def _close(expected: str, actual) -> bool:
    if expected == "":
        return actual is None
    if actual is None:
        return False
    return abs(float(expected) - float(actual)) <= 1e-9


def test_kpi_daily_matches_expected_exactly(tiny_run):
    settings, report, _ = tiny_run
    assert report.published
    expected = list(csv.DictReader((TINY / "expected" / "kpi_daily.csv").open()))
    rows = query(settings.published,
                 f"SELECT city_code, CAST(kpi_date AS VARCHAR), {', '.join(DAILY_COLUMNS)} FROM marts.kpi_daily ORDER BY 2")
    assert [(r[0], r[1]) for r in rows] == [(e["city_code"], e["kpi_date"]) for e in expected]
    mismatches = [
        (e["kpi_date"], col, e[col], row[2 + i])
        for e, row in zip(expected, rows)
        for i, col in enumerate(DAILY_COLUMNS)
        if not _close(e[col], row[2 + i])
    ]
    assert mismatches == []


def test_kpi_monthly_february_matches_expected(tiny_run):
    settings, _, _ = tiny_run
    (expected,) = list(csv.DictReader((TINY / "expected" / "kpi_monthly.csv").open()))
    (row,) = query(settings.published, f"SELECT {', '.join(MONTHLY_COLUMNS)}, is_complete FROM marts.kpi_monthly "
                                       "WHERE city_code = '430100' AND month = DATE '2026-02-01'")
    assert [(c, expected[c]) for i, c in enumerate(MONTHLY_COLUMNS) if not _close(expected[c], row[i])] == []
    assert row[-1] is True


def test_audit_counts_match_expected(tiny_run):
    settings, report, _ = tiny_run
    for e in csv.DictReader((TINY / "expected" / "audit_counts.csv").open()):
        if e["city_code"] == "all":
            assert query(settings.published, "SELECT count(*) FROM audit.deliveries")[0][0] == int(e["rejected_rows"])
            continue
        rows = query(settings.published, "SELECT count(*) FROM audit.rejected_rows WHERE city_code = ? AND source = ?",
                     [e["city_code"], e["source"]])[0][0]
        files = query(settings.published, "SELECT count(*) FROM audit.rejected_files WHERE city_code = ? AND source = ?",
                      [e["city_code"], e["source"]])[0][0]
        assert (e["source"], rows, files) == (e["source"], int(e["rejected_rows"]), int(e["rejected_files"] or 0))
    assert report.ingest.rows_rejected == 25  # 20 of the four event sources, 5 of review_tickets
    assert sorted(r for _, r in report.ingest.rejected_files) == [
        "gzip stream cannot be decompressed (truncated or corrupt): Compressed file ended before the "
        "end-of-stream marker was reached",
        "not valid UTF-8 text",
    ]


def test_rejected_rows_name_file_line_and_reason(tiny_run):
    settings, _, _ = tiny_run
    rows = query(settings.warehouse, "SELECT file, line, reason FROM audit.rejected_rows WHERE source = 'registrations' "
                                     "ORDER BY file, line")
    assert rows[0] == ("430100/registrations/dt=2026-01-30/initial_load.csv.gz", 66,
                       "event_time 2014-12-31 23:59:59 is before 2015-01-01")
    assert ("430100/registrations/dt=2026-02-15/reg_20260215.csv.gz", 8,
            "malformed CSV row: expected 9 fields, found 2") in rows
    assert any(r[2] == "unknown event_type 'delete'" for r in rows)
    assert any(r[2] == "auth_level '7' is outside 0–3" for r in rows)
    assert any(r[2].startswith("event_time 2026-02-13T00:01:00+08:00 is after the end of delivery day") for r in rows)


def test_the_example_builds_from_settings_alone_with_an_empty_environment(tiny_run):
    # tests/tiny_build.py: pipeline.run(Settings(landing=..., warehouse=..., pii_key=...)) in a
    # process without a single CITYCLOUD_* variable published the marts.
    settings, report, variables = tiny_run
    assert set(variables) <= {*PROCESS_VARIABLES, "PWD", "LC_CTYPE"}
    assert report.published and settings.pii_key.get_secret_value()


def test_second_run_changes_nothing(tiny_run, tmp_path):
    settings = copy_warehouse(tiny_run[0], tmp_path)
    before = table_fingerprints(settings.warehouse)
    snapshot_before = settings.published.stat().st_mtime_ns
    report = pipeline.run(settings)
    assert report.ingest.deliveries == [] and not report.published
    assert table_fingerprints(settings.warehouse) == before
    assert settings.published.stat().st_mtime_ns == snapshot_before


def test_settlement_february_matches_expected(tiny_run, tmp_path):
    from decimal import Decimal

    from citycloud.settlement import settle

    settings = copy_warehouse(tiny_run[0], tmp_path / "wh")  # the settlement writes its tables
    report = settle(settings, "2026-02", contracts_path=TINY / "contracts.yml", out_dir=tmp_path)
    expected = list(csv.DictReader((TINY / "expected" / "settlement_2026-02.csv").open()))
    rows = query(settings.warehouse, "SELECT l.kpi, l.actual, l.factor, s.payment_cny, s.status, s.version "
                                     "FROM marts.settlement_lines l JOIN marts.settlement_statements s "
                                     "USING (contract_id, month, version) WHERE l.contract_id = 'CS-2026-003' "
                                     "ORDER BY l.kpi")
    assert [(r[0], Decimal(str(r[2])), r[3]) for r in rows] == [
        (e["kpi"], Decimal(e["factor"]), Decimal(e["payment_cny"])) for e in expected]
    assert all(_close(e["actual"], r[1]) for e, r in zip(expected, rows))
    assert {r[4] for r in rows} == {"provisional"} and {r[5] for r in rows} == {1}
    assert "33,800.00" in report.summary_line() or "33800.00" in report.summary_line()


def _cells(settings, table: str, expected: list[dict]) -> list[tuple]:
    """(row, column, expected, actual) of every cell that differs; rows in the CSV's order."""
    columns = list(expected[0])
    rows = query(settings.published, f"SELECT {', '.join(columns)} FROM marts.{table} ORDER BY ALL")
    wanted = sorted(expected, key=lambda e: [e[c] for c in columns])
    assert len(rows) == len(wanted), (table, rows)
    out = []
    for e, row in zip(wanted, rows):
        for c, actual in zip(columns, row):
            text = "" if actual is None else str(actual).lower() if isinstance(actual, bool) else str(actual)
            same = _close(e[c], actual) if isinstance(actual, float) or (e[c] == "" and actual is None) else e[c] == text
            if not same:
                out.append((e["department"] if "department" in e else e.get("category"), c, e[c], actual))
    return out


@pytest.mark.parametrize("table", ["review_monthly", "review_tags_monthly"])
def test_review_marts_match_hand_computed_rows(tiny_run, table):
    """reviews.md on the worked example's tickets (README.md there): every cell, rates to 1e-9."""
    settings, _, _ = tiny_run
    expected = list(csv.DictReader((TINY / "expected" / f"{table}.csv").open(encoding="utf-8")))
    assert _cells(settings, table, expected) == []

"""Statement versions: provisional re-runs, final, restatements, immutability of final rows."""
from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import pytest

from citycloud.config import CitycloudError
from citycloud.settlement import settle
from citycloud.settlement.versions import VersionInfo, decide

from .conftest import FIXTURES, MARCH_5, simple_contract

FEB = date(2026, 2, 1)
TABLES = ("marts.settlement_statements", "marts.settlement_lines", "marts.settlement_inputs")


def version_bytes(wh, version: int) -> dict[str, tuple]:
    """Every row of a version in every settlement table, as text and as an md5 of that text."""
    out = {}
    for table in TABLES:
        rows = wh.rows(
            f"SELECT CAST(t AS VARCHAR) FROM {table} t WHERE contract_id = 'CS-T-001' AND month = ? AND version = ? "
            "ORDER BY CAST(t AS VARCHAR)",
            [FEB, version],
        )
        digest = wh.rows(
            f"SELECT md5(string_agg(CAST(t AS VARCHAR), '|' ORDER BY CAST(t AS VARCHAR))) FROM {table} t "
            "WHERE contract_id = 'CS-T-001' AND month = ? AND version = ?",
            [FEB, version],
        )[0][0]
        out[table] = (tuple(r[0] for r in rows), digest)
    return out


def statements(wh) -> list[tuple]:
    return wh.rows(
        "SELECT version, status, payment_cny, restates_version, payment_delta_cny FROM marts.settlement_statements "
        "WHERE contract_id = 'CS-T-001' AND month = ? ORDER BY version",
        [FEB],
    )


@pytest.fixture
def feb(settings, wh, contracts_file):
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.821917808219178)
    contracts_file(simple_contract())
    return wh


def test_final_then_late_data_then_nothing(settings, feb):
    wh = feb
    # 1. final: version 1. 38/40 = 0.95 → 0.90; 0.8219/0.8 → 1.00; 52000 × (0.45 + 0.5) = 49400.00
    r1 = settle(settings, "2026-02", final=True, now=MARCH_5).results[0]
    assert (r1.version, r1.status, r1.written, r1.payment) == (1, "final", True, Decimal("49400.00"))
    frozen = version_bytes(wh, 1)
    assert all(rows for rows, _ in frozen.values())

    # 2. late data: connected_services 38 → 40 (factor 0.90 → 1.00) → restatement version 2
    wh.kpi("430100", "2026-02", connected_services=40, satisfaction_rate=0.821917808219178)
    wh.deliveries("430100", "2026-03-04", "2026-03-04", batch_id=2)
    r2 = settle(settings, "2026-02", now=MARCH_5 + timedelta(days=1)).results[0]
    assert (r2.version, r2.status, r2.written, r2.restates_version) == (2, "restatement", True, 1)
    assert r2.payment == Decimal("52000.00") and r2.payment_delta == Decimal("2600.00")
    assert "connected_services 38 → 40" in r2.note
    assert statements(wh) == [
        (1, "final", Decimal("49400.00"), None, None),
        (2, "restatement", Decimal("52000.00"), 1, Decimal("2600.00")),
    ]
    lines = wh.rows(
        "SELECT kpi, actual_before, actual, factor_before, factor FROM marts.settlement_lines "
        "WHERE version = 2 ORDER BY line_no"
    )
    assert lines == [
        ("connected_services", 38.0, 40.0, Decimal("0.9"), Decimal("1")),
        ("satisfaction_rate", 0.821917808219178, 0.821917808219178, Decimal("1"), Decimal("1")),
    ]
    changes = json.loads(wh.rows("SELECT changes FROM marts.settlement_statements WHERE version = 2")[0][0])
    assert changes["payment_before_cny"] == "49400.00" and changes["payment_delta_cny"] == "2600.00"
    assert [(k["kpi"], k["actual_before"], k["actual_after"], k["changed"]) for k in changes["kpis"]] == [
        ("connected_services", "38", "40", True),
        ("satisfaction_rate", "0.821917808219178", "0.821917808219178", False),
    ]
    assert version_bytes(wh, 1) == frozen

    # 3. nothing changed (even with a new delivery that does not move the figures): nothing new
    wh.deliveries("430100", "2026-03-05", "2026-03-05", batch_id=3)
    report = settle(settings, "2026-02", now=MARCH_5 + timedelta(days=2))
    r3 = report.results[0]
    assert (r3.version, r3.status, r3.written) == (2, "restatement", False)
    assert "nothing changed since version 2 (restatement): nothing new written" in r3.note
    assert "0 new versions" in report.summary_line()
    assert len(statements(wh)) == 2
    # --final once a final exists changes nothing either
    r4 = settle(settings, "2026-02", final=True, now=MARCH_5 + timedelta(days=2)).results[0]
    assert not r4.written and "already final" in r4.note
    assert version_bytes(wh, 1) == frozen

    # 4. late data that brings the figures back to the final's: a restatement with delta 0
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.821917808219178)
    r5 = settle(settings, "2026-02", now=MARCH_5 + timedelta(days=3)).results[0]
    assert (r5.version, r5.status, r5.payment_delta) == (3, "restatement", Decimal("0.00"))
    assert "changed since version 2 (connected_services 40 → 38) after final version 1" in r5.note
    assert version_bytes(wh, 1) == frozen


def test_provisional_reruns(settings, feb):
    wh = feb
    r1 = settle(settings, "2026-02", now=MARCH_5).results[0]
    assert (r1.version, r1.status, r1.written) == (1, "provisional", True)
    r2 = settle(settings, "2026-02", now=MARCH_5).results[0]
    assert (r2.version, r2.written) == (1, False)
    assert "nothing changed since version 1 (provisional)" in r2.note
    wh.kpi("430100", "2026-02", connected_services=30, satisfaction_rate=0.821917808219178)
    r3 = settle(settings, "2026-02", now=MARCH_5).results[0]
    assert (r3.version, r3.status, r3.written) == (2, "provisional", True)
    assert "changed since version 1 (connected_services 38 → 30)" in r3.note
    # finalising unchanged figures writes a new, final version (versions are never relabelled)
    r4 = settle(settings, "2026-02", final=True, now=MARCH_5).results[0]
    assert (r4.version, r4.status, r4.written, r4.payment) == (3, "final", True, r3.payment)
    rows = statements(wh)
    assert [r[:2] for r in rows] == [(1, "provisional"), (2, "provisional"), (3, "final")]
    assert rows[1][2] == rows[2][2] == Decimal("41600.00")  # 52000 × (0.5×0.60 + 0.5×1.00)


def test_terms_change_makes_a_new_version(settings, feb, contracts_file):
    settle(settings, "2026-02", final=True, now=MARCH_5)
    # Renaming the operator is not a payment term: nothing new.
    contracts_file(simple_contract().replace("长沙数智科技集团有限公司", "长沙数智科技集团"))
    assert not settle(settings, "2026-02", now=MARCH_5).results[0].written
    # A new fee is: a restatement that says the terms changed.
    contracts_file(simple_contract(fee="60000.00"))
    r = settle(settings, "2026-02", now=MARCH_5).results[0]
    assert (r.version, r.status, r.payment_delta) == (2, "restatement", Decimal("7600.00"))
    changes = json.loads(feb.rows("SELECT changes FROM marts.settlement_statements WHERE version = 2")[0][0])
    assert changes["terms_changed"] is True


def test_tampered_final_is_refused(settings, feb):
    settle(settings, "2026-02", final=True, now=MARCH_5)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("UPDATE marts.settlement_lines SET actual = 40 WHERE version = 1 AND kpi = 'connected_services'")
    with pytest.raises(CitycloudError, match=r"version 1 \(final\) no longer matches its seal"):
        settle(settings, "2026-02", now=MARCH_5)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("UPDATE marts.settlement_lines SET actual = 38 WHERE version = 1 AND kpi = 'connected_services'")
        con.execute("DELETE FROM marts.settlement_inputs WHERE version = 1 AND source = 'ratings'")
    with pytest.raises(CitycloudError, match="no longer matches its seal"):
        settle(settings, "2026-02", now=MARCH_5)


def test_inputs_and_fingerprint(settings, feb):
    wh = feb
    settle(settings, "2026-02", now=MARCH_5)
    inputs = wh.rows("SELECT DISTINCT city_code FROM marts.settlement_inputs")
    assert inputs == [("430100",)]  # only the contract's city
    n = wh.rows("SELECT count(*) FROM audit.deliveries WHERE city_code = '430100'")[0][0]
    assert wh.rows("SELECT count(*), min(dt), max(dt) FROM marts.settlement_inputs WHERE version = 1")[0] == (
        n, date(2026, 1, 30), date(2026, 3, 3),
    )
    st = wh.rows("SELECT input_fingerprint, deliveries, computed_at FROM marts.settlement_statements")[0]
    assert len(st[0]) == 64 and st[1] == n
    assert st[2] == MARCH_5
    # A redelivered folder with new content changes the fingerprint of the next version.
    wh.deliveries("430100", "2026-02-10", "2026-02-10", batch_id=2, tag="resend")
    wh.kpi("430100", "2026-02", connected_services=39, satisfaction_rate=0.821917808219178)
    settle(settings, "2026-02", now=MARCH_5)
    fps = wh.rows("SELECT input_fingerprint FROM marts.settlement_statements ORDER BY version")
    assert fps[0] != fps[1]


def test_skipped_contract_and_snapshot(settings, feb, contracts_file):
    later = simple_contract(cid="CS-T-002", start="2026-03", end="2026-12").split("contracts:\n", 1)[1]
    contracts_file(simple_contract() + later)
    report = settle(settings, "2026-02", now=MARCH_5)
    by = {r.contract_id: r for r in report.results}
    assert by["CS-T-002"].status == "skipped" and not by["CS-T-002"].written
    assert "2026-02 is outside it: skipped" in by["CS-T-002"].note
    assert "1 skipped" in report.summary_line()
    # The readers' snapshot has the new statement.
    with duckdb.connect(str(settings.published), read_only=True) as con:
        assert con.execute("SELECT contract_id, version FROM marts.settlement_statements").fetchall() == [("CS-T-001", 1)]


def test_tiny_example_end_to_end(settings, wh):
    """The worked example through settle(): the statement CSV matches expected/settlement_2026-02.csv."""
    import csv

    tiny = FIXTURES / "tiny"
    with open(tiny / "kpi_monthly.csv", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    wh.kpi(
        "430100", "2026-02",
        **{k: (float(v) if "." in v else int(v)) for k, v in row.items() if k not in ("city_code", "month")},
    )
    report = settle(settings, "2026-02", contracts_path=tiny / "contracts.yml", now=MARCH_5)
    r = report.results[0]
    assert (r.contract_id, r.payment) == ("CS-2026-003", Decimal("33800.00"))
    csv_path = next(p for p in r.files if p.suffix == ".csv")
    assert csv_path.name == "statement_CS-2026-003_2026-02_v1.csv"
    with open(csv_path, encoding="utf-8-sig") as f:
        got = sorted((d["contract_id"], d["month"], d["kpi"], d["actual"], d["factor"], d["payment_cny"]) for d in csv.DictReader(f))
    with open(tiny / "settlement_2026-02.csv", encoding="utf-8") as f:
        expected = sorted(tuple(d.values()) for d in csv.DictReader(f))
    assert got == expected
    assert report.summary_line().startswith("settled 2026-02: 1 contract, 1 new version (1 provisional); payable 33,800.00 CNY")


def _v(version, status, fig="f", terms="t"):
    return VersionInfo(version, status, fig, terms, Decimal("1.00"), "fp")


def test_decide_rules():
    assert decide([], "f", "t", final=False).status == "provisional"
    assert decide([], "f", "t", final=True).status == "final"
    same = decide([_v(1, "provisional")], "f", "t", final=False)
    assert not same.write
    fin = decide([_v(1, "provisional")], "f", "t", final=True)
    assert (fin.write, fin.status, fin.version) == (True, "final", 2)
    changed = decide([_v(1, "provisional")], "g", "t", final=False)
    assert (changed.write, changed.status, changed.version) == (True, "provisional", 2)
    rest = decide([_v(1, "provisional"), _v(2, "final")], "g", "t", final=False)
    assert (rest.status, rest.version, rest.restates_version) == ("restatement", 3, 2)
    rest2 = decide([_v(1, "final"), _v(2, "restatement", fig="g")], "h", "t", final=True)
    assert (rest2.status, rest2.version, rest2.restates_version) == ("restatement", 3, 1)
    assert not decide([_v(1, "final"), _v(2, "restatement", fig="g")], "g", "t", final=True).write
    assert decide([_v(1, "final")], "f", "u", final=False).status == "restatement"


def test_snapshot_refreshed_only_when_needed(settings, feb):
    settle(settings, "2026-02", now=MARCH_5)
    mtime = settings.published.stat().st_mtime_ns
    report = settle(settings, "2026-02", now=MARCH_5)
    assert report.snapshot is None and settings.published.stat().st_mtime_ns == mtime
    settings.published.unlink()  # e.g. an earlier run stopped before publishing
    report = settle(settings, "2026-02", now=MARCH_5)
    assert report.snapshot == settings.published and settings.published.exists()
    with duckdb.connect(str(settings.published), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.settlement_statements").fetchone()[0] == 1


def test_incomplete_month_is_provisional_only(settings, feb):
    """kpi_monthly's is_complete = false (the city's data stops before the month's end)."""
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("ALTER TABLE marts.kpi_monthly ADD COLUMN days_covered BIGINT")
        con.execute("ALTER TABLE marts.kpi_monthly ADD COLUMN is_complete BOOLEAN")
        con.execute("UPDATE marts.kpi_monthly SET days_covered = 20, is_complete = false")
    with pytest.raises(CitycloudError) as exc:
        settle(settings, "2026-02", final=True, now=MARCH_5)
    assert "contract CS-T-001: marts.kpi_monthly marks 2026-02 incomplete for city 430100" in str(exc.value)
    r = settle(settings, "2026-02", now=MARCH_5).results[0]
    assert (r.version, r.status) == (1, "provisional")
    assert "incomplete" in r.note
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("UPDATE marts.kpi_monthly SET days_covered = 28, is_complete = true")
    r = settle(settings, "2026-02", final=True, now=MARCH_5).results[0]
    assert (r.version, r.status) == (2, "final")

"""`citycloud settle` from the command line: figures for people beside exact values for machines,
byte-reproducible statement files, and no folder named that was never written."""
from __future__ import annotations

import csv
import re
import zipfile
from datetime import timezone
from decimal import Decimal
from pathlib import Path

import openpyxl

from citycloud.pipeline.cli import main

from .conftest import simple_contract


def settle_cli(settings, *extra: str) -> list[str]:
    return ["settle", "--warehouse", str(settings.warehouse), "--contracts", str(settings.contracts), *extra]


def files_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_statement_shows_percentages_and_keeps_exact_values(settings, wh, contracts_file, tmp_path, capsys):
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.8047910295616718)
    contracts_file(simple_contract())
    out = tmp_path / "statements"
    assert main(settle_cli(settings, "--month", "2026-02", "--out", str(out))) == 0
    assert f"statements in {out}" in capsys.readouterr().out

    csv_path = next(out.glob("statement_CS-T-001_2026-02_v1.csv"))
    with open(csv_path, encoding="utf-8-sig") as f:
        rows = {r["kpi"]: r for r in csv.DictReader(f)}
    services, satisfaction = rows["connected_services"], rows["satisfaction_rate"]
    # Machines: the exact stored values, as before.
    assert services["actual"] == "38" and services["attainment"] == "0.95"
    assert satisfaction["actual"] == "0.8047910295616718"
    assert Decimal(satisfaction["attainment"]) == Decimal("0.8047910295616718") / Decimal("0.8")
    # People: 38 of 40 = 95.00 %; 80.479…% of a target of 80 % = 100.5988…% → 100.60 %.
    assert (services["actual_shown"], services["target_shown"], services["attainment_shown"],
            services["weight_shown"]) == ("38", "40", "95.00%", "50.00%")
    assert (satisfaction["actual_shown"], satisfaction["target_shown"], satisfaction["attainment_shown"]) == \
        ("80.48%", "80.00%", "100.60%")

    ws = openpyxl.load_workbook(out / "statement_CS-T-001_2026-02_v1.xlsx")["结算单 Statement"]
    header = next(r for r in ws.iter_rows(values_only=True) if r[0] == "指标 KPI")
    assert header[8:10] == ("实际值（精确）Actual, exact", "达成率（精确）Attainment, exact")
    line = next(r for r in ws.iter_rows(values_only=True) if r[0] == "satisfaction_rate")
    # the exact actual as text; the exact attainment a number to compute with (the CSV has every digit)
    assert line[8] == "0.8047910295616718" and line[9] == float("%.16g" % Decimal(satisfaction["attainment"]))
    cell = next(c for c in next(r for r in ws.iter_rows() if r[0].value == "satisfaction_rate") if c.column == 5)
    assert cell.number_format == "0.00%"  # the attainment people see: a percentage


def test_settling_twice_gives_identical_bytes_and_utc_document_times(settings, wh, contracts_file, tmp_path):
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.767123287671233)
    contracts_file(simple_contract())
    out = tmp_path / "statements"
    assert main(settle_cli(settings, "--month", "2026-02", "--out", str(out))) == 0
    first = files_bytes(out)
    assert main(settle_cli(settings, "--month", "2026-02", "--out", str(out))) == 0
    assert files_bytes(out) == first
    assert sorted(first) == ["settlement_2026-02_summary.csv", "settlement_2026-02_summary.xlsx",
                             "statement_CS-T-001_2026-02_v1.csv", "statement_CS-T-001_2026-02_v1.xlsx"]

    (computed_at,) = wh.rows("SELECT computed_at FROM marts.settlement_statements WHERE version = 1")[0]
    utc = computed_at.astimezone(timezone.utc) if computed_at.tzinfo else computed_at
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(out / "statement_CS-T-001_2026-02_v1.xlsx") as z:
        core = z.read("docProps/core.xml").decode()
        # Zip entry times have a resolution of two seconds.
        assert {i.date_time for i in z.infolist()} == {(*utc.timetuple()[:5], utc.second - utc.second % 2)}
    assert re.findall(r"<dcterms:(created|modified)[^>]*>([^<]*)<", core) == [("created", stamp), ("modified", stamp)]


def test_month_no_contract_covers_names_no_folder(settings, wh, contracts_file, tmp_path, capsys):
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.8)
    contracts_file(simple_contract())
    out = tmp_path / "statements"
    assert main(settle_cli(settings, "--month", "2025-06", "--out", str(out))) == 0
    printed = capsys.readouterr().out
    assert "statements in" not in printed and "no statement written (no contract covers this month)" in printed
    assert not out.exists()

"""Statement files: the XLSX and CSV show the figures of the version they name."""
from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import re
import zipfile
import openpyxl
import pytest

from citycloud.settlement import settle

from .conftest import MARCH_5, SHANGHAI, simple_contract

ROOT = Path(__file__).resolve().parents[2]
FEB = date(2026, 2, 1)


def header_values(ws) -> dict[str, object]:
    """Label (column A) → value (column B) of the statement's header block."""
    out = {}
    for a, b in ws.iter_rows(min_row=3, max_row=25, max_col=2, values_only=True):
        if isinstance(a, str):
            out[a] = b
    return out


def kpi_table(ws, title_prefix: str) -> dict[str, tuple]:
    rows = list(ws.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if isinstance(r[0], str) and r[0].startswith(title_prefix))
    table = {}
    for r in rows[start + 2:]:
        if r[0] is None:
            break
        table[r[0]] = r
    return table


def db_version(wh, version: int):
    st = wh.rows(
        "SELECT version, status, payment_cny, input_fingerprint, computed_at, operator, payment_delta_cny, notes "
        "FROM marts.settlement_statements WHERE month = ? AND version = ?",
        [FEB, version],
    )[0]
    lines = wh.rows(
        "SELECT kpi, actual, target, attainment, weight, factor FROM marts.settlement_lines "
        "WHERE month = ? AND version = ? ORDER BY line_no",
        [FEB, version],
    )
    return st, lines


@pytest.fixture
def restated(settings, wh, contracts_file):
    """Version 1 final (38, 0.7671…), then late data: version 2, a restatement (40, null)."""
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.767123287671233)
    contracts_file(simple_contract())
    first = settle(settings, "2026-02", final=True, now=MARCH_5)
    wh.kpi("430100", "2026-02", connected_services=40, satisfaction_rate=None)
    second = settle(settings, "2026-02", now=MARCH_5 + timedelta(days=3))
    return wh, first.results[0], second.results[0]


def test_xlsx_shows_the_version_it_claims(restated):
    wh, first, second = restated
    for result in (first, second):
        xlsx = next(p for p in result.files if p.suffix == ".xlsx")
        assert xlsx.name == f"statement_CS-T-001_2026-02_v{result.version}.xlsx"
        wb = openpyxl.load_workbook(xlsx)
        ws = wb.worksheets[0]
        head = header_values(ws)
        version = head["版本 Version"]
        st, lines = db_version(wh, version)
        assert version == result.version
        assert head["状态 Status"].startswith(st[1])
        assert Decimal(str(head["应付金额 Payment (CNY)"])).quantize(Decimal("0.01")) == st[2]
        assert head["输入指纹 Input fingerprint"] == st[3]
        assert head["计算时间 Computed at"] == st[4].astimezone(SHANGHAI).isoformat(sep=" ", timespec="seconds")
        assert head["运营方 Operator"] == "长沙数智科技集团有限公司" == st[5]
        table = kpi_table(ws, "指标明细")
        assert list(table) == [ln[0] for ln in lines]
        for kpi, actual, target, att, weight, factor in lines:
            row = table[kpi]
            assert row[2] == (actual if actual is not None else "无数据 no data")
            # cells are numbers (Excel doubles) written from the stored decimals
            assert (row[3], row[4], row[5], row[6]) == (float(target), float(att), float(weight), float(factor))
            # the exact attainment is a number too (16 significant digits, as many as Excel holds), not text
            assert row[9] == float(att) and _raw_cell(xlsx, kpi, 10) == "%.16g" % att
        notes = head["备注 Notes"].split("\n")
        assert notes[0] == {1: "已写入第 1 版（最终）", 2: "自第 1 版以来有变化（connected_services 38 → 40, "
                                                          "satisfaction_rate 0.767123287671233 → null），晚于最终版本 v1："
                                                          "已写入重述版本 v2，应付金额 46800.00 → 26000.00（差额 -20800.00 元）"}[version]
        assert notes[1] == st[7] and len(notes) == 2  # then as stored, in English
        # number formats a contract manager sees
        pay_cell = next(r[1] for r in ws.iter_rows(min_row=3, max_row=25, max_col=2) if r[0].value == "应付金额 Payment (CNY)")
        assert pay_cell.number_format == "#,##0.00"
        assert {ws.title for ws in wb.worksheets} == {"结算单 Statement", "条款 Terms", "输入 Inputs"}
        inputs = wb["输入 Inputs"]
        n = wh.rows("SELECT count(*) FROM marts.settlement_inputs WHERE version = ?", [version])[0][0]
        assert inputs.max_row - 4 == n


def _raw_cell(xlsx, kpi: str, column: int) -> str:
    """The stored text of the number in `column` of the KPI's row of the statement sheet (XML)."""
    ws = openpyxl.load_workbook(xlsx).worksheets[0]
    row = next(r[0].row for r in ws.iter_rows(max_col=1) if r[0].value == kpi)  # the KPI table comes first
    letter = openpyxl.utils.get_column_letter(column)
    with zipfile.ZipFile(xlsx) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    return re.search(rf'<c r="{letter}{row}"[^>]*><v>([^<]+)</v>', xml).group(1)


def test_restatement_differences_are_shown(restated):
    wh, first, second = restated
    assert (second.status, second.version, second.restates_version) == ("restatement", 2, 1)
    # v1: 38/40 → 0.90; 0.767…/0.8 = 0.9589… → 0.90: 52000 × 0.9 = 46800.00
    # v2: 40/40 → 1.00; null → 0: 52000 × 0.5 = 26000.00; delta −20800.00
    assert (first.payment, second.payment, second.payment_delta) == (
        Decimal("46800.00"), Decimal("26000.00"), Decimal("-20800.00"),
    )
    ws = openpyxl.load_workbook(second.files[1]).worksheets[0]
    head = header_values(ws)
    assert head["差额 Difference (CNY)"] == -20800
    assert head["最终版本 v1 金额 Payment in final version 1 (CNY)"] == 46800
    diff = kpi_table(ws, "与最终版本 v1 的差异")
    assert diff["connected_services"][2:7] == (38, 40, 0.9, 1, "是 yes")
    assert diff["satisfaction_rate"][2:7] == (0.767123287671233, "—", 0.9, 0, "是 yes")
    with open(second.files[0], encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["kpi"], r["actual_before"], r["actual"], r["factor_before"], r["factor"]) for r in rows] == [
        ("connected_services", "38", "40", "0.90", "1.00"),
        ("satisfaction_rate", "0.767123287671233", "", "0.90", "0.00"),
    ]
    assert {(r["version"], r["status"], r["restates_version"], r["payment_cny"], r["payment_before_cny"], r["payment_delta_cny"]) for r in rows} == {
        ("2", "restatement", "1", "26000.00", "46800.00", "-20800.00")
    }


def test_csv_is_utf8_with_bom_for_excel(restated):
    _, first, _ = restated
    raw = first.files[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "长沙数智科技集团有限公司".encode("utf-8") in raw


def test_month_summary_workbook(settings, wh, contracts_file):
    """The demo contracts over five cities: a summary sheet plus one sheet per contract."""
    for city in ("310000", "510100", "430100", "411700", "460100"):
        wh.kpi(city, "2026-02", connected_services=500, registered_users=1000, mau=400, activity_rate=0.4,
               satisfaction_rate=0.83)
    report = settle(settings, "2026-02", contracts_path=ROOT / "contracts" / "contracts.yml", now=MARCH_5)
    assert len(report.written) == 5
    xlsx = next(p for p in report.summary_files if p.suffix == ".xlsx")
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames[0] == "汇总 Summary"
    assert wb.sheetnames[1:] == ["SH-2026-001", "CD-2026-002", "CS-2026-003", "ZMD-2026-004", "HK-2026-005"]
    ws = wb["汇总 Summary"]
    rows = [r for r in ws.iter_rows(min_row=4, values_only=True) if r[0]]
    assert [r[2] for r in rows][:1] == ["上海市民信箱信息服务有限公司"]
    total = next(r for r in ws.iter_rows(min_row=4, values_only=True) if r[5] == "合计 Total")[6]
    assert Decimal(str(total)).quantize(Decimal("0.01")) == report.total_payment
    assert sum(r.payment for r in report.results) == report.total_payment
    with open(next(p for p in report.summary_files if p.suffix == ".csv"), encoding="utf-8-sig") as f:
        summary = list(csv.DictReader(f))
    assert [r["city_name"] for r in summary] == ["上海", "成都", "长沙", "驻马店", "海口"]
    assert all(r["version"] == "1" and r["status"] == "provisional" for r in summary)

"""Statement files a contract manager opens: CSV and formatted XLSX, made from stored versions.

Every file is rendered from the rows of one stored version (`versions.load_view`), never from
figures held in memory, so a file always shows the version it names. Files are written to a
temporary name and renamed, so a reader never sees half a file.

- `statement_<contract>_<YYYY-MM>_v<version>.csv|.xlsx`: one version of one contract.
- `settlement_<YYYY-MM>_summary.csv|.xlsx`: each contract's current version for the month
  (the XLSX has a summary sheet and one sheet per contract); rewritten on every run.

CSV files are UTF-8 with a byte-order mark, so Excel (also on Chinese Windows) shows the
operators' names correctly; read them with encoding="utf-8-sig". Columns for machines hold the
exact stored values (`actual`, `attainment`, ...); the `*_shown` columns beside them give the same
figures as people read them (percentages, rounded counts). The XLSX shows formatted numbers; its
"exact" columns keep the actual as text and the attainment as a number to 16 significant digits
(all a spreadsheet holds). Its notes read in Chinese, then as stored (English).

Files are reproducible from their version: the same version gives the same bytes (the XLSX's
document times and zip entry times are the version's computed_at, in UTC), so re-running settle
never rewrites a file's content.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterable, Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from citycloud import outputs, registry
from citycloud.config import BUSINESS_TZ
from citycloud.settlement.versions import StatementView


# One word per statement status, here only (the dashboard reads it from here too).
STATUS_ZH = {"provisional": "暂定", "final": "最终", "restatement": "重述"}


def kpi_name_zh(kpi: str) -> str:
    """The KPI's Chinese label from the metric registry (dbt_project/models/semantic)."""
    return registry.load().label(kpi)

MONEY = '#,##0.00'
EXACT = '0.000000000000000000'
COUNT = '#,##0'
RATE = '0.00%'
FACTOR = '0.00'
WEIGHTED = '0.0000'

CSV_COLUMNS = (
    "contract_id", "city_code", "city_name", "operator", "month", "version", "status", "computed_at",
    "input_fingerprint", "line_no", "kpi", "kpi_name", "actual", "target", "attainment", "weight", "factor",
    "weighted_factor", "monthly_fee_cny", "payment_cny", "restates_version", "actual_before", "factor_before",
    "payment_before_cny", "payment_delta_cny",
    # For people (the columns above keep the exact values for machines):
    "actual_shown", "target_shown", "attainment_shown", "weight_shown",
)
SUMMARY_COLUMNS = (
    "contract_id", "city_code", "city_name", "operator", "month", "version", "status", "monthly_fee_cny",
    "payment_cny", "restates_version", "payment_delta_cny", "computed_at", "input_fingerprint", "statement_file",
)


# --------------------------------------------------------------------------------------------
# Text formats
# --------------------------------------------------------------------------------------------
def dec_text(value: Any, min_places: int = 0) -> str:
    """Exact decimal text without trailing zeros beyond `min_places` ('' for None)."""
    if value is None:
        return ""
    d = Decimal(value).normalize()
    places = max(min_places, -d.as_tuple().exponent if d.as_tuple().exponent < 0 else 0)
    return f"{d:.{places}f}"


def shown_text(value: Any, percent: bool) -> str:
    """A figure as people read it: a percentage with two decimals, or a count rounded to a
    whole number with thousands separators ('' for None). Rounding is half up, as on paper."""
    if value is None:
        return ""
    d = Decimal(value)
    if percent:
        return f"{(d * 100).quantize(Decimal('0.01'), ROUND_HALF_UP)}%"
    return f"{d.quantize(Decimal('1'), ROUND_HALF_UP):,}"


def is_rate(kpi: str) -> bool:
    return kpi in registry.load().rates()


def money_text(value: Any) -> str:
    return "" if value is None else f"{Decimal(value):.2f}"


def when_text(value: datetime) -> str:
    """An instant as Asia/Shanghai time, e.g. 2026-03-05 10:00:00+08:00."""
    if value.tzinfo is not None:
        value = value.astimezone(BUSINESS_TZ)
    return value.isoformat(sep=" ", timespec="seconds")


def month_text(view: StatementView) -> str:
    return view.statement["month"].strftime("%Y-%m")


def statement_stem(view: StatementView) -> str:
    s = view.statement
    return f"statement_{s['contract_id']}_{month_text(view)}_v{s['version']}"


# The stored notes (settlement/service.py writes them in English, one clause per "; ") read in
# Chinese first: each known clause's pattern and its Chinese; an unknown clause stays English only.
_NOTE_ZH = [
    (r"version (\d+) \(final\) written: figures as in version (\d+)", "已写入第 {0} 版（最终），数字同第 {1} 版"),
    (r"version (\d+) \((\w+)\) written", "已写入第 {0} 版（{1}）"),
    (r"changed since version (\d+) \((.*)\): version (\d+) \((\w+)\) written",
     "自第 {0} 版以来有变化（{1}）：已写入第 {2} 版（{3}）"),
    (r"changed since version (\d+) \((.*)\) after final version (\d+): restatement version (\d+) written, "
     r"payment against the final (\S+) → (\S+) \(delta (\S+) CNY\)",
     "自第 {0} 版以来有变化（{1}），晚于最终版本 v{2}：已写入重述版本 v{3}，应付金额 {4} → {5}（差额 {6} 元）"),
    (r"kpi_monthly marks (\S+) incomplete for city (\d+) \((\S+) days covered\): provisional figures",
     "kpi_monthly 标记 {0} 城市 {1} 数据不完整（覆盖 {2} 天）：暂定数字"),
    (r"(\d+) delivery folder\(s\) of (\S+) not in the figures: (.*)", "{1} 有 {0} 个交付文件夹未计入数字：{2}"),
    (r"no deliveries listed for the city in audit.deliveries", "audit.deliveries 中没有该城市的交付记录"),
]


def _clause_zh(clause: str) -> str | None:
    for pattern, zh in _NOTE_ZH:
        if m := re.fullmatch(pattern, clause):
            return zh.format(*(STATUS_ZH.get(g, g) for g in m.groups()))
    return None


def notes_text(notes: str | None) -> str:
    """The statement's notes in Chinese, then as stored (English), on two lines."""
    if not notes:
        return ""
    zh = [z for z in map(_clause_zh, notes.split("; ")) if z]
    return f"{'；'.join(zh)}\n{notes}" if zh else notes


def status_text(s: dict[str, Any]) -> str:
    text = f"{s['status']} {STATUS_ZH.get(s['status'], '')}".strip()
    if s["status"] == "restatement":
        text += f" (restates final version {s['restates_version']} 重述最终版本 v{s['restates_version']})"
    return text


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------
def statement_csv_rows(view: StatementView) -> list[dict[str, str]]:
    s = view.statement
    terms = view.terms
    rows = []
    for ln in view.lines:
        restated = s["status"] == "restatement"
        rows.append(
            {
                "contract_id": s["contract_id"],
                "city_code": s["city_code"],
                "city_name": terms.get("city_name") or "",
                "operator": s["operator"],
                "month": month_text(view),
                "version": str(s["version"]),
                "status": s["status"],
                "computed_at": when_text(s["computed_at"]),
                "input_fingerprint": s["input_fingerprint"],
                "line_no": str(ln["line_no"]),
                "kpi": ln["kpi"],
                "kpi_name": kpi_name_zh(ln["kpi"]),
                "actual": ln["actual_exact"] or "",
                "target": dec_text(ln["target"]),
                "attainment": dec_text(ln["attainment"]),
                "weight": dec_text(ln["weight"]),
                "factor": dec_text(ln["factor"], 2),
                "weighted_factor": dec_text(ln["weighted_factor"]),
                "monthly_fee_cny": money_text(s["monthly_fee_cny"]),
                "payment_cny": money_text(s["payment_cny"]),
                "restates_version": str(s["restates_version"]) if restated else "",
                "actual_before": (ln["actual_exact_before"] or "") if restated else "",
                "factor_before": dec_text(ln["factor_before"], 2) if restated else "",
                "payment_before_cny": money_text(s["payment_before_cny"]) if restated else "",
                "payment_delta_cny": money_text(s["payment_delta_cny"]) if restated else "",
                "actual_shown": shown_text(ln["actual_exact"], is_rate(ln["kpi"])) or "无数据 no data",
                "target_shown": shown_text(ln["target"], is_rate(ln["kpi"])),
                "attainment_shown": shown_text(ln["attainment"], percent=True),
                "weight_shown": shown_text(ln["weight"], percent=True),
            }
        )
    return rows


def _csv_bytes(columns: Sequence[str], rows: Iterable[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\r\n")
    w.writeheader()
    w.writerows(outputs.csv_row(row) for row in rows)  # names from files people write: never a formula
    return buf.getvalue().encode("utf-8-sig")


def write_statement_csv(view: StatementView, out_dir: Path) -> Path:
    return outputs.atomic_write(Path(out_dir) / f"{statement_stem(view)}.csv", _csv_bytes(CSV_COLUMNS, statement_csv_rows(view)))


# --------------------------------------------------------------------------------------------
# XLSX
# --------------------------------------------------------------------------------------------
_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_CHANGED_FILL = PatternFill("solid", fgColor="FFF2CC")
_THIN = Side(style="thin", color="999999")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


def _kpi_format(kpi: str) -> str:
    return RATE if is_rate(kpi) else COUNT


def _num(value: Any) -> Any:
    """A Decimal for a number cell (openpyxl writes it as a number), None for null."""
    return None if value is None else Decimal(value)


def _header_row(ws: Worksheet, row: int, labels: Sequence[str]) -> None:
    for col, label in enumerate(labels, start=1):
        cell = ws.cell(row=row, column=col, value=label)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
        cell.border = _BOX
        cell.alignment = Alignment(wrap_text=True, vertical="center")


def _set_widths(ws: Worksheet, widths: Sequence[int]) -> None:
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w


def _page_setup(ws: Worksheet) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def fill_statement_sheet(ws: Worksheet, view: StatementView) -> None:
    """The statement of one version: header block, KPI table, restatement differences."""
    s = view.statement
    ws.cell(row=1, column=1, value="城市云运营结算单  Citizen-cloud settlement statement").font = _TITLE
    row = _write_header_block(ws, _statement_header(view), first_row=3)
    row = _write_kpi_table(ws, view, row + 1)
    if s["status"] == "restatement" and view.changes:
        _write_restatement_differences(ws, s, view.changes, row)
    _set_widths(ws, [34, 68, 22, 22, 18, 16, 14, 22, 24, 24])
    _page_setup(ws)


def _statement_header(view: StatementView) -> list[tuple[str, Any, str | None]]:
    """The header block's (label, value, number format) rows, restatement figures included."""
    s = view.statement
    terms = view.terms
    city = f"{s['city_code']} {terms.get('city_name') or ''}".strip()
    header = [
        ("合同编号 Contract", s["contract_id"], None),
        ("运营方 Operator", s["operator"], None),
        ("城市 City", city, None),
        ("结算月份 Month", month_text(view), None),
        ("版本 Version", s["version"], "0"),
        ("状态 Status", status_text(s), None),
        ("计算时间 Computed at", when_text(s["computed_at"]), None),
        ("输入指纹 Input fingerprint", s["input_fingerprint"], None),
        ("输入交付数 Deliveries seen", s["deliveries"], COUNT),
        ("月费 Monthly fee (CNY)", _num(s["monthly_fee_cny"]), MONEY),
        ("加权系数 Σ weight × factor", _num(s["weighted_factor"]), WEIGHTED),
        ("应付金额 Payment (CNY)", _num(s["payment_cny"]), MONEY),
    ]
    if s["status"] == "restatement":
        header += [
            (f"最终版本 v{s['restates_version']} 金额 Payment in final version {s['restates_version']} (CNY)",
             _num(s["payment_before_cny"]), MONEY),
            ("差额 Difference (CNY)", _num(s["payment_delta_cny"]), '+#,##0.00;-#,##0.00;0.00'),
        ]
    header.append(("备注 Notes", notes_text(s["notes"]), None))
    return header


def _write_header_block(ws: Worksheet, header: list[tuple[str, Any, str | None]], first_row: int) -> int:
    """Write the label/value rows from `first_row` on; return the row after the last one."""
    row = first_row
    for label, value, fmt in header:
        ws.cell(row=row, column=1, value=label).font = _BOLD
        cell = ws.cell(row=row, column=2, value=value)
        cell.alignment = Alignment(horizontal="left")
        if fmt:
            cell.number_format = fmt
        if label.startswith("备注"):
            cell.alignment = Alignment(horizontal="left", wrap_text=True, vertical="top")
        if label.startswith("应付金额"):
            cell.font = Font(bold=True, size=12)
        row += 1
    return row


def _write_kpi_table(ws: Worksheet, view: StatementView, title_row: int) -> int:
    """The KPI table under its title at `title_row`; return the row of its last line."""
    row = title_row
    ws.cell(row=row, column=1, value="指标明细 KPIs").font = _BOLD
    row += 1
    _header_row(
        ws, row,
        ["指标 KPI", "名称 Name", "实际值 Actual", "目标 Target", "达成率 Attainment", "权重 Weight", "系数 Factor",
         "加权系数 Weight × factor", "实际值（精确）Actual, exact", "达成率（精确）Attainment, exact"],
    )
    ws.freeze_panes = None
    for ln in view.lines:
        row += 1
        fmt = _kpi_format(ln["kpi"])
        values = [
            (ln["kpi"], None),
            (kpi_name_zh(ln["kpi"]), None),
            (_num(ln["actual_exact"]) if ln["actual_exact"] is not None else "无数据 no data", fmt),
            (_num(ln["target"]), fmt),
            (_num(ln["attainment"]), RATE),
            (_num(ln["weight"]), "0%" if (Decimal(ln["weight"]) * 100) % 1 == 0 else RATE),
            (_num(ln["factor"]), FACTOR),
            (_num(ln["weighted_factor"]), WEIGHTED),
            # The values the payment came from: the actual as text (no spreadsheet rounds it), the
            # attainment a number to compute with (16 significant digits, all a spreadsheet holds;
            # the CSV's `attainment` has every stored digit).
            (ln["actual_exact"] or "", "@"),
            (_num(ln["attainment"]), EXACT),
        ]
        for col, (value, f) in enumerate(values, start=1):
            cell = ws.cell(row=row, column=col, value=value)
            cell.border = _BOX
            if f:
                cell.number_format = f
    return row


def _write_restatement_differences(ws: Worksheet, s: dict, changes: dict, last_row: int) -> None:
    """A restatement's differences from the final version, a blank row below `last_row`."""
    row = last_row + 2
    ws.cell(
        row=row, column=1,
        value=f"与最终版本 v{s['restates_version']} 的差异  Differences from final version {s['restates_version']}",
    ).font = _BOLD
    row += 1
    _header_row(
        ws, row,
        ["指标 KPI", "名称 Name", "原实际值 Actual before", "新实际值 Actual after", "原系数 Factor before",
         "新系数 Factor after", "变化 Changed"],
    )
    for k in changes["kpis"]:
        row += 1
        fmt = _kpi_format(k["kpi"])
        values = [
            (k["kpi"], None),
            (kpi_name_zh(k["kpi"]), None),
            (_num(k["actual_before"]) if k["actual_before"] is not None else "—", fmt),
            (_num(k["actual_after"]) if k["actual_after"] is not None else "—", fmt),
            (_num(k["factor_before"]) if k["factor_before"] is not None else "—", FACTOR),
            (_num(k["factor_after"]), FACTOR),
            ("是 yes" if k["changed"] else "否 no", None),
        ]
        for col, (value, f) in enumerate(values, start=1):
            cell = ws.cell(row=row, column=col, value=value)
            cell.border = _BOX
            if f:
                cell.number_format = f
            if k["changed"]:
                cell.fill = _CHANGED_FILL
    for kpi in changes.get("kpis_removed", []):
        row += 1
        ws.cell(row=row, column=1, value=kpi)
        ws.cell(row=row, column=7, value="已移除 removed from the terms")
    if changes.get("terms_changed"):
        row += 1
        ws.cell(row=row, column=1, value="合同条款已变更 The contract terms changed since the final version.")


def fill_terms_sheet(ws: Worksheet, view: StatementView) -> None:
    terms = view.terms
    ws.cell(row=1, column=1, value="合同条款 Contract terms used by this version").font = _TITLE
    rows = [
        ("合同编号 Contract", terms["contract_id"]),
        ("运营方 Operator", terms["operator"]),
        ("合同期 Months covered", f"{terms['start_month']} .. {terms['end_month']}"),
        ("月费 Monthly fee (CNY)", Decimal(terms["monthly_fee_cny"])),
    ]
    r = 3
    for label, value in rows:
        ws.cell(row=r, column=1, value=label).font = _BOLD
        c = ws.cell(row=r, column=2, value=value)
        c.alignment = Alignment(horizontal="left")
        if isinstance(value, Decimal):
            c.number_format = MONEY
        r += 1
    r += 1
    _header_row(ws, r, ["指标 KPI", "名称 Name", "目标 Target", "权重 Weight"])
    for k in terms["kpis"]:
        r += 1
        fmt = _kpi_format(k["kpi"])
        for col, (value, f) in enumerate(
            [(k["kpi"], None), (kpi_name_zh(k["kpi"]), None), (Decimal(k["target"]), fmt),
             (Decimal(k["weight"]), RATE)], start=1,
        ):
            cell = ws.cell(row=r, column=col, value=value)
            cell.border = _BOX
            if f:
                cell.number_format = f
    r += 2
    _header_row(ws, r, ["达成率下限 Min attainment", "系数 Factor"])
    for t in terms["tiers"]:
        r += 1
        a = ws.cell(row=r, column=1, value=Decimal(t["min_attainment"]))
        a.number_format = RATE
        a.border = _BOX
        f = ws.cell(row=r, column=2, value=Decimal(t["factor"]))
        f.number_format = FACTOR
        f.border = _BOX
    _set_widths(ws, [30, 60, 18, 14])


def fill_inputs_sheet(ws: Worksheet, view: StatementView) -> None:
    s = view.statement
    ws.cell(row=1, column=1, value="输入交付 Deliveries the figures saw").font = _TITLE
    ws.cell(row=2, column=1, value=f"input fingerprint: {s['input_fingerprint']}")
    _header_row(ws, 4, ["来源 Source", "交付日期 dt", "内容哈希 content_hash", "入库行数 Rows loaded", "批次 Batch", "入库时间 Ingested at"])
    for r, d in enumerate(view.inputs, start=5):
        ws.cell(row=r, column=1, value=d["source"])
        ws.cell(row=r, column=2, value=d["dt"]).number_format = "yyyy-mm-dd"
        ws.cell(row=r, column=3, value=d["content_hash"])
        ws.cell(row=r, column=4, value=d["rows_loaded"]).number_format = COUNT
        ws.cell(row=r, column=5, value=d["batch_id"])
        ws.cell(row=r, column=6, value=d["ingested_at"]).number_format = "yyyy-mm-dd hh:mm:ss"
    ws.freeze_panes = "A5"
    _set_widths(ws, [20, 14, 70, 16, 10, 22])


def _workbook_bytes(wb: Workbook, when: datetime) -> bytes:
    """The workbook's bytes, a function of its content and `when` (the version's computed_at) alone."""
    return outputs.workbook_bytes(wb, when, creator="citycloud settlement")


def statement_workbook(view: StatementView) -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "结算单 Statement"
    fill_statement_sheet(ws, view)
    fill_terms_sheet(wb.create_sheet("条款 Terms"), view)
    fill_inputs_sheet(wb.create_sheet("输入 Inputs"), view)
    return wb


def write_statement_xlsx(view: StatementView, out_dir: Path) -> Path:
    data = _workbook_bytes(statement_workbook(view), view.statement["computed_at"])
    return outputs.atomic_write(Path(out_dir) / f"{statement_stem(view)}.xlsx", data)


def write_statement_files(view: StatementView, out_dir: Path) -> list[Path]:
    return [write_statement_csv(view, out_dir), write_statement_xlsx(view, out_dir)]


# --------------------------------------------------------------------------------------------
# Month summary
# --------------------------------------------------------------------------------------------
def _summary_row(view: StatementView) -> dict[str, str]:
    s = view.statement
    restated = s["status"] == "restatement"
    return {
        "contract_id": s["contract_id"],
        "city_code": s["city_code"],
        "city_name": view.terms.get("city_name") or "",
        "operator": s["operator"],
        "month": month_text(view),
        "version": str(s["version"]),
        "status": s["status"],
        "monthly_fee_cny": money_text(s["monthly_fee_cny"]),
        "payment_cny": money_text(s["payment_cny"]),
        "restates_version": str(s["restates_version"]) if restated else "",
        "payment_delta_cny": money_text(s["payment_delta_cny"]) if restated else "",
        "computed_at": when_text(s["computed_at"]),
        "input_fingerprint": s["input_fingerprint"],
        "statement_file": f"{statement_stem(view)}.xlsx",
    }


def _sheet_title(name: str, used: set[str]) -> str:
    base = "".join(ch for ch in name if ch not in '[]:*?/\\')[:31] or "contract"
    title, n = base, 2
    while title.lower() in used:
        suffix = f"~{n}"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(title.lower())
    return title


def write_month_summary(views: Sequence[StatementView], month: str, out_dir: Path) -> list[Path]:
    """Summary of each contract's current version, as CSV and XLSX (summary + one sheet per contract)."""
    if not views:
        return []
    out_dir = Path(out_dir)
    rows = [_summary_row(v) for v in views]
    csv_path = outputs.atomic_write(out_dir / f"settlement_{month}_summary.csv", _csv_bytes(SUMMARY_COLUMNS, rows))

    wb = Workbook()
    ws = wb.active
    ws.title = "汇总 Summary"
    used = {ws.title.lower()}
    ws.cell(row=1, column=1, value=f"城市云运营结算汇总  Settlement summary {month}").font = _TITLE
    labels = ["合同 Contract", "城市 City", "运营方 Operator", "版本 Version", "状态 Status", "月费 Fee (CNY)",
              "应付 Payment (CNY)", "差额 Delta vs final (CNY)", "计算时间 Computed at", "输入指纹 Input fingerprint"]
    _header_row(ws, 3, labels)
    r = 3
    total = Decimal("0.00")
    for v in views:
        s = v.statement
        r += 1
        total += s["payment_cny"]
        values = [
            (s["contract_id"], None),
            (f"{s['city_code']} {v.terms.get('city_name') or ''}".strip(), None),
            (s["operator"], None),
            (s["version"], "0"),
            (f"{s['status']} {STATUS_ZH.get(s['status'], '')}", None),
            (_num(s["monthly_fee_cny"]), MONEY),
            (_num(s["payment_cny"]), MONEY),
            (_num(s["payment_delta_cny"]) if s["status"] == "restatement" else None, '+#,##0.00;-#,##0.00;0.00'),
            (when_text(s["computed_at"]), None),
            (s["input_fingerprint"], None),
        ]
        for col, (value, f) in enumerate(values, start=1):
            cell = ws.cell(row=r, column=col, value=value)
            cell.border = _BOX
            if f:
                cell.number_format = f
    r += 1
    ws.cell(row=r, column=6, value="合计 Total").font = _BOLD
    t = ws.cell(row=r, column=7, value=total)
    t.number_format = MONEY
    t.font = _BOLD
    _set_widths(ws, [18, 14, 40, 10, 18, 16, 18, 18, 26, 70])
    ws.freeze_panes = "A4"
    _page_setup(ws)
    for v in views:
        fill_statement_sheet(wb.create_sheet(_sheet_title(v.statement["contract_id"], used)), v)
    latest = max(v.statement["computed_at"] for v in views)
    xlsx_path = outputs.atomic_write(out_dir / f"settlement_{month}_summary.xlsx", _workbook_bytes(wb, latest))
    return [csv_path, xlsx_path]

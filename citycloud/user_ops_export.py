"""The monthly user-operations workbook for the review meeting: one XLSX per city and month,
one sheet per user-operations mart (user_ops.md), read from the published snapshot.

Sheets hold the mart rows that belong to the month: the month's lifecycle row and the weeks
starting in it, every cohort's retention in that month, the registration days of the month,
its stickiness and its channel days. Columns keep the marts' names so the figures can be
traced back to the warehouse.
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import duckdb
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from citycloud import outputs
from citycloud.config import CitycloudError, Settings
from citycloud.publish import check_city, open_snapshot
from citycloud.validation import is_city_code

# sheet name -> (mart, condition selecting the month's rows; ? = month start, ? = next month start)
SHEETS = {
    "lifecycle": ("user_lifecycle", "period_start >= ? AND period_start < ?", "grain, period_start"),
    "retention": ("retention_monthly", "cohort_month + to_months(months_since) >= ? "
                                      "AND cohort_month + to_months(months_since) < ?", "cohort_month, channel"),
    "activation": ("activation_daily", "registration_day >= ? AND registration_day < ?", "registration_day"),
    "stickiness": ("stickiness_monthly", "month >= ? AND month < ?", "active_days"),
    "channels": ("channel_daily", "kpi_date >= ? AND kpi_date < ?", "kpi_date, channel"),
}


def _month(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(f"{text}-01")
    except ValueError:
        raise CitycloudError(f"--month must be YYYY-MM, got {text!r}") from None


def export_user_ops(settings: Settings, city: str, month: str, out_dir: Path | None = None) -> Path:
    """Write `user_ops_<city>_<YYYY-MM>.xlsx` (whole or not at all); raise CitycloudError, writing
    nothing, for a bad city or month, a refused output folder, or a month not covered."""
    if not is_city_code(city):
        raise CitycloudError(f"--city {city!r}: must be a 6-digit city code (ASCII digits 0-9)")
    start = _month(month)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    shown = Path(out_dir or settings.output / "user_ops" / month) / f"user_ops_{city}_{month}.xlsx"
    folder = outputs.output_folder("--out", shown.parent, settings)
    path = outputs.file_in("--out", folder, shown.name, settings)
    if not settings.published.exists():
        raise CitycloudError(f"no published snapshot at {settings.published}: run `citycloud run` first")
    con = open_snapshot(settings)
    try:
        check_city(con, city)
        covered = con.execute("SELECT count(*) FROM marts.user_lifecycle WHERE city_code = ? AND grain = 'month' "
                              "AND period_start = ?", [city, start]).fetchone()[0]
        if not covered:
            raise CitycloudError(f"city {city} month {month}: not fully covered by the published snapshot "
                                 f"{settings.published} (no marts.user_lifecycle month row)")
        book = Workbook()
        book.remove(book.active)
        for sheet, (mart, where, order) in SHEETS.items():
            cur = con.execute(f"SELECT * FROM marts.{mart} WHERE city_code = ? AND {where} ORDER BY {order}",
                              [city, start, end])
            _write_sheet(book.create_sheet(sheet), [d[0] for d in cur.description], cur.fetchall())
    except duckdb.CatalogException as exc:
        raise CitycloudError(f"the published snapshot {settings.published} has no user-operations marts yet: "
                             f"{str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    outputs.text_only(book.worksheets)  # delivered names (channels, services) are text, never formulas
    saved = io.BytesIO()
    book.save(saved)
    outputs.atomic_write(path, saved.getvalue())
    return shown


def _write_sheet(ws, columns: list[str], rows: list[tuple]) -> None:
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(list(row))
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, (dt.date, dt.datetime)):
                cell.number_format = "yyyy-mm-dd"
    for i, name in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(12, len(name) + 2)
    ws.freeze_panes = "A2"

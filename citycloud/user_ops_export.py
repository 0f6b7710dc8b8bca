"""The monthly user-operations workbook for the review meeting: one XLSX per city and month,
one sheet per user-operations mart (user_ops.md), read from the published snapshot.

Sheets hold the mart rows that belong to the month: the month's lifecycle row and the weeks
starting in it, every cohort's retention in that month, the registration days of the month,
its stickiness and its channel days. Each sheet is titled like the settlement statements (city,
month, what the sheet holds, its mart); column headers are Chinese and English (a metric's
labels from the registry, other columns' from `config.meta` in the mart's YAML), with the mart's
column name below so a figure can be traced back to the warehouse. Rates are percentages,
yes/no columns 是/否, and the retention of old small cohorts is one row per channel
(docs/user_ops.md, "The monthly workbook").
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import duckdb
import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from citycloud import outputs, registry
from citycloud.config import CitycloudError, Settings
from citycloud.publish import check_city, open_snapshot
from citycloud.validation import is_city_code

# sheet name -> (mart, condition selecting the month's rows; ? = month start, ? = next month start, order)
SHEETS = {
    "生命周期 lifecycle": ("user_lifecycle", "period_start >= ? AND period_start < ?", "grain, period_start"),
    "留存 retention": ("retention_monthly", "cohort_month + to_months(months_since) >= ? "
                                           "AND cohort_month + to_months(months_since) < ?", "cohort_month, channel"),
    "激活 activation": ("activation_daily", "registration_day >= ? AND registration_day < ?", "registration_day"),
    "粘性 stickiness": ("stickiness_monthly", "month >= ? AND month < ?", "active_days"),
    "渠道 channels": ("channel_daily", "kpi_date >= ? AND kpi_date < ?", "kpi_date, channel"),
}
SHEET_TITLES = {
    "user_lifecycle": "用户生命周期（本月及本月开始的各周） User lifecycle: the month and the weeks starting in it",
    "retention_monthly": "各注册月份同期群在本月的留存 Retention of every cohort in the month",
    "activation_daily": "本月各注册日的7日激活 7-day activation of the month's registration days",
    "stickiness_monthly": "本月活跃天数分布 Users by active days in the month",
    "channel_daily": "本月各渠道每日数据 The month's days by channel",
}
# Retention: cohorts registered more than a year before the month with fewer users than this are
# one row per channel (a 2019 cohort of three users says nothing a meeting can act on).
OLD_COHORT_MONTHS = 12
SMALL_COHORT_USERS = 20
GRAINS_ZH = {"week": "周 week", "month": "月 month"}

_TITLE = Font(bold=True, size=14)
_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_THIN = Side(style="thin", color="BFBFBF")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
HEADER_ROW = 4


def _month(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(f"{text}-01")
    except ValueError:
        raise CitycloudError(f"--month must be YYYY-MM, got {text!r}") from None


def export_user_ops(settings: Settings, city: str, month: str, out_dir: Path | None = None) -> Path:
    """Write `user_ops_<city>_<YYYY-MM>.xlsx` (whole or not at all); raise CitycloudError, writing
    nothing, for a bad or unknown city or month, a refused output folder, or a month not covered."""
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
        name = (con.execute("SELECT city_name FROM marts.city_reference WHERE city_code = ?", [city]).fetchone()
                or [""])[0]
        book = Workbook()
        book.remove(book.active)
        for sheet, (mart, where, order) in SHEETS.items():
            df = con.execute(f"SELECT * FROM marts.{mart} WHERE city_code = ? AND {where} ORDER BY {order}",
                             [city, start, end]).df()
            if mart == "retention_monthly":
                df = group_old_small_cohorts(df, start)
            title = f"用户运营月报 User operations — {name}（{city}）{month}"
            write_sheet(book.create_sheet(sheet), title, f"{SHEET_TITLES[mart]} · marts.{mart}", df,
                         registry.mart_column_labels(mart))
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


def group_old_small_cohorts(df: pd.DataFrame, month: dt.date) -> pd.DataFrame:
    """Cohorts over OLD_COHORT_MONTHS before `month` whose whole cohort (channel `all`) has fewer
    than SMALL_COHORT_USERS users: one row per channel, summed, labelled by the newest such cohort."""
    if not {"cohort_users", "retained_users", "retention_rate", "months_since"} <= set(df.columns) or df.empty:
        return df
    cohort = pd.to_datetime(df["cohort_month"]).dt.date
    limit = (pd.Timestamp(month) - pd.DateOffset(months=OLD_COHORT_MONTHS)).date()
    whole = df.loc[df["channel"] == "all"].set_index("cohort_month")["cohort_users"]
    small = df["cohort_month"].map(whole).fillna(0) < SMALL_COHORT_USERS
    old = (cohort < limit) & small
    if not old.any():
        return df
    newest = max(cohort[old])
    grouped = (df[old].groupby("channel", sort=True, as_index=False)
               .agg(city_code=("city_code", "first"), cohort_users=("cohort_users", "sum"),
                    retained_users=("retained_users", "sum")))
    n = df.loc[old, "cohort_month"].nunique()
    grouped["cohort_month"] = f"≤ {newest:%Y-%m} 的 {n} 个小同期群 {n} small cohorts (< {SMALL_COHORT_USERS})"
    grouped["months_since"] = None
    grouped["retention_rate"] = grouped["retained_users"] / grouped["cohort_users"].where(grouped["cohort_users"] > 0)
    rest = df[~old].astype({"cohort_month": object})
    return pd.concat([grouped[df.columns], rest], ignore_index=True)


def _cell_value(value, column: str):
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "是" if value else "否"
    if column == "grain":
        return GRAINS_ZH.get(value, value)
    if isinstance(value, pd.Timestamp):
        return value.date()
    if hasattr(value, "item"):  # numpy scalars as Python numbers
        return value.item()
    return value


def write_sheet(ws, title: str, subtitle: str, df: pd.DataFrame, labels: dict) -> None:
    ws.cell(row=1, column=1, value=title).font = _TITLE
    ws.cell(row=2, column=1, value=subtitle)
    columns = list(df.columns)
    for i, column in enumerate(columns, start=1):
        label = labels.get(column)
        text = f"{label.label}\n{label.label_en}\n{column}" if label else column
        cell = ws.cell(row=HEADER_ROW, column=i, value=text)
        cell.font, cell.fill, cell.border = _BOLD, _HEADER_FILL, _BOX
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        width = max(len(column), *(len(part) * (2 if not part.isascii() else 1) for part in text.split("\n")))
        ws.column_dimensions[get_column_letter(i)].width = min(40, max(12, width + 2))
    ws.row_dimensions[HEADER_ROW].height = 48
    for r, row in enumerate(df.itertuples(index=False), start=HEADER_ROW + 1):
        for i, (column, value) in enumerate(zip(columns, row), start=1):
            cell = ws.cell(row=r, column=i, value=_cell_value(value, column))
            cell.border = _BOX
            label = labels.get(column)
            if isinstance(cell.value, (dt.date, dt.datetime)):
                cell.number_format = "yyyy-mm-dd"
            elif label is not None and label.format == "percent":
                cell.number_format = "0.0%"
            elif isinstance(cell.value, int):
                cell.number_format = "#,##0"
    ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=1)
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"

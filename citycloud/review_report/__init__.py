"""`citycloud reviews`: the monthly 好差评 report of a city (reviews.md), XLSX and PDF, for the
city's monthly review meeting, read from the published snapshot (docs/reviews_report.md).

Made like the scorecard's reports: a Jinja2 page printed by headless Chromium (the page's HTML
kept beside its PDF, so a rerun on the same figures prints nothing and changes no byte), an
openpyxl workbook with fixed timestamps, all staged and moved into place together by
`outputs.FileSet` behind the one output guard."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from citycloud import outputs
from citycloud import review_figures as rf
from citycloud.config import CitycloudError, Settings
from citycloud.publish import check_city, open_snapshot
from citycloud.review_report.workbook import channel_rows, tag_rows, workbook_bytes
from citycloud.scorecard import reports as scorecard_reports
from citycloud.scorecard.pdf import chromium, print_pdf
from citycloud.validation import is_city_code, month_start

TEMPLATES = Path(__file__).with_name("templates")
# A section of at most this many rows moves to the next page whole rather than split; a longer
# one starts where it is (its heading kept with its first rows) instead of leaving a blank page.
KEEP_ROWS = 20


@dataclass
class ReviewReport:
    city: str
    month: str
    figures: rf.MonthFigures
    files: list[Path] = field(default_factory=list)
    printed: bool = True  # False: the PDF of the same page was kept as it was

    def summary_line(self) -> str:
        whole = self.figures.overview.iloc[0]
        state = "settled" if whole["settled"] else "not settled yet"
        return (f"reviews {self.city} {self.month}: {int(whole['bad_reviews'])} bad reviews, on-time rate "
                f"{rf.rate_text(whole['on_time_rate'])}, call-back rate {rf.rate_text(whole['callback_rate'])}, "
                f"{int(whole['overdue_open'])} overdue ({state}); XLSX and PDF in {self.files[0].parent}")


def _env() -> Environment:
    env = Environment(loader=ChoiceLoader([FileSystemLoader(TEMPLATES), FileSystemLoader(scorecard_reports.TEMPLATES)]),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["rate"] = rf.rate_text
    env.filters["count"] = lambda v: "—" if v is None or pd.isna(v) else f"{int(v):,}"
    env.globals.update(labels=rf.column_labels(), no_ticket=rf.NO_TICKET,
                       keep=lambda rows: "keep" if len(rows) <= KEEP_ROWS else "flow")
    return env


def _overdue_by_department(figures: rf.MonthFigures) -> list[dict]:
    """Per department, in the order of the department table (most bad reviews first)."""
    out = []
    order = {d: i for i, d in enumerate(figures.departments["department"])}
    for department, rows in sorted(figures.overdue.groupby("department"), key=lambda g: (order.get(g[0], len(order)), g[0])):
        tickets = rows[rows["ticket_id"].notna()]
        out.append({"department": rf.department_name(department), "count": len(rows),
                    "tickets": [{"ticket_id": r.ticket_id, "due_day": r.due_day} for r in tickets.itertuples()],
                    "without_ticket": int(rows["ticket_id"].isna().sum())})
    return out


def render_html(figures: rf.MonthFigures, city: str, name: str) -> str:
    whole = figures.overview.iloc[0].to_dict()
    departments = figures.departments.assign(department=figures.departments["department"].map(rf.department_name))
    return _env().get_template("review_report.html.j2").render(
        city=city, name=name, month=f"{figures.month:%Y-%m}", month_zh=f"{figures.month.year}年{figures.month.month:02d}月",
        all=whole, as_of=whole["as_of_day"], channels=channel_rows(figures).to_dict("records"),
        channel_columns=["channel", "ratings", *rf.GRADE_COLUMNS, "bad_reviews"],
        tags=tag_rows(figures).to_dict("records"), departments=departments.to_dict("records"),
        department_columns=list(rf.department_columns()), overdue=_overdue_by_department(figures))


def read_figures(settings: Settings, city: str, month: str) -> tuple[rf.MonthFigures, str]:
    """The city's figures of the month and its name; one line for an unknown city, a snapshot
    without the review marts, or a month without figures."""
    start = month_start(month)
    if not settings.published.exists():
        raise CitycloudError(f"no published snapshot at {settings.published}: run `citycloud run` first")
    con = open_snapshot(settings)
    try:
        check_city(con, city)
        missing = rf.missing_tables(con)
        if missing:
            raise CitycloudError(f"the published snapshot {settings.published} has no {', '.join(missing)}: run "
                                 "`citycloud run` with a build that has the 好差评 marts (reviews.md)")
        covered = rf.months(con, [city])
        if start not in covered:
            listed = ", ".join(f"{m:%Y-%m}" for m in covered) or "none"
            raise CitycloudError(f"city {city} month {month}: no 好差评 figures in marts.review_monthly "
                                 f"(months with figures: {listed})")
        figures = rf.load_month(con, [city], start)
        name = (con.execute("SELECT city_name FROM marts.city_reference WHERE city_code = ?", [city]).fetchone()
                or [city])[0]
    except duckdb.Error as exc:
        raise CitycloudError(f"cannot read {settings.published}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    return figures, name


def write_review_report(settings: Settings, city: str, month: str, out_dir: Path | str | None = None,
                        progress: Callable[[str], None] | None = None) -> ReviewReport:
    """Write `<city>_<name>_好差评月报_<month>` .xlsx, .html and .pdf into `out_dir` (default
    <output>/reviews/<month>/), all or none; CitycloudError (nothing written) for bad input."""
    if not is_city_code(city):
        raise CitycloudError(f"--city {city!r}: must be a 6-digit city code (ASCII digits 0-9)")
    month_start(month)
    folder = Path(out_dir) if out_dir is not None else Path(settings.output) / "reviews" / month
    outputs.output_folder("--out", folder, settings)  # refused before anything is read or printed
    chromium()
    figures, name = read_figures(settings, city, month)
    stem = f"{city}_{name}_好差评月报_{month}"
    report = ReviewReport(city, month, figures)
    html = render_html(figures, city, name)
    with outputs.FileSet(folder, "--out", settings) as files:
        staged_xlsx, staged_html, staged_pdf = (files.path(f"{stem}{ext}") for ext in (".xlsx", ".html", ".pdf"))
        try:
            staged_xlsx.write_bytes(workbook_bytes(figures, f"好差评月报 Good/bad reviews — {name}（{city}）{month}"))
            staged_html.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise outputs.write_error(folder / stem, exc) from None
        if scorecard_reports.reuse_printed(files.folder / stem, html, staged_pdf):
            report.printed = False
        else:
            print_pdf(staged_html, staged_pdf)
        report.files = files.commit()
    if progress:
        progress(f"{'printed the PDF' if report.printed else 'same page as before: PDF kept as it was'}")
    return report

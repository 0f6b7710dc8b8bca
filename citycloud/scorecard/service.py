"""`citycloud scorecard`: validate, score every city of every scheme in force, write, report."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from citycloud import db, outputs
from citycloud.config import BUSINESS_TZ, CitycloudError, Settings
from citycloud.db import writer_step
from citycloud.publish import export_snapshot
from citycloud.scorecard import measures, store
from citycloud.scorecard.pdf import chromium
from citycloud.scorecard.reports import write_reports
from citycloud.scorecard.evaluate import TREND_MONTHS, CityResult, evaluate, months_back, scheme_cities
from citycloud.scorecard.rules import (latest_assessments, load_assessments, load_schemes,
                                       unknown_city_problems)
from citycloud.validation import month_start

REQUIRED = ("scorecard_measures", "city_reference", "kpi_daily")


@dataclass
class ScorecardReport:
    month: str
    results: list[CityResult] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # scheme_id, city_code, reason
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    def summary_line(self) -> str:
        schemes = sorted({r.scheme_id for r in self.results})
        best = ", ".join(f"{r.scheme_id} #{r.rank} {r.city_code} {r.total} {r.grade}"
                         for r in self.results if r.rank == 1)
        refused = f"; {len(self.refused)} refused (see above)" if self.refused else ""
        where = f"; reports ({len(self.files)} files) in {self.out_dir}" if self.files else ""
        return (f"scorecard {self.month}: scored {len(self.results)} city-scheme pairs under {len(schemes)} "
                f"scheme(s) ({best}){refused}; tables marts.scorecard_indicators, marts.scorecard_monthly{where}")


@writer_step  # one writer at a time; a full disk is one clear line
def score_month(settings: Settings, scheme_path: Path | str, month: str, assessments_path: Path | str | None = None,
                out_dir: Path | str | None = None, today: date | None = None,
                progress: Callable[[str], None] | None = None) -> ScorecardReport:
    """Score `month` (YYYY-MM). Raises CitycloudError, writing nothing, when a file breaks a rule,
    no scheme is in force, the warehouse lacks the marts, or no city at all can be scored."""
    month_start(month)
    schemes = load_schemes(scheme_path)
    entries = load_assessments(assessments_path)
    in_force = [s for s in schemes if s.in_force(month)]
    if not in_force:
        ranges = ", ".join(f"{s.scheme_id} {s.start_month}..{s.end_month}" for s in schemes)
        raise CitycloudError(f"no scheme of {scheme_path} is in force in {month} ({ranges}); nothing was scored")
    warehouse = Path(settings.warehouse)
    if not warehouse.exists():
        raise CitycloudError(f"warehouse {warehouse} does not exist: run `citycloud run` first")
    chromium()  # the PDFs need it: refuse before writing anything rather than after the tables
    report_dir = Path(out_dir) if out_dir is not None else Path(settings.output) / "scorecard"
    folder = outputs.output_folder("--out", report_dir, settings) / month
    today = today or datetime.now(BUSINESS_TZ).date()
    report = ScorecardReport(month, out_dir=report_dir)
    con = db.connect(warehouse, settings=settings)
    try:
        missing = [t for t in REQUIRED if not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' AND table_name = ?",
            [t]).fetchone()[0]]
        if missing:
            raise CitycloudError(f"warehouse {warehouse} has no marts.{', marts.'.join(missing)}: "
                                 "run `citycloud run` (with --full-refresh on a warehouse built before the scorecard)")
        problems = unknown_city_problems(schemes, entries, measures.known_cities(con))
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise CitycloudError(f"{scheme_path} / {assessments_path}: {len(problems)} unknown cit"
                                 f"{'ies' if len(problems) > 1 else 'y'}; nothing was scored:\n{lines}")
        latest = latest_assessments(entries)
        with_data = measures.cities_with_data(con)
        trends: dict[str, dict] = {}
        for scheme in in_force:
            cities = scheme_cities(scheme, with_data)
            ev = evaluate(con, scheme, cities, months_back(month, TREND_MONTHS), latest, today)
            for city in cities:
                if (city, month) in ev.results:
                    report.results.append(ev.results[(city, month)])
                else:
                    report.refused.append((scheme.scheme_id, city, ev.refused[(city, month)]))
                    if progress:
                        progress(f"{scheme.scheme_id} {city}: refused: {ev.refused[(city, month)]}")
            trends[scheme.scheme_id] = ev.results
        if not report.results:
            reasons = "; ".join(f"{s} {c}: {r}" for s, c, r in report.refused)
            raise CitycloudError(f"no city could be scored for {month}, nothing was written: {reasons}")
        names = measures.city_names(con)

        def render(ranks: dict[tuple[str, str], int]) -> None:
            # Before the tables are committed: a report that cannot be made changes nothing.
            for r in report.results:
                r.rank = ranks[(r.scheme_id, r.city_code)]
            if progress:
                progress(f"scored {len(report.results)} city-scheme pairs; writing reports")
            write_reports(files, month, {s.scheme_id: s for s in in_force}, report.results, report.refused,
                          trends, names, progress)

        # The new reports are complete in a staging folder before the commit; moved into place
        # after it, the previous ones stay until then.
        with outputs.FileSet(folder, "--out", settings) as files:
            written = store.replace_month(con, month, report.results, report.refused,
                                          datetime.now(BUSINESS_TZ).replace(tzinfo=None), before_commit=render)
            report.files = [report_dir / month / path.name for path in files.commit()]
        if progress and not written:
            progress(f"{month}: same scores as stored; tables left as they were")
        export_snapshot(con, settings)
    finally:
        con.close()
    return report

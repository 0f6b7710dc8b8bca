"""The evaluation reports (运营评价报告) per city and the comparison of the cities, HTML + PDF."""
from __future__ import annotations

import shutil
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Callable

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from citycloud.outputs import FileSet, write_error
from citycloud.scorecard import catalog, charts
from citycloud.scorecard.evaluate import TREND_MONTHS, CityResult, months_back
from citycloud.scorecard.pdf import print_pdf
from citycloud.scorecard.rules import Scheme

TEMPLATES = Path(__file__).with_name("templates")
COMPARISON_STEM = "城市对比_comparison"
PRINTERS = 2


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = format_value
    env.filters["percent"] = weight_percent
    env.globals.update(heat_colour=charts.heat_colour, catalog=catalog)
    return env


def format_value(value, indicator: str) -> str:
    """A value as a reviewer reads it: rates in %, counts whole, scores to 0.1."""
    if value is None:
        return "无数据"
    kind = catalog.indicators()[indicator].format
    if kind == "rate":
        pct = float(value) * 100
        # small shares (user_coverage of a big city) keep three significant digits, not "0.0%"
        return f"{pct:.3g}%" if 0 < abs(pct) < 1 else f"{pct:.1f}%"
    if kind == "count":
        return f"{float(value):,.0f}"
    return f"{float(value):.1f}"


def weight_percent(weight: Decimal) -> str:
    """A weight as the dashboard's scorecard shows it: 0.15 -> "15%" (0.125 -> "12.5%")."""
    return f"{(Decimal(weight) * 100).normalize():f}%"


def city_stem(city: str, names: dict[str, str]) -> str:
    return f"{city}_{names.get(city, city)}_运营评价报告"


def _lost(result: CityResult) -> list[dict]:
    """Indicators that cost points, biggest loss first."""
    rows = [i for i in result.indicators if i.points_lost > 0]
    rows.sort(key=lambda i: (-i.points_lost, i.indicator))
    return [{"ind": i, "lost": i.points_lost.quantize(Decimal("0.01"))} for i in rows]


def write_reports(files: FileSet, month: str, schemes: dict[str, Scheme], results: list[CityResult],
                  refused: list[tuple[str, str, str]], trends: dict[str, dict], names: dict[str, str],
                  progress: Callable[[str], None] | None = None) -> None:
    """Render every report (HTML and PDF) into `files`' staging folder; the caller puts them in place."""
    env = _env()
    months = months_back(month, TREND_MONTHS)
    labels = {k: v.label for k, v in catalog.indicators().items()}
    by_city: dict[str, list[CityResult]] = defaultdict(list)
    for r in results:
        by_city[r.city_code].append(r)
    counts = defaultdict(int)
    for r in results:
        counts[r.scheme_id] += 1
    pages: list[tuple[str, str]] = []  # (stem, html)
    for city, mine in sorted(by_city.items()):
        sections = []
        for r in sorted(mine, key=lambda x: x.scheme_id):
            history = trends[r.scheme_id]
            trend = {i.indicator: charts.sparkline([
                next((x.score for x in history[(city, m)].indicators if x.indicator == i.indicator), None)
                if (city, m) in history else None for m in months]) for i in r.indicators}
            total_trend = charts.sparkline([history[(city, m)].total if (city, m) in history else None for m in months],
                                           width=220, height=40)
            bars = charts.dimension_bars([(d.label, r.dimensions[k]) for k, d in catalog.dimensions().items()])
            sections.append({"r": r, "scheme": schemes[r.scheme_id], "n": counts[r.scheme_id], "trend": trend,
                             "total_trend": total_trend, "bars": bars, "lost": _lost(r)})
        html = env.get_template("city_report.html.j2").render(
            city=city, name=names.get(city, city), month=month, months=months, sections=sections, labels=labels,
            refused=[(s, reason) for s, c, reason in refused if c == city])
        pages.append((city_stem(city, names), html))
    ranking = []
    for scheme_id in sorted(schemes):  # schemes with no city scored still show their refusals
        mine = sorted((r for r in results if r.scheme_id == scheme_id), key=lambda x: (x.rank, x.city_code))
        ranking.append({"scheme": schemes[scheme_id], "rows": mine,
                        "indicators": [t.indicator for t in schemes[scheme_id].indicators],
                        "refused": [(c, reason) for s, c, reason in refused if s == scheme_id]})
    html = env.get_template("comparison.html.j2").render(month=month, ranking=ranking, names=names, labels=labels,
                                                          dimensions=catalog.dimensions())
    pages.append((COMPARISON_STEM, html))
    targets = []  # (html, pdf) in the staging folder, to print
    for stem, html in pages:
        staged_html, staged_pdf = files.path(f"{stem}.html"), files.path(f"{stem}.pdf")
        try:
            staged_html.write_text(html, encoding="utf-8")
            if not reuse_printed(files.folder / stem, html, staged_pdf):
                targets.append((staged_html, staged_pdf))
        except OSError as exc:
            raise write_error(files.folder / f"{stem}.html", exc) from None
    # Chromium spends most of its ~3 s per page starting up: two at a time halves the wait.
    with ThreadPoolExecutor(max_workers=PRINTERS) as pool:
        pdfs = list(pool.map(lambda target: print_pdf(*target), targets))
    if progress:
        progress(f"rendered {len(pdfs)} PDF reports for {files.folder} "
                 f"({len(pages) - len(pdfs)} unchanged, kept as they were)")


def reuse_printed(placed: Path, html: str, staged_pdf: Path) -> bool:
    """The same page printed before (same HTML beside its PDF) is not printed again: Chromium
    stamps each print with its date, so a rerun on the same inputs would change every PDF."""
    html_file, pdf_file = placed.with_name(placed.name + ".html"), placed.with_name(placed.name + ".pdf")
    try:
        if not (pdf_file.is_file() and html_file.read_text(encoding="utf-8") == html):
            return False
    except (OSError, UnicodeDecodeError):
        return False
    shutil.copy2(pdf_file, staged_pdf)
    return True

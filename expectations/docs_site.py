"""The self-contained quality page, the entry point to a run's data-quality results.

GX's Data Docs pages load Bootstrap, jQuery and bootstrap-table from public CDNs; without network
(a closed government network, this build machine) they show unstyled and the index's table of
validations stays empty. So each run writes `citycloud-quality.html` (inline CSS, no scripts,
nothing external) beside them: it is the page the CLI, the demo and the docs point to, and it
links to GX's per-suite validation pages for the details. GX's index.html gets a plain-HTML
banner pointing back to it, for whoever opens that one first.
"""
from __future__ import annotations

import html
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from citycloud.expectations.report import QUALITY_PAGE, QualityReport
from citycloud.expectations.suites import Suite

SUMMARY = QUALITY_PAGE
_MARK = "<!-- citycloud-offline-banner -->"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans SC",sans-serif;margin:2em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.blocking{color:#fff;background:#b00020;padding:0 .4em;border-radius:3px}
.warning{color:#000;background:#ffc107;padding:0 .4em;border-radius:3px}.ok{color:#1b5e20}
.bad{color:#b00020;font-weight:bold}.muted{color:#666}code{font-size:.9em}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _sev(severity: str) -> str:
    return f'<span class="{_e(severity)}">{_e(severity)}</span>'


def _validation_pages(docs_dir: Path, run_id: str) -> dict[str, str]:
    pages = {}
    for path in sorted((docs_dir / "validations").glob(f"*/{run_id}/*/*.html")):
        pages[path.parts[-4]] = path.relative_to(docs_dir).as_posix()
    return pages


def _failure_table(rows) -> str:
    if not rows:
        return '<p class="ok">None.</p>'
    out = ["<table><tr><th>check</th><th>city</th><th>day</th><th>what was found</th><th>why it matters</th></tr>"]
    for r in rows:
        out.append(f"<tr><td><code>{_e(r.check)}</code></td><td>{_e(r.city_code or 'all')}</td>"
                   f"<td>{_e(r.day.isoformat() if r.day else '')}</td><td>{_e(r.details)}</td>"
                   f"<td class='muted'>{_e(r.reason)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def write_summary(docs_dir: Path, report: QualityReport, suites: list[Suite]) -> Path:
    docs_dir = Path(docs_dir)
    pages = _validation_pages(docs_dir, report.run_id)
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in report.results:
        counts[(r.suite, r.expectation)]["ok" if r.success else "failed"] += 1
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>citycloud data quality · run {_e(report.run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>citycloud data quality · run <code>{_e(report.run_id)}</code></h1>",
        f"<p>{_e(report.summary_line().split('; Data Docs')[0])} · written {now} · checked: "
        f"{'all deliveries' if report.since_batch < 0 else f'deliveries of batches &gt; {report.since_batch}'} "
        "and the candidate marts. "
        "A <span class='blocking'>blocking</span> failure stops the run from publishing; a "
        "<span class='warning'>warning</span> is recorded and shown, and the run goes on. Every result is in "
        f"<code>audit.quality_results</code> (run_id = '{_e(report.run_id)}'). "
        "<a href='index.html'>Great Expectations Data Docs</a> (styled when the browser can reach the CDNs).</p>",
        f"<h2>Blocking failures ({len(report.blocking_failures)})</h2>", _failure_table(report.blocking_failures),
        f"<h2>Warnings ({len(report.warnings)})</h2>", _failure_table(report.warnings),
        "<h2>Suites</h2>",
    ]
    for suite in suites:
        link = pages.get(suite.name)
        title = f"<a href='{_e(link)}'>{_e(suite.name)}</a>" if link else _e(suite.name)
        parts.append(f"<h3>{title} <span class='muted'>v{suite.version} · "
                     f"expectations/suites/{_e(suite.path.name)}</span></h3><p>{_e(suite.description)}</p>")
        parts.append("<table><tr><th>expectation</th><th>severity</th><th>results</th><th>failed</th>"
                     "<th>reason</th></tr>")
        for spec in suite.expectations:
            c = counts.get((suite.name, spec.name), Counter())
            failed = f"<span class='bad'>{c['failed']}</span>" if c["failed"] else "0"
            parts.append(f"<tr><td><code>{_e(spec.name)}</code></td><td>{_sev(spec.severity)}</td>"
                         f"<td>{c['ok'] + c['failed']}</td><td>{failed}</td><td>{_e(spec.reason)}</td></tr>")
        parts.append("</table>")
    frame_errors = [r for r in report.results if r.expectation == "frame"]
    if frame_errors:
        parts += ["<h2>Suites that could not run</h2>", _failure_table(frame_errors)]
    parts.append("</body></html>")
    target = docs_dir / SUMMARY
    target.write_text("\n".join(parts), encoding="utf-8")
    return target


def inject_banner(index: Path, report: QualityReport) -> None:
    """Put a plain-HTML banner (no CDN needed) at the top of GX's index.html."""
    if not index.is_file():
        return
    text = index.read_text(encoding="utf-8")
    if _MARK in text:
        text = text.split(_MARK)[0] + text.split(_MARK)[-1]
    state = (f"<b style='color:#b00020'>{len(report.blocking_failures)} blocking failures</b>"
             if report.blocking_failures else "<b style='color:#1b5e20'>no blocking failures</b>")
    pages = _validation_pages(index.parent, report.run_id)
    links = " · ".join(f"<a href='{_e(p)}'>{_e(s)}</a>" for s, p in pages.items())
    banner = (f"{_MARK}<div style='font-family:system-ui,sans-serif;border:1px solid #ccc;padding:.8em;margin:.5em'>"
              f"citycloud run <code>{_e(report.run_id)}</code>: {state}, {len(report.warnings)} warnings. "
              f"<a href='{SUMMARY}'><b>Quality summary</b></a> (works offline). Validations: {links}</div>{_MARK}")
    index.write_text(text.replace("<body>", "<body>" + banner, 1), encoding="utf-8")

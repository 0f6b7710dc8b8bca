"""The `citycloud` command line: generate, run, settle, dashboard (interfaces.md).

Every verb prints progress on stderr and a one-line summary at the end; a failure prints
what went wrong and what to do, never a bare traceback (exit 2: bad input or usage,
1: the work ran and found a problem, e.g. blocking data-quality failures).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

from citycloud.config import ENGINES, CitycloudError, Settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _progress(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "engine", None):
        settings.engine = args.engine
    for name in ("landing", "warehouse", "contracts"):
        value = getattr(args, name, None)
        if value is not None:
            # Absolute from here on: dbt runs in its project folder and GX wants absolute paths.
            setattr(settings, name, Path(value).expanduser().absolute())
    if getattr(args, "warehouse", None) and not os.environ.get("CITYCLOUD_OUTPUT"):
        # Reports (Data Docs, statements) go beside the warehouse they describe.
        settings.output = settings.warehouse.parent / "output"
    return settings


def cmd_generate(args: argparse.Namespace) -> str:
    from citycloud.generate import generate

    summary = generate(Path(args.out), cities=args.cities, start=args.start, days=args.days, users=args.users,
                       seed=args.seed, accesses_per_day=args.accesses_per_day, dirt=not args.clean,
                       progress=_progress, overwrite=args.overwrite)
    rows = ", ".join(f"{source} {n:,}" for source, n in summary["rows"].items())
    return (f"generate: wrote {summary['files']} files ({summary['bytes'] / 1e6:,.1f} MB) for "
            f"{len(summary['cities'])} cities x {summary['days']} days to {args.out} in {summary['seconds']:.1f}s: {rows}")


def cmd_run(args: argparse.Namespace) -> str:
    from citycloud import pipeline

    settings = _settings(args)
    report = pipeline.run(settings, start=args.start, end=args.end, progress=_progress, full_refresh=args.full_refresh)
    for path, reason in report.ingest.rejected_files:
        print(f"  WARNING file set aside: {path}: {reason}", file=sys.stderr)
    for problem in report.ingest.problems:
        print(f"  WARNING landing: {problem}", file=sys.stderr)
    for folder in report.ingest.incomplete:
        print(f"  NOTE incomplete delivery (no _SUCCESS yet, not read): {folder}", file=sys.stderr)
    for note in report.notes:
        _progress(note)
    if args.contracts:
        # The terms settlement will use: a broken file is worth knowing before month end.
        from citycloud.settlement import load_contracts

        try:
            contracts = load_contracts(args.contracts)
            _progress(f"contracts file {args.contracts}: {len(contracts)} contracts valid")
        except CitycloudError as exc:
            print(f"  WARNING {exc}", file=sys.stderr)
    if report.quality is not None:
        for w in report.quality.warnings[:20]:
            print(f"  WARNING {w}", file=sys.stderr)
        _progress(f"Data Docs: {report.quality.docs_index}")
    return report.summary_line()


def cmd_settle(args: argparse.Namespace) -> str:
    from citycloud.settlement import settle

    settings = _settings(args)
    report = settle(settings, args.month, final=args.final, out_dir=Path(args.out) if args.out else None)
    for warning in report.warnings:
        print(f"  WARNING {warning}", file=sys.stderr)
    return report.summary_line()


def cmd_rotate_key(args: argparse.Namespace) -> str:
    from citycloud.rotation import rotate

    return rotate(_settings(args), progress=_progress)


def cmd_scorecard(args: argparse.Namespace) -> str:
    from citycloud.scorecard.service import score_month

    settings = _settings(args)
    report = score_month(settings, args.scheme, args.month, assessments_path=args.assessments,
                         out_dir=Path(args.out) if args.out else None, progress=_progress)
    for scheme_id, city, reason in report.refused:
        print(f"  WARNING {scheme_id} {city} refused: {reason}", file=sys.stderr)
    return report.summary_line()


def cmd_dashboard(args: argparse.Namespace) -> str:
    from dashboards import serve

    from citycloud.config import published_path

    warehouse = Path(args.warehouse).expanduser()
    if not warehouse.exists() and not published_path(warehouse).exists():
        raise CitycloudError(f"warehouse {warehouse} does not exist (nor its published snapshot): "
                             "run `citycloud run` first, or check the path")
    code = serve(Path(args.warehouse), port=args.port, address=args.address,
                 contracts=Path(args.contracts) if args.contracts else None)
    return f"dashboard: stopped (exit {code})"


def cmd_query(args: argparse.Namespace) -> str:
    from citycloud import query

    request = query.QueryRequest(metrics=query.parse_metrics(args.metrics), grain=args.grain, city=args.city,
                                 include_partial=args.include_partial, by=args.by)
    df = query.query(_settings(args), request)
    if not args.csv:
        return query.as_text(df).rstrip("\n")
    query.write_csv(df, Path(args.csv))
    return f"query: {len(df)} rows x {len(request.metrics)} metrics by {args.grain} written to {args.csv}"


def cmd_user_ops(args: argparse.Namespace) -> str:
    from citycloud.user_ops_export import export_user_ops

    path = export_user_ops(_settings(args), args.city, args.month, out_dir=Path(args.out) if args.out else None)
    return f"user-ops: wrote {path}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citycloud", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)

    g = sub.add_parser("generate", help="write a synthetic landing area (deterministic by seed)")
    g.add_argument("--out", required=True)
    g.add_argument("--cities", type=int, default=3)
    g.add_argument("--start", type=_date, default=date(2026, 1, 1))
    g.add_argument("--days", type=int, default=60)
    g.add_argument("--users", type=int, default=2000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--accesses-per-day", type=int, default=None, help="access events per city-day (benchmarks)")
    g.add_argument("--clean", action="store_true", help="no contract-breaking dirt")
    g.add_argument("--overwrite", action="store_true", help="replace the chosen cities' folders in --out")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="ingest new deliveries, build the marts, check, publish")
    r.add_argument("--landing", required=True)
    r.add_argument("--warehouse", required=True)
    r.add_argument("--contracts")
    r.add_argument("--start", type=_date, help="ignore deliveries before this dt")
    r.add_argument("--end", type=_date, help="ignore deliveries after this dt")
    r.add_argument("--full-refresh", action="store_true", help="rebuild every model from scratch")
    r.add_argument("--engine", choices=ENGINES, default=None,
                   help="the engine that builds the models (default: CITYCLOUD_ENGINE or duckdb); "
                        "--warehouse stays the DuckDB file readers use (docs/spark.md)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("settle", help="settle a month per contract and write statement files")
    s.add_argument("--warehouse", required=True)
    s.add_argument("--contracts", required=True)
    s.add_argument("--month", required=True, help="YYYY-MM")
    s.add_argument("--final", action="store_true", help="freeze this version (it is money)")
    s.add_argument("--out", help="folder for the statement files")
    s.set_defaults(func=cmd_settle)

    k = sub.add_parser("rotate-key", help="re-key every pseudonym: CITYCLOUD_PII_KEY (current) → CITYCLOUD_NEW_PII_KEY")
    k.add_argument("--landing", required=True, help="the landing area, holding every ingested delivery as ingested")
    k.add_argument("--warehouse", required=True)
    k.set_defaults(func=cmd_rotate_key)

    sc = sub.add_parser("scorecard", help="score every city against the evaluation scheme; tables and PDF reports")
    sc.add_argument("--warehouse", required=True)
    sc.add_argument("--scheme", required=True, help="evaluation.yml")
    sc.add_argument("--assessments", help="assessments.yml (evaluators' scores; missing = not assessed)")
    sc.add_argument("--month", required=True, help="YYYY-MM")
    sc.add_argument("--out", help="folder for the reports (default: output/scorecard beside the warehouse)")
    sc.set_defaults(func=cmd_scorecard)

    d = sub.add_parser("dashboard", help="serve the operators' dashboard (read-only)")
    d.add_argument("--warehouse", required=True)
    d.add_argument("--port", type=int, default=8501)
    d.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    d.add_argument("--contracts", help="contract terms shown on the Settlement page")
    d.set_defaults(func=cmd_dashboard)

    q = sub.add_parser("query", help="metrics of the semantic layer per city and period (published snapshot)")
    q.add_argument("--warehouse", required=True)
    q.add_argument("--metrics", required=True, help="comma-separated metric names, e.g. dau,mau")
    q.add_argument("--grain", required=True, choices=("day", "week", "month"))
    q.add_argument("--city", help="one 6-digit city code (default: every city)")
    q.add_argument("--csv", help="write the table to this CSV file instead of stdout")
    q.add_argument("--include-partial", action="store_true",
                   help="also periods the city's day series covers only in part (e.g. the running month)")
    q.add_argument("--by", help="cut the metrics by a categorical dimension, e.g. channel (a column after period)")
    q.set_defaults(func=cmd_query)

    u = sub.add_parser("user-ops", help="write the monthly user-operations workbook (XLSX) of a city")
    u.add_argument("--warehouse", required=True)
    u.add_argument("--city", required=True, help="6-digit city code")
    u.add_argument("--month", required=True, help="YYYY-MM")
    u.add_argument("--out", help="folder for the workbook")
    u.set_defaults(func=cmd_user_ops)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser().print_help()
        return 2
    args = parser().parse_args(argv)
    if getattr(args, "start", None) and getattr(args, "end", None) and args.start > args.end and args.verb == "run":
        print(f"citycloud run: error: --start {args.start} is after --end {args.end}: nothing would be read",
              file=sys.stderr)
        return 2
    try:
        print(args.func(args), flush=True)
        return 0
    except CitycloudError as exc:
        from citycloud.pipeline import BlockingFailure

        message = str(exc)
        if len(message) > 4000:  # never flood the terminal with an echoed input (e.g. a YAML expansion)
            message = message[:4000] + f"… [{len(message):,} characters in all]"
        print(f"citycloud {args.verb}: error: {message}", file=sys.stderr)
        return 1 if isinstance(exc, BlockingFailure) else 2
    except KeyboardInterrupt:
        print(f"citycloud {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

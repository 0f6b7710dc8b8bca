"""The `citycloud` command line: generate, run, alerts, settle, scorecard, query, user-ops, reviews, dashboard, api,
rotate-key.

Every verb prints progress on stderr (stage lines and progress bars; every detail with
--verbose) and a one-line summary at the end; the full log of each verb is appended to
<output>/logs/<verb>.log. A failure prints what went wrong and what to do, never a bare
traceback (exit 2: bad input or usage, 1: the work ran and found a problem, e.g. blocking
data-quality failures).
"""
from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn

from citycloud.config import (BUSINESS_TZ, BUSINESS_TZ_NAME, BUSINESS_UTC_OFFSET_ISO, ENGINES, CitycloudError,
                              Settings, output_beside)
from citycloud.console import Reporter, log_file

EPILOG = ("Docs: README.md and docs/ in the project (docs/cli.md: every verb and the tables it writes). "
          "`citycloud VERB --help` for a verb's options.")
SHOWN = 3  # items of a list shown on the terminal; the log file and --verbose have them all


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _listed(reporter: Reporter, what: str, items: list[str], where: str) -> None:
    """Count and the first few on the terminal; every item in the log (and with --verbose)."""
    if not items:
        return
    for item in items:
        reporter.detail(f"{what}: {item}")
    if not reporter.verbose:
        reporter.say(f"  {what}: {len(items)} ({where})")
        for item in items[:SHOWN]:
            reporter.say(f"    {item}")
        if len(items) > SHOWN:
            reporter.say(f"    +{len(items) - SHOWN} more")


def _quality_summary(reporter: Reporter, quality) -> None:
    """The run's quality warnings, counted per check with an example each, and where to read them all."""
    by_check = quality.warnings_by_check()
    for r in quality.warnings:
        reporter.detail(f"WARNING {r}")
    if by_check and not reporter.verbose:
        reporter.say(f"  quality warnings: {len(quality.warnings)} from {len(by_check)} check(s), most frequent first:")
        for check, n, example in by_check[:5]:
            reporter.say(f"    {n} x {check}, e.g. {example.where()}: {example.details}")
        if len(by_check) > 5:
            reporter.say(f"    +{len(by_check) - 5} more check(s)")
    if quality.page:
        reporter.say(f"  quality page: {quality.page}")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "engine", None):
        settings.engine = args.engine
    for name in ("landing", "warehouse", "contracts", "funnels"):
        value = getattr(args, name, None)
        if value is not None:
            # Absolute from here on: dbt runs in its project folder and GX wants absolute paths.
            setattr(settings, name, Path(value).expanduser().absolute())
    if getattr(args, "warehouse", None) and not settings.chosen("output"):
        # Reports (Data Docs, statements, logs) go beside the warehouse they describe.
        settings.output = output_beside(settings.warehouse)
    return settings


def cmd_generate(args: argparse.Namespace) -> str:
    from citycloud.generate import generate

    summary = generate(Path(args.out), cities=args.cities, start=args.start, days=args.days, users=args.users,
                       seed=args.seed, accesses_per_day=args.accesses_per_day, dirt=not args.clean,
                       progress=args.reporter, overwrite=args.overwrite, holidays=args.holidays,
                       inject_drops=args.inject_drops, inject_missing=args.inject_missing)
    if summary["injected_drops"]:
        args.reporter(f"injected drops (accesses at 30 %): {', '.join(summary['injected_drops'])}")
    if summary["injected_missing"]:
        args.reporter(f"injected missing deliveries: {', '.join(summary['injected_missing'])}")
    rows = ", ".join(f"{source} {n:,}" for source, n in summary["rows"].items())
    return (f"generate: wrote {summary['files']} files ({summary['bytes'] / 1e6:,.1f} MB) for "
            f"{len(summary['cities'])} cities x {summary['days']} days to {args.out} in {summary['seconds']:.1f}s: {rows}")


def cmd_run(args: argparse.Namespace) -> str:
    from citycloud.pipeline import steps

    settings = _settings(args)
    reporter = args.reporter
    alerts = args.alerts or settings.alerts
    if alerts:  # a broken alerts.yml is said now, not after the build
        from citycloud.alerts.config import load as load_alerts

        load_alerts(alerts)
    report = steps.run(settings, start=args.start, end=args.end, progress=reporter, full_refresh=args.full_refresh)
    if args.contracts:
        # The terms settlement will use: a broken file is worth knowing before month end.
        from citycloud.settlement import load_contracts

        try:
            contracts = load_contracts(args.contracts)
            reporter(f"contracts file {args.contracts}: {len(contracts)} contracts valid")
        except CitycloudError as exc:
            reporter.say(f"  WARNING {exc}")
    show_run_report(reporter, report)
    if alerts and report.published:
        # After publishing, so the anomalies are the ones readers see; a failing channel never fails the run.
        from citycloud.alerts import send_alerts

        reporter(send_alerts(settings, alerts, say=reporter))
    return report.summary_line()


def cmd_alerts(args: argparse.Namespace) -> str:
    from citycloud.alerts import send_alerts

    return send_alerts(_settings(args), args.config, as_of=args.as_of, dry_run=args.dry_run, say=args.reporter)


def _timestamp(text: str) -> datetime:
    """An ISO timestamp; without a zone it is Asia/Shanghai time (the business day's clock)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO timestamp such as 2026-03-11T09:00{BUSINESS_UTC_OFFSET_ISO}, "
                                         f"got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=BUSINESS_TZ)


def show_run_report(reporter: Reporter, report) -> None:
    """What a run found that someone should look at: counted, the first few, where the rest are."""
    for note in report.notes:
        reporter(note)
    ingest = report.ingest
    _listed(reporter, "WARNING files set aside", [f"{path}: {reason}" for path, reason in ingest.rejected_files],
            "all in audit.rejected_files")
    _listed(reporter, "WARNING landing problems, not read", [str(p) for p in ingest.problems],
            "all in audit.landing_issues")
    _listed(reporter, "NOTE incomplete deliveries (no _SUCCESS yet, not read)", list(ingest.incomplete),
            "read once their _SUCCESS is there")
    if report.quality is not None:
        _quality_summary(reporter, report.quality)


def cmd_settle(args: argparse.Namespace) -> str:
    from citycloud.settlement import settle

    settings = _settings(args)
    report = settle(settings, args.month, final=args.final, out_dir=Path(args.out) if args.out else None)
    for warning in report.warnings:
        args.reporter.say(f"  WARNING {warning}")
    return report.summary_line()


def cmd_rotate_key(args: argparse.Namespace) -> str:
    from citycloud.pipeline.rotation import rotate

    return rotate(_settings(args), progress=args.reporter)


def cmd_scorecard(args: argparse.Namespace) -> str:
    from citycloud.scorecard.service import score_month

    settings = _settings(args)
    report = score_month(settings, args.scheme, args.month, assessments_path=args.assessments,
                         out_dir=Path(args.out) if args.out else None, progress=args.reporter)
    for scheme_id, city, reason in report.refused:
        args.reporter.say(f"  WARNING {scheme_id} {city} refused: {reason}")
    return report.summary_line()


def cmd_dashboard(args: argparse.Namespace) -> NoReturn:
    from citycloud.dashboards import check_warehouse, serve

    # serve() replaces this process with the server (same pid: `kill PID` stops it, port freed)
    serve(check_warehouse(args.warehouse), port=args.port, address=args.address,
          contracts=Path(args.contracts) if args.contracts else None, access=args.access, access_log=args.access_log)


def cmd_api(args: argparse.Namespace) -> str:
    from citycloud.api import serve_api

    serve_api(args.warehouse, args.access, address=args.address, port=args.port, access_log=args.access_log)
    return f"api: stopped ({args.address}:{args.port})"


def cmd_query(args: argparse.Namespace) -> str:
    from citycloud import outputs, query

    request = query.QueryRequest(metrics=query.parse_metrics(args.metrics), grain=args.grain, city=args.city,
                                 include_partial=args.include_partial, by=args.by)
    settings = _settings(args)
    # Checked before the query runs: never over the warehouse, the landing area or a non-CSV file.
    out = outputs.output_file("--csv", args.csv, settings) if args.csv else None
    df = query.query(settings, request)
    if out is None:
        return query.as_text(df).rstrip("\n")
    query.write_csv(df, out)
    return f"query: {len(df)} rows x {len(request.metrics)} metrics by {args.grain} written to {args.csv}"


def cmd_user_ops(args: argparse.Namespace) -> str:
    from citycloud.user_ops_export import export_user_ops

    path = export_user_ops(_settings(args), args.city, args.month, out_dir=Path(args.out) if args.out else None)
    return f"user-ops: wrote {path}"


def cmd_reviews(args: argparse.Namespace) -> str:
    from citycloud.review_report import write_review_report

    report = write_review_report(_settings(args), args.city, args.month, out_dir=Path(args.out) if args.out else None,
                                 progress=args.reporter)
    return report.summary_line()


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help (not for flags and options without one);
    descriptions kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.required:
            return action.help
        return super()._get_help_string(action)


def _verb(sub, name: str, help: str, func) -> argparse.ArgumentParser:
    v = sub.add_parser(name, help=help, description=help, epilog=EPILOG, formatter_class=_Help)
    v.add_argument("-v", "--verbose", action="store_true",
                   help="print every step (each delivery, each dbt node, each warning); they are always in the log file")
    v.set_defaults(func=func)
    return v


def _generate_verb(sub) -> None:
    g = _verb(sub, "generate", "write a synthetic landing area (deterministic by seed)", cmd_generate)
    g.add_argument("--out", required=True, help="landing-area folder to write (cities/sources/dt=... below it)")
    g.add_argument("--cities", type=int, default=3,
                   help="how many of the five cities, in order 310000 上海, 510100 成都, 430100 长沙, 411700 驻马店, "
                        "460100 海口 (contracts/contracts.yml has all five)")
    g.add_argument("--start", type=_date, default=date(2026, 1, 1), help="first delivery day, YYYY-MM-DD")
    g.add_argument("--days", type=int, default=60, help="number of delivery days")
    g.add_argument("--users", type=int, default=2000, help="accounts of the largest city when the window opens")
    g.add_argument("--seed", type=int, default=42, help="same seed, same bytes")
    g.add_argument("--accesses-per-day", type=int, default=None,
                   help="access events per city-day (benchmarks; default: about 0.4 per account)")
    g.add_argument("--clean", action="store_true", help="no contract-breaking dirt")
    g.add_argument("--overwrite", action="store_true", help="replace the chosen cities' folders in --out")
    g.add_argument("--holidays", action="store_true",
                   help="quiet public holidays and busy make-up working days (调休) from the holiday_calendar seed")
    g.add_argument("--inject-drops", type=int, default=0, metavar="N",
                   help="N ordinary working days (after the first 9 weeks) where a city's accesses fall to 30 %%: "
                        "the anomalies `citycloud alerts` should flag (listed in the summary)")
    g.add_argument("--inject-missing", type=int, default=0, metavar="N",
                   help="N event deliveries (city, source, day after the first week) never written: the missing "
                        "deliveries `citycloud alerts` should report (listed)")


def _run_and_alerts_verbs(sub) -> None:
    r = _verb(sub, "run", "ingest new deliveries, build the marts, check, publish", cmd_run)
    r.add_argument("--landing", required=True, help="the landing area (read only)")
    r.add_argument("--warehouse", required=True,
                   help="the DuckDB warehouse file (created if missing); reports go to output/ beside it")
    r.add_argument("--contracts", help="contracts.yml to validate now, so a broken file shows before month end")
    r.add_argument("--funnels", help="funnels.yml: the funnels marts.funnel_conversion builds (default: "
                                     "CITYCLOUD_FUNNELS; none: the table is empty); docs/user_ops.md")
    r.add_argument("--start", type=_date, help="ignore deliveries before this dt, YYYY-MM-DD")
    r.add_argument("--end", type=_date, help="ignore deliveries after this dt, YYYY-MM-DD")
    r.add_argument("--full-refresh", action="store_true", help="rebuild every model from scratch")
    r.add_argument("--engine", choices=ENGINES, default=None,
                   help="the engine that builds the models (default: CITYCLOUD_ENGINE or duckdb); "
                        "--warehouse stays the DuckDB file readers use (docs/spark.md)")
    r.add_argument("--alerts", help="alerts.yml: send new delivery problems and KPI anomalies at the end "
                                    "(also CITYCLOUD_ALERTS; docs/alerts.md)")

    al = _verb(sub, "alerts", "send each delivery problem and KPI anomaly once, and `resolved` when it goes away",
               cmd_alerts)
    al.add_argument("--warehouse", required=True, help="the DuckDB warehouse file (audit.alert_notifications is kept there)")
    al.add_argument("--config", required=True, help="alerts.yml: channels and routes (docs/alerts.md)")
    al.add_argument("--as-of", type=_timestamp, default=None,
                    help=f"judge as of this moment (ISO; no zone = {BUSINESS_TZ_NAME}), for replays; default now")
    al.add_argument("--dry-run", action="store_true", help="print what would be sent; send and record nothing")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citycloud", description=__doc__, epilog=EPILOG, formatter_class=_Help)
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    # verbs in the order `citycloud --help` lists them
    _generate_verb(sub)
    _run_and_alerts_verbs(sub)

    s = _verb(sub, "settle", "settle a month per contract and write statement files", cmd_settle)
    s.add_argument("--warehouse", required=True, help="the DuckDB warehouse file")
    s.add_argument("--contracts", required=True, help="contracts.yml (docs/settlement.md)")
    s.add_argument("--month", required=True, help="the month to settle, YYYY-MM (it must have ended)")
    s.add_argument("--final", action="store_true", help="freeze this version (it is money)")
    s.add_argument("--out", help="folder for the statement files (default: output/statements/MONTH beside the warehouse)")

    k = _verb(sub, "rotate-key", "re-key every pseudonym: CITYCLOUD_PII_KEY (current) → CITYCLOUD_NEW_PII_KEY",
              cmd_rotate_key)
    k.add_argument("--landing", required=True, help="the landing area, holding every ingested delivery as ingested")
    k.add_argument("--warehouse", required=True, help="the DuckDB warehouse file")

    sc = _verb(sub, "scorecard", "score every city against the evaluation scheme; tables and PDF reports",
               cmd_scorecard)
    sc.add_argument("--warehouse", required=True, help="the DuckDB warehouse file")
    sc.add_argument("--scheme", required=True, help="evaluation.yml")
    sc.add_argument("--assessments", help="assessments.yml (evaluators' scores; missing = not assessed)")
    sc.add_argument("--month", required=True, help="YYYY-MM")
    sc.add_argument("--out", help="folder for the reports (default: output/scorecard beside the warehouse)")

    d = _verb(sub, "dashboard", "serve the operators' dashboard (read-only)", cmd_dashboard)
    d.add_argument("--warehouse", required=True, help="the DuckDB warehouse file (its published snapshot is read)")
    d.add_argument("--port", type=int, default=8501, help="port to listen on")
    d.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    d.add_argument("--contracts", help="contract terms shown on the Settlement page")
    d.add_argument("--access", help="access.yml: login at the OpenID Connect provider, each person sees only its "
                                    "cities (docs/access.md); without it, local mode on loopback only")
    d.add_argument("--access-log", help="the access log (default: access_log.jsonl beside the warehouse)")

    a = _verb(sub, "api", "HTTP API: `citycloud query`'s answers for the caller's cities (bearer tokens)", cmd_api)
    a.add_argument("--warehouse", required=True, help="the DuckDB warehouse file (its published snapshot is read)")
    a.add_argument("--access", required=True, help="access.yml (docs/access.md): the provider and who sees which city")
    a.add_argument("--address", default="127.0.0.1", help="interface to listen on")
    a.add_argument("--port", type=int, default=8502, help="port to listen on")
    a.add_argument("--access-log", help="the access log (default: access_log.jsonl beside the warehouse)")

    q = _verb(sub, "query", "metrics of the semantic layer per city and period (published snapshot)", cmd_query)
    q.add_argument("--warehouse", required=True, help="the DuckDB warehouse file (its published snapshot is read)")
    q.add_argument("--metrics", required=True, help="comma-separated metric names, e.g. dau,mau")
    q.add_argument("--grain", required=True, choices=("day", "week", "month"), help="the period of each row")
    q.add_argument("--city", help="one 6-digit city code (default: every city)")
    q.add_argument("--csv", help="write the table to this CSV file instead of stdout")
    q.add_argument("--include-partial", action="store_true",
                   help="also periods the city's day series covers only in part (e.g. the running month)")
    q.add_argument("--by", help="cut the metrics by a categorical dimension, e.g. channel (a column after period)")

    u = _verb(sub, "user-ops", "write the monthly user-operations workbook (XLSX) of a city", cmd_user_ops)
    u.add_argument("--warehouse", required=True, help="the DuckDB warehouse file (its published snapshot is read)")
    u.add_argument("--city", required=True, help="6-digit city code")
    u.add_argument("--month", required=True, help="YYYY-MM")
    u.add_argument("--out", help="folder for the workbook (default: output/user_ops beside the warehouse)")

    rv = _verb(sub, "reviews", "write the monthly 好差评 report of a city (XLSX and PDF)", cmd_reviews)
    rv.add_argument("--warehouse", required=True, help="the DuckDB warehouse file (its published snapshot is read)")
    rv.add_argument("--city", required=True, help="6-digit city code")
    rv.add_argument("--month", required=True, help="YYYY-MM (the month of the ratings)")
    rv.add_argument("--out", help="folder for the report (default: output/reviews/MONTH beside the warehouse)")
    return p


def _log_path(args: argparse.Namespace) -> Path | None:
    """Where the verb's full log goes: <output>/logs/<verb>.log beside the warehouse it works on
    (as its reports); for generate, logs/ beside the landing area (never inside it). The
    read-only verbs keep none."""
    if args.verb in ("query", "dashboard", "api"):
        return None
    if args.verb == "generate":
        return log_file(Path(args.out).expanduser().absolute().parent, args.verb)
    try:
        return log_file(_settings(args).output, args.verb)
    except Exception:  # settings that cannot even be read: the verb itself will say why
        return None


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
    args.reporter = Reporter(_log_path(args), verbose=args.verbose,
                             command="citycloud " + " ".join(argv))
    try:
        summary = args.func(args)
        args.reporter.log(summary)
        args.reporter.close()
        if args.reporter.log_path:
            args.reporter.console.print(f"  full log: {args.reporter.log_path}", markup=False)
        print(summary, flush=True)
        return 0
    except CitycloudError as exc:
        from citycloud.pipeline.steps import BlockingFailure

        message = str(exc)
        if len(message) > 4000:  # never flood the terminal with an echoed input (e.g. a YAML expansion)
            message = message[:4000] + f"… [{len(message):,} characters in all]"
        args.reporter.log(f"error: {message}")
        args.reporter.close()
        print(f"citycloud {args.verb}: error: {message}", file=sys.stderr)
        return 1 if isinstance(exc, BlockingFailure) else 2
    except KeyboardInterrupt:
        args.reporter.close()
        print(f"citycloud {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

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

from citycloud.config import CitycloudError, Settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _progress(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    for name in ("landing", "warehouse", "contracts"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(settings, name, Path(value))
    if getattr(args, "warehouse", None) and not os.environ.get("CITYCLOUD_OUTPUT"):
        # Reports (Data Docs, statements) go beside the warehouse they describe.
        settings.output = Path(args.warehouse).parent / "output"
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
    return report.summary_line()


def cmd_dashboard(args: argparse.Namespace) -> str:
    from dashboards import serve

    code = serve(Path(args.warehouse), port=args.port, address=args.address,
                 contracts=Path(args.contracts) if args.contracts else None)
    return f"dashboard: stopped (exit {code})"


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
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("settle", help="settle a month per contract and write statement files")
    s.add_argument("--warehouse", required=True)
    s.add_argument("--contracts", required=True)
    s.add_argument("--month", required=True, help="YYYY-MM")
    s.add_argument("--final", action="store_true", help="freeze this version (it is money)")
    s.add_argument("--out", help="folder for the statement files")
    s.set_defaults(func=cmd_settle)

    d = sub.add_parser("dashboard", help="serve the operators' dashboard (read-only)")
    d.add_argument("--warehouse", required=True)
    d.add_argument("--port", type=int, default=8501)
    d.add_argument("--address", help="interface to listen on (default: Streamlit's)")
    d.add_argument("--contracts", help="contract terms shown on the Settlement page")
    d.set_defaults(func=cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        print(args.func(args), flush=True)
        return 0
    except CitycloudError as exc:
        from citycloud.pipeline import BlockingFailure

        print(f"citycloud {args.verb}: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, BlockingFailure) else 2
    except KeyboardInterrupt:
        print(f"citycloud {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

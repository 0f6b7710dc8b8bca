"""`make demo`: generate a landing area (with the public holidays and three injected drops),
run the whole pipeline, settle the last full month, score it (the operations scorecard), print one city's
好差评 report and show a few alerts in dry run.

Uses its own PII key (the demo is the one place allowed to) and keeps everything under
demo/ so it never touches a real warehouse. Running it again changes nothing. The terminal
gets stage lines, progress bars and a short summary; every detail goes to
demo/output/logs/demo.log (`python -m citycloud.pipeline.demo --verbose` prints them too).
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from citycloud.pipeline.cli import show_run_report
from citycloud.config import PROJECT_ROOT, CitycloudError, Settings
from citycloud.console import Reporter, log_file

DEMO = PROJECT_ROOT / "demo"
START, DAYS, MONTH = date(2026, 1, 1), 90, "2026-03"
# The demo's PII key, its one home: later verbs on the demo's warehouse (`citycloud run` after a
# model change, `citycloud rotate-key`) need it: `export CITYCLOUD_PII_KEY=$(.venv/bin/python -m
# citycloud.pipeline.demo --print-key)` (docs/extending.md). Never a production key.
DEMO_PII_KEY = "citycloud-demo-key-not-for-production"


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(prog="python -m citycloud.pipeline.demo", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("-v", "--verbose", action="store_true", help="print every step (always in the log file)")
    args.add_argument("--print-key", action="store_true",
                      help="print the demo's PII key (for later verbs on demo/warehouse) and exit")
    parsed = args.parse_args(argv)
    if parsed.print_key:
        print(DEMO_PII_KEY)
        return 0
    verbose = parsed.verbose
    os.environ.setdefault("CITYCLOUD_PII_KEY", DEMO_PII_KEY)
    from citycloud.pipeline import steps
    from citycloud.generate import generate
    from citycloud.settlement import settle

    settings = Settings()
    settings.landing = DEMO / "landing"
    settings.warehouse = DEMO / "warehouse" / "citycloud.duckdb"
    settings.output = DEMO / "output"
    settings.contracts = PROJECT_ROOT / "contracts" / "contracts.yml"
    settings.funnels = PROJECT_ROOT / "pipeline" / "demo_funnels.yml"  # three funnels (docs/user_ops.md)
    reporter = Reporter(log_file(settings.output, "demo"), verbose=verbose, command="make demo")
    try:
        if not settings.landing.exists():
            reporter(f"generating a synthetic landing area in {settings.landing}")
            generate(settings.landing, cities=5, start=START, days=DAYS, users=3000, seed=42, progress=reporter,
                     holidays=True, inject_drops=3)
        report = steps.run(settings, progress=reporter)
        show_run_report(reporter, report)
        from citycloud.funnels import funnel_summary

        for line in funnel_summary(settings.published, MONTH):
            reporter.say(line)
        statements = settle(settings, MONTH, out_dir=settings.output / "statements" / MONTH)
        for warning in statements.warnings:
            reporter.say(f"  WARNING {warning}")
        from citycloud.scorecard.service import score_month

        scorecard = score_month(settings, PROJECT_ROOT / "contracts" / "evaluation.yml", MONTH,
                                PROJECT_ROOT / "contracts" / "assessments.yml",
                                out_dir=settings.output / "scorecard", progress=reporter)
        reviews = show_demo_reviews(settings, reporter)
        alerts_line = show_demo_alerts(settings, reporter)
    except CitycloudError as exc:
        reporter.log(f"error: {exc}")
        reporter.close()
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    summaries = [report.summary_line(), statements.summary_line(), scorecard.summary_line(), reviews.summary_line(),
                 alerts_line]
    for line in summaries:
        reporter.log(line)
    reporter.close()
    venv = Path(sys.executable).parent
    ACCESS_EXAMPLE = write_demo_access(settings)  # noqa: N806 - shown in the text below
    quality = report.quality.page if report.quality else settings.output / "data_docs" / "citycloud-quality.html"
    print("\n".join(summaries))
    print(f"""
Demo ready.
  landing area      {settings.landing}
  warehouse         {settings.warehouse}
  readers' snapshot {settings.published}
  statements        {settings.output / 'statements' / MONTH}
  scorecard reports {settings.output / 'scorecard' / MONTH}
  好差评 report      {reviews.files[0].parent}
  quality page      {quality}
  full log          {reporter.log_path}
Open the dashboard (local mode: no login, every city visible, this machine only):
  {venv}/citycloud dashboard --warehouse {settings.warehouse} --port 8501   (then http://localhost:8501)
Try the login (docs/access.md) with the test identity provider on this machine:
  {venv}/oidc-provider-mock --port 9400 &
  export CITYCLOUD_OIDC_CLIENT_SECRET=any CITYCLOUD_COOKIE_SECRET=$(openssl rand -hex 32)
  {venv}/citycloud dashboard --warehouse {settings.warehouse} --port 8501 --access {ACCESS_EXAMPLE}
  (log in as ops.changsha@example.org: Changsha only; office@example.org: every city and the access log)
Later verbs on this warehouse that read deliveries (run, rotate-key) need the demo's PII key:
  export CITYCLOUD_PII_KEY=$({venv}/python -m citycloud.pipeline.demo --print-key)
Browse the dbt docs (tables as readers name them: docs/dbt.md):
  make docs""")
    return 0


def show_demo_reviews(settings, reporter):
    """The month's 好差评 report (reviews.md) of the city with the most bad reviews: one city is
    enough to show it, and printing five PDFs would double the demo's printing time."""
    from citycloud.publish import open_snapshot
    from citycloud.review_report import write_review_report

    con = open_snapshot(settings)
    try:
        city = con.execute("SELECT city_code FROM marts.review_monthly WHERE department = 'all' AND month = ? "
                           "ORDER BY bad_reviews DESC, city_code LIMIT 1", [date.fromisoformat(MONTH + "-01")]).fetchone()
    finally:
        con.close()
    if city is None:
        raise CitycloudError(f"the demo data has no 好差评 figures for {MONTH}")
    return write_review_report(settings, city[0], MONTH, progress=reporter)


DEMO_ALERTS = """# The demo's alerts.yml (docs/alerts.md): one webhook on this machine, shown in dry run only.
channels:
  ops-hook: {type: webhook, url: "http://127.0.0.1:9009/hook"}
routes:
  - {cities: all, kinds: [anomaly, delivery], channels: [ops-hook]}
"""


def show_demo_alerts(settings, reporter, shown: int = 5) -> str:
    """The alerts the demo data raises (its injected drops among them), in dry run: sent nowhere,
    recorded nowhere. Judged as of the morning after the last generated day."""
    from datetime import datetime, timedelta

    from citycloud.alerts import send_alerts
    from citycloud.config import BUSINESS_TZ
    from citycloud.outputs import atomic_write

    config = settings.output / "alerts.demo.yml"
    atomic_write(config, DEMO_ALERTS)
    lines: list[str] = []
    as_of = datetime.combine(START + timedelta(days=DAYS), datetime.min.time(), BUSINESS_TZ) + timedelta(hours=9)
    summary = send_alerts(settings, config, as_of=as_of, dry_run=True, say=lines.append)
    for line in lines[:shown]:
        reporter.say(line)
    if len(lines) > shown:
        reporter.say(f"  … and {len(lines) - shown} more (citycloud alerts --warehouse {settings.warehouse} "
                     f"--config {config} --dry-run --as-of {as_of.isoformat()})")
    return summary


DEMO_ACCESS = """# The demo's access.yml: the test provider `oidc-provider-mock` on port 9400 (docs/access.md).
oidc:
  server_metadata_url: http://127.0.0.1:9400/.well-known/openid-configuration
  client_id: citycloud
users:
  - id: ops.changsha@example.org
    role: operator
    cities: ["430100"]
  - id: finance@example.org
    role: contract_manager
    cities: ["430100", "510100"]
  - id: office@example.org
    role: admin
    cities: all
"""


def write_demo_access(settings) -> Path:
    """access.yml for trying the login with the test provider (beside the demo's warehouse)."""
    path = Path(settings.warehouse).parent / "access.yml"
    path.write_text(DEMO_ACCESS, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: generate a landing area, run the whole pipeline, settle the last full month
and score it (the operations scorecard).

Uses its own PII key (the demo is the one place allowed to) and keeps everything under
demo/ so it never touches a real warehouse. Running it again changes nothing.
"""
from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

from citycloud.cli import _progress
from citycloud.config import PROJECT_ROOT, CitycloudError, Settings

DEMO = PROJECT_ROOT / "demo"
START, DAYS, MONTH = date(2026, 1, 1), 90, "2026-03"


def main() -> int:
    os.environ.setdefault("CITYCLOUD_PII_KEY", "citycloud-demo-key-not-for-production")
    from citycloud import pipeline
    from citycloud.generate import generate
    from citycloud.settlement import settle

    settings = Settings()
    settings.landing = DEMO / "landing"
    settings.warehouse = DEMO / "warehouse" / "citycloud.duckdb"
    settings.output = DEMO / "output"
    settings.contracts = PROJECT_ROOT / "contracts" / "contracts.yml"
    try:
        if not settings.landing.exists():
            _progress(f"generating a synthetic landing area in {settings.landing}")
            generate(settings.landing, cities=5, start=START, days=DAYS, users=3000, seed=42, progress=_progress)
        report = pipeline.run(settings, progress=_progress)
        print(report.summary_line())
        statements = settle(settings, MONTH, out_dir=settings.output / "statements" / MONTH)
        print(statements.summary_line())
        from citycloud.scorecard.service import score_month

        scorecard = score_month(settings, PROJECT_ROOT / "contracts" / "evaluation.yml", MONTH,
                                PROJECT_ROOT / "contracts" / "assessments.yml",
                                out_dir=settings.output / "scorecard", progress=_progress)
        print(scorecard.summary_line())
    except CitycloudError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    venv = Path(sys.executable).parent
    print(f"""
Demo ready.
  landing area      {settings.landing}
  warehouse         {settings.warehouse}
  readers' snapshot {settings.published}
  statements        {settings.output / 'statements' / MONTH}
  scorecard reports {settings.output / 'scorecard' / MONTH}
  Data Docs         {settings.output / 'data_docs' / 'index.html'}
Open the dashboard:
  {venv}/citycloud dashboard --warehouse {settings.warehouse} --port 8501   (then http://localhost:8501)
Browse the dbt docs:
  make docs""")
    return 0


if __name__ == "__main__":
    sys.exit(main())

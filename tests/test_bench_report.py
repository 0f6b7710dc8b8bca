"""bench/run.py's report (latest.md) names the 好差评 models' seconds on a new day whatever their
rank (WATCHED_MODELS), so `make bench-quick` shows the new marts' cost (issue #26)."""
from __future__ import annotations

import json
from pathlib import Path

from bench import run

QUICK = Path(run.__file__).resolve().parent / "results" / "quick.json"


def test_review_models_are_listed_for_the_new_day_even_when_cheap():
    res = json.loads(QUICK.read_text(encoding="utf-8"))
    for r in res["incremental"]["runs"].values():
        r["dbt_models"].update(review_monthly=0.03, review_tags_monthly=0.01, stg_landing__review_tickets=0.02)
    text = run.markdown(res)
    for h in res["incremental"]["runs"]:
        assert (f"review models of the new day on {h} days (s): review_monthly 0.03, review_tags_monthly 0.01, "
                "stg_landing__review_tickets 0.02; together 0.06") in text


def test_no_line_without_review_models():
    res = json.loads(QUICK.read_text(encoding="utf-8"))
    assert "review models" not in run.markdown(res)

"""bench/run.py's report (latest.md) names the 好差评 models' seconds on a new day whatever their
rank (WATCHED_MODELS), so `make bench-quick` shows the new marts' cost (issue #26); a part kept from an
earlier partial run names the run that measured it."""
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


def test_a_part_kept_through_two_partial_runs_names_the_run_that_measured_it():
    first = {"started_at": "T1", "notes": [], "ingestion": {"x": 1}, "e2e": {"y": 2}}
    second = {"started_at": "T2", "incremental": {"z": 3}}
    kept, notes = run.kept_parts(first, {"incremental"})
    second.update(kept)
    second["notes"] = notes
    assert notes == ["ingestion: from the run started T1", "e2e: from the run started T1"]
    kept, notes = run.kept_parts(second, {"backfill"})  # the third run keeps all three
    assert set(kept) == {"ingestion", "e2e", "incremental"}
    assert notes == ["ingestion: from the run started T1", "e2e: from the run started T1",
                     "incremental: from the run started T2"]

"""The 好差评 marts on generated data agree cell for cell with the independent recomputation
(reviews_reference.py, straight from the landing files): two cities, January and February 2026,
the Spring Festival (02-15..02-23, make-up days 02-14 and 02-28) inside the deadlines, late and
stale ticket versions, appeals, orphans and dirt as `citycloud generate` delivers them.

Needs the marts of issue #26 (marts.review_monthly, marts.review_tags_monthly, marts.review_items,
audit.review_ticket_orphans) and Settings.rectify_working_days; test_the_generated_months_exercise_the_rules
needs only the generator."""
from __future__ import annotations

from datetime import date

import duckdb
import pytest

from citycloud import pipeline
from citycloud.generate import generate
from tests.conftest import TEST_KEY, make_settings
from tests.reviews import reviews_reference as ref

# A whole generated pipeline run (2 cities, 60 days): the e2e tier, which CI runs after `make test`;
# the recomputation itself is checked by hand in test_reviews_reference.py in `make test`.
pytestmark = [pytest.mark.slow, pytest.mark.e2e]
START, DAYS = date(2026, 1, 1), 60  # through 03-01: January and February covered
KEYS = {"review_monthly": ("city_code", "month", "department"), "review_tags_monthly": ("city_code", "month", "category")}
COLUMNS = {"review_monthly": ref.MONTHLY, "review_tags_monthly": ("bad_reviews",)}


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("reviews_generated") / "landing"
    generate(root, cities=2, start=START, days=DAYS, users=1000, seed=26, holidays=True)
    return root


@pytest.fixture(scope="module")
def built(landing):
    settings = make_settings(landing.parent, landing)
    with pytest.MonkeyPatch.context() as mp:  # the autouse key fixture is per test
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        mp.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "2GB")
        assert pipeline.run(settings).published
    return settings


def _table(db, name: str, key: tuple, columns: tuple) -> dict[tuple, tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(f"SELECT {', '.join(key + columns)} FROM {name}").fetchall()
    finally:
        con.close()
    return {r[: len(key)]: r[len(key):] for r in rows}


def _differences(expected: dict, actual: dict) -> list:
    def same(x, y):
        return abs(x - y) <= 1e-9 if isinstance(x, float) and isinstance(y, float) else x == y
    return [(k, expected.get(k), actual.get(k)) for k in sorted(set(expected) | set(actual), key=repr)
            if k not in expected or k not in actual or not all(same(x, y) for x, y in zip(expected[k], actual[k]))]


def test_the_reference_reads_the_ratings_the_pipeline_counts(built):
    """The ground floor of the comparison: the same counted ratings, scores and rating days."""
    landing = ref.Landing(built.landing).read()
    mine = {k: (r["score"], ref.local_day(r["ts"])) for k, (_, r) in landing.ratings.items()}
    staged = _table(built.warehouse, "staging.stg_landing__ratings", ("city_code", "event_id"), ("score", "event_day"))
    assert mine == staged


def test_each_bad_review_agrees_with_the_recomputation(built):
    """marts.review_items of the covered months: ticket, department, tag, status, due day, outcome."""
    expected = ref.recompute(built.landing, built.rectify_working_days)
    covered = {(c, m) for c, m, _ in expected["review_monthly"]}
    actual = {k: v for k, v in _table(built.published, "marts.review_items", ("city_code", "rating_event_id"),
                                      ref.ITEM_COLUMNS).items() if (k[0], v[0]) in covered}
    assert len(expected["review_items"]) > 20
    assert _differences(expected["review_items"], actual)[:5] == []


def test_review_marts_agree_with_the_recomputation(built):
    expected = ref.recompute(built.landing, built.rectify_working_days)
    for mart, key in KEYS.items():
        actual = _table(built.published, f"marts.{mart}", key, COLUMNS[mart])
        assert len(expected[mart]) > 4, mart
        assert _differences(expected[mart], actual)[:5] == [], mart
    orphans = _table(built.warehouse, "audit.review_ticket_orphans", ("city_code", "ticket_id"),
                     ("rating_event_id", "dt"))
    assert orphans == expected["orphans"] and orphans


def test_the_generated_months_exercise_the_rules(landing):
    """Both an open month and a settled one, every outcome present (so the agreement means
    something), at the default deadline of 15 working days; runs without the marts."""
    monthly = ref.recompute(landing, 15)["review_monthly"]
    alls = {k: v for k, v in monthly.items() if k[2] == "all"}
    assert {v[-2] for v in alls.values()} == {True, False}  # January settled, February not yet
    totals = [sum(v[i] for v in alls.values()) for i in range(7, 12)]
    assert all(t > 0 for t in totals), totals  # bad, unfounded, on time, late, overdue

"""`citycloud generate`'s review_tickets (reviews.md): one ticket life per bad review, read back with
the independent landing reader of tests/test_generate.py and judged by the reference recomputation
(reviews_reference.py): realistic timing in working days, versions across deliveries, the
oddities a reader must order right, orphans and dirt only when dirty."""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

import pytest

from citycloud.generate import generate
from tests.reviews import reviews_reference as ref
from tests.test_generate import SH, Area, parse_ts

START, DAYS = dt.date(2026, 1, 1), 60  # through 03-01: January settled, the Spring Festival inside its deadlines
CITIES = ("310000", "510100")


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    out = tmp_path_factory.mktemp("tickets_dirty")
    return generate(out, cities=2, start=START, days=DAYS, users=2000, seed=5), Area(out)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("tickets_clean")
    return generate(out, cities=2, start=START, days=DAYS, users=2000, seed=5, dirt=False), Area(out)


def _ts(value) -> dt.datetime:
    return parse_ts(value, False)[1]


def _versions(area, city) -> dict[str, list[tuple[dt.date, dict]]]:
    out = defaultdict(list)
    for day, _, row, _ in area.rows[(city, "review_tickets")]:
        out[row["ticket_id"]].append((day, row))
    return out


def _ratings(area, city) -> dict[str, tuple[dt.date, dict]]:
    first = {}
    for day, _, row, _ in area.rows[(city, "ratings")]:
        if row["event_id"] not in first or day < first[row["event_id"]][0]:
            first[row["event_id"]] = (day, row)
    return first


def test_a_ticket_for_nearly_every_bad_review_opened_within_two_days(dirty):
    summary, area = dirty
    assert summary["rows"]["review_tickets"] > 100
    for city in CITIES:
        ratings, tickets = _ratings(area, city), _versions(area, city)
        bad = {e for e, (_, r) in ratings.items() if r["score"] <= 2}
        answered = {vs[0][1]["rating_event_id"] for vs in tickets.values()}
        assert 0.85 < len(bad & answered) / len(bad) < 1          # a few bad reviews never get a ticket
        assert not answered & {e for e, (_, r) in ratings.items() if r["score"] >= 3}
        for ticket_id, vs in tickets.items():
            rating = ratings.get(vs[0][1]["rating_event_id"])
            opened = _ts(vs[0][1]["opened_at"])
            assert all(_ts(r["opened_at"]) == opened and r["rating_event_id"] == vs[0][1]["rating_event_id"]
                       for _, r in vs)
            for _, r in vs:  # every time of a version is at or before the version's own
                assert all(_ts(r[k]) <= _ts(r["updated_at"]) for k in ref.TICKET_TIMES if r.get(k))
            if rating and ticket_id != early_ticket(area, city):
                assert dt.timedelta(0) < opened - _ts(rating[1]["event_time"]) <= dt.timedelta(days=2), ticket_id


def early_ticket(area, city) -> str | None:
    """The ticket first delivered before its rating (dirt: one per city)."""
    ratings = _ratings(area, city)
    early = [t for t, vs in _versions(area, city).items()
             if vs[0][1]["rating_event_id"] in ratings and min(d for d, _ in vs) < ratings[vs[0][1]["rating_event_id"]][0]]
    return early[0] if len(early) == 1 else None


def test_states_change_across_deliveries_and_working_days(dirty):
    _, area = dirty
    _, is_working = ref.working_days()
    statuses = {r["status"] for c in CITIES for vs in _versions(area, c).values() for _, r in vs}
    assert statuses == {"open", "rectified", "unresolvable", "appeal_upheld"}
    for city in CITIES:
        tickets = _versions(area, city)
        assert sum(len({d for d, _ in vs}) >= 3 for vs in tickets.values()) > 5  # open, then replied / fixed / called back
        fixed = [_ts(r["rectified_at"]).astimezone(SH).date() for vs in tickets.values() for _, r in vs
                 if r["status"] == "rectified"]
        assert fixed and all(is_working(d) for d in fixed)  # departments work on working days (make-up ones too)
        called = [r for vs in tickets.values() for _, r in vs if r["called_back"]]
        assert called and any(r["replied_at"] for vs in tickets.values() for _, r in vs)
        assert len({r["department"] for vs in tickets.values() for _, r in vs}) > 5
        catalog = {r["department"] for r in area.events(city, "service_catalog")}
        assert {r["department"] for vs in tickets.values() for _, r in vs} <= catalog
    cats = {r["category"] for c in CITIES for vs in _versions(area, c).values() for _, r in vs}
    assert {"办事效率", "系统故障"} <= cats and ("" in cats or None in cats)
    notes = [r["handler_note"] for c in CITIES for vs in _versions(area, c).values() for _, r in vs if r["handler_note"]]
    assert notes and any(re.search(r"1[3-9]\d{9}", n) for n in notes)  # personal data to mask


def test_outcomes_at_the_default_deadline(dirty):
    """Most rectified on time, some late, some never (overdue), a few appeals, some untagged."""
    _, area = dirty
    got = ref.recompute(area.root, 15)
    alls = [v for k, v in got["review_monthly"].items() if k[2] == "all"]
    bad, unfounded, on_time, late, overdue = (sum(v[i] for v in alls) for i in range(7, 12))
    assert on_time > 0.5 * (bad - unfounded) and 0 < late < on_time and overdue > 0 and 0 < unfounded < 0.15 * bad
    assert any(k[2] == "untagged" for k in got["review_tags_monthly"])
    assert any(k[2] == "unassigned" for k in got["review_monthly"])


def test_versions_a_reader_must_order(dirty):
    """A stale version in a later delivery, and a corrected copy with the same updated_at."""
    _, area = dirty
    stale = ties = 0
    for city in CITIES:
        for vs in _versions(area, city).values():
            for i, (day, r) in enumerate(vs):
                earlier = [(d, o) for d, o in vs[:i] if d < day]
                stale += any(_ts(o["updated_at"]) > _ts(r["updated_at"]) for _, o in earlier)
                ties += any(_ts(o["updated_at"]) == _ts(r["updated_at"]) and o != r
                            and {k: v for k, v in o.items() if k not in ref.TICKET_TIMES}
                            != {k: v for k, v in r.items() if k not in ref.TICKET_TIMES} for _, o in earlier)
    assert stale and ties


def test_orphans_and_dirt_only_when_dirty(dirty, clean):
    (summary, area), (clean_summary, clean_area) = dirty, clean
    orphans = ref.recompute(area.root, 15)["orphans"]
    assert {c for c, _ in orphans} == set(CITIES)                  # a ticket naming a rating that never came
    for city in CITIES:
        assert early_ticket(area, city)                             # and one a day before its rating
    assert set(summary["bad_rows"]["review_tickets"]) == {"missing_field", "bad_timestamp", "bad_called_back",
                                                          "missing_rectified_at", "malformed_json"}
    assert sum(summary["bad_rows"]["review_tickets"].values()) < 0.1 * summary["rows"]["review_tickets"]
    assert ref.recompute(clean_area.root, 15)["orphans"] == {}
    assert "review_tickets" not in clean_summary["bad_rows"] and not clean_area.rejects
    assert clean_summary["rows"]["review_tickets"] > 100

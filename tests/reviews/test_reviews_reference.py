"""The independent recomputation of the 好差评 marts (reviews_reference.py) on a hand-made landing
area whose every expected cell is worked out by hand below, so the reference that judges the
marts on generated data is itself checked.

Calendar (holiday_calendar seed): 2026-02-14 (Sat) and 02-28 (Sat) are make-up working days,
02-15..02-23 the Spring Festival holidays. With N = 5 working days:
  rated 02-02 (Mon) -> due 02-09;  02-03 -> 02-10;  02-13 (Fri) -> 02-14, 24, 25, 26, 27: 02-27;
  02-20 (holiday) -> 24, 25, 26, 27, 28: 02-28;  02-25 -> 26, 27, 28, 03-02, 03-03: 03-03.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.conftest import write_delivery
from tests.reviews import reviews_reference as ref

D = dt.date
SH, CD = "310000", "510100"


def _rating(event_id, when, score, user=None):
    return {"event_id": event_id, "access_event_id": None, "user_id": user, "service_id": "S1", "score": score,
            "event_time": when, "comment": None}


def _ticket(ticket_id, rating, dept, category, opened, status, updated, rectified=None, replied=None,
            called_back=False):
    return {"ticket_id": ticket_id, "rating_event_id": rating, "department": dept, "category": category,
            "opened_at": opened, "status": status, "rectified_at": rectified, "replied_at": replied,
            "called_back": called_back, "updated_at": updated, "handler_note": None}


def _lines(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


@pytest.fixture
def landing(tmp_path):
    root = tmp_path / "landing"

    def put(city, source, day, *rows, gz=False):
        write_delivery(root, city, source, day, {f"{source}.jsonl" + (".gz" if gz else ""): _lines(*rows)})

    # Shanghai: seven February ratings (r1..r7), one of January and one of March (not covered months).
    put(SH, "ratings", "2026-02-01", _rating("r0", "2026-01-31 20:00:00", 1, "U0"))
    put(SH, "ratings", "2026-02-03", _rating("r2", "2026-02-02 09:00:00", 2), _rating("r5", "2026-02-03T10:00:00", 1))
    put(SH, "ratings", "2026-02-11", _rating("r6", "2026-02-10T02:00:00Z", 5, "U1"),
        _rating("r7", "2026-02-11 09:00:00", 3, "U2"), _rating("bad", "2026-02-11 09:00:00", 6, "U2"),
        _rating("r6", "2026-02-10T02:00:00Z", 5, "U1"), gz=True)                      # a score of 6; a duplicate
    put(SH, "ratings", "2026-02-14", _rating("r1", "2026-02-13T10:00:00+08:00", 1, "U3"))
    put(SH, "ratings", "2026-02-20", _rating("r3", "2026-02-20 11:00:00", 1, "U4"))
    put(SH, "ratings", "2026-02-27", _rating("r4", "2026-02-25 15:00:00", 2, "U5"))
    put(SH, "ratings", "2026-03-01", _rating("r8", "2026-03-01 08:00:00", 1, "U6"))
    # Tickets. T2: rectified 02-10, a day after its due day 02-09 (late); a later version calling
    # back with a string "true" is rejected, as is a line of broken JSON.
    put(SH, "review_tickets", "2026-02-03",
        _ticket("T2", "r2", "市人社局", "服务态度", "2026-02-02 12:00:00", "open", "2026-02-02 12:05:00"),
        _ticket("T5", "r5", "市人社局", "办事效率", "2026-02-03 11:00:00", "open", "2026-02-03 11:00:00"))
    put(SH, "review_tickets", "2026-02-10",
        _ticket("T2", "r2", "市人社局", "服务态度", "2026-02-02 12:00:00", "rectified", "2026-02-10 10:30:00",
                rectified="2026-02-10T10:00:00+08:00"),
        dict(_ticket("T2", "r2", "市人社局", "服务态度", "2026-02-02 12:00:00", "rectified", "2026-02-10 12:00:00",
                     rectified="2026-02-05 10:00:00"), called_back="true"),
        '{"ticket_id": "T2", "status": ')
    # T1 answers r1 and arrives the day before r1 does (an orphan until then); T1b, opened
    # earlier for the same rating by another department, does not count.
    put(SH, "review_tickets", "2026-02-13",
        _ticket("T1b", "r1", "市医保局", "其他", "2026-02-13 10:30:00", "open", "2026-02-13 10:30:00"),
        _ticket("T1", "r1", "市人社局", "系统故障", "2026-02-13T11:00:00+08:00", "open", "2026-02-13T11:00:00+08:00"))
    put(SH, "review_tickets", "2026-02-20",
        _ticket("T3", "r3", "市公安局", "其他", "2026-02-20 12:00:00", "open", "2026-02-20 13:00:00",
                replied="2026-02-20 13:00:00"))
    # T1 rectified on its due day 02-27, replied, called back. T3's appeal upheld: two lines with
    # the same updated_at, the later line wins (category 办事效率).
    put(SH, "review_tickets", "2026-02-28",
        _ticket("T1", "r1", "市人社局", "系统故障", "2026-02-13T11:00:00+08:00", "rectified", "2026-02-28T01:00:00Z",
                rectified="2026-02-27 17:00:00", replied="2026-02-27T09:30:00Z", called_back=True),
        _ticket("T3", "r3", "市公安局", "其他", "2026-02-20 12:00:00", "appeal_upheld", "2026-02-27 16:00:00",
                replied="2026-02-20 13:00:00"),
        _ticket("T3", "r3", "市公安局", "办事效率", "2026-02-20 12:00:00", "appeal_upheld", "2026-02-27 16:00:00",
                replied="2026-02-20 13:00:00"), gz=True)
    # A stale copy of T1's first version (older updated_at: loses); T5 again with the same
    # updated_at and an empty category (the later delivery wins: untagged); T9 names no rating.
    put(SH, "review_tickets", "2026-03-01",
        _ticket("T1", "r1", "市人社局", "系统故障", "2026-02-13T11:00:00+08:00", "open", "2026-02-13T11:00:00+08:00"),
        _ticket("T5", "r5", "市人社局", "", "2026-02-03 11:00:00", "open", "2026-02-03 11:00:00"),
        _ticket("T9", "r-lost", "市人社局", "其他", "2026-02-28 11:00:00", "open", "2026-02-28 11:00:00"))
    # Chengdu: no ticket delivery at all (no as-of day: nothing overdue, nothing settled).
    put(CD, "ratings", "2026-02-01", _rating("c1", "2026-02-01 08:00:00", 4, "V1"))
    put(CD, "ratings", "2026-03-01", _rating("c2", "2026-02-02 10:00:00", 1, "V2"))
    # An incomplete folder is never read.
    write_delivery(root, CD, "review_tickets", "2026-03-01",
                   {"t.jsonl": _lines(_ticket("C1", "c2", "市人社局", "其他", "2026-02-02 11:00:00", "rectified",
                                              "2026-02-02 12:00:00", rectified="2026-02-02 11:30:00"))},
                   complete=False)
    return root


def test_due_days_by_hand():
    _, is_working = ref.working_days()
    cases = {  # (rating day, N): due day
        (D(2026, 2, 13), 5): D(2026, 2, 27), (D(2026, 2, 13), 15): D(2026, 3, 12),   # Friday, eve of the festival
        (D(2026, 2, 20), 5): D(2026, 2, 28), (D(2026, 2, 20), 15): D(2026, 3, 13),   # on a holiday
        (D(2026, 2, 14), 5): D(2026, 2, 28), (D(2026, 2, 14), 15): D(2026, 3, 13),   # a make-up Saturday
        (D(2026, 2, 6), 15): D(2026, 3, 5), (D(2026, 2, 2), 5): D(2026, 2, 9),
    }
    assert {k: ref.due_day(k[0], k[1], is_working) for k in cases} == cases


def test_recomputation_by_hand(landing):
    got = ref.recompute(landing, 5)
    feb, as_of = D(2026, 2, 1), D(2026, 3, 1)
    # ratings, grade_5..grade_1, average_score, bad_reviews, unfounded, rectified_on_time,
    # rectified_late, overdue_open, on_time_rate, real_name_bad, called_back, callback_rate,
    # replied, settled, as_of_day
    na = (None,) * 7
    assert got["review_monthly"] == {
        (SH, feb, "all"): (7, 1, 0, 1, 2, 3, 15 / 7, 5, 1, 1, 1, 1, 0.25, 2, 1, 0.5, 1, False, as_of),
        (SH, feb, "市人社局"): na + (3, 0, 1, 1, 1, 1 / 3, 1, 1, 1.0, 1, False, as_of),
        (SH, feb, "市公安局"): na + (1, 1, 0, 0, 0, None, 0, 0, None, 0, False, as_of),
        (SH, feb, "unassigned"): na + (1, 0, 0, 0, 0, 0.0, 1, 0, 0.0, 0, False, as_of),
        (CD, feb, "all"): (2, 0, 1, 0, 0, 1, 2.5, 1, 0, 0, 0, 0, 0.0, 1, 0, 0.0, 0, False, None),
        (CD, feb, "unassigned"): na + (1, 0, 0, 0, 0, 0.0, 1, 0, 0.0, 0, False, None),
    }
    assert got["review_tags_monthly"] == {
        (SH, feb, "系统故障"): (1,), (SH, feb, "服务态度"): (1,), (SH, feb, "办事效率"): (1,), (SH, feb, "untagged"): (2,),
        (CD, feb, "untagged"): (1,),
    }
    assert got["orphans"] == {(SH, "T9"): ("r-lost", as_of)}


def test_settled_once_the_latest_due_day_has_passed(landing):
    """With N = 2 every February due day is at most 02-27 (r4: 26, 27) < the as-of day 03-01."""
    got = ref.recompute(landing, 2)
    row = got["review_monthly"][(SH, D(2026, 2, 1), "all")]
    assert row[-2] is True
    assert row[11] == 2  # r5 open and r4 without a ticket are overdue now
    assert got["review_monthly"][(CD, D(2026, 2, 1), "all")][-2] is False  # no as-of day


def test_items_by_hand(landing):
    """Each bad review's ticket, due day (N = 5) and outcome."""
    items = ref.recompute(landing, 5)["review_items"]
    feb = D(2026, 2, 1)
    assert items == {
        (SH, "r1"): (feb, D(2026, 2, 13), "T1", "市人社局", "系统故障", "rectified", D(2026, 2, 27), "rectified_on_time"),
        (SH, "r2"): (feb, D(2026, 2, 2), "T2", "市人社局", "服务态度", "rectified", D(2026, 2, 9), "rectified_late"),
        (SH, "r3"): (feb, D(2026, 2, 20), "T3", "市公安局", "办事效率", "appeal_upheld", D(2026, 2, 28), "unfounded"),
        (SH, "r4"): (feb, D(2026, 2, 25), None, "unassigned", "untagged", None, D(2026, 3, 3), "open_not_due"),
        (SH, "r5"): (feb, D(2026, 2, 3), "T5", "市人社局", "untagged", "open", D(2026, 2, 10), "overdue_open"),
        (CD, "c2"): (feb, D(2026, 2, 2), None, "unassigned", "untagged", None, D(2026, 2, 9), "open_not_due"),
    }

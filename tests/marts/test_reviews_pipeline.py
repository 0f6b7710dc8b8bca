"""The 好差评 marts through the real pipeline (ingest + incremental dbt build): an orphan ticket
is matched once its rating arrives, a re-exported ticket delivery replaces its earlier rows, a
rerun with nothing new changes no table, and no handler_note lands in the clear."""
from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest

from citycloud import pipeline
from tests.conftest import make_settings, query, table_fingerprints, write_delivery

pytestmark = pytest.mark.slow

CITY = "430100"
PHONE = "13987654321"


def _rating(event_id, when, score, user="U1"):
    return json.dumps({"event_id": event_id, "access_event_id": None, "user_id": user, "service_id": "S1",
                       "score": score, "event_time": when, "comment": None})


def _ticket(ticket_id, rating, status, updated, **over):
    row = {"ticket_id": ticket_id, "rating_event_id": rating, "department": "市人社局", "category": "办事效率",
           "opened_at": "2026-03-02T09:00:00+08:00", "status": status, "rectified_at": None, "replied_at": None,
           "called_back": True, "updated_at": updated, "handler_note": f"回访电话{PHONE}"}
    row.update(over)
    return json.dumps(row, ensure_ascii=False)


def _build(settings):
    pipeline.ingest(settings)
    return pipeline.build(settings)


def _items(settings):
    return query(settings.warehouse, "SELECT rating_event_id, ticket_id, status, outcome, as_of_day "
                                     "FROM marts_build.review_items ORDER BY 1")


# Four pipeline builds over a growing landing (~16 s): the e2e tier (#30); the worked example's
# 好差评 rows (golden test) and the dbt unit tests stay in make test.
@pytest.mark.e2e
def test_orphan_matched_later_reexport_replaces_and_rerun_changes_nothing(tmp_path):
    landing = tmp_path / "landing"
    settings = make_settings(tmp_path, landing)
    write_delivery(landing, CITY, "ratings", "2026-03-02", {"r.jsonl": _rating("G1", "2026-03-02 10:00:00", 1)})
    # T2 answers G2, a rating not delivered yet: an orphan, counted nowhere
    write_delivery(landing, CITY, "review_tickets", "2026-03-02", {"t.jsonl": "\n".join([
        _ticket("T1", "G1", "open", "2026-03-02 11:00:00"),
        _ticket("T2", "G2", "open", "2026-03-02 11:00:00", opened_at="2026-03-02T09:30:00+08:00")])})
    _build(settings)
    assert _items(settings) == [("G1", "T1", "open", "open_not_due", date(2026, 3, 2))]
    assert query(settings.warehouse, "SELECT ticket_id, rating_event_id, dt, line FROM audit.review_ticket_orphans") == [
        ("T2", "G2", date(2026, 3, 2), 2)]

    # G2 arrives (anonymous): T2 is matched, no orphan is left
    write_delivery(landing, CITY, "ratings", "2026-03-03", {"r.jsonl": _rating("G2", "2026-03-02 12:00:00", 2, None)})
    _build(settings)
    assert _items(settings) == [("G1", "T1", "open", "open_not_due", date(2026, 3, 2)),
                                ("G2", "T2", "open", "open_not_due", date(2026, 3, 2))]
    assert query(settings.warehouse, "SELECT count(*) FROM audit.review_ticket_orphans") == [(0,)]

    # the 03-02 ticket delivery is exported again: T1 rectified, T2 no longer in it
    write_delivery(landing, CITY, "review_tickets", "2026-03-02", {"t.jsonl": _ticket(
        "T1", "G1", "rectified", "2026-03-02 18:00:00", rectified_at="2026-03-02T18:00:00+08:00")})
    _build(settings)
    assert _items(settings) == [("G1", "T1", "rectified", "rectified_on_time", date(2026, 3, 2)),
                                ("G2", None, None, "open_not_due", date(2026, 3, 2))]
    assert query(settings.warehouse, "SELECT ticket_id, status FROM staging.stg_landing__review_tickets") == [
        ("T1", "rectified")]

    before = table_fingerprints(settings.warehouse)
    assert _build(settings).skipped
    assert table_fingerprints(settings.warehouse) == before

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        for schema, table in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall():
            cells = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            assert not any(PHONE in str(v) or "回访电话" in str(v) for row in cells for v in row), (schema, table)
    finally:
        con.close()

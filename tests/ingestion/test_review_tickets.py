"""Ingestion of review_tickets (reviews.md) through the landing contract: typed rows, every
rejection reason with file and line, handler_note never stored as delivered."""
from __future__ import annotations

import json
from datetime import date, datetime

import duckdb

from citycloud import pipeline
from citycloud.config import WAITED_SOURCES
from tests.conftest import make_settings, query, write_delivery

CITY = "430100"
PHONE = "13812345678"


def ticket(ticket_id, status="open", **over):
    row = {"ticket_id": ticket_id, "rating_event_id": "G1", "department": "市人社局", "category": "办事效率",
           "opened_at": "2026-03-01T09:00:00+08:00", "status": status, "rectified_at": None, "replied_at": None,
           "called_back": False, "updated_at": "2026-03-02 10:00:00", "handler_note": None}
    row.update(over)
    return json.dumps(row, ensure_ascii=False)


def _ingest(tmp_path, lines):
    write_delivery(tmp_path / "landing", CITY, "review_tickets", "2026-03-02", {"t.jsonl": "\n".join(lines)})
    settings = make_settings(tmp_path)
    return settings, pipeline.ingest(settings)


def test_valid_ticket_is_typed_on_its_shanghai_days(tmp_path):
    settings, report = _ingest(tmp_path, [ticket(
        "T1", "rectified", opened_at="2026-02-28T16:30:00Z", rectified_at="2026-03-01T16:00:00Z",
        replied_at="2026-03-02 08:00:00", called_back=True, handler_note=f"已联系{PHONE}")])
    assert report.rows_rejected == 0
    assert query(settings.warehouse, """
        SELECT ticket_id, event_day, status, rectified_ts_utc, rectified_at_local, replied_ts_utc, called_back,
               updated_ts_utc, has_handler_note, length(handler_note_hash) FROM raw.review_tickets""") == [
        ("T1", date(2026, 3, 1), "rectified", datetime(2026, 3, 1, 16), datetime(2026, 3, 2, 0),
         datetime(2026, 3, 2, 0), True, datetime(2026, 3, 2, 2), True, 64)]


def test_each_ticket_rejection_reason_with_file_and_line(tmp_path):
    lines = [
        ticket("T1"),
        ticket("T2", called_back="true"),                        # a string, not a JSON boolean
        ticket("T3", status="closed"),
        ticket("T4", opened_at=1772326800000),                   # epoch numbers are not allowed here
        ticket("T5", "rectified"),                               # rectified without rectified_at
        ticket("T6", department=None),
        ticket("T7", called_back=None),
        ticket("T8", updated_at="2026-03-03T00:00:00+08:00"),    # after its delivery day
        ticket("T9", replied_at="yesterday"),
        '{"ticket_id": "T10", "handler_note": "' + PHONE + '"',   # broken JSON
    ]
    settings, report = _ingest(tmp_path, lines)
    assert report.rows_rejected == 9
    assert query(settings.warehouse, "SELECT ticket_id FROM raw.review_tickets") == [("T1",)]
    assert query(settings.warehouse, "SELECT file, line, reason FROM audit.rejected_rows ORDER BY line") == [
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 2, "called_back 'true' is not a JSON boolean"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 3, "unknown status 'closed'"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 4, "unparseable opened_at '1772326800000'"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 5, "missing required field rectified_at (status rectified)"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 6, "missing required field department"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 7, "missing required field called_back"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 8,
         "updated_at 2026-03-03T00:00:00+08:00 is after the end of delivery day 2026-03-02"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 9, "unparseable replied_at 'yesterday'"),
        ("430100/review_tickets/dt=2026-03-02/t.jsonl", 10, "malformed JSON line"),
    ]


def test_handler_note_is_never_stored_as_delivered(tmp_path):
    settings, _ = _ingest(tmp_path, [ticket("T1", handler_note=f"市民电话{PHONE}，已处理"),
                                     ticket("T2", status="closed", handler_note=f"市民电话{PHONE}")])
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        for schema, table in tables:
            cells = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            assert not any(PHONE in str(v) or "已处理" in str(v) for row in cells for v in row), (schema, table)
        (raw,) = con.execute("SELECT raw FROM audit.rejected_rows").fetchone()
    finally:
        con.close()
    assert json.loads(raw)["handler_note"] == "***"


def test_review_tickets_are_not_waited_for():
    """A city may run no ticket system: a missing delivery is no alert (config.WAITED_SOURCES)."""
    assert "review_tickets" not in WAITED_SOURCES and "ratings" in WAITED_SOURCES

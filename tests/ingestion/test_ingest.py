"""Ingestion on hand-made landing folders: exact values, every rejection reason, replays."""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime

import pytest

from citycloud import pipeline
from citycloud.pipeline import steps
from citycloud.config import CitycloudError
from citycloud.ingestion.pii import hmac_hex
from tests.conftest import TEST_KEY, make_settings, query, table_fingerprints, write_delivery

CITY = "430100"
REG_HEADER = "event_id,event_type,user_id,event_time,channel,phone,id_number,auth_level,district_code"


def access(event_id, event_time, user="U1", service="S1", outcome="success", **extra):
    return json.dumps({"event_id": event_id, "user_id": user, "service_id": service, "event_time": event_time,
                       "channel": "ios", "outcome": outcome, "duration_ms": 10, "client_ip": "10.1.2.3", **extra})


def ingest(tmp_path):
    settings = make_settings(tmp_path)
    return settings, pipeline.ingest(settings)


def test_each_timestamp_form_lands_on_its_shanghai_day(tmp_path):
    lines = [
        access("a1", "2026-03-01T23:59:59+08:00"),   # offset: as written
        access("a2", "2026-03-01T16:00:00Z"),        # UTC → 00:00 on 03-02 in Shanghai
        access("a3", 1772380800000),                 # epoch ms = 2026-03-01T16:00:00Z
        access("a4", 1772380799000),                 # one second earlier: still 03-01
        access("a5", "2026-03-02 00:00:00"),         # no offset: Shanghai local time
        access("a6", "2026-03-01T23:59:59"),         # no offset with T
        access("a7", "2026-03-02T07:59:59.500+08:00"),
    ]
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02", {"p.jsonl": "\n".join(lines)})
    settings, report = ingest(tmp_path)
    assert report.rows_rejected == 0
    rows = query(settings.warehouse, "SELECT event_id, event_ts_utc, event_day FROM raw.service_access ORDER BY 1")
    assert rows == [
        ("a1", datetime(2026, 3, 1, 15, 59, 59), date(2026, 3, 1)),
        ("a2", datetime(2026, 3, 1, 16, 0, 0), date(2026, 3, 2)),
        ("a3", datetime(2026, 3, 1, 16, 0, 0), date(2026, 3, 2)),
        ("a4", datetime(2026, 3, 1, 15, 59, 59), date(2026, 3, 1)),
        ("a5", datetime(2026, 3, 1, 16, 0, 0), date(2026, 3, 2)),
        ("a6", datetime(2026, 3, 1, 15, 59, 59), date(2026, 3, 1)),
        ("a7", datetime(2026, 3, 1, 23, 59, 59, 500000), date(2026, 3, 2)),
    ]


ACCESS_REJECTS = [
    ('{"event_id": "x1", "user_id": ', "malformed JSON line"),
    ('["not", "an", "object"]', "line is not a JSON object"),
    (access(None, "2026-03-01T10:00:00+08:00"), "missing required field event_id"),
    (json.dumps({"event_id": "x3", "event_time": "2026-03-01T10:00:00Z", "outcome": "success"}),
     "missing required field service_id"),
    (access("x4", None), "missing required field event_time"),
    (access("x5", "2026-03-01T10:00:00Z", outcome=None), "missing required field outcome"),
    (access("x6", "2026-03-01T10:00:00Z", outcome="error"), "unknown outcome 'error'"),
    (access("x7", "yesterday"), "unparseable event_time 'yesterday'"),
    (access("x8", "2026-02-30 10:00:00"), "unparseable event_time '2026-02-30 10:00:00'"),
    (access("x9", "2026-03-03T00:00:00+08:00"), "is after the end of delivery day 2026-03-02"),
    (access("x10", "2014-12-31T23:59:59+08:00"), "is before 2015-01-01"),
    (access("x12", "1772380800000"), "unparseable event_time '1772380800000'"),  # digits as a string
    (access("x13", 1000), "is before 2015-01-01"),                                # epoch ms of 1970
    (access("x11", "2026-03-01T10:00:00Z", duration_ms=-5), "duration_ms '-5' is not an integer ≥ 0"),
]


def test_each_access_rejection_reason_is_kept_with_file_and_line(tmp_path):
    good = access("ok", "2026-03-02T08:00:00+08:00")
    lines = [good] + [line for line, _ in ACCESS_REJECTS]
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02", {"part-0.jsonl": "\n".join(lines)})
    settings, report = ingest(tmp_path)
    assert report.rows_loaded == 1 and report.rows_rejected == len(ACCESS_REJECTS)
    rows = query(settings.warehouse, "SELECT file, line, reason, raw FROM audit.rejected_rows ORDER BY line")
    for (file, line, reason, raw), (_, expected) in zip(rows, ACCESS_REJECTS):
        assert file == f"{CITY}/service_access/dt=2026-03-02/part-0.jsonl"
        assert expected in reason
        assert "10.1.2.3" not in raw  # the IP is masked in the kept raw text
    assert [r[1] for r in rows] == list(range(2, 2 + len(ACCESS_REJECTS)))
    (deliveries,) = query(settings.warehouse, "SELECT rows_read, rows_loaded, rows_rejected FROM audit.deliveries")
    assert deliveries == (1 + len(ACCESS_REJECTS), 1, len(ACCESS_REJECTS))


def test_registration_and_rating_and_catalog_rejections(tmp_path):
    landing = tmp_path / "landing"
    write_delivery(landing, CITY, "registrations", "2026-03-02", {"r.csv": "\n".join([
        REG_HEADER,
        "R1,register,U1,2026-03-01 10:00:00,ios,13812345678,11010519491231002X,2,430102",
        "R2,delete,U1,2026-03-01 10:00:00,,,,,",
        "R3,register,,2026-03-01 10:00:00,,,,,",
        "R4,verify,U1,1767225600000,,,,,",
        "R5,verify,U1,2026-03-01 10:00:00,,,,5,",
        "R6,register",
    ])})
    write_delivery(landing, CITY, "ratings", "2026-03-02", {"x.jsonl": "\n".join([
        json.dumps({"event_id": "G1", "service_id": "S1", "score": 5, "event_time": "2026-03-01T10:00:00+08:00",
                    "comment": "very good, call me 13812345678"}),
        json.dumps({"event_id": "G2", "service_id": "S1", "score": 6, "event_time": "2026-03-01T10:00:00+08:00"}),
        json.dumps({"event_id": "G3", "service_id": "S1", "score": "good", "event_time": "2026-03-01T10:00:00Z"}),
        json.dumps({"event_id": "G4", "service_id": "S1", "event_time": "2026-03-01T10:00:00Z"}),
    ])})
    write_delivery(landing, CITY, "service_catalog", "2026-03-02", {"c.csv": "\n".join([
        "service_id,service_name,department,category,online_date,offline_date",
        "S1,社保卡办理,市人社局,社保,2025-01-01,",
        "S2,坏,x,x,2026/02/30,",
        "S3,公积金查询,市公积金中心,公积金,2025-01-01,someday",
        ",无,x,x,2025-01-01,",
    ])})
    settings, report = ingest(tmp_path)
    reasons = dict(query(settings.warehouse, "SELECT source || ':' || line, reason FROM audit.rejected_rows"))
    assert reasons == {
        "registrations:3": "unknown event_type 'delete'",
        "registrations:4": "missing required field user_id",
        "registrations:5": "unparseable event_time '1767225600000'",
        "registrations:6": "auth_level '5' is outside 0–3",
        "registrations:7": "malformed CSV row: expected 9 fields, found 2",
        "ratings:2": "score '6' is not an integer 1–5",
        "ratings:3": "score 'good' is not an integer 1–5",
        "ratings:4": "missing required field score",
        "service_catalog:3": "unparseable online_date '2026/02/30'",
        "service_catalog:4": "unparseable offline_date 'someday'",
        "service_catalog:5": "missing required field service_id",
    }
    (reg,) = query(settings.warehouse, "SELECT user_key, phone_valid, id_number_valid, auth_level FROM raw.registrations")
    assert reg == (hmac_hex(TEST_KEY.encode(), f"{CITY}:U1"), True, True, 2)
    (rating,) = query(settings.warehouse, "SELECT has_comment, comment_hash IS NOT NULL FROM raw.ratings")
    assert rating == (True, True)


def test_invalid_phone_and_identity_numbers_are_flagged_not_rejected(tmp_path):
    write_delivery(tmp_path / "landing", CITY, "registrations", "2026-03-02", {"r.csv": "\n".join([
        REG_HEADER,
        "R1,register,U1,2026-03-01 10:00:00,ios,12345,110105194912310021,1,",   # bad phone, bad check digit
        "R2,register,U2,2026-03-01 10:00:00,ios,13812345678,11010519491231002X,2,",
        "R3,register,U3,2026-03-01 10:00:00,ios,,,,",
    ])})
    settings, report = ingest(tmp_path)
    assert report.rows_rejected == 0
    assert query(settings.warehouse, "SELECT event_id, phone_valid, id_number_valid, auth_level FROM raw.registrations "
                                     "ORDER BY 1") == [("R1", False, False, 1), ("R2", True, True, 2),
                                                       ("R3", None, None, 0)]


def test_shuffled_columns_extra_columns_and_bom(tmp_path):
    write_delivery(tmp_path / "landing", CITY, "registrations", "2026-03-02", {"r.csv.gz": "\ufeff" + "\n".join([
        "app_version,user_id,event_time,event_type,event_id,auth_level",
        "9.1,U7,2026-03-01T10:00:00+08:00,register,R7,1",
    ])})
    settings, report = ingest(tmp_path)
    assert report.rows_loaded == 1
    assert query(settings.warehouse, "SELECT event_id, event_type, event_day, phone_hash FROM raw.registrations") == [
        ("R7", "register", date(2026, 3, 1), None)]


def test_unreadable_files_are_set_aside_and_the_rest_loads(tmp_path):
    landing = tmp_path / "landing"
    folder = write_delivery(landing, CITY, "service_access", "2026-03-02", {
        "good.jsonl": access("a1", "2026-03-02T08:00:00+08:00"),
        "gbk.jsonl": "服务".encode("gbk"),
        "headerless.jsonl": "",
    })
    (folder / "cut.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 10)
    write_delivery(landing, CITY, "registrations", "2026-03-02", {
        "noheader.csv": "R1,register,U1,2026-03-01 10:00:00,,,,,\n"})
    settings, report = ingest(tmp_path)
    assert report.rows_loaded == 1
    reasons = {f.rsplit("/", 1)[1]: r for f, r in report.rejected_files}
    assert set(reasons) == {"gbk.jsonl", "cut.jsonl.gz", "noheader.csv"}
    assert reasons["gbk.jsonl"] == "not valid UTF-8 text"
    assert reasons["noheader.csv"].startswith("missing header row")
    assert query(settings.warehouse, "SELECT count(*) FROM audit.rejected_files")[0][0] == 3
    assert "3 files set aside" in report.summary_line()


def test_missing_pii_key_is_refused_with_a_clear_message(tmp_path, monkeypatch, capsys):
    from citycloud.pipeline.cli import main

    monkeypatch.delenv("CITYCLOUD_PII_KEY")
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02", {"p.jsonl": access("a", 1)})
    with pytest.raises(CitycloudError, match="CITYCLOUD_PII_KEY is not set"):
        pipeline.ingest(make_settings(tmp_path))
    code = main(["run", "--landing", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 2
    err = capsys.readouterr().err
    assert "CITYCLOUD_PII_KEY is not set" in err and "Traceback" not in err
    assert not (tmp_path / "w.duckdb").exists()


def test_reexported_folder_replaces_its_rows_and_rejects(tmp_path):
    landing = tmp_path / "landing"
    folder = write_delivery(landing, CITY, "service_access", "2026-03-02", {
        "p.jsonl": "\n".join([access("a1", "2026-03-01T08:00:00+08:00"), "{broken"])})
    settings, first = ingest(tmp_path)
    assert (first.rows_loaded, first.rows_rejected) == (1, 1)
    shutil.rmtree(folder)
    write_delivery(landing, CITY, "service_access", "2026-03-02", {
        "q.jsonl": "\n".join([access("a2", "2026-03-02T08:00:00+08:00"), access("a3", "2026-03-02T09:00:00+08:00")])})
    second = pipeline.ingest(settings)
    assert second.deliveries[0].replaced and second.rows_loaded == 2
    assert query(settings.warehouse, "SELECT event_id FROM raw.service_access ORDER BY 1") == [("a2",), ("a3",)]
    assert query(settings.warehouse, "SELECT count(*) FROM audit.rejected_rows")[0][0] == 0
    assert query(settings.warehouse, "SELECT files, rows_loaded, rows_rejected FROM audit.deliveries") == [(1, 2, 0)]
    assert query(settings.warehouse, "SELECT count(*) FROM audit.delivery_history")[0][0] == 2
    # the change log names the day the old copy's rows left and the days the new ones came in
    assert query(settings.warehouse, "SELECT batch_id, event_day, rows, change FROM audit.delivery_changes "
                                     "ORDER BY 1, 4, 2") == [
        (1, date(2026, 3, 1), 1, "added"), (2, date(2026, 3, 2), 2, "added"), (2, date(2026, 3, 1), 1, "removed")]


def test_folder_without_success_waits_and_is_picked_up_when_complete(tmp_path):
    landing = tmp_path / "landing"
    late = write_delivery(landing, CITY, "service_access", "2026-03-01",
                          {"p.jsonl": access("a1", "2026-03-01T08:00:00+08:00")}, complete=False)
    write_delivery(landing, CITY, "service_access", "2026-03-02", {"p.jsonl": access("a2", "2026-03-02T08:00:00+08:00")})
    settings, first = ingest(tmp_path)
    assert [str(d.dt) for d in first.deliveries] == ["2026-03-02"]
    assert first.incomplete == [f"{CITY}/service_access/dt=2026-03-01"]
    (late / "_SUCCESS").write_bytes(b"")
    second = pipeline.ingest(settings)
    assert [str(d.dt) for d in second.deliveries] == ["2026-03-01"]
    assert query(settings.warehouse, "SELECT count(*) FROM raw.service_access")[0][0] == 2


def test_rerun_with_nothing_new_leaves_every_table_identical(tmp_path):
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02", {
        "p.jsonl.gz": "\n".join([access("a1", "2026-03-01T08:00:00+08:00"), "{bad"])})
    settings, _ = ingest(tmp_path)
    before = table_fingerprints(settings.warehouse)
    again = pipeline.ingest(settings)
    assert again.deliveries == [] and again.batch_id is None
    assert table_fingerprints(settings.warehouse) == before


def test_ingestion_runs_under_its_own_memory_limit(tmp_path, monkeypatch):
    """The ingest step's connection takes CITYCLOUD_DUCKDB_INGEST_MEMORY_LIMIT, not the build's
    limit: DuckDB fills its buffer pool to the limit while a delivery's transaction is open
    (docs/performance.md, "Memory")."""
    import duckdb

    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02",
                   {"p.jsonl": access("a", "2026-03-02T08:00:00+08:00")})
    monkeypatch.setenv("CITYCLOUD_DUCKDB_INGEST_MEMORY_LIMIT", "300MB")
    settings = make_settings(tmp_path)
    assert (settings.memory_limit, settings.ingest_memory_limit) == ("2GB", "300MB")
    seen = []
    real = steps.ingest_landing

    def spy(con, *args, **kwargs):
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        return real(con, *args, **kwargs)

    monkeypatch.setattr(steps, "ingest_landing", spy)
    assert pipeline.ingest(settings).rows_loaded == 1
    reference = duckdb.connect()
    reference.execute("SET memory_limit = '300MB'")
    assert seen == [reference.execute("SELECT current_setting('memory_limit')").fetchone()[0]]

"""Two-pass ingestion (ingestion/fast.py): the bulk path and the per-line path give the same tables.

Every landing here is ingested twice, with CITYCLOUD_TWO_PASS_INGESTION on and off, and every
raw table and audit table is compared row for row (file and line included: the dedup's
tie-break and the rejected rows' identity): JSON-lines files (read_json) and CSV files (read_csv);
the CSV cases also check which path each file took, so a scan rule that lets a doubtful file
into the bulk path fails even where DuckDB happens to read it alike."""
from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from citycloud.config import Settings
from citycloud.generate import generate
from citycloud.ingestion import fast
from citycloud.ingestion.load import ingest_landing
from tests.conftest import TEST_KEY, write_delivery

CITY = "430100"
TABLES = ("raw.service_access", "raw.ratings", "raw.registrations", "raw.service_catalog",
          "audit.rejected_rows", "audit.rejected_files")


def ingested(landing: Path, two_pass: bool, **limits) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    try:
        settings = Settings(landing=landing, two_pass_ingestion=two_pass, today=date(2030, 1, 1), **limits)
        report = ingest_landing(con, landing, TEST_KEY.encode(), settings=settings)
        out = {t: con.execute(f"SELECT * EXCLUDE (batch_id) FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
        out["audit.deliveries"] = con.execute(
            "SELECT * EXCLUDE (ingested_at, batch_id, signature) FROM audit.deliveries ORDER BY ALL").fetchall()
        out["summary"] = [(report.rows_loaded, report.rows_rejected, len(report.rejected_files))]
        return out
    finally:
        con.close()


def assert_both_paths_agree(landing: Path, **limits) -> dict[str, list[tuple]]:
    bulk, per_line = ingested(landing, True, **limits), ingested(landing, False, **limits)
    for table in bulk:
        assert bulk[table] == per_line[table], table
    return bulk


def access(event_id, event_time="2026-03-01T10:00:00+08:00", **over) -> dict:
    return {"event_id": event_id, "user_id": "U1", "service_id": "S1", "event_time": event_time,
            "channel": "ios", "outcome": "success", "duration_ms": 10, "client_ip": "10.1.2.3", **over}


def line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


# Each file is one shape of delivered text; the comment says what it exercises.
ACCESS_FILES = {
    # clean, then with an extra field, keys in another order, epoch milliseconds
    "clean.jsonl": "\n".join([line(access("c1")), line({**access("c2"), "extra": [1, {"x": 2}]}),
                              line(dict(reversed(list(access("c3", 1772330400000).items()))))]) + "\n",
    # valid JSON throughout, some rows break a rule (a row-level reject in bulk)
    "rules.jsonl": "\n".join([line(access("r1")), line(access("r2", outcome="ok")), line(access(None)),
                              line(access("r4", "2014-12-31T00:00:00+08:00")), line(access("r5", "yesterday")),
                              line(access("r6", duration_ms=-3)), line(access("r7", duration_ms=1.5)),
                              line(access("r8", "1772330400000")), line(access("r9", -0)), "null",
                              line(access("r11", True)), line(access("r12", user_id=None))]),
    # malformed lines among good ones, a duplicate key, bad JSON values
    "malformed.jsonl": "\n".join([line(access("m1")), '{"event_id": "m2", "user_id": ', "{'event_id': 'm3'}",
                                  '{"event_id": "m4", "event_id": "m5", "service_id": "S1", '
                                  '"event_time": "2026-03-01T10:00:00Z", "outcome": "success"}',
                                  line(access("m6")) + line(access("m7")), line(access("m8")) + " trailing",
                                  '{"event_id": "m9", "x": NaN, "service_id": "S1", "event_time": 1772330400000, '
                                  '"outcome": "success",}', line(access("m10"))]),
    # CRLF line ends, a BOM, no newline at the end
    "crlf.jsonl": ("\ufeff" + "\r\n".join(line(access(f"w{i}")) for i in range(3))),
    # blank and whitespace-only lines (counted, carry no row): the per-line path
    "blank.jsonl": "\n".join([line(access("b1")), "", "   ", line(access("b2")), "\r", line(access("b3")), ""]),
    # a line with leading spaces, one with a tab: the per-line path
    "indented.jsonl": "\n".join(["  " + line(access("i1")), "\t" + line(access("i2")), line(access("i3"))]),
    # bytes DuckDB's reader trims and json_valid does not
    "vtab.jsonl": line(access("v1")) + "\x0b\n" + line(access("v2")) + "\x0c\n",
    # an escaped key: the epoch rule reads the key in the text
    "escaped.jsonl": '{"event_id": "e1", "service_id": "S1", "event\\u005ftime": 1772330400000, '
                     '"outcome": "success"}\n' + line(access("e2", comment="caf\\u00e9")) + "\n",
    # gzip, and gzip under a name without .gz; a .gz that is not gzip
    "zipped.jsonl.gz": "\n".join(line(access(f"z{i}", 1772330400000 + i)) for i in range(5)) + "\n",
    "unnamed.jsonl": gzip.compress(("\n".join(line(access(f"u{i}")) for i in range(3)) + "\n").encode(), mtime=0),
    "notgz.jsonl.gz.txt": "",
    # not UTF-8 on its second line: the whole file set aside
    "latin1.jsonl": (line(access("l1")) + "\n").encode() + line(access("l2", user_id="Jos\xe9")).encode("latin-1"),
    # a truncated gzip: set aside
    "cut.jsonl.gz": b"",
    # empty, and a duplicate event in one file
    "empty.jsonl": "",
    "dup.jsonl": "\n".join([line(access("d1")), line(access("d1", user_id="U2"))]),
}


def test_each_file_shape_gives_the_same_rows_lines_and_rejects_on_both_paths(tmp_path):
    landing = tmp_path / "landing"
    folder = write_delivery(landing, CITY, "service_access", "2026-03-01", ACCESS_FILES)
    (folder / "cut.jsonl.gz").write_bytes(gzip.compress(ACCESS_FILES["clean.jsonl"].encode() * 50)[:-30])
    (folder / "notgz.jsonl.gz").write_bytes(b'{"event_id": "n1"}\n')
    tables = assert_both_paths_agree(landing)
    rejected = {(f.rsplit("/", 1)[1], n) for _, _, _, f, n, *_ in tables["audit.rejected_rows"]}
    # exact rejected lines of the bulk-read files (checked line by line after the bulk pass)
    assert {n for f, n in rejected if f == "rules.jsonl"} == {2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
    # (DuckDB's JSON takes NaN and a trailing comma, and the first of two equal keys)
    assert {n for f, n in rejected if f == "malformed.jsonl"} == {2, 3, 5, 6}
    assert {f.rsplit("/", 1)[1] for *_, f, _ in tables["audit.rejected_files"]} == {
        "cut.jsonl.gz", "latin1.jsonl", "notgz.jsonl.gz"}
    lines = {(r[2].rsplit("/", 1)[1], r[3]) for r in tables["raw.service_access"]}
    assert {n for f, n in lines if f == "blank.jsonl"} == {1, 4, 6}
    assert {n for f, n in lines if f == "crlf.jsonl"} == {1, 2, 3}


def test_a_rating_file_with_comments_and_rejects_agrees(tmp_path):
    rating = {"event_id": "g1", "access_event_id": "a1", "user_id": "U1", "service_id": "S1", "score": 5,
              "event_time": "2026-03-01 09:00:00", "comment": "很好 13912345678 \"quoted\" \\ slash"}
    rows = [line(rating), line({**rating, "event_id": "g2", "score": 6}), line({**rating, "event_id": "g3",
            "score": "4"}), line({**rating, "event_id": "g4", "event_time": 1772330400000}), "{\"event_id\": "]
    write_delivery(tmp_path / "landing", CITY, "ratings", "2026-03-01", {"r.jsonl": "\n".join(rows) + "\n"})
    tables = assert_both_paths_agree(tmp_path / "landing")
    assert [(r[4], r[5]) for r in tables["audit.rejected_rows"]] == [
        (2, "score '6' is not an integer 1–5"), (4, "unparseable event_time '1772330400000'"),
        (5, "malformed JSON line")]


def test_the_file_limits_hold_on_both_paths(tmp_path):
    """More bad lines than the limit: set aside whole (rows stored in bulk removed); a file past
    its decompression limit: set aside before DuckDB reads it."""
    good = [line(access(f"k{i}")) for i in range(20)]
    bad = [line(access(f"x{i}", outcome="nope")) for i in range(4)]
    bomb = gzip.compress(("\n".join(good) + "\n").encode() + b" " * (4 << 20), mtime=0)
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01",
                   {"bad.jsonl": "\n".join(good + bad), "ok.jsonl": "\n".join(good[:3]), "bomb.jsonl": bomb})
    tables = assert_both_paths_agree(tmp_path / "landing", max_bad_lines=3, max_decompression_ratio=2,
                                     min_decompressed_limit_mb=1)
    reasons = {f.rsplit("/", 1)[1]: r for *_, f, r in tables["audit.rejected_files"]}
    assert set(reasons) == {"bad.jsonl", "bomb.jsonl"}
    assert "CITYCLOUD_MAX_BAD_LINES" in reasons["bad.jsonl"]
    assert "decompresses to more than" in reasons["bomb.jsonl"]
    assert [r[3] for r in tables["raw.service_access"]] == [1, 2, 3]


def test_scan_counts_lines_across_block_boundaries():
    blocks = [b'{"a": 1}\n', b'{"a"', b': 2}\n{', b'"a": 3}']
    assert fast.scan(iter(blocks), fast.UNSAFE_BYTES) == fast.Scan(3, True)
    assert fast.scan(iter([b'{"a": 1}\n', b"\n{}\n"]), ()) == fast.Scan(3, False)   # a blank line
    assert fast.scan(iter([b'{"a": 1}\n ', b"{}"]), ()) == fast.Scan(2, False)      # an indented line
    assert fast.scan(iter([]), ()) == fast.Scan(0, False)


@pytest.fixture(scope="module")
def generated_landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, cities=2, days=6, users=800, seed=11, accesses_per_day=3000, dirt=True)
    return out


def test_the_generated_landing_with_its_dirt_gives_the_same_tables_on_both_paths(generated_landing):
    tables = assert_both_paths_agree(generated_landing)
    assert tables["audit.rejected_rows"] and tables["audit.rejected_files"] and tables["raw.service_access"]


def test_picked_lines_are_the_per_line_readers_lines_across_block_boundaries(tmp_path, monkeypatch):
    from citycloud.ingestion import readers
    text = "".join(f'{{"n": {i}}}\r\n' if i % 7 else "\n" for i in range(1, 60)) + '{"last": 1}'
    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(gzip.compress(("\ufeff" + text).encode(), mtime=0))
    monkeypatch.setattr(readers, "BLOCK_BYTES", 7)
    wanted = [1, 2, 13, 15, 48, 60]
    every = readers.read_lines(path)
    assert readers.picked_lines(path, wanted).to_pylist() == [r for r in every.to_pylist() if r["line"] in wanted]


def test_the_bulk_path_refuses_when_duckdb_may_reorder_rows(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(line(access("o1")) + "\n")
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    with pytest.raises(fast.NotBulkSafe, match="insertion order"):
        fast.ingest_bulk(con, "service_access", path, None, "{query}", lambda sql: sql)


# ---------------------------------------------------------------- CSV files (registrations, service_catalog)

REG_HEADER = "event_id,event_type,user_id,event_time,channel,phone,id_number,auth_level,district_code"
ID = "11010519491231002X"  # a valid GB 11643 number


def reg(event_id, event_type="register", event_time="2026-03-01 10:00:00", auth="1", **over) -> str:
    row = {"event_id": event_id, "event_type": event_type, "user_id": "U1", "event_time": event_time,
           "channel": "ios", "phone": "13912345678", "id_number": ID, "auth_level": auth, "district_code": "310101"}
    row.update(over)
    return ",".join(row.values())


def csv_text(*rows: str, header: str = REG_HEADER, end: str = "\n") -> str:
    return end.join([header, *rows]) + end


# Each file is one shape of delivered CSV text; the comment says what it exercises. BULK: the
# files the bulk path must take (the others must go line by line from their start).
REG_FILES = {
    # plain rows, empty optional fields, values with spaces and tabs around them, 'NULL', '#',
    # a backslash, a single quote, Chinese text, a comma-free timestamp with an offset
    "clean.csv": csv_text(reg("c1"), reg("c2", "verify", "2026-03-01T02:00:00Z", auth="2", phone="", id_number=""),
                          reg(" c3 ", " cancel ", auth=" 3 ", channel="\tWeChat_Mini "), reg("#c4", channel="NULL"),
                          reg("c5\\x", district_code="浦东新区 'a'"), reg("c6", auth="", district_code="  ")),
    # rows breaking the rules, each a bulk reject checked line by line (exact lines below)
    "rules.csv": csv_text(reg("r1"), reg("r2", "delete"), reg(""), reg("r4", event_time="yesterday"),
                          reg("r5", event_time="2026-03-02 00:00:00"), reg("r6", event_time="2014-12-31 23:59:59"),
                          reg("r7", auth="高"), reg("r8", auth="2.5"), reg("r9", user_id=" "), reg("r10")),
    # columns in another order, an extra column, names in another case and with spaces
    "shuffled.csv": csv_text("x1,2026-03-01 09:00:00,register,U9,9.1,13800000000", "x2,2026-03-01 09:00:00,bad,U9,,",
                             header=" Event_ID ,EVENT_TIME,event_type,user_id,app_version,phone"),
    # a header with an empty last column and every row with a trailing comma
    "trailing.csv": csv_text(reg("t1") + ",", reg("t2", "oops") + ",", header=REG_HEADER + ","),
    # a byte-order mark, CRLF line ends, no newline at the end
    "crlf.csv": ("\ufeff" + csv_text(reg("w1"), reg("w2", "verify"), reg("w3", "bad"), end="\r\n"))[:-2],
    # only the header
    "header_only.csv": REG_HEADER + "\n",
    # the same event twice (the dedup's tie-break is the line)
    "dup.csv": csv_text(reg("d1"), reg("d1", user_id="U2")),
    # gzip, and gzip under a name without .gz
    "zipped.csv.gz": csv_text(*(reg(f"z{i}") for i in range(5))),
    "unnamed.csv": gzip.compress(csv_text(reg("u1"), reg("u2", "bad")).encode(), mtime=0),
    # --- line by line:
    # quoted fields: a comma and a newline inside quotes (the per-line path splits the lines)
    "quoted.csv": csv_text(reg("q1"), reg("q2", district_code='"a,b"'), reg("q3", district_code='"x\ny"'),
                           reg("q4")),
    # quoted fields without a comma or newline in them (which DuckDB would read alike): still line by line
    "quoted_plain.csv": csv_text(reg("qp1", district_code='"310101"'), reg('"qp2"')),
    # a row with a field too many and one with too few
    "fields.csv": csv_text(reg("f1"), reg("f2") + ",extra", "f3,register,U1", reg("f4")),
    # blank and whitespace-only lines (counted, carry no row)
    "blank.csv": csv_text(reg("b1"), "", "   ", reg("b2"), "\r", reg("b3")),
    # a blank first line: the header is line 2 to the per-line path
    "blank_first.csv": "\n" + csv_text(reg("bf1")),
    # CRLF on some lines only; a carriage return inside a field
    "mixed_eol.csv": REG_HEADER + "\r\n" + reg("m1") + "\n" + reg("m2") + "\r\n",
    "lone_cr.csv": csv_text(reg("cr1", district_code="31\r0101"), reg("cr2")),
    # a NUL byte in a field
    "nul.csv": csv_text(reg("n1", district_code="31\x000101"), reg("n2")),
    # a line longer than DuckDB's CSV reader takes
    "long.csv": csv_text(reg("l1", district_code="9" * (1 << 20)), reg("l2")),
    # set aside whole: not UTF-8, no header, a column named twice, empty (and a .gz that is not gzip)
    "legacy.csv": csv_text(reg("g1", district_code="浦东")).encode("gb18030"),
    "noheader.csv": csv_text(reg("h2"), header=reg("h1")),
    "twice.csv": csv_text(reg("tw1"), header=REG_HEADER.replace("channel", "phone")),
    "empty.csv": "",
}
BULK = {"clean.csv", "rules.csv", "shuffled.csv", "trailing.csv", "crlf.csv", "header_only.csv", "dup.csv",
        "zipped.csv.gz", "unnamed.csv"}


def paths_taken(monkeypatch) -> dict[str, str]:
    """Which path each file took in the two-pass run: 'bulk' or why not."""
    from citycloud.ingestion import load
    taken, real = {}, load.ingest_bulk

    def spy(con, source, path, *args, **kwargs):
        try:
            result = real(con, source, path, *args, **kwargs)
        except fast.NotBulkSafe as exc:
            taken[path.name] = str(exc)
            raise
        taken[path.name] = "bulk"
        return result

    monkeypatch.setattr(load, "ingest_bulk", spy)
    return taken


def test_each_csv_file_shape_gives_the_same_rows_lines_and_rejects_on_both_paths(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    folder = write_delivery(landing, CITY, "registrations", "2026-03-01", REG_FILES)
    (folder / "notgz.csv.gz").write_bytes(csv_text(reg("ng1")).encode())
    taken = paths_taken(monkeypatch)
    tables = assert_both_paths_agree(landing)
    assert {name for name, how in taken.items() if how == "bulk"} == BULK
    # the scan refuses every other file before DuckDB reads it (not the row count, a safety net)
    assert {how for how in taken.values() if how != "bulk"} == {"a line DuckDB's reader and the per-line rules could "
                                                                 "read differently"}
    rejected = {(f.rsplit("/", 1)[1], n, r) for _, _, _, f, n, r, *_ in tables["audit.rejected_rows"]}
    assert sorted((n, r) for f, n, r in rejected if f == "rules.csv") == [
        (3, "unknown event_type 'delete'"), (4, "missing required field event_id"),
        (5, "unparseable event_time 'yesterday'"),
        (6, "event_time 2026-03-02 00:00:00 is after the end of delivery day 2026-03-01"),
        (7, "event_time 2014-12-31 23:59:59 is before 2015-01-01"), (8, "auth_level '高' is outside 0–3"),
        (9, "auth_level '2.5' is outside 0–3"), (10, "missing required field user_id")]
    assert {(f, n) for f, n, _ in rejected if f in ("crlf.csv", "unnamed.csv", "shuffled.csv", "trailing.csv")} == {
        ("crlf.csv", 4), ("unnamed.csv", 3), ("shuffled.csv", 3), ("trailing.csv", 3)}
    assert {f.rsplit("/", 1)[1] for *_, f, _ in tables["audit.rejected_files"]} == {
        "legacy.csv", "noheader.csv", "twice.csv", "empty.csv", "notgz.csv.gz"}
    rows = {(r[2].rsplit("/", 1)[1], r[3]): r for r in tables["raw.registrations"]}
    assert [n for f, n in sorted(rows) if f == "blank.csv"] == [2, 5, 7]
    clean = [rows["clean.csv", n] for n in range(2, 8)]
    # trimmed values; empty and blank optional fields NULL; 'NULL' is a channel name
    assert [(r[4], r[5], r[9], r[14], r[15]) for r in clean] == [
        ("c1", "register", "ios", 1, "310101"), ("c2", "verify", "ios", 2, "310101"),
        ("c3", "cancel", "\tWeChat_Mini", 3, "310101"), ("#c4", "register", "NULL", 1, "310101"),
        ("c5\\x", "register", "ios", 1, "浦东新区 'a'"), ("c6", "register", "ios", 0, None)]


CATALOG_HEADER = "service_id,service_name,department,category,online_date,offline_date,handling_mode"


def test_a_catalog_snapshot_with_chinese_text_and_rejects_agrees(tmp_path, monkeypatch):
    rows = ["S1,社保卡办理,市人社局,社保,2020-01-01,,全程网办", "S2,智慧停车一件事,市交通委,交通,待定,,",
            ",临时测试服务,市大数据中心,其他,2020-01-01,,", "S4,公积金查询,市公积金中心,公积金,2021-05-01,2025-13-01,",
            "S5, 户籍证明 ,市公安局,户政,2019-03-01,2026-01-01,"]
    write_delivery(tmp_path / "landing", CITY, "service_catalog", "2026-03-01", {
        "catalog.csv": csv_text(*rows, header=CATALOG_HEADER),
        # a quoted name with a comma: line by line
        "quoted.csv": csv_text(*rows[:1], 'S6,"办理,查询",市人社局,社保,2020-01-01,,', header=CATALOG_HEADER)})
    taken = paths_taken(monkeypatch)
    tables = assert_both_paths_agree(tmp_path / "landing")
    assert taken["catalog.csv"] == "bulk" and taken["quoted.csv"] != "bulk"
    assert [(r[3].rsplit("/", 1)[1], r[4], r[5]) for r in tables["audit.rejected_rows"]] == [
        ("catalog.csv", 3, "unparseable online_date '待定'"), ("catalog.csv", 4, "missing required field service_id"),
        ("catalog.csv", 5, "unparseable offline_date '2025-13-01'")]
    assert sorted((r[4], r[5]) for r in tables["raw.service_catalog"]) == [
        ("S1", "社保卡办理"), ("S1", "社保卡办理"), ("S5", "户籍证明"), ("S6", "办理,查询")]


def test_the_file_limits_hold_for_csv_files_on_both_paths(tmp_path):
    """More bad lines than the limit (rows stored in bulk removed); past the decompression limit."""
    rows = [reg(f"k{i}") for i in range(5)]
    write_delivery(tmp_path / "landing", CITY, "registrations", "2026-03-01", {
        "bad.csv": csv_text(*rows, *(reg(f"x{i}", "nope") for i in range(4))),
        "ok.csv": csv_text(reg("o1"), reg("o2", "nope")),
        "bomb.csv": gzip.compress(csv_text(*rows).encode() * (1 << 14), mtime=0)})
    tables = assert_both_paths_agree(tmp_path / "landing", max_bad_lines=3, max_decompression_ratio=2,
                                     min_decompressed_limit_mb=1)
    assert [(f.rsplit("/", 1)[1], r.split(" ")[0]) for *_, f, r in tables["audit.rejected_files"]] == [
        ("bad.csv", "more"), ("bomb.csv", "decompresses")]
    assert [(r[2].rsplit("/", 1)[1], r[3]) for r in tables["raw.registrations"]] == [("ok.csv", 2)]


def test_scan_csv_checks_every_line_across_block_boundaries():
    text = (REG_HEADER + "\n" + reg("a") + "\n" + reg("b")).encode()
    blocks = [text[i:i + 7] for i in range(0, len(text), 7)]
    header = REG_HEADER.split(",")
    assert fast.scan_csv(iter(blocks)) == fast.CsvScan(3, header, True)
    shifted = [text[:60], text[60:]]
    assert fast.scan_csv(iter(shifted)) == fast.CsvScan(3, header, True)
    assert not fast.scan_csv(iter([text[:100], b",", text[100:]])).safe      # a field too many
    assert not fast.scan_csv(iter([text + b"\n", b"\n"])).safe               # a blank last line
    assert not fast.scan_csv(iter([text.replace(b"\n", b"\r\n", 1)])).safe   # CRLF on one line only
    assert fast.scan_csv(iter([text.replace(b"\n", b"\r\n")])).safe          # on every line
    assert fast.scan_csv(iter([])) == fast.CsvScan(0, None, False)

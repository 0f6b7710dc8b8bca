"""Hostile input in delivered files (issue 31, the input half): a decompression bomb, a file that
is not its source, deliveries and events from the future. Each once took every later run down or
stretched every day series to 2099."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from citycloud import pipeline
from tests.conftest import TINY, make_settings, query, write_delivery
from tests.faults.conftest import cli_env

pytestmark = pytest.mark.faults

CITY = "430100"
BASE = f"{CITY}/service_access"
MiB = 1 << 20


def _line(event_id, when="2026-03-01T10:00:00+08:00", outcome="success"):
    return json.dumps({"event_id": event_id, "user_id": "U1", "service_id": "S1", "event_time": when,
                       "outcome": outcome})


def _bomb(folder: Path, name: str, size: int, every_mib: str = "") -> int:
    """`size` bytes of newlines, gzip-compressed (about 1,000 to 1), with the line `every_mib`
    ending each MiB if given: the bytes on disk."""
    text = (b"\n" * (MiB - len(every_mib) - 1) + every_mib.encode() + b"\n") * (size // MiB) if every_mib else \
        b"\n" * size
    data = gzip.compress(text, compresslevel=9, mtime=0)
    (folder / name).write_bytes(data)
    return len(data)


def test_a_gzip_bomb_is_set_aside_whole_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("CITYCLOUD_MIN_DECOMPRESSED_LIMIT_MB", "1")  # the ratio decides: 200× its size
    landing = tmp_path / "landing"
    folder = write_delivery(landing, CITY, "service_access", "2026-03-01", {"a.jsonl": _line("ok-1") + "\n"})
    on_disk = _bomb(folder, "bomb.jsonl.gz", 32 * MiB)
    write_delivery(landing, CITY, "service_access", "2026-03-02", {"b.jsonl": _line("ok-2", "2026-03-02T09:00:00Z")})
    settings = make_settings(tmp_path)
    report = pipeline.ingest(settings)

    reason = (f"decompresses to more than {200 * on_disk:,} bytes, its limit (200× its {on_disk:,} bytes on disk, "
              "at least 1 MiB: CITYCLOUD_MAX_DECOMPRESSION_RATIO, CITYCLOUD_MIN_DECOMPRESSED_LIMIT_MB): "
              "set aside whole, not read further")
    assert report.rejected_files == [(f"{BASE}/dt=2026-03-01/bomb.jsonl.gz", reason)]
    assert query(settings.warehouse, "SELECT * EXCLUDE (batch_id) FROM audit.rejected_files") == [
        (CITY, "service_access", date(2026, 3, 1), f"{BASE}/dt=2026-03-01/bomb.jsonl.gz", reason)]
    assert query(settings.warehouse, "SELECT event_id FROM raw.service_access ORDER BY 1") == [("ok-1",), ("ok-2",)]
    assert query(settings.warehouse, "SELECT count(*) FROM audit.rejected_rows") == [(0,)]
    assert query(settings.warehouse, "SELECT dt, rows_read, rows_loaded, files_rejected FROM audit.deliveries "
                                     "ORDER BY dt") == [(date(2026, 3, 1), 1, 1, 1), (date(2026, 3, 2), 1, 1, 0)]
    assert pipeline.ingest(settings).deliveries == []  # later runs: recorded, not read again


# Large enough that reading it whole would show (96 bytes of memory per decompressed byte before
# streaming: 24 GiB), small enough for any CI machine now.
BOMB = 256 * MiB


def _peak_rss_of_ingest(landing: Path, warehouse: Path, rows: int) -> int:
    """Peak RSS (bytes) of a child process that ingests `landing`: its VmHWM, the high-water mark
    of its own address space (rusage's maxrss would include this process's, inherited at fork)."""
    env = {**cli_env(), "CITYCLOUD_LANDING": str(landing), "CITYCLOUD_WAREHOUSE": str(warehouse),
           "CITYCLOUD_MAX_DECOMPRESSION_RATIO": "1e9",  # no limit: the whole bomb is read
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    code = ("import re; from pathlib import Path; from citycloud import pipeline; from citycloud.config import Settings; "
            "loaded = pipeline.ingest(Settings()).rows_loaded; "
            "print(loaded, re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded, peak_kib = done.stdout.split()
    assert int(loaded) == rows
    return int(peak_kib) * 1024


def test_reading_a_file_takes_memory_bounded_independently_of_its_decompressed_size(tmp_path):
    small = write_delivery(tmp_path / "small", CITY, "service_access", "2026-03-01", {"a.jsonl": _line("ok-1")})
    big = write_delivery(tmp_path / "big", CITY, "service_access", "2026-03-01", {"a.jsonl": _line("ok-1")})
    # one event ending each MiB: every block is numbered line by line, none is skipped as blank
    _bomb(big, "bomb.jsonl.gz", BOMB, every_mib=_line("in-the-bomb"))
    baseline = _peak_rss_of_ingest(small.parents[2], tmp_path / "wh1" / "w.duckdb", rows=1)
    peak = _peak_rss_of_ingest(big.parents[2], tmp_path / "wh2" / "w.duckdb", rows=1 + BOMB // MiB)
    print(f"peak RSS: {baseline / MiB:.0f} MiB for one line, {peak / MiB:.0f} MiB with {BOMB // MiB} MiB of newlines")
    assert peak - baseline < BOMB / 2


def test_a_file_with_more_bad_lines_than_the_limit_is_set_aside_whole(tmp_path, monkeypatch):
    """Chunks of 2 lines: the bad lines pass the limit in a later chunk than the first valid rows,
    which go too (the file is set aside whole, inside its delivery's transaction)."""
    from citycloud.ingestion import readers

    monkeypatch.setattr(readers, "CHUNK_ROWS", 2)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)
    monkeypatch.setenv("CITYCLOUD_MAX_BAD_LINES", "3")
    good = [_line(f"g{i}") for i in range(3)]
    bad = [_line(f"b{i}", outcome="maybe") for i in range(4)]
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {
        "at_limit.jsonl": "\n".join(good[:1] + bad[:3]) + "\n",
        "past_limit.jsonl": "\n".join(good + bad) + "\n",
    })
    settings = make_settings(tmp_path)
    report = pipeline.ingest(settings)
    reason = ("more than 3 lines break the contract (CITYCLOUD_MAX_BAD_LINES): not a delivery of its source; "
              "set aside whole, its rows not kept one by one")
    assert report.rejected_files == [(f"{BASE}/dt=2026-03-01/past_limit.jsonl", reason)]
    assert query(settings.warehouse, "SELECT file, line, event_id FROM raw.service_access") == [
        (f"{BASE}/dt=2026-03-01/at_limit.jsonl", 1, "g0")]
    assert query(settings.warehouse, "SELECT file, line, reason FROM audit.rejected_rows ORDER BY line") == [
        (f"{BASE}/dt=2026-03-01/at_limit.jsonl", n, "unknown outcome 'maybe'") for n in (2, 3, 4)]
    assert query(settings.warehouse, "SELECT rows_read, rows_loaded, rows_rejected, files_rejected "
                                     "FROM audit.deliveries") == [(4, 1, 3, 1)]


def test_the_default_limit_is_a_thousand_bad_lines(tmp_path):
    bad = "\n".join(_line(f"b{i}", outcome="maybe") for i in range(1001)) + "\n"
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01",
                   {"a.jsonl": bad, "b.jsonl": bad.split("\n", 1)[1]})
    settings = make_settings(tmp_path)
    report = pipeline.ingest(settings)
    assert [f for f, _ in report.rejected_files] == [f"{BASE}/dt=2026-03-01/a.jsonl"]
    assert report.rows_rejected == 1000


def test_a_delivery_folder_dated_after_today_is_a_landing_issue_not_a_delivery(tmp_path):
    landing = tmp_path / "landing"
    write_delivery(landing, CITY, "service_access", "2026-03-02", {"a.jsonl": _line("today", "2026-03-02T08:00:00")})
    write_delivery(landing, CITY, "service_access", "2026-03-03", {"a.jsonl": _line("tomorrow", "2026-03-03T08:00:00")})
    write_delivery(landing, CITY, "registrations", "2099-01-01", {"a.csv": "event_id,event_type,user_id,event_time\n"
                                                                         "r1,register,U1,2099-01-01 08:00:00\n"})
    settings = make_settings(tmp_path)
    settings.today = date(2026, 3, 2)
    report = pipeline.ingest(settings)
    assert [(d.source, d.dt) for d in report.deliveries] == [("service_access", date(2026, 3, 2))]
    assert query(settings.warehouse, "SELECT path, kind, reason FROM audit.landing_issues ORDER BY path") == [
        (f"{CITY}/registrations/dt=2099-01-01", "future_delivery",
         "delivery folder dated 2099-01-01, after today (2026-03-02, Asia/Shanghai): not read"),
        (f"{BASE}/dt=2026-03-03", "future_delivery",
         "delivery folder dated 2026-03-03, after today (2026-03-02, Asia/Shanghai): not read")]
    assert f"{BASE}/dt=2026-03-03" in report.summary_line()
    settings.today = date(2026, 3, 3)  # its day came: read, and no longer an issue
    assert [d.dt for d in pipeline.ingest(settings).deliveries] == [date(2026, 3, 3)]
    assert [p for (p,) in query(settings.warehouse, "SELECT path FROM audit.landing_issues")] == [
        f"{CITY}/registrations/dt=2099-01-01"]


def test_events_after_their_delivery_day_are_rejected_rows_even_past_year_9999(tmp_path):
    """An epoch of 16 digits once raised in DuckDB (past year 294247) and failed the run, every run."""
    times = ["2099-01-01T10:00:00+08:00", 4102444800000, 9999999999999999, "2026-03-02T00:00:00+08:00",
             "2026-03-01T23:59:59+08:00"]
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01",
                   {"a.jsonl": "\n".join(_line(f"e{i}", t) for i, t in enumerate(times)) + "\n"})
    settings = make_settings(tmp_path)
    pipeline.ingest(settings)
    assert query(settings.warehouse, "SELECT line, reason FROM audit.rejected_rows ORDER BY line") == [
        (n, f"event_time {t} is after the end of delivery day 2026-03-01") for n, t in enumerate(times[:4], 1)]
    assert query(settings.warehouse, "SELECT event_id, event_day FROM raw.service_access") == [
        ("e4", date(2026, 3, 1))]


@pytest.mark.slow
def test_run_on_a_hostile_landing_keeps_the_series_and_names_what_it_set_aside(tmp_path):
    """`citycloud run` on the worked example plus a bomb, a 2099 folder and a 2099 event: exit 0,
    the series ends where the example does, and the output names the file set aside."""
    landing = tmp_path / "landing"
    shutil.copytree(TINY / "landing", landing)
    folder = landing / CITY / "service_access" / "dt=2026-03-03"
    _bomb(folder, "zz_bomb.jsonl.gz", 32 * MiB)
    (folder / "zz_future.jsonl").write_text(_line("future-1", "2099-01-01T10:00:00+08:00") + "\n")
    write_delivery(landing, CITY, "service_access", "2099-01-01", {"a.jsonl": _line("future-2", "2099-01-01T10:00:00")})
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    env = {**cli_env(), "CITYCLOUD_MIN_DECOMPRESSED_LIMIT_MB": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    args = [sys.executable, "-m", "citycloud.pipeline.cli", "run", "--landing", str(landing), "--warehouse", str(warehouse)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{BASE}/dt=2026-03-03/zz_bomb.jsonl.gz: decompresses to more than" in done.stdout + done.stderr
    assert f"{BASE}/dt=2099-01-01" in done.stdout + done.stderr
    assert query(warehouse, "SELECT max(kpi_date) FROM marts.kpi_daily") == [(date(2026, 3, 3),)]
    assert query(warehouse, "SELECT max(event_day), count(*) FILTER (WHERE event_id LIKE 'future%') "
                            "FROM raw.service_access") == [(date(2026, 3, 3), 0)]
    assert query(warehouse, "SELECT reason FROM audit.rejected_rows WHERE file LIKE '%zz_future.jsonl'") == [
        ("event_time 2099-01-01T10:00:00+08:00 is after the end of delivery day 2026-03-03",)]
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "nothing new" in again.stdout + again.stderr

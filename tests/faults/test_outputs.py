"""Outputs (issue 31): no verb writes over the warehouse, its snapshot, lock or log, the landing
area or a file that is not its output; files are written whole or not at all; delivered text
stays text in every CSV and XLSX; a bad output path or --city is one line, exit 2.

Fast: the guard and the writers at unit level, with a real DuckDB snapshot made by hand for
user-ops, and the CLI as a subprocess where the promise is about the CLI."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from citycloud import outputs
from citycloud.config import CitycloudError, Settings
from citycloud.query import as_text
from citycloud.settlement.statements import _csv_bytes, _workbook_bytes
from citycloud.user_ops_export import export_user_ops
from tests.faults.conftest import cli_env
from tests.faults.test_full_disk import fill, small_disk  # noqa: F401 (a fixture)

pytestmark = pytest.mark.faults
HOSTILE = '=HYPERLINK("http://x","x")'
ARABIC_INDIC_CITY = "\u0663\u0661\u0660\u0660\u0660\u0660"  # ٣١٠٠٠٠


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", *args], env=cli_env(), capture_output=True,
                          text=True, timeout=300)


def one_line_exit_2(done: subprocess.CompletedProcess, verb: str) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"citycloud {verb}: error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def settings(tmp_path) -> Settings:
    """A real warehouse and snapshot (DuckDB files), a landing area, nothing else."""
    s = Settings()
    s.warehouse = tmp_path / "wh" / "citycloud.duckdb"
    s.landing = tmp_path / "landing"
    s.output = tmp_path / "wh" / "output"
    s.warehouse.parent.mkdir()
    for path in (s.warehouse, s.published):
        duckdb.connect(str(path)).close()
    (s.landing / "310000" / "registrations" / "dt=2026-02-01").mkdir(parents=True)
    return s


# ---- the CLI: query --csv onto the warehouse -----------------------------------------------------

def test_query_csv_onto_the_warehouse_is_one_line_exit_2_and_the_warehouse_untouched(settings):
    before = {p: sha256(p) for p in (settings.warehouse, settings.published)}
    for target in (settings.warehouse, settings.published):
        done = cli("query", "--warehouse", str(settings.warehouse), "--metrics", "total_accesses", "--grain", "month",
                   "--csv", str(target))
        assert one_line_exit_2(done, "query") == (
            f"citycloud query: error: --csv {target}: is the warehouse"
            f"{'' if target == settings.warehouse else chr(39) + 's published snapshot'}; "
            "nothing was written: choose another path")
    assert {p: sha256(p) for p in before} == before


@pytest.mark.parametrize("target, why", [
    ("folder", "is a folder, not a file"),
    ("/dev/full", "is not a regular file (a device, pipe or socket)"),
    ("under-a-file", "is a file, not a folder"),
])
def test_query_csv_at_a_folder_a_device_or_under_a_file_is_one_line(settings, tmp_path, target, why):
    paths = {"folder": tmp_path, "under-a-file": settings.warehouse / "out.csv"}
    target = str(paths.get(target, target))
    done = cli("query", "--warehouse", str(settings.warehouse), "--metrics", "total_accesses", "--grain", "month",
               "--csv", target)
    assert why in one_line_exit_2(done, "query")


def test_settle_out_into_the_landing_area_or_at_the_warehouse_is_one_line(settings):
    from tests.faults.conftest import CONTRACTS

    for out, why in [(settings.landing / "statements", f"is inside the landing area {settings.landing} "
                                                       "(untrusted input: outputs never go there)"),
                     (settings.warehouse, "is the warehouse")]:
        done = cli("settle", "--warehouse", str(settings.warehouse), "--contracts", str(CONTRACTS), "--month",
                   "2026-02", "--out", str(out))
        assert one_line_exit_2(done, "settle") == \
            f"citycloud settle: error: --out {out}: {why}; nothing was written: choose another path"
    assert not (settings.landing / "statements").exists()


@pytest.mark.parametrize("verb", ["query", "user-ops"])
def test_city_takes_ascii_digits_only(settings, verb):
    extra = ["--metrics", "total_accesses", "--grain", "month"] if verb == "query" else ["--month", "2026-02"]
    done = cli(verb, "--warehouse", str(settings.warehouse), "--city", ARABIC_INDIC_CITY, *extra)
    assert one_line_exit_2(done, verb) == (f"citycloud {verb}: error: --city '{ARABIC_INDIC_CITY}': "
                                          "must be a 6-digit city code (ASCII digits 0-9)")


def test_city_rules_of_schemes_and_contracts_take_ascii_digits_only():
    from citycloud.validation import is_city_code

    assert is_city_code("310000")
    assert not is_city_code(ARABIC_INDIC_CITY)
    assert not is_city_code("310000\n")


# ---- the guard ---------------------------------------------------------------------------------

def test_the_guard_refuses_the_warehouse_files_by_any_spelling(settings, tmp_path, monkeypatch):
    wh = settings.warehouse
    (tmp_path / "link.csv").symlink_to(wh)
    monkeypatch.chdir(tmp_path)
    refused = {
        str(wh): "is the warehouse",
        f"{wh.parent}/../wh/{wh.name}": "is the warehouse",
        f"wh/{wh.name}": "is the warehouse",  # relative
        str(tmp_path / "link.csv"): "is the warehouse",  # a symlink to it
        str(settings.published): "is the warehouse's published snapshot",
        f"{wh}.wal": "is the warehouse's write-ahead log",
        f"{wh}.writer.lock": "is the warehouse's writer lock",
        f"{wh}.tmp123": f"belongs to the warehouse {wh}",
        f"{settings.published}.tmp9": f"belongs to the warehouse {wh}",
    }
    for path, why in refused.items():
        with pytest.raises(CitycloudError) as exc:
            outputs.output_file("--csv", path, settings)
        assert str(exc.value) == f"--csv {path}: {why}; nothing was written: choose another path"


def test_the_guard_refuses_the_landing_area_configured_or_recognised(settings, tmp_path):
    other = tmp_path / "elsewhere" / "drop"  # a landing area `run` read, not the configured one
    (other / "430100" / "service_access" / "dt=2026-02-03").mkdir(parents=True)
    for option, path, landing in [
        ("--csv", settings.landing / "x.csv", settings.landing),
        ("--out", settings.landing / "reports", settings.landing),
        ("--out", other, other),
        ("--out", other / "430100" / "service_access" / "dt=2026-02-03", other),
        ("--csv", other / "430100" / "new" / "q.csv", other),
    ]:
        check = outputs.output_file if option == "--csv" else outputs.output_folder
        with pytest.raises(CitycloudError, match=f"is inside the landing area {landing}"):
            check(option, path, settings)
    assert not (settings.landing / "reports").exists()


def test_the_guard_replaces_only_files_that_look_like_its_outputs(settings, tmp_path):
    (tmp_path / "notes.yml").write_text("keep: me\n")
    (tmp_path / "copy.csv").write_bytes(settings.warehouse.read_bytes())  # a database named .csv
    (tmp_path / "old.csv").write_text("city_code,dau\n310000,5\n")
    (tmp_path / "empty.csv").write_bytes(b"")  # what a full disk left before writes were atomic
    for name in ("notes.yml", "copy.csv"):
        with pytest.raises(CitycloudError) as exc:
            outputs.output_file("--csv", tmp_path / name, settings)
        assert str(exc.value) == (f"--csv {tmp_path / name}: exists and is not a .csv file this command wrote (only "
                                  "such a file is replaced); remove it yourself if it is not needed; nothing was "
                                  "written: choose another path")
    assert (tmp_path / "notes.yml").read_text() == "keep: me\n"
    assert outputs.output_file("--csv", tmp_path / "old.csv", settings) == tmp_path / "old.csv"
    assert outputs.output_file("--csv", tmp_path / "empty.csv", settings) == tmp_path / "empty.csv"
    assert outputs.output_file("--csv", tmp_path / "new" / "q.csv", settings) == tmp_path / "new" / "q.csv"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "user_ops_310000_2026-02.xlsx").mkdir()
    with pytest.raises(CitycloudError, match="is a folder, not a file"):
        outputs.file_in("--out", tmp_path / "out", "user_ops_310000_2026-02.xlsx", settings)


# ---- user-ops: a real snapshot made by hand ---------------------------------------------------------

def user_ops_snapshot(settings: Settings, channel: str) -> None:
    con = duckdb.connect(str(settings.published))
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.city_reference AS SELECT '310000' AS city_code, '上海' AS city_name")
    con.execute("CREATE TABLE marts.kpi_daily AS SELECT '310000' AS city_code")
    con.execute("CREATE TABLE marts.user_lifecycle AS SELECT '310000' AS city_code, 'month' AS grain, "
                "DATE '2026-02-01' AS period_start, 5 AS active_users")
    con.execute("CREATE TABLE marts.retention_monthly AS SELECT '310000' AS city_code, DATE '2026-01-01' AS "
                f"cohort_month, 1 AS months_since, ? AS channel, -0.5 AS change", [channel])
    con.execute("CREATE TABLE marts.activation_daily AS SELECT '310000' AS city_code, "
                "DATE '2026-02-03' AS registration_day, 2 AS registrations")
    con.execute("CREATE TABLE marts.stickiness_monthly AS SELECT '310000' AS city_code, "
                "DATE '2026-02-01' AS month, 3 AS active_days, 4 AS users")
    con.execute("CREATE TABLE marts.channel_daily AS SELECT '310000' AS city_code, DATE '2026-02-03' AS kpi_date, "
                "unnest([?, '+1', '@SUM(A1)', 'android']) AS channel, -3 AS delta", [channel])
    con.close()


def test_user_ops_workbook_has_no_formula_cells(settings, tmp_path):
    user_ops_snapshot(settings, HOSTILE)
    path = export_user_ops(settings, "310000", "2026-02", out_dir=tmp_path / "out")
    book = load_workbook(path)
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    channels = [c.value for c in book["渠道 channels"]["C"][4:]]
    assert channels == ["+1", HOSTILE, "@SUM(A1)", "android"]  # shown exactly as delivered (by channel)
    assert [c.value for c in book["渠道 channels"]["D"][4:]] == [-3, -3, -3, -3]  # numbers stay numbers
    assert book["留存 retention"]["E5"].value == -0.5


def test_user_ops_out_at_an_existing_file_is_one_line(settings, tmp_path):
    user_ops_snapshot(settings, "android")
    (tmp_path / "taken").write_text("x")
    done = cli("user-ops", "--warehouse", str(settings.warehouse), "--city", "310000", "--month", "2026-02",
               "--out", str(tmp_path / "taken"))
    assert one_line_exit_2(done, "user-ops") == (f"citycloud user-ops: error: --out {tmp_path / 'taken'}: is a file, "
                                                 "not a folder; nothing was written: choose another path")
    assert (tmp_path / "taken").read_text() == "x"


def test_user_ops_on_a_full_disk_keeps_the_previous_workbook_and_leaves_no_empty_one(settings, small_disk):  # noqa: F811
    user_ops_snapshot(settings, "android")
    out = small_disk / "out"
    args = ("user-ops", "--warehouse", str(settings.warehouse), "--city", "310000", "--month", "2026-02",
            "--out", str(out))
    assert cli(*args).returncode == 0
    workbook = out / "user_ops_310000_2026-02.xlsx"
    before = sha256(workbook)
    fill(small_disk)
    done = cli(*args)
    assert one_line_exit_2(done, "user-ops").startswith(f"citycloud user-ops: error: no space left on {workbook}: ")
    assert sha256(workbook) == before
    assert sorted(p.name for p in out.iterdir()) == [workbook.name]  # no temp file left
    # and with no previous workbook: none at all, not a 0-byte one
    workbook.unlink()
    (small_disk / "ballast").unlink()
    fill(small_disk)
    assert cli(*args).returncode == 2
    assert list(out.iterdir()) == []


def test_a_failed_write_leaves_what_was_there_and_no_temp_file(tmp_path):
    (tmp_path / "q.csv").mkdir()  # os.replace cannot put a file there
    with pytest.raises(CitycloudError) as exc:
        outputs.atomic_write(tmp_path / "q.csv", "city_code\n")
    assert str(exc.value).startswith(f"cannot write {tmp_path / 'q.csv'}: Is a directory: ")
    assert [p.name for p in tmp_path.iterdir()] == ["q.csv"] and (tmp_path / "q.csv").is_dir()


def test_a_file_set_replaces_the_previous_files_only_when_committed(settings, tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "a.html").write_text("old a")
    (out / "mine.pdf").write_text("not a PDF")  # someone's file under a report's name
    with outputs.FileSet(out, "--out", settings) as files:
        files.path("a.html").write_text("new a")
        with pytest.raises(CitycloudError, match="mine.pdf: exists and is not a .pdf file this command wrote"):
            files.path("mine.pdf")
    assert sorted(p.name for p in out.iterdir()) == ["a.html", "mine.pdf"]  # no staging folder left
    assert (out / "a.html").read_text() == "old a"
    with outputs.FileSet(out, "--out", settings) as files:
        files.path("a.html").write_text("new a")
        files.path("b.html").write_text("new b")
        assert (out / "a.html").read_text() == "old a"  # until every file is complete
        assert files.commit() == [out / "a.html", out / "b.html"]
    assert [(p.name, p.read_text()) for p in sorted(out.iterdir())] == \
        [("a.html", "new a"), ("b.html", "new b"), ("mine.pdf", "not a PDF")]


# ---- CSV and XLSX: delivered text stays text ------------------------------------------------------

def test_query_csv_escapes_text_cells_only():
    df = pd.DataFrame({"city_code": ["310000", "310000", "310000"], "channel": [HOSTILE, "-x", "android"],
                       "dau": [-5, 3, 0], "share": [-0.25, 1.5, 0.0]})
    assert as_text(df).splitlines() == [
        "city_code,channel,dau,share",
        "310000,\"'=HYPERLINK(\"\"http://x\"\",\"\"x\"\")\",-5,-0.25",
        "310000,'-x,3,1.5",
        "310000,android,0,0.0",
    ]


def test_settlement_csv_escapes_text_but_not_numbers_written_as_text():
    data = _csv_bytes(["operator", "payment_delta_cny", "note"],
                      [{"operator": HOSTILE, "payment_delta_cny": "-120.50", "note": "@cmd"},
                       {"operator": "+86 ops", "payment_delta_cny": "+3", "note": "\tx"}])
    assert data.decode("utf-8-sig").splitlines() == [
        "operator,payment_delta_cny,note",
        "\"'=HYPERLINK(\"\"http://x\"\",\"\"x\"\")\",-120.50,'@cmd",
        "'+86 ops,+3,'\tx",
    ]


def test_settlement_workbooks_store_text_never_formulas():
    from datetime import datetime

    wb = Workbook()
    wb.active.append(["operator", HOSTILE, -12.5, "-12.50"])
    book = load_workbook(io.BytesIO(_workbook_bytes(wb, datetime(2026, 3, 1))))
    row = list(book.active.iter_rows(values_only=False))[0]
    assert [c.data_type for c in row] == ["s", "s", "n", "s"]
    assert [c.value for c in row] == ["operator", HOSTILE, -12.5, "-12.50"]


@pytest.mark.slow
@pytest.mark.faults_full  # a pipeline run; test_user_ops_workbook_has_no_formula_cells covers it in `make test`
def test_a_formula_delivered_as_a_channel_is_text_in_the_user_ops_workbook(tmp_path):
    """End to end: the name arrives in a delivery, goes through ingestion and dbt, and is text
    in the workbook (before: a live =HYPERLINK formula in every cell that showed it)."""
    import gzip
    import json
    import shutil

    from tests.faults.conftest import LANDING, citycloud, run_args

    landing = tmp_path / "landing"
    shutil.copytree(LANDING, landing)
    registrations = landing / "430100" / "registrations" / "dt=2026-02-01" / "reg_20260201.csv.gz"
    text = gzip.decompress(registrations.read_bytes()).decode("utf-8")
    quoted = '"' + HOSTILE.replace('"', '""') + '"'
    registrations.write_bytes(gzip.compress(text.replace(",harmony_os,", f",{quoted},").encode("utf-8"), mtime=0))
    access = landing / "430100" / "service_access" / "dt=2026-02-01" / "part-1.jsonl"
    access.write_text("".join(json.dumps({**json.loads(line), "channel": HOSTILE}) + "\n"
                              for line in access.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    citycloud(run_args(warehouse, landing))
    citycloud(["user-ops", "--warehouse", str(warehouse), "--city", "430100", "--month", "2026-02",
               "--out", str(tmp_path / "out")])
    book = load_workbook(tmp_path / "out" / "user_ops_430100_2026-02.xlsx")
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    assert {ws.title for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value == HOSTILE} \
        >= {"渠道 channels"}

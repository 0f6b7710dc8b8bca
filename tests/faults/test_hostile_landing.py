"""A hostile landing area (issue 17): links out, special files, bad names, empty deliveries,
YAML bombs and edge arguments. Each case once leaked data or passed silently."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from citycloud import pipeline
from citycloud.config import CitycloudError
from tests.conftest import TEST_KEY, make_settings, query, write_delivery

CITY = "430100"


def _line(event_id, user="U1", day="2026-03-01"):
    return json.dumps({"event_id": event_id, "user_id": user, "service_id": "S1",
                       "event_time": f"{day}T10:00:00+08:00", "outcome": "success"})


def _ingest(tmp_path):
    settings = make_settings(tmp_path)
    return settings, pipeline.ingest(settings)


def _everything_stored(warehouse: Path) -> str:
    rows = query(warehouse, "SELECT * FROM audit.rejected_rows") + query(warehouse, "SELECT * FROM audit.rejected_files")
    rows += query(warehouse, "SELECT * FROM audit.landing_issues") + query(warehouse, "SELECT * FROM raw.service_access")
    return repr(rows)


def test_links_out_of_the_landing_are_refused_and_nothing_of_them_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_SECRET", "canary-7f3a9")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.jsonl").write_text(_line("stolen-1") + "\n")
    (outside / "dt=2026-03-02").mkdir()
    (outside / "dt=2026-03-02" / "p.jsonl").write_text(_line("stolen-2", day="2026-03-02") + "\n")
    (outside / "dt=2026-03-02" / "_SUCCESS").write_text("")
    folder = write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    os.symlink("/proc/self/environ", folder / "environ.jsonl")
    os.symlink(outside / "stolen.jsonl", folder / "stolen.jsonl")
    os.symlink(outside / "dt=2026-03-02", folder.parent / "dt=2026-03-02")
    os.symlink(outside, tmp_path / "landing" / "510100")
    os.symlink(folder / "nowhere", folder / "dangling.jsonl")

    settings, report = _ingest(tmp_path)
    assert [d.rows_loaded for d in report.deliveries] == [1]
    assert query(settings.warehouse, "SELECT event_id FROM raw.service_access") == [("ok-1",)]
    refused = dict(query(settings.warehouse, "SELECT file, reason FROM audit.rejected_files"))
    base = f"{CITY}/service_access/dt=2026-03-01"
    assert set(refused) == {f"{base}/environ.jsonl", f"{base}/stolen.jsonl", f"{base}/dangling.jsonl"}
    assert "outside the landing area" in refused[f"{base}/environ.jsonl"]
    assert "dangling" in refused[f"{base}/dangling.jsonl"]
    issues = dict(query(settings.warehouse, "SELECT path, kind FROM audit.landing_issues"))
    assert issues == {f"{CITY}/service_access/dt=2026-03-02": "refused_link", "510100": "refused_link"}
    stored = _everything_stored(settings.warehouse)
    assert "canary-7f3a9" not in stored and TEST_KEY not in stored and "stolen" not in stored.replace("stolen.jsonl", "")


def test_a_link_inside_the_landing_is_read_under_its_own_name(tmp_path):
    folder = write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {})
    store = tmp_path / "landing" / ".store"
    store.mkdir()
    (store / "part.jsonl").write_text(_line("in-1") + "\n")
    os.symlink(store / "part.jsonl", folder / "part.jsonl")
    settings, report = _ingest(tmp_path)
    assert query(settings.warehouse, "SELECT file, event_id FROM raw.service_access") == [
        (f"{CITY}/service_access/dt=2026-03-01/part.jsonl", "in-1")]


def test_a_fifo_is_refused_without_hanging(tmp_path):
    folder = write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    os.mkfifo(folder / "pipe.jsonl")
    settings, report = _ingest(tmp_path)
    assert report.rejected_files == [(f"{CITY}/service_access/dt=2026-03-01/pipe.jsonl",
                                      "a FIFO, not a regular file: refused, nothing read")]


@pytest.mark.parametrize("bad", ["dt=2026-13-45", "dt=2026-02-3", "dt=yesterday"])
def test_badly_named_delivery_folders_are_reported_not_skipped_silently(tmp_path, bad):
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    folder = tmp_path / "landing" / CITY / "service_access" / bad
    folder.mkdir()
    (folder / "p.jsonl").write_text(_line("x"))
    (folder / "_SUCCESS").write_text("")
    settings, report = _ingest(tmp_path)
    path = f"{CITY}/service_access/{bad}"
    assert [p.path for p in report.problems] == [path]
    assert path in report.summary_line()
    assert query(settings.warehouse, "SELECT path, kind FROM audit.landing_issues") == [(path, "bad_name")]


def test_bad_city_and_source_names_are_reported(tmp_path):
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    write_delivery(tmp_path / "landing", CITY, "Service_Access", "2026-03-01", {"ok.jsonl": _line("x")})
    write_delivery(tmp_path / "landing", "x'; DROP TABLE raw.service_access; --", "service_access", "2026-03-01",
                   {"ok.jsonl": _line("y")})
    (tmp_path / "landing" / "README.txt").write_text("hello")
    settings, report = _ingest(tmp_path)
    issues = dict(query(settings.warehouse, "SELECT path, reason FROM audit.landing_issues"))
    assert set(issues) == {f"{CITY}/Service_Access", "x'; DROP TABLE raw.service_access; --", "README.txt"}
    assert "did you mean 'service_access'" in issues[f"{CITY}/Service_Access"]
    assert query(settings.warehouse, "SELECT event_id FROM raw.service_access") == [("ok-1",)]


def test_landing_issues_are_stable_across_reruns_and_cleared_when_fixed(tmp_path):
    bad = tmp_path / "landing" / CITY / "service_access" / "dt=2026-02-3"
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    bad.mkdir(parents=True)
    settings, _ = _ingest(tmp_path)
    first = query(settings.warehouse, "SELECT * FROM audit.landing_issues")
    pipeline.ingest(settings)
    assert query(settings.warehouse, "SELECT * FROM audit.landing_issues") == first
    bad.rmdir()
    pipeline.ingest(settings)
    assert query(settings.warehouse, "SELECT count(*) FROM audit.landing_issues") == [(0,)]


def test_success_without_data_files_is_an_error_of_the_delivery_not_a_day_of_zeros(tmp_path):
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02", {})
    settings, report = _ingest(tmp_path)
    assert query(settings.warehouse, "SELECT dt FROM audit.deliveries") == [(date(2026, 3, 1),)]
    (path, kind, reason), = query(settings.warehouse, "SELECT path, kind, reason FROM audit.landing_issues")
    assert (path, kind) == (f"{CITY}/service_access/dt=2026-03-02", "empty_delivery")
    assert "no data file" in reason
    # The delivery's files arrive later (a re-export): it is ingested then.
    write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-02", {"p.jsonl": _line("late", day="2026-03-02")})
    report = pipeline.ingest(settings)
    assert [d.rows_loaded for d in report.deliveries] == [1]
    assert query(settings.warehouse, "SELECT count(*) FROM audit.landing_issues") == [(0,)]


def test_an_empty_reexport_keeps_the_earlier_copy(tmp_path):
    folder = write_delivery(tmp_path / "landing", CITY, "service_access", "2026-03-01", {"ok.jsonl": _line("ok-1")})
    settings, _ = _ingest(tmp_path)
    (folder / "ok.jsonl").unlink()
    report = pipeline.ingest(settings)
    assert report.deliveries == [] and [p.kind for p in report.problems] == ["empty_delivery"]
    assert query(settings.warehouse, "SELECT event_id FROM raw.service_access") == [("ok-1",)]


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_yaml_alias_bomb_is_refused_in_one_short_line(tmp_path):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    bomb.append("contracts: *i")
    contracts = tmp_path / "bomb.yml"
    contracts.write_text("\n".join(bomb))
    assert contracts.stat().st_size < 400
    proc = _cli("settle", "--warehouse", str(tmp_path / "wh.duckdb"), "--contracts", str(contracts), "--month", "2026-02")
    assert proc.returncode == 2
    assert "aliases" in proc.stderr and len(proc.stderr) < 2000 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "2026-13"])
def test_settle_with_an_impossible_month_is_one_line(tmp_path, month):
    contracts = Path(__file__).resolve().parents[1] / "data" / "tiny" / "contracts.yml"
    proc = _cli("settle", "--warehouse", str(tmp_path / "wh.duckdb"), "--contracts", str(contracts), "--month", month)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and month in proc.stderr


def test_dashboard_refuses_a_warehouse_that_does_not_exist(tmp_path):
    proc = _cli("dashboard", "--warehouse", str(tmp_path / "nope.duckdb"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_dashboard_listens_on_loopback_unless_asked():
    from citycloud.dashboards import command

    cmd = command("wh.duckdb")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    cmd = command("wh.duckdb", address="0.0.0.0")
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"


# A whole `citycloud run` of the worked example in a subprocess: the end-to-end tier (`make test-e2e`;
# #30), where the relative paths given reach every step (GX's data docs need an absolute one).
@pytest.mark.slow
@pytest.mark.e2e
def test_relative_warehouse_path_builds_and_writes_data_docs(tmp_path):
    import shutil

    landing = tmp_path / "landing"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "tiny" / "landing", landing)
    proc = _cli("run", "--landing", "landing", "--warehouse", "wh/citycloud.duckdb", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "wh" / "output").is_dir() and (tmp_path / "wh" / "citycloud.published.duckdb").exists()
    assert "base_directory must be an absolute path" not in proc.stderr


def test_cli_small_mistakes_get_one_clear_line(tmp_path):
    proc = _cli()
    assert proc.returncode == 2 and "usage: citycloud" in proc.stdout and "rotate-key" in proc.stdout
    proc = _cli("run", "--landing", str(tmp_path), "--warehouse", str(tmp_path / "wh.duckdb"),
                "--start", "2026-04-01", "--end", "2026-03-01")
    assert proc.returncode == 2 and "--start 2026-04-01 is after --end 2026-03-01" in proc.stderr
    proc = _cli("generate", "--out", str(tmp_path / "g"), "--cities", "0")
    assert proc.returncode == 2 and proc.stderr.count("generate:") == 1
    broken = tmp_path / "broken.yml"
    broken.write_text("contracts:\n  - contract_id: [\n")
    proc = _cli("settle", "--warehouse", str(tmp_path / "wh.duckdb"), "--contracts", str(broken), "--month", "2026-02")
    assert proc.returncode == 2 and str(broken) in proc.stderr and "<unicode string>" not in proc.stderr

"""The command line as a new user meets it: help, one-line mistakes, and a `run` whose terminal
output is short (stage lines, counted warnings naming what to look at) while every detail is
in the log file and behind --verbose."""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from citycloud.pipeline.cli import parser

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny"
INCOMPLETE = "430100/service_catalog/dt=2026-03-02"  # its _SUCCESS removed below


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "citycloud.pipeline.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


def test_every_option_of_every_verb_has_help():
    verbs = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"generate", "run", "settle", "dashboard", "api", "query"} <= set(verbs)
    for name, verb in verbs.items():
        for action in verb._actions:
            assert action.help and action.help.strip(), f"citycloud {name} {action.option_strings} has no help"


def test_help_shows_defaults_and_points_at_the_projects_docs():
    proc = cli("generate", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "(default: 3)" in text and "(default: 2026-01-01)" in text and "(default: None)" not in text
    top = cli("--help").stdout
    assert "docs/cli.md" in top and "shared/" not in top
    assert (REPO / "docs" / "cli.md").is_file()


def test_no_arguments_prints_the_help():
    proc = cli()
    assert proc.returncode == 2 and proc.stdout.startswith("usage: citycloud") and "required" not in proc.stderr


def test_small_mistakes_are_one_line(tmp_path):
    proc = cli("run", "--landing", str(tmp_path), "--warehouse", str(tmp_path / "wh.duckdb"),
               "--start", "2026-04-01", "--end", "2026-03-01")
    assert (proc.returncode, proc.stderr) == (
        2, "citycloud run: error: --start 2026-04-01 is after --end 2026-03-01: nothing would be read\n")
    proc = cli("generate", "--out", str(tmp_path / "g"), "--days", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.count("generate") == 1
    broken = tmp_path / "broken.yml"
    broken.write_text("contracts:\n  - contract_id: [\n")
    proc = cli("settle", "--warehouse", str(tmp_path / "wh.duckdb"), "--contracts", str(broken), "--month", "2026-02")
    assert proc.returncode == 2 and str(broken) in proc.stderr and "<unicode string>" not in proc.stderr


def test_later_verbs_on_the_demos_warehouse_log_into_the_demos_output_tree(tmp_path):
    """A warehouse in the default layout (<home>/warehouse/<file>, as demo/warehouse/) has its
    output in <home>/output, where `make demo` wrote; not a second tree in <home>/warehouse/output."""
    home = tmp_path / "demo"
    (home / "warehouse").mkdir(parents=True)
    broken = tmp_path / "broken.yml"
    broken.write_text("contracts:\n  - contract_id: [\n")
    settle = ["--contracts", str(broken), "--month", "2026-02"]
    proc = cli("settle", "--warehouse", str(home / "warehouse" / "citycloud.duckdb"), *settle)
    assert proc.returncode == 2 and str(broken) in proc.stderr
    assert (home / "output" / "logs" / "settle.log").is_file() and not (home / "warehouse" / "output").exists()
    # any other folder: output/ beside the warehouse, as before
    cli("settle", "--warehouse", str(tmp_path / "wh" / "citycloud.duckdb"), *settle)
    assert (tmp_path / "wh" / "output" / "logs" / "settle.log").is_file()


def test_generate_shows_a_line_per_city_and_every_day_only_when_verbose(tmp_path):
    args = ("generate", "--out", str(tmp_path / "landing"), "--cities", "2", "--days", "3", "--users", "50")
    quiet = cli(*args, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "written" not in quiet.stderr
    assert re.findall(r"generate (\d{6}) \S+: (\d) of (\d) steps", quiet.stderr) == [
        ("310000", "3", "3"), ("510100", "3", "3")]
    log = tmp_path / "logs" / "generate.log"  # beside the landing area written (never inside it)
    assert f"full log: {log}" in quiet.stderr
    assert log.read_text(encoding="utf-8").count(" written\n") == 6

    loud = cli(*args, "--overwrite", "--verbose", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.count(" written\n") == 6
    assert log.read_text(encoding="utf-8").count(" written\n") == 12  # appended, run after run


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`citycloud run` over the worked example with one delivery left incomplete."""
    tmp = tmp_path_factory.mktemp("cli_run")
    shutil.copytree(TINY / "landing", tmp / "landing")
    (tmp / "landing" / INCOMPLETE / "_SUCCESS").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", "test-key-not-secret-but-32-bytes-long")
        mp.delenv("CITYCLOUD_OUTPUT", raising=False)
        proc = cli("run", "--landing", str(tmp / "landing"), "--warehouse", str(tmp / "wh" / "citycloud.duckdb"),
                   "--contracts", str(TINY / "contracts.yml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


# A whole `citycloud run` in a subprocess (its own landing area: one delivery incomplete), so the
# end-to-end tier (`make test-e2e`, which CI runs after `make test`): what a run builds is checked by
# the golden tests on the session's build (tests/marts/test_golden_tiny.py, in `make test`); here only
# the terminal output and the log of a whole run.
@pytest.mark.slow
@pytest.mark.e2e
def test_run_output_is_short_and_names_what_to_look_at(cli_run):
    tmp, proc = cli_run
    err = proc.stderr
    assert len(err.splitlines()) <= 25, err
    assert "[1/115]" not in err and "dbt 1 of" not in err  # per-step lines: log file only
    assert re.search(r"dbt: (\d+) of \1 steps, \d+ OK, \d+ PASS", err)
    # The incomplete folder by name, in the ingest line and in the closing notes.
    assert f"1 incomplete folder(s) waiting for _SUCCESS: {INCOMPLETE}" in err
    assert f"NOTE incomplete deliveries (no _SUCCESS yet, not read): 1 (read once their _SUCCESS is there)\n" \
           f"    {INCOMPLETE}\n" in err
    assert "WARNING files set aside: 2 (all in audit.rejected_files)" in err
    # Quality warnings: counted per check, most frequent first, with an example each.
    assert "quality warnings: 8 from 4 check(s), most frequent first:" in err
    assert "    4 x deliveries.rejected_share_low, e.g. city 430100, day 2026-01-30: registrations: 5 of 74 rows " \
           "rejected (6.8%, warn above 5%)" in err
    page = tmp / "wh" / "output" / "data_docs" / "citycloud-quality.html"
    assert f"quality page: {page}" in err
    assert proc.stdout.startswith("run: 115 deliveries") and "8 warnings; marts published" in proc.stdout


@pytest.mark.slow  # the same `citycloud run` (above): `make test-e2e`
@pytest.mark.e2e
def test_run_log_has_every_detail(cli_run):
    tmp, proc = cli_run
    log = (tmp / "wh" / "output" / "logs" / "run.log").read_text(encoding="utf-8")
    assert f"full log: {tmp / 'wh' / 'output' / 'logs' / 'run.log'}" in proc.stderr
    assert len(re.findall(r" \[\d+/115\] 430100/", log)) == 115
    assert len(re.findall(r" dbt \d+ of \d+ ", log)) >= 100
    assert log.count("WARNING [warning] ") == 8 and log.count("WARNING files set aside: 430100/") == 2
    assert proc.stdout.strip() in log


@pytest.mark.slow
def test_quality_page_is_the_self_contained_entry_point(tiny_built):
    """The page every run writes, here the session's build of the worked example (tests/conftest.py;
    the same 8 warnings as the run above, which `make test` no longer runs)."""
    docs = tiny_built.output / "data_docs"
    page = (docs / "citycloud-quality.html").read_text(encoding="utf-8")
    assert "<script" not in page and not re.search(r"(src|href)=['\"]https?://", page)  # nothing from a CDN
    assert "<h2>Warnings (8)</h2>" in page
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "href='citycloud-quality.html'" in index  # GX's own page points back to it


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_log_file_that_cannot_be_written_is_given_up_not_fatal(capsys):
    from citycloud.console import Reporter

    reporter = Reporter(Path("/dev/full"), command="citycloud run")
    reporter("checks: validating deliveries and candidate marts")
    reporter.close()
    err = capsys.readouterr().err
    assert "NOTE log file /dev/full given up: No space left on device" in err
    assert err.rstrip().endswith("checks: validating deliveries and candidate marts") and reporter.log_path is None

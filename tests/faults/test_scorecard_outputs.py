"""`citycloud scorecard` (issue 31): a failed scorecard changes no table and no file, a killed one
leaves no Chromium behind, absurd schemes and output paths are one line, delivered text stays
escaped in the reports.

The slow ones score the worked example's warehouse (built once by the fault suite) through the
real CLI and Chromium, paused at the print (citycloud/fault_hook.py, phase scorecard-print)."""
from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

from citycloud.config import CitycloudError
from citycloud.scorecard.rules import MAX_LABEL, load_schemes
from tests.conftest import TINY
from tests.faults.conftest import MONTH, Paused, citycloud, copy_warehouse, process_gone

pytestmark = pytest.mark.faults
SCHEME = TINY / "evaluation.yml"
TABLES = ("scorecard_indicators", "scorecard_monthly", "scorecard_refusals")
HOSTILE_NAME = "<script>alert(1)</script> **bold** ![t](http://host/x.png) [click](javascript:alert(1))"


def scorecard_args(warehouse: Path, out: Path, scheme: Path = SCHEME, assessments: Path | None = None) -> list[str]:
    return ["scorecard", "--warehouse", str(warehouse), "--scheme", str(scheme), "--month", MONTH,
            "--out", str(out), *(["--assessments", str(assessments)] if assessments else [])]


def scheme_named(name: str, folder: Path) -> Path:
    """The worked example's scheme under another name (YAML double-quoted, so any text goes)."""
    text = SCHEME.read_text(encoding="utf-8")
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    path = folder / "evaluation.yml"
    path.write_text(text.replace("    cities: all", f'    name: "{escaped}"\n    cities: all', 1), encoding="utf-8")
    return path


def stored(warehouse: Path) -> dict:
    """The scorecard tables (scored_at included) and the snapshot's bytes."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = {t: con.execute(f"SELECT * FROM marts.{t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        con.close()
    snapshot = warehouse.with_name(warehouse.stem + ".published.duckdb")
    return {**tables, "snapshot": hashlib.sha256(snapshot.read_bytes()).hexdigest()}


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.iterdir())}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def is_chromium(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve().name == "chromium"
    except OSError:
        return False


@pytest.fixture
def warehouse(clean_build, tmp_path) -> Path:
    return copy_warehouse(clean_build["warehouse"], tmp_path / "wh")


# ---- fast: refused before anything is opened ------------------------------------------------------

def test_scorecard_out_at_an_existing_file_or_in_the_landing_area_is_one_line(tmp_path):
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    warehouse.parent.mkdir()
    duckdb.connect(str(warehouse)).close()
    (tmp_path / "taken.pdf").write_bytes(b"%PDF-1.4 mine")
    landing = tmp_path / "landing"
    (landing / "310000" / "ratings" / "dt=2026-02-01").mkdir(parents=True)
    for out, why in [(tmp_path / "taken.pdf", "is a file, not a folder"),
                     (landing / "reports", f"is inside the landing area {landing} (untrusted input: "
                                           "outputs never go there)")]:
        done = citycloud(scorecard_args(warehouse, out), check=False)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == \
            f"citycloud scorecard: error: --out {out}: {why}; nothing was written: choose another path"
    assert (tmp_path / "taken.pdf").read_bytes() == b"%PDF-1.4 mine"
    assert not (landing / "reports").exists()


def test_a_scheme_name_too_long_to_print_is_refused_in_one_line(tmp_path):
    with pytest.raises(CitycloudError) as exc:
        load_schemes(scheme_named("x" * (20 * MAX_LABEL), tmp_path))
    assert f"name: must be at most {MAX_LABEL} characters (it is printed on every report), got 4,000" \
        in str(exc.value)
    assert len(load_schemes(scheme_named("y" * MAX_LABEL, tmp_path))) == 1


# ---- slow: the real CLI, Chromium and warehouse -------------------------------------------------

@pytest.mark.slow
def test_killed_scorecard_leaves_no_chromium(warehouse, tmp_path):
    paused = Paused(scorecard_args(warehouse, tmp_path / "reports"), "scorecard-print", tmp_path)
    browser = paused.details["chromium"]
    try:
        deadline = time.monotonic() + 60
        while not (is_chromium(browser) and descendants(browser)):  # past Debian's shell wrapper, helpers started
            assert time.monotonic() < deadline and Path(f"/proc/{browser}").exists(), "chromium never started"
            time.sleep(0.05)
        os.kill(browser, signal.SIGSTOP)  # frozen mid-print: it cannot finish before its parent dies
        family = [browser, *descendants(browser)]
    finally:
        paused.kill()  # SIGKILL, the citycloud process only
    left = [pid for pid in family if not process_gone(pid, within=20)]
    assert left == [], f"chromium processes outlived their scorecard: {left}"


@pytest.mark.slow
def test_a_failed_print_changes_no_table_and_no_file(warehouse, tmp_path):
    out = tmp_path / "reports"
    citycloud(scorecard_args(warehouse, out))  # the month scored without assessments, reports written
    tables, reports = stored(warehouse), files(out / MONTH)
    assert len(reports) == 4

    # Scored again with the assessments (other scores), the print fails after the scoring.
    paused = Paused(scorecard_args(warehouse, out, assessments=TINY / "assessments.yml"), "scorecard-print", tmp_path)
    os.kill(paused.details["chromium"], signal.SIGKILL)
    assert paused.release() == 2
    last = paused.output().strip().splitlines()[-1]
    assert last.startswith("citycloud scorecard: error: chromium could not print "), last
    assert last.endswith("no report and no score was changed"), last
    assert "Traceback" not in paused.output()
    assert stored(warehouse) == tables
    assert files(out / MONTH) == reports  # the previous reports, and no staging folder left

    citycloud(scorecard_args(warehouse, out, assessments=TINY / "assessments.yml"))
    assert stored(warehouse) != tables
    assert files(out / MONTH).keys() == reports.keys()


@pytest.mark.slow
def test_delivered_and_scheme_text_stays_escaped_in_the_reports(warehouse, tmp_path):
    out = tmp_path / "reports"
    citycloud(scorecard_args(warehouse, out, scheme_named(HOSTILE_NAME, tmp_path)))
    pages = sorted((out / MONTH).glob("*.html"))
    assert len(pages) == 2
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** ![t](http://host/x.png) " \
               "[click](javascript:alert(1))" in html
        assert "<script>alert" not in html and "<img" not in html and 'href="javascript' not in html

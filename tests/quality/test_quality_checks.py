"""Quality checks on hand-built warehouses: a clean dataset passes every blocking check, and each
injected anomaly fails the right check, with the right severity, for the right city and day."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import quality_warehouse as warehouse
from quality_warehouse import make_settings
from citycloud.db import connect
from citycloud.expectations import BLOCKING, WARNING, QualityReport, SUITES_DIR, SuiteError, load_suites, run_checks

LAST = warehouse.day(warehouse.DAYS - 1)


def failures(report: QualityReport, check: str) -> list:
    return [r for r in report.results if not r.success and r.check == check]


def only_suites(tmp_path: Path, *names: str) -> Path:
    """A suites directory holding copies of the named suite files (a fast, targeted run)."""
    target = tmp_path / "suites"
    target.mkdir()
    for path in SUITES_DIR.glob("*.yml"):
        if any(path.stem.endswith(n) for n in names):
            shutil.copy(path, target / path.name)
    return target


# --- suite files -------------------------------------------------------------------------------

def test_every_expectation_has_severity_and_reason():
    suites = load_suites()
    names = {s.name for s in suites}
    assert {"deliveries", "raw_registrations", "raw_service_access", "raw_ratings", "raw_service_catalog",
            "freshness", "schema", "marts_kpi_daily", "marts_kpi_coverage", "marts_kpi_monthly",
            "marts_service_daily"} <= names
    for suite in suites:
        assert suite.version >= 1
        for e in suite.expectations:
            assert e.severity in (BLOCKING, WARNING), (suite.name, e.name)
            assert len(e.reason) > 20, (suite.name, e.name)
    # both severities are in use and kept apart
    severities = {e.severity for s in suites for e in s.expectations}
    assert severities == {BLOCKING, WARNING}


def test_every_expectation_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "data_quality.md").read_text(encoding="utf-8")
    missing = [f"{s.name}.{e.name}" for s in load_suites() for e in s.expectations if f"`{e.name}`" not in doc]
    assert missing == [], "add these to docs/data_quality.md"


def test_suite_without_reason_is_refused(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("suite: bad\nversion: 1\ngrain: delivery\nframe: {sql: deliveries.sql}\nexpectations:\n"
                   "  - {name: x, severity: blocking, expect: expect_column_values_to_be_between, "
                   "kwargs: {column: rows_read, min_value: 0}}\n")
    with pytest.raises(SuiteError, match="reason"):
        load_suites(tmp_path)


# --- a clean warehouse ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    settings = make_settings(root)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con)
    report = run_checks(con, settings, run_id="clean-run")
    rows = con.execute("SELECT * FROM audit.quality_results WHERE run_id = 'clean-run'").df()
    con.close()
    return settings, report, rows


def test_clean_dataset_passes_every_blocking_check(clean_run):
    _, report, _ = clean_run
    assert report.blocking_failures == [], "\n".join(map(str, report.blocking_failures))
    assert report.warnings == [], "\n".join(map(str, report.warnings))
    assert report.passed
    assert "no blocking failures" in report.summary_line()
    # every suite ran and judged something
    assert {r.suite for r in report.results} == set(report.suites)


def test_results_land_in_audit_quality_results(clean_run):
    _, report, rows = clean_run
    assert list(rows.columns[:10]) == ["run_id", "suite", "expectation", "city_code", "day", "severity", "success",
                                       "observed_value", "details", "checked_at"]
    assert len(rows) == len(report.results)
    assert set(rows["severity"]) == {BLOCKING, WARNING}
    assert rows["checked_at"].notna().all()
    # a delivery suite records one row per delivery and expectation
    reg = rows[(rows.suite == "raw_registrations") & (rows.expectation == "required_fields_present")]
    assert len(reg) == len(warehouse.CITIES) * warehouse.DAYS
    assert set(reg["city_code"]) == set(warehouse.CITIES)


def test_data_docs_static_site(clean_run):
    settings, report, _ = clean_run
    assert report.docs_index == settings.output / "data_docs" / "index.html"
    assert report.docs_index.is_file()
    html = report.docs_index.read_text(encoding="utf-8")
    assert "marts_kpi_daily" in html and "deliveries" in html
    suite_page = settings.output / "data_docs" / "expectations" / "deliveries.html"
    assert "BLOCKING" in suite_page.read_text(encoding="utf-8")
    # GX's pages need CDNs to render; the banner and the summary page work offline
    assert "citycloud-quality.html" in html and "no blocking failures" in html
    summary = (settings.output / "data_docs" / "citycloud-quality.html").read_text(encoding="utf-8")
    assert "rejected_share_at_most_half" in summary
    assert "<script" not in summary and "://" not in summary        # self-contained


def test_mart_frames_compute_only_what_their_suite_reads(clean_run):
    """A mart frame's SQL adds to the mart's columns only values its suite (kwargs, messages) or
    its derive hook reads: checks that moved to dbt take their columns with them."""
    import datetime as dt
    import inspect

    from citycloud.expectations import frames

    settings, _, _ = clean_run
    con = connect(settings.warehouse, settings=settings, read_only=True)
    try:
        unread = {}
        for suite in load_suites():
            if suite.name not in ("marts_kpi_daily", "marts_kpi_monthly"):
                continue
            mart = suite.name.removeprefix("marts_")
            ctx = frames.FrameContext(con, -1, "marts_build", dt.date(2026, 1, 1))
            added = set(frames.sql_frame(suite, ctx).columns) - {c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts_build' "
                "AND table_name = ?", [mart]).fetchall()} - {"day"}
            readers = suite.path.read_text(encoding="utf-8") + (
                inspect.getsource(frames.DERIVE[suite.derive]) if suite.derive else "")
            unread[mart] = sorted(c for c in added if c not in readers)
    finally:
        con.close()
    assert unread == {"kpi_daily": [], "kpi_monthly": []}


# --- injected anomalies, one per city or day, in one run ----------------------------------------

@pytest.fixture(scope="module")
def anomaly_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomalies")
    settings = make_settings(root)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con, cities=("310000", "510100", "430100", "460100"))
    # 510100: DAU collapses on the last day (a partial delivery upstream): warning
    con.execute("UPDATE marts_build.kpi_daily SET dau = 80 WHERE city_code = '510100' AND kpi_date = ?", [LAST])
    # 310000: the service_access delivery of day 30 has 700 rejected rows against 300 loaded: blocking
    warehouse.add_rejected_rows(con, "310000", "service_access", warehouse.day(30), 700)
    # 430100: a mart row with dau > wau: blocking
    con.execute("UPDATE marts_build.kpi_daily SET dau = wau + 1 WHERE city_code = '430100' AND kpi_date = ?",
                [warehouse.day(35)])
    # 460100: an event delivered twice in one delivery, once as an identical copy (fine) and once
    # as a different version (blocking)
    con.execute("""INSERT INTO raw.ratings SELECT * REPLACE (line + 100 AS line) FROM raw.ratings
                   WHERE city_code = '460100' AND dt = ? AND line <= 2""", [warehouse.day(33)])
    con.execute("""INSERT INTO raw.registrations SELECT * REPLACE (line + 100 AS line, 'cancel' AS event_type)
                   FROM raw.registrations WHERE city_code = '460100' AND dt = ? AND line = 5""", [warehouse.day(34)])
    con.execute("UPDATE audit.deliveries SET rows_loaded = rows_loaded + 2, rows_read = rows_read + 2 "
                "WHERE city_code = '460100' AND source = 'ratings' AND dt = ?", [warehouse.day(33)])
    con.execute("UPDATE audit.deliveries SET rows_loaded = rows_loaded + 1, rows_read = rows_read + 1 "
                "WHERE city_code = '460100' AND source = 'registrations' AND dt = ?", [warehouse.day(34)])
    # 430100: a user id stored in the clear instead of its keyed hash: blocking (personal data)
    con.execute("UPDATE raw.registrations SET user_key = 'user-42' WHERE city_code = '430100' AND dt = ? AND line = 3",
                [warehouse.day(10)])
    report = run_checks(con, settings, run_id="anomalies")
    con.close()
    return settings, report


def test_dau_collapse_is_a_warning(anomaly_run):
    _, report = anomaly_run
    found = failures(report, "marts_kpi_daily.dau_no_collapse")
    assert [(r.city_code, r.day, r.severity) for r in found] == [("510100", LAST, WARNING)]
    assert "dau 80" in found[0].details
    assert found[0] in report.warnings and found[0] not in report.blocking_failures
    # a warning does not stop the run: nothing blocking about 510100
    assert not [r for r in report.blocking_failures if r.city_code == "510100"]


def test_huge_rejected_share_blocks(anomaly_run):
    _, report = anomaly_run
    found = failures(report, "deliveries.rejected_share_at_most_half")
    assert [(r.city_code, r.day, r.severity) for r in found] == [("310000", warehouse.day(30), BLOCKING)]
    assert "700 of 1000 rows rejected" in found[0].details
    assert found[0] in report.blocking_failures
    text = str(found[0])
    assert "deliveries.rejected_share_at_most_half" in text and "310000" in text and "2026-01-31" in text
    # the same delivery also crosses the warning bound; the ledger itself still reconciles
    assert [r.day for r in failures(report, "deliveries.rejected_share_low")] == [warehouse.day(30)]
    assert not failures(report, "deliveries.rejected_rows_listed")


def test_mart_invariant_break_blocks(anomaly_run):
    """dau > wau itself is a dbt test beside kpi_daily (it fails the build first); here the
    cross-day invariant GX keeps catches the same break: wau covers the week's DAUs."""
    _, report = anomaly_run
    assert not failures(report, "marts_kpi_daily.dau_at_most_wau")  # lives in dbt only
    found = failures(report, "marts_kpi_daily.wau_covers_week")
    assert ("430100", warehouse.day(35), BLOCKING) in [(r.city_code, r.day, r.severity) for r in found]
    assert all(r in report.blocking_failures for r in found)
    # day 35 and later days of that week whose wau is below the inflated dau
    week = {r.day for r in found}
    assert warehouse.day(35) in week and week <= {warehouse.day(n) for n in range(35, 40)}


def test_conflicting_copy_blocks_identical_copy_does_not(anomaly_run):
    _, report = anomaly_run
    reg = failures(report, "raw_registrations.event_id_unique_after_identical_copies")
    assert [(r.city_code, r.day) for r in reg] == [("460100", warehouse.day(34))]
    assert not failures(report, "raw_ratings.event_id_unique_after_identical_copies")


def test_clear_text_user_id_blocks(anomaly_run):
    _, report = anomaly_run
    found = failures(report, "raw_hash_sample.hashed_values_are_hex_digests")
    assert [(r.city_code, r.day, r.severity) for r in found] == [("430100", warehouse.day(10), BLOCKING)]
    assert "registrations.user_key" in found[0].details


def test_anomalies_fail_nothing_else(anomaly_run):
    _, report = anomaly_run
    expected = {"deliveries.rejected_share_at_most_half",
                "marts_kpi_daily.wau_covers_week", "raw_registrations.event_id_unique_after_identical_copies",
                "raw_hash_sample.hashed_values_are_hex_digests"}
    assert {r.check for r in report.blocking_failures} == expected
    # the dau > wau row is also a DAU spike for its city, which is a warning
    assert {r.check for r in report.warnings} == {"marts_kpi_daily.dau_no_collapse", "marts_kpi_daily.dau_no_spike",
                                                  "deliveries.rejected_share_low"}


# --- targeted runs -------------------------------------------------------------------------------

def test_stopped_city_warns(tmp_path):
    settings = make_settings(tmp_path)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con, cities=("310000", "510100", "411700"))
    con.execute("DELETE FROM audit.deliveries WHERE city_code = '411700' AND dt > ?", [warehouse.day(34)])
    report = run_checks(con, settings, run_id="fresh", suites_dir=only_suites(tmp_path, "freshness"))
    found = failures(report, "freshness.city_still_delivering")
    assert {(r.city_code, r.day, r.severity) for r in found} == {("411700", warehouse.day(34), WARNING)}
    assert len(found) == 3                      # registrations, service_access, ratings
    assert report.passed


def test_since_batch_limits_deliveries_and_waiver_downgrades(tmp_path):
    settings = make_settings(tmp_path)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con)
    old, new = warehouse.day(5), warehouse.day(35)          # batch 1 and batch 2
    warehouse.add_rejected_rows(con, "510100", "ratings", old, 100)
    warehouse.add_rejected_rows(con, "510100", "ratings", new, 100)
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(f"""waivers:
  - suite: deliveries
    expectation: rejected_share_at_most_half
    city_code: "510100"
    day: {new.isoformat()}
    until: 2999-12-31
    approved_by: test
    reason: the city cannot re-export this day
""")
    suites = only_suites(tmp_path, "deliveries")
    report = run_checks(con, settings, run_id="since", since_batch=1, suites_dir=suites, waivers_file=waivers)
    days = {r.day for r in report.results}
    assert days and min(days) == warehouse.day(warehouse.DAYS - 10)     # batch 1 not re-checked
    assert report.blocking_failures == []
    waived = failures(report, "deliveries.rejected_share_at_most_half")
    assert [(r.city_code, r.day, r.severity) for r in waived] == [("510100", new, WARNING)]
    assert "waived" in waived[0].details
    # without since_batch the batch-1 delivery is judged too, and nothing waives it
    report = run_checks(con, settings, run_id="all", suites_dir=suites, waivers_file=waivers)
    assert [(r.city_code, r.day) for r in report.blocking_failures] == [("510100", old)]
    con.close()


def test_missing_mart_blocks(tmp_path):
    settings = make_settings(tmp_path)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con)
    con.execute("DROP TABLE marts_build.kpi_daily")
    report = run_checks(con, settings, run_id="nomart", suites_dir=only_suites(tmp_path, "kpi_daily", "schema"))
    checks = {(r.check, r.severity) for r in report.blocking_failures}
    assert ("marts_kpi_daily.frame", BLOCKING) in checks
    missing = failures(report, "schema.column_present")
    assert missing and all("marts_build.kpi_daily" in r.details for r in missing)
    stored = con.execute("SELECT count(*) FROM audit.quality_results WHERE run_id = 'nomart' AND NOT success "
                         "AND severity = 'blocking'").fetchone()[0]
    assert stored == len(report.blocking_failures)
    con.close()


def test_rerun_with_same_run_id_replaces_results(tmp_path):
    settings = make_settings(tmp_path)
    con = connect(settings.warehouse, settings=settings)
    warehouse.fill_clean(con, cities=("310000",), days=20)
    suites = only_suites(tmp_path, "freshness")
    run_checks(con, settings, run_id="same", suites_dir=suites)
    report = run_checks(con, settings, run_id="same", suites_dir=suites)
    n = con.execute("SELECT count(*) FROM audit.quality_results WHERE run_id = 'same'").fetchone()[0]
    assert n == len(report.results) == 3
    con.close()

"""The real tiny worked example through the real pipeline: its dirt (7/12/1 rejected rows, a
truncated gzip, a file that is not UTF-8) is expected, so every blocking check passes and the dirt
shows up as warnings naming the city and the day."""
from __future__ import annotations

from datetime import date

import duckdb
import pytest

from citycloud.expectations import BLOCKING, WARNING

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_checked(tiny_run):
    """The session's one build of the worked example (tests/conftest.py) and its quality results."""
    settings, report, _ = tiny_run
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    rows = con.execute("SELECT suite, expectation, city_code, day, severity, success, details "
                       "FROM audit.quality_results WHERE run_id = ?", [report.quality.run_id]).fetchall()
    con.close()
    return settings, report, rows


def test_tiny_example_passes_every_blocking_check(tiny_checked):
    _, report, rows = tiny_checked
    assert report.published
    assert report.quality.blocking_failures == [], "\n".join(map(str, report.quality.blocking_failures))
    assert not [r for r in rows if r[4] == BLOCKING and not r[5]]
    suites = {r[0] for r in rows}
    assert {"deliveries", "raw_registrations", "raw_service_access", "marts_kpi_daily", "marts_kpi_monthly",
            "marts_service_daily", "schema"} <= suites
    assert report.quality.docs_index.is_file()


def test_tiny_dirt_is_shown_as_warnings(tiny_checked):
    _, report, _ = tiny_checked
    warned = {(w.check, w.city_code, w.day) for w in report.quality.warnings}
    # the two files set aside: a truncated gzip and a file that is not UTF-8
    assert ("deliveries.no_file_set_aside", "430100", date(2026, 2, 12)) in warned
    assert ("deliveries.no_file_set_aside", "430100", date(2026, 2, 13)) in warned
    assert all(w.severity == WARNING for w in report.quality.warnings)

"""Data-quality checks for citycloud: Great Expectations suites kept as code, plus SQL checks.

    from citycloud.expectations import run_checks
    report = run_checks(con, settings, run_id="...", since_batch=last_published_batch)
    if report.blocking_failures: ...   # do not publish; each failure names check, city and day

Suites live in `expectations/suites/*.yml` (versioned; every expectation has a severity and a
reason), their frames in `expectations/sql/*.sql`. See docs/data_quality.md.
Importing this package is cheap: Great Expectations is imported only when checks run.
"""
from __future__ import annotations

from citycloud.expectations.report import BLOCKING, WARNING, CheckResult, QualityReport
from citycloud.expectations.suites import SUITES_DIR, Suite, SuiteError, load_suites, load_waivers


def run_checks(con, settings, *, run_id: str, since_batch: int = -1, marts_schema: str = "marts_build",
               **kwargs) -> QualityReport:
    """Validate deliveries with batch_id > since_batch and the candidate marts; see runner.run_checks."""
    from citycloud.expectations.runner import run_checks as _run_checks

    return _run_checks(con, settings, run_id=run_id, since_batch=since_batch, marts_schema=marts_schema, **kwargs)


__all__ = ["BLOCKING", "WARNING", "CheckResult", "QualityReport", "SUITES_DIR", "Suite", "SuiteError",
           "load_suites", "load_waivers", "run_checks"]

"""`run_checks`: validate new delivery batches and the candidate marts, record every result.

Flow per suite: build the frame in DuckDB (frames.py) → Great Expectations validates it
(gx_runner.py) → each expectation's verdict is mapped back to the rows it judged (city and
day) → `audit.quality_results`. Data Docs are rebuilt once at the end. Nothing is published
here: the caller publishes only when `report.blocking_failures` is empty.
"""
from __future__ import annotations

import math
import string
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from citycloud.config import Settings
from citycloud.expectations.docs_site import inject_banner, write_summary
from citycloud.expectations.frames import FrameContext, build_frame
from citycloud.expectations.report import BLOCKING, WARNING, CheckResult, QualityReport
from citycloud.expectations.suites import ExpectationSpec, Suite, Waiver, load_suites, load_waivers

RESULTS_DDL = """
CREATE TABLE IF NOT EXISTS audit.quality_results (
    run_id VARCHAR, suite VARCHAR, expectation VARCHAR, city_code VARCHAR, day DATE,
    severity VARCHAR, success BOOLEAN, observed_value VARCHAR, details VARCHAR, checked_at TIMESTAMP,
    suite_version INTEGER
)"""
RESULT_COLUMNS = ["run_id", "suite", "expectation", "city_code", "day", "severity", "success",
                  "observed_value", "details", "checked_at", "suite_version"]


# --- formatting --------------------------------------------------------------------------------

def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return isinstance(v, float) and math.isnan(v)
    except TypeError:
        return False


def _plain(v: Any) -> Any:
    if _is_missing(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v
    return v


def _show(v: Any) -> str:
    v = _plain(v)
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat(sep=" ")
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


class _Formatter(string.Formatter):
    """str.format that prints null for missing values and never fails on a format spec."""

    def format_field(self, value: Any, format_spec: str) -> str:
        value = _plain(value)
        if value is None:
            return "null"
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return _show(value)

    def get_value(self, key, args, kwargs):
        return kwargs.get(key) if isinstance(key, str) else super().get_value(key, args, kwargs)


_FMT = _Formatter()


def _message(spec: ExpectationSpec, row: dict[str, Any]) -> str:
    if spec.message:
        try:
            return _FMT.format(spec.message, **row)
        except Exception:  # a bad template must not hide the verdict
            pass
    return "; ".join(f"{c}={_show(row.get(c))}" for c in spec.columns)


def _observed(spec: ExpectationSpec, row: dict[str, Any]) -> str:
    cols = spec.columns
    if len(cols) == 1:
        return _show(row.get(cols[0]))
    return ", ".join(f"{c}={_show(row.get(c))}" for c in cols)


def _day(v: Any) -> date | None:
    v = _plain(v)
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return pd.Timestamp(v).date()


def _city(v: Any) -> str | None:
    v = _plain(v)
    return None if v is None else str(v)


# --- mapping GX verdicts back to rows ------------------------------------------------------------

def _evaluated(spec: ExpectationSpec, frame: pd.DataFrame) -> pd.Series:
    """Rows the expectation actually judges (GX skips missing values in map expectations)."""
    kw = spec.kwargs
    if spec.expect in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null"):
        return pd.Series(True, index=frame.index)
    if "column" in kw and kw["column"] in frame:
        return frame[kw["column"]].notna()
    if "column_A" in kw and kw["column_A"] in frame and kw.get("column_B") in frame:
        a, b = frame[kw["column_A"]].notna(), frame[kw["column_B"]].notna()
        mode = kw.get("ignore_row_if", "both_values_are_missing")
        return (a & b) if mode == "either_value_is_missing" else (a | b) if mode == "both_values_are_missing" else a | ~a
    return pd.Series(True, index=frame.index)


def _unexpected_ids(result) -> set[int] | None:
    """row_ids GX found unexpected, or None for an expectation without row-level output."""
    res = result.result or {}
    if "unexpected_index_list" not in res:
        return None
    ids = set()
    for item in res.get("unexpected_index_list") or []:
        rid = item.get("row_id") if isinstance(item, dict) else item
        ids.add(int(rid))
    return ids


def interpret(suite: Suite, spec: ExpectationSpec, frame: pd.DataFrame, result: Any) -> list[CheckResult]:
    base = dict(suite=suite.name, expectation=spec.name, severity=spec.severity, reason=spec.reason,
                suite_version=suite.version)
    if isinstance(result, Exception) or result is None:
        why = f"{type(result).__name__}: {result}" if result is not None else "no result returned"
        return [CheckResult(success=False, details=f"check could not run ({why})", **base)]
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return [CheckResult(success=False, details=f"check could not run: {info.get('exception_message')}", **base)]

    unexpected = _unexpected_ids(result)
    if unexpected is None:  # table-level expectation: one verdict for the frame
        observed = (result.result or {}).get("observed_value")
        return [CheckResult(success=bool(result.success), observed_value=_show(observed) if not isinstance(
            observed, (list, dict)) else str(observed)[:500], details=spec.message or "", **base)]

    if not result.success and not unexpected:
        # GX failed the expectation without naming rows (should not happen for map expectations)
        summary = {k: v for k, v in (result.result or {}).items() if k in ("unexpected_count", "element_count")}
        return [CheckResult(success=False, observed_value=str(summary) or None,
                            details=f"{spec.message or spec.expect}: failed for the frame as a whole", **base)]
    judged = frame[_evaluated(spec, frame)]
    if judged.empty:
        return [CheckResult(success=True, observed_value="0 rows", details="nothing to check", **base)]
    records = judged.to_dict("records")
    out: list[CheckResult] = []
    if suite.record == "all":
        for row in records:
            ok = int(row["row_id"]) not in unexpected
            out.append(CheckResult(success=ok, city_code=_city(row.get("city_code")), day=_day(row.get("day")),
                                   observed_value=_observed(spec, row), details=_message(spec, row), **base))
        return out
    # record == failures: failing rows grouped per (city, day), passing rows rolled up per city
    by_city: dict[str | None, list[dict]] = {}
    for row in records:
        by_city.setdefault(_city(row.get("city_code")), []).append(row)
    for city, rows in by_city.items():
        bad: dict[date | None, list[dict]] = {}
        for row in rows:
            if int(row["row_id"]) in unexpected:
                bad.setdefault(_day(row.get("day")), []).append(row)
        for day, bad_rows in bad.items():
            first = bad_rows[0]
            details = _message(spec, first)
            observed = _observed(spec, first)
            if len(bad_rows) > 1:
                details = f"{len(bad_rows)} rows unexpected, e.g. {details}"
                observed = f"{len(bad_rows)} rows, e.g. {observed}"
            out.append(CheckResult(success=False, city_code=city, day=day, observed_value=observed,
                                   details=details, **base))
        if not bad:
            days = [d for d in (_day(r.get("day")) for r in rows) if d is not None]
            span = f" from {min(days)} to {max(days)}" if days else ""
            out.append(CheckResult(success=True, city_code=city, day=None,
                                   observed_value=f"0 of {len(rows)} rows unexpected",
                                   details=f"{len(rows)} rows checked{span}", **base))
    return out


# --- the API -------------------------------------------------------------------------------------

def _window_start(con: duckdb.DuckDBPyConnection, since_batch: int) -> date:
    if since_batch < 0:
        return date(1900, 1, 1)
    (first,) = con.execute("SELECT min(dt) FROM audit.deliveries WHERE batch_id > ?", [since_batch]).fetchone()
    return first or date(9999, 12, 31)


def _apply_waivers(results: list[CheckResult], waivers: list[Waiver], today: date) -> None:
    for r in results:
        if r.success or r.severity != BLOCKING:
            continue
        for w in waivers:
            if w.matches(r, today):
                r.severity = WARNING
                r.waived = f"waived until {w.until} by {w.approved_by}: {w.reason}"
                r.details = f"{r.details} [blocking check {r.waived}]"
                break


def write_results(con: duckdb.DuckDBPyConnection, run_id: str, results: list[CheckResult]) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS audit")
    con.execute(RESULTS_DDL)
    con.execute("ALTER TABLE audit.quality_results ADD COLUMN IF NOT EXISTS suite_version INTEGER")
    frame = pd.DataFrame(
        [(run_id, r.suite, r.expectation, r.city_code, r.day, r.severity, bool(r.success), r.observed_value,
          r.details, r.suite_version) for r in results],
        columns=[c for c in RESULT_COLUMNS if c != "checked_at"],
    )
    frame["day"] = pd.to_datetime(frame["day"])
    frame["suite_version"] = frame["suite_version"].astype("Int64")
    con.register("_quality_results", frame)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM audit.quality_results WHERE run_id = ?", [run_id])
        con.execute(
            f"INSERT INTO audit.quality_results ({', '.join(RESULT_COLUMNS)}) "
            "SELECT run_id, suite, expectation, city_code, CAST(day AS DATE), severity, success, observed_value, "
            "details, now()::TIMESTAMP, suite_version FROM _quality_results"
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_quality_results")


def run_checks(con: duckdb.DuckDBPyConnection, settings: Settings, *, run_id: str, since_batch: int = -1,
               marts_schema: str = "marts_build", suites_dir: Path | None = None,
               waivers_file: Path | None = None) -> QualityReport:
    """Validate deliveries with batch_id > since_batch and the candidate marts in `marts_schema`.

    Writes every expectation result to audit.quality_results, rebuilds the Data Docs under
    settings.output / "data_docs", and returns a QualityReport. Publishes nothing.
    """
    from citycloud.expectations.frames import _IDENT
    from citycloud.expectations.gx_runner import GxValidator

    t0 = time.perf_counter()
    if not _IDENT.match(marts_schema):
        raise ValueError(f"marts_schema {marts_schema!r} is not a plain schema name")
    suites = load_suites(suites_dir)
    waivers = load_waivers(waivers_file)
    report = QualityReport(run_id=run_id, since_batch=since_batch,
                           suites={s.name: s.version for s in suites})
    ctx = FrameContext(con, since_batch, marts_schema, _window_start(con, since_batch))
    t = time.perf_counter()
    validator = GxValidator(Path(settings.output) / "data_docs", run_id)
    report.timings["gx_setup"] = time.perf_counter() - t
    for suite in suites:
        t = time.perf_counter()
        try:
            frame = build_frame(suite, ctx)
        except Exception as exc:
            # the frame could not be computed (missing table, bad SQL): nothing in it can be vouched for
            severity = BLOCKING if any(e.severity == BLOCKING for e in suite.expectations) else WARNING
            report.results.append(CheckResult(
                suite=suite.name, expectation="frame", severity=severity, success=False,
                details=f"could not compute the frame to check: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                reason="every expectation of the suite depends on this frame", suite_version=suite.version))
            continue
        finally:
            report.timings[f"{suite.name}.frame"] = time.perf_counter() - t
        t = time.perf_counter()
        verdicts = validator.validate(suite, frame)
        for spec in suite.expectations:
            report.results.extend(interpret(suite, spec, frame, verdicts.get(spec.name)))
        report.timings[f"{suite.name}.gx"] = time.perf_counter() - t
    _apply_waivers(report.results, waivers, datetime.now(timezone.utc).date())
    t = time.perf_counter()
    report.seconds = t - t0
    try:
        report.docs_index = validator.build_docs()
        write_summary(report.docs_index.parent, report, suites)
        inject_banner(report.docs_index, report)
    except Exception as exc:  # Data Docs are a view of the results, not a check: never block on them
        report.results.append(CheckResult(
            suite="data_docs", expectation="site_built", severity=WARNING, success=False,
            details=f"Data Docs could not be built: {type(exc).__name__}: {exc}",
            reason="operators read the checks in Data Docs"))
    report.timings["data_docs"] = time.perf_counter() - t
    t = time.perf_counter()
    write_results(con, run_id, report.results)
    report.timings["write_results"] = time.perf_counter() - t
    report.seconds = time.perf_counter() - t0
    return report

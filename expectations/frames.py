"""Frames: the pandas DataFrames Great Expectations validates, computed in DuckDB.

Row-level rules over raw data run as SQL aggregates (one summary row per delivery); the marts
are small enough to hand over row by row, except service_daily (summarised per city and day).
Values that need more than SQL's windows (movement bounds learned from recent history) are
added by a `derive` hook in Python.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd

from citycloud.config import BUSINESS_UTC_OFFSET_HOURS
from citycloud.expectations.suites import Suite, SuiteError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE = re.compile(r"\{\{(\w+)\}\}")
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


@dataclass
class FrameContext:
    con: duckdb.DuckDBPyConnection
    since_batch: int
    marts_schema: str
    window_start: date          # movement checks judge kpi days from here on (see runner)


def _render(sql: str, suite: Suite, ctx: FrameContext) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name == "marts":
            return ctx.marts_schema
        value = suite.params.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuiteError(f"{suite.path.name}: template {{{{{name}}}}} needs an integer param `{name}`")
        return str(value)

    return _TEMPLATE.sub(sub, sql)


def sql_frame(suite: Suite, ctx: FrameContext) -> pd.DataFrame:
    sql = _render(suite.sql_text(), suite, ctx)
    values: dict[str, Any] = {**suite.params, "since_batch": ctx.since_batch,
                              "window_start": ctx.window_start.isoformat(),
                              "utc_offset_hours": BUSINESS_UTC_OFFSET_HOURS}  # the business time zone
    # strip comments before looking for $params (a comment may mention one)
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    wanted = sorted(set(_PARAM.findall(code)))
    missing = [n for n in wanted if n not in values]
    if missing:
        raise SuiteError(f"{suite.path.name}: {suite.sql} uses ${', $'.join(missing)} but the suite gives no value")
    return ctx.con.execute(sql, {n: values[n] for n in wanted}).df()


# --- schema: declared columns and type families against information_schema ----------------

_FAMILIES = [
    ("integer", re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|U?HUGEINT)$")),
    ("decimal", re.compile(r"^DECIMAL\(\d+,\s*\d+\)$")),
    ("float", re.compile(r"^(DOUBLE|FLOAT|REAL)$")),
    ("string", re.compile(r"^VARCHAR$")),
    ("date", re.compile(r"^DATE$")),
    ("timestamp", re.compile(r"^TIMESTAMP$")),
    ("boolean", re.compile(r"^BOOLEAN$")),
]


def type_family(data_type: str | None) -> str | None:
    if data_type is None:
        return None
    for family, pattern in _FAMILIES:
        if pattern.match(data_type.upper()):
            return family
    return data_type.upper()


def schema_frame(suite: Suite, ctx: FrameContext) -> pd.DataFrame:
    """One row per declared column: the type family expected, the type found (NULL if absent)."""
    tables = suite.params.get("tables") or {}
    actual = ctx.con.execute(
        "SELECT table_schema || '.' || table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database()"
    ).fetchall()
    found = {(t, c): dt for t, c, dt in actual}
    rows = []
    for table, columns in tables.items():
        real_table = table.replace("{{marts}}", ctx.marts_schema)
        for column, expected in columns.items():
            accepted = [f.strip() for f in str(expected).split("|")]
            data_type = found.get((real_table, column))
            family = type_family(data_type)
            rows.append({
                "table_name": real_table, "column_name": column, "expected_type": str(expected),
                "actual_type": data_type,
                # the expected family when the actual one is among those accepted, else what was found
                "actual_family": str(expected) if family in accepted else family,
            })
    frame = pd.DataFrame(rows, columns=["table_name", "column_name", "expected_type", "actual_type", "actual_family"])
    frame.insert(0, "city_code", None)
    frame.insert(1, "day", None)
    return frame


# --- hash sample: a cheap, bounded sample of the new rows' pseudonymised values -----------------

def hash_sample_frame(suite: Suite, ctx: FrameContext) -> pd.DataFrame:
    """Up to `sample_rows` new rows per table (batch > since_batch), one frame row per hashed value.

    Few new rows (≤ 20 × sample_rows): a fixed-seed reservoir sample of them (zone maps skip the
    old batches). Many: DuckDB's block-level SYSTEM sample of about twice sample_rows new rows
    first, so a 10M-row delivery costs milliseconds instead of reading all its hash strings.
    """
    n = int(suite.params.get("sample_rows", 5000))
    parts = []
    for table, columns in (suite.params.get("tables") or {}).items():
        schema, name = table.split(".")
        if not (_IDENT.match(schema) and _IDENT.match(name) and all(_IDENT.match(c) for c in columns)):
            raise SuiteError(f"{suite.path.name}: bad table or column name under {table}")
        new, total = ctx.con.execute(
            f"SELECT count(*) FILTER (WHERE batch_id > ?), count(*) FROM {table}", [ctx.since_batch]).fetchone()
        if not new:
            continue
        cols = ", ".join(columns)
        base = f"SELECT city_code, dt, {cols} FROM {table}"
        if new <= 20 * n:
            sql = f"SELECT * FROM ({base} WHERE batch_id > ?) USING SAMPLE reservoir({n} ROWS) REPEATABLE (7)"
        else:
            pct = min(100.0, 200.0 * n / new)
            sql = (f"SELECT * FROM ({base} TABLESAMPLE SYSTEM ({pct:.6f}%) REPEATABLE (7) WHERE batch_id > ?) "
                   f"USING SAMPLE reservoir({n} ROWS) REPEATABLE (7)")
        sample = ctx.con.execute(
            f"SELECT city_code, dt AS day, '{name}' AS source, column_name, value "
            f"FROM (UNPIVOT ({sql}) ON {cols} INTO NAME column_name VALUE value)", [ctx.since_batch]).df()
        parts.append(sample)
    cols = ["city_code", "day", "source", "column_name", "value"]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return frame.sort_values(cols[:4], kind="stable").reset_index(drop=True)


BUILDERS: dict[str, Callable[[Suite, FrameContext], pd.DataFrame]] = {
    "sql": sql_frame, "schema": schema_frame, "hash_sample": hash_sample_frame}


# --- derive hooks ----------------------------------------------------------------------------

def _bounds(values: pd.Series, cfg: dict[str, Any]) -> pd.DataFrame:
    """Movement ratio of one city's daily series and the bounds learned from its recent history."""
    x = values.astype("float64")
    if cfg.get("reference", "previous_day") == "trailing_median":
        n = int(cfg.get("reference_days", 7))
        ref = x.shift(1).rolling(n, min_periods=n).median()
    else:
        ref = x.shift(1)
    ref = ref.where(ref >= float(cfg.get("min_reference", 1)))
    ratio = x / ref
    log_ratio = np.log(ratio.clip(lower=1e-6))
    history = log_ratio.shift(1).rolling(int(cfg.get("history_days", 28)),
                                         min_periods=int(cfg.get("min_history", 14)))
    q_low, q_high = cfg.get("quantiles", [0.05, 0.95])
    margin = math.log1p(float(cfg.get("margin", 0.25)))
    lo = np.exp(history.quantile(q_low) - margin)
    hi = np.exp(history.quantile(q_high) + margin)
    learned = lo.notna() & hi.notna()
    default_lo, default_hi = cfg.get("default", [0.5, 2.0])
    return pd.DataFrame({
        "reference": ref, "ratio": ratio,
        "lo": lo.where(learned, float(default_lo)), "hi": hi.where(learned, float(default_hi)),
        "bounds": np.where(learned, "learned", "default"),
    }, index=values.index)


def kpi_movement(frame: pd.DataFrame, suite: Suite, ctx: FrameContext) -> pd.DataFrame:
    """Day-over-day movement of daily KPIs against bounds learned per city (or configured per city).

    For each metric in `params.movement`: `<m>_ratio` (today / reference), `<m>_ratio_lo`,
    `<m>_ratio_hi`, `<m>_bounds` (learned | default | configured). The ratio is left empty (not
    judged) outside the checked window, when the reference is too small to mean anything, or
    before the reference exists.
    """
    movement = suite.params.get("movement") or {}
    per_city = suite.params.get("per_city") or {}
    frame = frame.sort_values(["city_code", "kpi_date"]).reset_index(drop=True)
    in_window = frame["in_checked_window"].fillna(False).astype(bool)
    for metric, cfg in movement.items():
        parts = []
        for city, group in frame.groupby("city_code", sort=False):
            b = _bounds(group[metric], cfg)
            fixed = (per_city.get(str(city)) or {}).get(metric)
            if fixed:
                b["lo"], b["hi"], b["bounds"] = float(fixed[0]), float(fixed[1]), "configured"
            parts.append(b)
        b = pd.concat(parts) if parts else pd.DataFrame(columns=["reference", "ratio", "lo", "hi", "bounds"])
        b = b.reindex(frame.index)
        frame[f"{metric}_reference"] = b["reference"].astype("float64")
        frame[f"{metric}_ratio"] = b["ratio"].astype("float64").where(in_window)
        frame[f"{metric}_ratio_lo"] = b["lo"].astype("float64")
        frame[f"{metric}_ratio_hi"] = b["hi"].astype("float64")
        frame[f"{metric}_bounds"] = b["bounds"]
    return frame


DERIVE: dict[str, Callable[[pd.DataFrame, Suite, FrameContext], pd.DataFrame]] = {"kpi_movement": kpi_movement}


def build_frame(suite: Suite, ctx: FrameContext) -> pd.DataFrame:
    if suite.builder not in BUILDERS:
        raise SuiteError(f"{suite.path.name}: unknown frame builder {suite.builder!r}")
    frame = BUILDERS[suite.builder](suite, ctx)
    if suite.derive:
        if suite.derive not in DERIVE:
            raise SuiteError(f"{suite.path.name}: unknown derive hook {suite.derive!r}")
        frame = DERIVE[suite.derive](frame, suite, ctx)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(len(frame), dtype="int64"))
    return frame

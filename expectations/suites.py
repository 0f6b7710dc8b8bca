"""Suite files: `expectations/suites/*.yml`, versioned with the code.

A suite names a *frame* (a pandas DataFrame built by an SQL file under `expectations/sql/`, or
by a Python builder) and the expectations Great Expectations checks on it. Every expectation
carries a severity (`blocking` stops publishing, `warning` is recorded and shown) and a reason.
The schema of a suite file is described in docs/data_quality.md; `load_suites()` refuses a file
that breaks it, naming the file and the rule.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from citycloud.config import CitycloudError
from citycloud.expectations.report import SEVERITIES

PACKAGE_DIR = Path(__file__).resolve().parent
SUITES_DIR = PACKAGE_DIR / "suites"
SQL_DIR = PACKAGE_DIR / "sql"
# Blocks and {% extends %} only: [[ ]] for expressions, so the SQL's own {{marts}} passes through.
_SQL_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_DIR), variable_start_string="[[",
                                    variable_end_string="]]", undefined=jinja2.StrictUndefined,
                                    keep_trailing_newline=True, autoescape=False)

GRAINS = ("delivery", "city_day", "city_month", "city", "table")
RECORD = ("all", "failures")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SuiteError(CitycloudError, ValueError):
    """A suite or waiver file that breaks its schema (the CLI prints the message, naming file and rule)."""


@dataclass(frozen=True)
class ExpectationSpec:
    name: str
    severity: str
    reason: str
    expect: str                    # GX expectation type, e.g. expect_column_values_to_be_between
    kwargs: dict[str, Any]
    message: str = ""              # str.format template over the failing row's columns

    @property
    def columns(self) -> list[str]:
        """Frame columns the expectation reads."""
        cols = [self.kwargs[k] for k in ("column", "column_A", "column_B") if k in self.kwargs]
        cols += list(self.kwargs.get("column_list", []))
        return cols


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    grain: str
    record: str
    sql: str | None
    builder: str
    derive: str | None
    key: tuple[str, ...]
    params: dict[str, Any]
    expectations: tuple[ExpectationSpec, ...]
    path: Path
    order: int = 0
    enabled: bool = True

    def sql_text(self) -> str:
        """The frame's SQL: the file, with its Jinja blocks filled in (a raw source's check extends
        _raw_delivery.sql). `{{marts}}` and `$params` are left for frames._render and DuckDB."""
        if not self.sql:
            raise SuiteError(f"{self.path.name}: suite has no SQL frame")
        return _SQL_TEMPLATES.get_template(self.sql).render()


def _require(cond: bool, path: Path, rule: str) -> None:
    if not cond:
        raise SuiteError(f"{path.name}: {rule}")


def load_suite(path: Path) -> Suite:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    _require(isinstance(doc, dict), path, "a suite file is a YAML mapping")
    name = doc.get("suite")
    _require(isinstance(name, str) and bool(_NAME.match(name)), path, "`suite` must be a lower_snake_case name")
    _require(isinstance(doc.get("version"), int) and doc["version"] >= 1, path, "`version` must be an integer ≥ 1")
    grain = doc.get("grain")
    _require(grain in GRAINS, path, f"`grain` must be one of {', '.join(GRAINS)}")
    record = doc.get("record", "all" if grain == "delivery" else "failures")
    _require(record in RECORD, path, f"`record` must be one of {', '.join(RECORD)}")
    frame = doc.get("frame") or {}
    _require(isinstance(frame, dict), path, "`frame` must be a mapping")
    builder = frame.get("builder", "sql")
    sql = frame.get("sql")
    if builder == "sql":
        _require(isinstance(sql, str) and (SQL_DIR / sql).is_file(), path,
                 f"`frame.sql` must name a file under {SQL_DIR}")
    key = tuple(frame.get("key", ["city_code", "day"]))
    specs = []
    seen = set()
    for i, e in enumerate(doc.get("expectations") or []):
        where = f"expectation #{i + 1}"
        _require(isinstance(e, dict), path, f"{where} must be a mapping")
        ename = e.get("name")
        _require(isinstance(ename, str) and bool(_NAME.match(ename)), path, f"{where}: `name` must be lower_snake_case")
        _require(ename not in seen, path, f"{where}: name {ename!r} is used twice")
        seen.add(ename)
        _require(e.get("severity") in SEVERITIES, path,
                 f"{ename}: `severity` must be one of {', '.join(SEVERITIES)}")
        _require(isinstance(e.get("reason"), str) and len(e["reason"].strip()) >= 10, path,
                 f"{ename}: every expectation needs a `reason` (why it exists, why this severity)")
        _require(isinstance(e.get("expect"), str) and e["expect"].startswith("expect_"), path,
                 f"{ename}: `expect` must name a Great Expectations expectation type")
        kwargs = e.get("kwargs") or {}
        _require(isinstance(kwargs, dict), path, f"{ename}: `kwargs` must be a mapping")
        specs.append(ExpectationSpec(ename, e["severity"], " ".join(e["reason"].split()), e["expect"],
                                     dict(kwargs), e.get("message", "")))
    _require(bool(specs), path, "a suite needs at least one expectation")
    return Suite(
        name=name, version=doc["version"], description=" ".join(str(doc.get("description", "")).split()),
        grain=grain, record=record, sql=sql, builder=builder, derive=frame.get("derive"), key=key,
        params=dict(frame.get("params") or {}), expectations=tuple(specs), path=path,
        order=int(doc.get("order", 100)), enabled=bool(doc.get("enabled", True)),
    )


def load_suites(directory: Path | None = None) -> list[Suite]:
    """Every enabled suite under `directory` (default expectations/suites), in run order."""
    directory = Path(directory or SUITES_DIR)
    suites = [load_suite(p) for p in sorted(directory.glob("*.yml"))]
    names = [s.name for s in suites]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SuiteError(f"suite name(s) used by more than one file: {', '.join(sorted(dupes))}")
    return sorted((s for s in suites if s.enabled), key=lambda s: (s.order, s.name))


@dataclass
class Waiver:
    """An approved, expiring exception: matching blocking failures are shown as warnings."""

    suite: str
    expectation: str
    reason: str
    approved_by: str
    until: Any
    city_code: str | None = None
    day: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, result, today) -> bool:
        if self.until is not None and today > self.until:
            return False
        return (result.suite == self.suite and result.expectation == self.expectation
                and (self.city_code is None or result.city_code == self.city_code)
                and (self.day is None or result.day == self.day))


def load_waivers(path: Path | None = None) -> list[Waiver]:
    path = Path(path or PACKAGE_DIR / "waivers.yml")
    if not path.is_file():
        return []
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for i, w in enumerate(doc.get("waivers") or []):
        missing = [k for k in ("suite", "expectation", "reason", "approved_by", "until") if not w.get(k)]
        if missing:
            raise SuiteError(f"{path.name}: waiver #{i + 1} lacks {', '.join(missing)} (a waiver must say why, "
                             "who approved it and until when)")
        city = w.get("city_code")
        out.append(Waiver(w["suite"], w["expectation"], str(w["reason"]), str(w["approved_by"]), w["until"],
                          str(city) if city is not None else None, w.get("day")))
    return out

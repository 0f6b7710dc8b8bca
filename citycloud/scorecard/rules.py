"""evaluation.yml and assessments.yml, validated (scorecard.md): pydantic models per entry.

A file with any problem scores nothing: `load_schemes` / `load_assessments` raise one
CitycloudError listing every problem, each naming the scheme or entry, the field and the rule.
Numbers are Decimal from their YAML text (citycloud.yaml_files), so 0.15 is 0.15.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from citycloud.config import CitycloudError
from citycloud.validation import as_number as _number
from citycloud.validation import is_city_code, month_text, problems_of
from citycloud.validation import show as _show
from citycloud.scorecard import catalog
from citycloud.yaml_files import read_list

WEIGHT_TOLERANCE = Decimal("1e-9")
MAX_LABEL = 200  # scheme ids, names and grades: a 20 MB name made Chromium time out
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ---- field types: each raises ValueError(rule); pydantic adds the field's location ----------
def _city(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # Chinese division codes never start with 0: 310000 is "310000"
    if is_city_code(value):
        return value
    raise ValueError(f"must be a 6-digit city code, got {_show(value)}")


def _cities(value: Any) -> Any:
    if value == "all" or (isinstance(value, list) and value):
        return value
    raise ValueError(f'must be "all" or a non-empty list of 6-digit city codes, got {_show(value)}')


def _text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"is required: a non-empty text, got {_show(value)}")


def _label(value: Any) -> str:
    """A name printed on every report page: text, and short enough to print."""
    text = _text(value)
    if len(text) > MAX_LABEL:
        raise ValueError(f"must be at most {MAX_LABEL} characters (it is printed on every report), "
                         f"got {len(text):,}")
    return text


def _day(value: Any) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"must be a date written YYYY-MM-DD, got {_show(value)}")


def _indicator(value: Any) -> str:
    if value in catalog.indicators():
        return value
    raise ValueError(f"unknown indicator {_show(value)} (known: {', '.join(catalog.indicators())})")


def _between(low: Decimal, high: Decimal, low_open: bool = False):
    def check(d: Decimal) -> Decimal:
        if (d <= low if low_open else d < low) or d > high:
            raise ValueError(f"must be {'above' if low_open else 'at least'} {low} and at most {high}, got {_show(d)}")
        return d
    return check


def _positive(d: Decimal) -> Decimal:
    if d <= 0:
        raise ValueError(f"must be above 0 (scores divide by it), got {_show(d)}")
    return d


Number = Annotated[Decimal, BeforeValidator(_number)]
Month = Annotated[str, BeforeValidator(lambda v: month_text(v, example="2026-02"))]
CityCode = Annotated[str, BeforeValidator(_city)]
Text = Annotated[str, BeforeValidator(_text)]
Label = Annotated[str, BeforeValidator(_label)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndicatorTerm(_Entry):
    indicator: Annotated[str, BeforeValidator(_indicator)]
    weight: Annotated[Number, AfterValidator(_between(Decimal(0), Decimal(1), low_open=True))]
    target: Annotated[Number, AfterValidator(_positive)]
    day_threshold: Annotated[Number, AfterValidator(_between(Decimal(0), Decimal(1), low_open=True))] | None = None


class Grade(_Entry):
    min_score: Annotated[Number, AfterValidator(_between(Decimal(0), Decimal(100)))]
    grade: Label


class Scheme(_Entry):
    scheme_id: Label
    name: Label | None = None
    cities: Annotated[Union[Literal["all"], list[CityCode]], BeforeValidator(_cities)]
    start_month: Month
    end_month: Month
    indicators: Annotated[list[IndicatorTerm], Field(min_length=1)]
    grades: Annotated[list[Grade], Field(min_length=1)]

    def in_force(self, month: str) -> bool:
        return self.start_month <= month <= self.end_month

    def grade_of(self, total: Decimal) -> str:
        return max((g for g in self.grades if total >= g.min_score), key=lambda g: g.min_score).grade

    def rule_problems(self) -> list[tuple[str, str]]:
        """Rules across fields: (field, rule)."""
        out = []
        if self.start_month > self.end_month:
            out.append(("start_month/end_month",
                        f"the month range runs backwards: start_month {self.start_month} is after end_month {self.end_month}"))
        total = sum((t.weight for t in self.indicators), Decimal(0))
        if abs(total - 1) > WEIGHT_TOLERANCE:
            out.append(("indicators.weight", f"weights must sum to 1 (within 1e-9), they sum to {_show(total)}"))
        seen: set[str] = set()
        for i, t in enumerate(self.indicators, 1):
            if t.indicator in seen:
                out.append((f"indicators[{i}].indicator", f"{t.indicator} is listed twice"))
            seen.add(t.indicator)
            if t.indicator == "reliability" and t.day_threshold is None:
                out.append((f"indicators[{i}].day_threshold", "is required for reliability (the success rate a day must reach)"))
            if t.indicator != "reliability" and t.day_threshold is not None:
                out.append((f"indicators[{i}].day_threshold", f"only reliability takes a day_threshold, not {t.indicator}"))
        if not any(g.min_score == 0 for g in self.grades):
            out.append(("grades", "needs a grade at min_score 0 (every total must get a grade)"))
        scores = [g.min_score for g in self.grades]
        if len(set(scores)) != len(scores):
            out.append(("grades.min_score", "two grades have the same min_score"))
        if isinstance(self.cities, list) and len(set(self.cities)) != len(self.cities):
            out.append(("cities", "a city is listed twice"))
        return out


class Assessment(_Entry):
    city_code: CityCode
    month: Month
    indicator: str
    score: Annotated[Number, AfterValidator(_between(Decimal(0), Decimal(100)))]
    evaluator: Text
    date: Annotated[date, BeforeValidator(_day)]
    evidence: Text

    def rule_problems(self) -> list[tuple[str, str]]:
        if self.indicator not in catalog.assessed():
            kind = "a measured indicator, computed from the data" if self.indicator in catalog.indicators() else "unknown"
            return [("indicator", f"{self.indicator!r} is {kind}; assessed indicators: {', '.join(catalog.assessed())}")]
        return []


# ---- problems -> one error ------------------------------------------------------------------
def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = problems_of(exc)
    # cities is "all" or a list: pydantic reports both branches of the union, keep the list's.
    return [(f, m) for f, m in out if not m.startswith("Input should be 'all'")] or out


def _refuse(path: Path, what: str, problems: list[str]) -> None:
    lines = "\n".join(f"  - {p}" for p in problems)
    raise CitycloudError(f"{what} {path} was refused ({len(problems)} problem{'s' if len(problems) != 1 else ''}); "
                         f"nothing was scored. Fix these and run again:\n{lines}")


def _scheme_rules_of_raw(raw: dict) -> list[tuple[str, str]]:
    """The scheme-wide rules, checked on the raw entry when some field failed (so a reviewer sees
    every problem at once): month range, weights sum, grade at 0, where those fields are readable."""
    out = []
    start, end = raw.get("start_month"), raw.get("end_month")
    if all(isinstance(m, str) and _MONTH.fullmatch(m) for m in (start, end)) and start > end:
        out.append(("start_month/end_month",
                    f"the month range runs backwards: start_month {start} is after end_month {end}"))
    items = raw.get("indicators")
    if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
        try:
            total = sum((_number(i.get("weight")) for i in items), Decimal(0))
        except ValueError:
            total = None
        if total is not None and abs(total - 1) > WEIGHT_TOLERANCE:
            out.append(("indicators.weight", f"weights must sum to 1 (within 1e-9), they sum to {_show(total)}"))
    grades = raw.get("grades")
    if isinstance(grades, list) and grades and all(isinstance(g, dict) for g in grades):
        if not any(g.get("min_score") == 0 and not isinstance(g.get("min_score"), bool) for g in grades):
            out.append(("grades", "needs a grade at min_score 0 (every total must get a grade)"))
    return out


def _parse(items: list, model: type[_Entry], name_of) -> tuple[list, list[str]]:
    parsed, problems = [], []
    for i, raw in enumerate(items, 1):
        where = name_of(i, raw)
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping of fields, got {_show(raw)}")
            continue
        try:
            entry = model.model_validate(raw)
        except ValidationError as exc:
            problems += [f"{where}: {f}: {m}" for f, m in _pydantic_problems(exc)]
            if model is Scheme:
                problems += [f"{where}: {f}: {m}" for f, m in _scheme_rules_of_raw(raw)]
            continue
        found = entry.rule_problems()
        problems += [f"{where}: {f}: {m}" for f, m in found]
        if not found:
            parsed.append(entry)
    return parsed, problems


def _scheme_name(i: int, raw: Any) -> str:
    sid = raw.get("scheme_id") if isinstance(raw, dict) else None
    return f"scheme {sid}" if isinstance(sid, str) and _ID.match(sid) else f"scheme #{i}"


def _assessment_name(i: int, raw: Any) -> str:
    if isinstance(raw, dict):
        parts = [str(raw.get(k)) for k in ("city_code", "month", "indicator") if raw.get(k) is not None]
        return f"assessment #{i} ({' '.join(parts)})" if parts else f"assessment #{i}"
    return f"assessment #{i}"


def load_schemes(path: Path | str) -> list[Scheme]:
    path = Path(path)
    schemes, problems = _parse(read_list(path, "schemes"), Scheme, _scheme_name)
    if not problems and not schemes:
        problems.append("schemes: the list is empty: at least one scheme is needed")
    ids = [s.scheme_id for s in schemes]
    problems += [f"scheme {sid}: scheme_id: used by two schemes" for sid in sorted({x for x in ids if ids.count(x) > 1})]
    if problems:
        _refuse(path, "scheme file", problems)
    return schemes


def load_assessments(path: Path | str | None) -> list[Assessment]:
    """Every valid entry (superseded ones included: `latest_assessments` picks)."""
    if path is None:
        return []
    path = Path(path)
    entries, problems = _parse(read_list(path, "assessments"), Assessment, _assessment_name)
    problems += _tie_problems(entries)
    if problems:
        _refuse(path, "assessments file", problems)
    return entries


def _tie_problems(entries: Iterable[Assessment]) -> list[str]:
    latest: dict[tuple, list[Assessment]] = {}
    for e in entries:
        key = (e.city_code, e.month, e.indicator)
        kept = latest.get(key)
        if not kept or e.date > kept[0].date:
            latest[key] = [e]
        elif e.date == kept[0].date:
            kept.append(e)
    return [f"assessment ({' '.join(key)}): date: {len(tied)} entries share the latest date {tied[0].date}, "
            "so which one counts is ambiguous: keep one, or date the later one later"
            for key, tied in latest.items() if len(tied) > 1]


def latest_assessments(entries: Iterable[Assessment]) -> dict[tuple[str, str, str], Assessment]:
    """(city_code, month, indicator) -> the entry with the latest date (ties were refused)."""
    out: dict[tuple[str, str, str], Assessment] = {}
    for e in entries:
        key = (e.city_code, e.month, e.indicator)
        if key not in out or e.date > out[key].date:
            out[key] = e
    return out


def unknown_city_problems(schemes: list[Scheme], assessments: list[Assessment], known: set[str]) -> list[str]:
    """The rule that needs the warehouse: every named city is in city_reference or has data."""
    out, listed = [], f"known: {', '.join(sorted(known))}"
    for s in schemes:
        if isinstance(s.cities, list):
            out += [f"scheme {s.scheme_id}: cities: unknown city {c} (not in city_reference, no data in the "
                    f"warehouse; {listed})"
                    for c in s.cities if c not in known]
    for i, a in enumerate(assessments, 1):
        if a.city_code not in known:
            out.append(f"assessment ({a.city_code} {a.month} {a.indicator}): city_code: unknown city {a.city_code} "
                       f"(not in city_reference, no data in the warehouse; {listed})")
    return out

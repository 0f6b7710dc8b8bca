"""One scheme, its cities, some months: every indicator's value, score, the total and grade."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import duckdb

from citycloud.config import BUSINESS_TZ_NAME
from citycloud.scorecard import catalog, measures
from citycloud.scorecard.rules import Assessment, Scheme
from citycloud.scorecard.scoring import Scored, dimension_scores, indicator_score, total_score

# The reports show each indicator's score over this many months, the scored one last.
TREND_MONTHS = 12


@dataclass(frozen=True)
class IndicatorResult:
    indicator: str
    dimension: str
    value: float | None
    target: Decimal
    weight: Decimal
    score: Decimal
    no_data: bool
    assessment: Assessment | None = None

    @property
    def points_lost(self) -> Decimal:
        """What this indicator cost the total: weight × (100 − score)."""
        return self.weight * (Decimal(100) - self.score)


@dataclass
class CityResult:
    scheme_id: str
    city_code: str
    month: str
    indicators: list[IndicatorResult]
    total: Decimal
    grade: str
    dimensions: dict[str, Decimal | None]
    rank: int | None = None


@dataclass
class Evaluation:
    results: dict[tuple[str, str], CityResult] = field(default_factory=dict)  # (city, month)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # (city, month) -> reason


def scheme_cities(scheme: Scheme, with_data: list[str]) -> list[str]:
    return sorted(with_data) if scheme.cities == "all" else list(scheme.cities)


def months_back(month: str, n: int) -> list[str]:
    """The n months ending with `month`, oldest first."""
    y, m = map(int, month.split("-"))
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def month_end(month: str) -> date:
    y, m = map(int, month.split("-"))
    return date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)


def evaluate(con: duckdb.DuckDBPyConnection, scheme: Scheme, cities: list[str], months: list[str],
             latest: dict[tuple[str, str, str], Assessment], today: date) -> Evaluation:
    threshold = next((t.day_threshold for t in scheme.indicators if t.indicator == measures.THRESHOLD_INDICATOR), None)
    coverage = measures.coverage(con, months)
    values = measures.measured_values(con, months, threshold)
    indicators = catalog.indicators()
    out = Evaluation()
    for month in months:
        for city in cities:
            cov = coverage.get((city, month))
            if month_end(month) >= today:
                out.refused[(city, month)] = f"{month} has not ended (today is {today} in {BUSINESS_TZ_NAME})"
                continue
            if cov is None or not cov.covered:
                days = f"{cov.days_covered} of {cov.days_in_month} days" if cov else "no day"
                out.refused[(city, month)] = f"{month} is not covered: marts.kpi_daily has {days} of it for this city"
                continue
            rows = []
            for term in scheme.indicators:
                assessment = latest.get((city, month, term.indicator))
                if indicators[term.indicator].kind == "assessed":
                    value = float(assessment.score) if assessment else None
                    score, no_data = indicator_score(assessment.score if assessment else None, term.target)
                else:
                    value = values.get((city, month, term.indicator))
                    score, no_data = indicator_score(value, term.target)
                rows.append(IndicatorResult(term.indicator, indicators[term.indicator].dimension, value,
                                            term.target, term.weight, score, no_data, assessment))
            scored = [Scored(r.indicator, r.weight, r.score) for r in rows]
            total = total_score(scored)
            out.results[(city, month)] = CityResult(scheme.scheme_id, city, month, rows, total,
                                                    scheme.grade_of(total), dimension_scores(scored))
    return out

"""Scores, totals, dimension scores and grades (scorecard.md "Scores"), in Decimal.

Values arrive as SQL doubles; each is read through its shortest repr (Decimal(repr(x))), so a
ratio like 333/400 = 0.8325 scores 83.3, as on paper, not 83.2 from its binary expansion.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from citycloud.scorecard import catalog

TENTH = Decimal("0.1")
HUNDRED = Decimal(100)


def round_tenth(d: Decimal) -> Decimal:
    return d.quantize(TENTH, rounding=ROUND_HALF_UP)


def as_decimal(value: float | int | Decimal | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def indicator_score(value: float | Decimal | None, target: Decimal) -> tuple[Decimal, bool]:
    """(score, no_data): 100 × min(1, value / target) half-up to 0.1; a null value scores 0."""
    v = as_decimal(value)
    if v is None:
        return Decimal("0.0"), True
    return round_tenth(HUNDRED * min(Decimal(1), v / target)), False


@dataclass(frozen=True)
class Scored:
    indicator: str
    weight: Decimal
    score: Decimal


def total_score(scored: list[Scored]) -> Decimal:
    return round_tenth(sum((s.weight * s.score for s in scored), Decimal(0)))


def dimension_scores(scored: list[Scored]) -> dict[str, Decimal | None]:
    """Weight-averaged score per dimension (catalogue order); None when the scheme has none."""
    out: dict[str, Decimal | None] = {}
    indicators = catalog.indicators()
    for dim in catalog.dimensions():
        mine = [s for s in scored if indicators[s.indicator].dimension == dim]
        weight = sum((s.weight for s in mine), Decimal(0))
        out[dim] = round_tenth(sum((s.weight * s.score for s in mine), Decimal(0)) / weight) if mine else None
    return out

"""Attainment, tiers and payment, in decimal arithmetic only.

- Actuals come from `marts.kpi_monthly`: counts are BIGINT (exact), rates are DOUBLE. A DOUBLE
  is turned into a decimal through its shortest round-trip text, `Decimal(repr(x))`: that is
  the number DuckDB, the dashboard and the CSV show (0.821917808219178), not the binary
  expansion of the double (0.82191780821917803...). It matters at tier boundaries: a rate
  computed as 9/10 is the double nearest 0.9 and must reach a 0.9 threshold exactly, while
  Decimal(0.7) = 0.6999999999999999555... would miss a 0.7 one.
- attainment = actual / target, computed exactly and then truncated (never rounded up) to 18
  decimal places, the scale it is stored at. Tier thresholds have at most 18 decimal places, so
  truncation never changes which tier is reached: the stored attainment is the compared one.
- factor = the tier with the highest min_attainment that the attainment reaches.
- payment = monthly_fee × Σ(weight × factor), rounded half-up to 0.01 CNY. Every step before
  the final rounding is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any, Mapping

from citycloud.config import CitycloudError
from citycloud.settlement.contracts import Contract, Tier

# Wide enough that no product or sum of the stored terms (38 digits each) is ever rounded.
_EXACT = Context(prec=200, rounding=ROUND_FLOOR)
ATTAINMENT_QUANTUM = Decimal("1e-18")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Line:
    """One KPI of a statement."""

    line_no: int
    kpi: str
    actual_raw: float | None  # the value as kpi_monthly holds it (stored as DOUBLE)
    actual: Decimal | None  # the exact decimal used (None: no value, e.g. no ratings)
    target: Decimal
    attainment: Decimal
    weight: Decimal
    tier_min_attainment: Decimal
    factor: Decimal
    weighted_factor: Decimal  # weight × factor


@dataclass(frozen=True)
class Computation:
    lines: tuple[Line, ...]
    weighted_factor: Decimal  # Σ weight × factor
    payment_cny: Decimal  # rounded half-up to 0.01

    def figures(self) -> dict[str, str | None]:
        """The actuals that decide the payment, as exact text (None for a null actual)."""
        return {ln.kpi: actual_text(ln.actual) for ln in self.lines}


def actual_text(d: Decimal | None) -> str | None:
    return None if d is None else format(d.normalize(), "f")


def exact_actual(value: Any, *, what: str = "actual") -> Decimal | None:
    """A KPI value from DuckDB as an exact Decimal (see the module docstring)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CitycloudError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CitycloudError(f"{what}: is {value!r} in marts.kpi_monthly; fix the KPI build before settling")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CitycloudError(f"{what}: is {value} in marts.kpi_monthly; fix the KPI build before settling")
        return value
    raise CitycloudError(f"{what}: expected a number, got {value!r}")


def attainment(actual: Decimal | None, target: Decimal) -> Decimal:
    """actual / target truncated to 18 places; a null actual gives 0."""
    if actual is None:
        return Decimal(0).quantize(ATTAINMENT_QUANTUM)
    with localcontext(_EXACT):
        q = actual / target
        return q.quantize(ATTAINMENT_QUANTUM, rounding=ROUND_FLOOR)


def tier_for(att: Decimal, tiers: tuple[Tier, ...]) -> Tier:
    """The tier with the highest min_attainment that `att` reaches (att >= min_attainment)."""
    reached = [t for t in tiers if att >= t.min_attainment]
    if not reached:  # cannot happen for att >= 0: validation requires a tier at 0
        raise CitycloudError(f"attainment {att} reaches no tier")
    return max(reached, key=lambda t: t.min_attainment)


def round_money(amount: Decimal) -> Decimal:
    """Half-up to 0.01 CNY (44000.005 → 44000.01, where round(float) would give 44000.0)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def compute(contract: Contract, actuals: Mapping[str, Any]) -> Computation:
    """Settle one contract from its month's KPI values (kpi name → value from kpi_monthly)."""
    lines = []
    with localcontext(_EXACT):
        total = Decimal(0)
        for i, term in enumerate(contract.kpis, start=1):
            raw = actuals.get(term.kpi)
            actual = exact_actual(raw, what=f"contract {contract.contract_id}: {term.kpi}")
            if actual is not None and actual < 0:
                raise CitycloudError(
                    f"contract {contract.contract_id}: {term.kpi} is negative ({actual_text(actual)}) in "
                    "marts.kpi_monthly; fix the KPI build before settling"
                )
            att = attainment(actual, term.target)
            tier = tier_for(att, contract.tiers)
            weighted = term.weight * tier.factor
            total += weighted
            lines.append(
                Line(
                    line_no=i,
                    kpi=term.kpi,
                    actual_raw=None if raw is None else float(raw),
                    actual=actual,
                    target=term.target,
                    attainment=att,
                    weight=term.weight,
                    tier_min_attainment=tier.min_attainment,
                    factor=tier.factor,
                    weighted_factor=weighted,
                )
            )
        payment = round_money(contract.monthly_fee_cny * total)
    return Computation(lines=tuple(lines), weighted_factor=total, payment_cny=payment)

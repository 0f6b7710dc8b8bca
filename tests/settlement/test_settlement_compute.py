"""Hand-computed payments: decimal attainment, tiers and half-up rounding."""
from __future__ import annotations

import csv
from decimal import Decimal

from citycloud.settlement import compute, parse_contracts
from citycloud.settlement.compute import attainment, exact_actual, round_money
from citycloud.settlement.contracts import load_contracts

from .conftest import FIXTURES, simple_contract

TINY = FIXTURES / "tiny"


def test_tiny_example_february():
    """The worked example: 38, 98, 110, 0.821917808219178 → 0.90, 0.00, 0.90, 1.00 → 33800.00."""
    contract = load_contracts(TINY / "contracts.yml")[0]
    with open(TINY / "kpi_monthly.csv", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    actuals = {
        "connected_services": int(row["connected_services"]),
        "registered_users": int(row["registered_users"]),
        "mau": int(row["mau"]),
        "activity_rate": float(row["activity_rate"]),
        "satisfaction_rate": float(row["satisfaction_rate"]),
    }
    result = compute(contract, actuals)
    factors = {ln.kpi: ln.factor for ln in result.lines}
    assert factors == {
        "connected_services": Decimal("0.90"),
        "registered_users": Decimal("0.00"),
        "mau": Decimal("0.90"),
        "satisfaction_rate": Decimal("1.00"),
    }
    # 52000 × (0.2×0.9 + 0.3×0 + 0.3×0.9 + 0.2×1.0) = 52000 × 0.65
    assert result.weighted_factor == Decimal("0.65")
    assert result.payment_cny == Decimal("33800.00")
    assert str(result.payment_cny) == "33800.00"


def test_tier_boundary_hit_exactly():
    contract = parse_contracts(simple_contract())[0]
    # 36/40 = 0.9 exactly, and 0.72/0.8 = 0.9 exactly in decimal (0.8999999999999999 in floats)
    assert 0.72 / 0.8 < 0.9  # what binary floats would have paid: the 0.60 tier
    result = compute(contract, {"connected_services": 36, "satisfaction_rate": 0.72})
    by = {ln.kpi: ln for ln in result.lines}
    assert by["connected_services"].attainment == Decimal("0.9")
    assert by["satisfaction_rate"].attainment == Decimal("0.9")
    assert by["connected_services"].factor == Decimal("0.90")
    assert by["satisfaction_rate"].factor == Decimal("0.90")
    assert result.payment_cny == Decimal("46800.00")  # 52000 × 0.9
    # Just below the boundary: the next tier down.
    below = compute(contract, {"connected_services": 35, "satisfaction_rate": 0.7199999999})
    assert [ln.factor for ln in below.lines] == [Decimal("0.60"), Decimal("0.60")]
    # At 1.00 exactly: full factor.
    full = compute(contract, {"connected_services": 40, "satisfaction_rate": 0.8})
    assert full.payment_cny == Decimal("52000.00")


def test_null_actual_gives_attainment_zero():
    """No ratings in the month: satisfaction_rate is null → attainment 0 → the tier at 0."""
    contract = parse_contracts(simple_contract())[0]
    result = compute(contract, {"connected_services": 40, "satisfaction_rate": None})
    sat = result.lines[1]
    assert sat.actual is None and sat.actual_raw is None
    assert sat.attainment == 0
    assert sat.factor == Decimal("0.00")
    assert result.payment_cny == Decimal("26000.00")  # 52000 × (0.5×1 + 0.5×0)


def test_half_up_rounding_differs_from_float():
    contract = parse_contracts(simple_contract(fee="88000.01"))[0]
    assert contract.monthly_fee_cny == Decimal("88000.01")  # read from the YAML text, not a float
    result = compute(contract, {"connected_services": 40, "satisfaction_rate": 0.1})
    # 88000.01 × 0.5 = 44000.005 → half-up 44000.01 (floats: round(44000.005, 2) = 44000.0)
    assert result.weighted_factor == Decimal("0.5")
    assert result.payment_cny == Decimal("44000.01")
    assert round(88000.01 * 0.5, 2) == 44000.0
    assert round_money(Decimal("0.125")) == Decimal("0.13")
    assert round_money(Decimal("44000.004999")) == Decimal("44000.00")


def test_double_actuals_use_their_shortest_text():
    assert exact_actual(0.821917808219178) == Decimal("0.821917808219178")
    assert exact_actual(0.7) == Decimal("0.7")  # Decimal(0.7) would be 0.69999999999999995559...
    assert exact_actual(38) == Decimal(38)
    assert exact_actual(None) is None
    assert exact_actual(Decimal("0.25")) == Decimal("0.25")


def test_attainment_truncates_never_rounds_up():
    # 2/3 → 0.666666666666666666 (18 places, truncated)
    assert attainment(Decimal(2), Decimal(3)) == Decimal("0.666666666666666666")
    # a hair under a threshold stays under it
    assert attainment(Decimal("0.8999999999999999999999"), Decimal(1)) < Decimal("0.9")

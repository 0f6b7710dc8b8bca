"""Contract file validation and the refusals of settle(), each with its own message."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from citycloud.config import CitycloudError
from citycloud.settlement import load_contracts, parse_contracts, settle

from .conftest import MARCH_5, SHANGHAI, simple_contract

ROOT = Path(__file__).resolve().parents[2]


def refused(text: str) -> str:
    with pytest.raises(CitycloudError) as exc:
        parse_contracts(text)
    msg = str(exc.value)
    assert "nothing was settled" in msg
    return msg


def test_valid_contract_is_read_exactly():
    c = parse_contracts(simple_contract(fee="88000.01"))[0]
    assert c.contract_id == "CS-T-001" and c.city_code == "430100"
    assert c.operator == "长沙数智科技集团有限公司"
    assert c.monthly_fee_cny == Decimal("88000.01")
    assert [k.weight for k in c.kpis] == [Decimal("0.5"), Decimal("0.5")]
    assert [t.min_attainment for t in c.tiers] == sorted((t.min_attainment for t in c.tiers), reverse=True)
    assert c.covers("2026-02") and not c.covers("2027-01")


def test_weights_not_summing_to_one():
    msg = refused(simple_contract().replace("target: 0.8, weight: 0.5", "target: 0.8, weight: 0.4"))
    assert "contract CS-T-001: kpis.weight: weights must sum to 1 (within 1e-9), they sum to 0.9" in msg


def test_weights_within_tolerance_are_accepted():
    # 0.500000001 + 0.5 = 1.000000001: off by exactly 1e-9, accepted; 2e-9 is refused.
    text = simple_contract().replace("weight: 0.5}", "weight: 0.500000001}", 1)
    assert parse_contracts(text)[0].kpis[0].weight == Decimal("0.500000001")
    msg = refused(simple_contract().replace("weight: 0.5}", "weight: 0.500000002}", 1))
    assert "they sum to 1.000000002" in msg


def test_unknown_kpi():
    msg = refused(simple_contract().replace("kpi: satisfaction_rate", "kpi: mau_30d"))
    assert "contract CS-T-001: kpis[2].kpi: unknown KPI 'mau_30d' (known: connected_services" in msg


def test_missing_tier_at_zero():
    msg = refused(simple_contract().replace("      - {min_attainment: 0.00, factor: 0.00}\n", ""))
    assert "contract CS-T-001: tiers: there must be a tier at min_attainment 0" in msg


def test_month_range_backwards():
    msg = refused(simple_contract(start="2026-12", end="2026-01"))
    assert (
        "contract CS-T-001: start_month/end_month: the month range runs backwards: "
        "start_month 2026-12 is after end_month 2026-01" in msg
    )


def test_all_problems_are_listed_at_once():
    text = simple_contract(start="2026-12", end="2026-01").replace("kpi: satisfaction_rate", "kpi: nps")
    text += simple_contract(cid="CS-T-001", city="510100").split("contracts:\n", 1)[1].replace(
        "monthly_fee_cny: 52000.00", "monthly_fee_cny: -5"
    )
    msg = refused(text)
    assert "unknown KPI 'nps'" in msg
    assert "runs backwards" in msg
    assert "monthly_fee_cny: must be positive, got -5" in msg
    assert "contract CS-T-001: contract_id: appears 2 times: contract ids must be unique" in msg
    assert msg.count("\n  - ") >= 4


@pytest.mark.parametrize(
    "change, expected",
    [
        (('city_code: "430100"', "city_code: 430100"), 'city_code: must be a 6-digit string (quote it: city_code: "310000")'),
        (('city_code: "430100"', 'city_code: "4301"'), "city_code: must be a 6-digit string"),
        (("monthly_fee_cny: 52000.00", "monthly_fee_cny: 0"), "monthly_fee_cny: must be positive"),
        (("monthly_fee_cny: 52000.00", "monthly_fee_cny: 52000.005"), "at most 2 decimal places"),
        (("monthly_fee_cny: 52000.00", 'monthly_fee_cny: "52000"'), "monthly_fee_cny: must be a number"),
        (("target: 40,", "target: 0,"), "kpis[1](connected_services).target: must be > 0, got 0"),
        (("{min_attainment: 0.90, factor: 0.90}", "{min_attainment: 0.90, factor: 1.5}"), "tiers[2].factor: must be between 0 and 1, got 1.5"),
        (("{min_attainment: 0.90, factor: 0.90}", "{min_attainment: 0.90, factor: 0.50}"), "factors must not fall as attainment rises"),
        (("start_month: 2026-01", "start_month: 2026-01-01"), "start_month: must be a month written YYYY-MM, e.g. 2026-01 (write the month, not a date)"),
        (("start_month: 2026-01", "start_month: 2026-13"), "start_month: must be a month written YYYY-MM"),
        (("operator: 长沙数智科技集团有限公司", "operater: 长沙数智科技集团有限公司"), "operater: unknown field"),
        (("kpi: satisfaction_rate", "kpi: connected_services"), "kpis[2].kpi: KPI connected_services is listed twice"),
    ],
)
def test_type_and_sanity_rules(change, expected):
    old, new = change
    text = simple_contract()
    assert old in text
    msg = refused(text.replace(old, new, 1))
    assert expected in msg
    assert "contract CS-T-001" in msg


def test_duplicate_yaml_key_and_bad_yaml():
    text = simple_contract().replace("    end_month: 2026-12\n", "    end_month: 2026-12\n    end_month: 2027-12\n")
    with pytest.raises(CitycloudError, match="duplicate key 'end_month'"):
        parse_contracts(text)
    with pytest.raises(CitycloudError, match="not valid YAML"):
        parse_contracts("contracts: [\n")
    with pytest.raises(CitycloudError, match="top-level `contracts:` list"):
        parse_contracts("- a\n")


def test_missing_file(tmp_path):
    with pytest.raises(CitycloudError, match="nope.yml: file not found: pass --contracts FILE or set CITYCLOUD_CONTRACTS$"):
        load_contracts(tmp_path / "nope.yml")


def test_demo_contracts_are_valid():
    contracts = load_contracts(ROOT / "contracts" / "contracts.yml")
    assert sorted(c.city_code for c in contracts) == ["310000", "411700", "430100", "460100", "510100"]
    assert all(c.operator and c.city_name for c in contracts)


# ---- refusals of settle() itself -------------------------------------------------------------
def _nothing_written(settings) -> None:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()}
        if "settlement_statements" in names:
            assert con.execute("SELECT count(*) FROM marts.settlement_statements").fetchone()[0] == 0
    assert not (settings.output / "statements").exists()


def test_bad_file_settles_nothing(settings, wh, contracts_file):
    wh.kpi("430100", "2026-02", connected_services=40, satisfaction_rate=0.8)
    wh.kpi("510100", "2026-02", connected_services=40, satisfaction_rate=0.8)
    good = simple_contract(cid="CD-T-001", city="510100")
    bad = simple_contract().replace("kpi: satisfaction_rate", "kpi: nps").split("contracts:\n", 1)[1]
    contracts_file(good + bad)
    with pytest.raises(CitycloudError, match="unknown KPI 'nps'"):
        settle(settings, "2026-02", now=MARCH_5)
    _nothing_written(settings)


def test_city_with_no_data(settings, wh, contracts_file):
    wh.kpi("430100", "2026-02", connected_services=40, satisfaction_rate=0.8)
    contracts_file(simple_contract() + simple_contract(cid="ZMD-T-001", city="411700").split("contracts:\n", 1)[1])
    with pytest.raises(CitycloudError) as exc:
        settle(settings, "2026-02", now=MARCH_5)
    assert "contract ZMD-T-001: city_code: city 411700 has no data in the warehouse" in str(exc.value)
    assert "CS-T-001" not in str(exc.value)
    _nothing_written(settings)


def test_city_without_the_month(settings, wh, contracts_file):
    wh.kpi("430100", "2026-01", connected_services=40, satisfaction_rate=0.8)
    contracts_file(simple_contract())
    with pytest.raises(CitycloudError) as exc:
        settle(settings, "2026-02", now=MARCH_5)
    assert "contract CS-T-001: city 430100 has no marts.kpi_monthly row for 2026-02" in str(exc.value)
    _nothing_written(settings)


def test_month_not_ended(settings, wh, contracts_file):
    wh.kpi("430100", "2026-02", connected_services=40, satisfaction_rate=0.8)
    contracts_file(simple_contract())
    # 2026-02-28 23:59 in Shanghai is 15:59 UTC: February has not ended there.
    with pytest.raises(CitycloudError) as exc:
        settle(settings, "2026-02", now=datetime(2026, 2, 28, 23, 59, tzinfo=SHANGHAI))
    assert "month 2026-02 has not ended (it ends 2026-03-01 00:00 Asia/Shanghai" in str(exc.value)
    _nothing_written(settings)
    # 16:00 UTC on the 28th is midnight in Shanghai: it has.
    report = settle(settings, "2026-02", now=datetime(2026, 2, 28, 16, 0, tzinfo=timezone.utc))
    assert report.results[0].version == 1


def test_bad_month_argument(settings, wh, contracts_file):
    contracts_file(simple_contract())
    with pytest.raises(CitycloudError, match="write it YYYY-MM"):
        settle(settings, "2026-2", now=MARCH_5)


def test_missing_warehouse(settings, contracts_file):
    contracts_file(simple_contract())
    with pytest.raises(CitycloudError, match="does not exist: run `citycloud run` first"):
        settle(settings, "2026-02", now=MARCH_5)
    assert not settings.warehouse.exists()

"""Contract terms: load `contracts.yml` and refuse anything a contract manager would not sign.

Every number in the file is read as `decimal.Decimal` straight from its YAML text
(citycloud.yaml_files: `52000.10` never passes through a binary float), so weights, targets,
tiers and fees are exactly what the contract manager typed. Each contract is checked by pydantic
models (one rule per field type) plus the rules across fields (`_cross_field_problems`).

A file with any problem settles nothing: `load_contracts` raises one `CitycloudError` that
lists every problem found, each naming the contract, the field and the rule.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Iterable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from citycloud import registry
from citycloud.config import CitycloudError
from citycloud.validation import as_number, decimal_places, is_city_code, month_text, problems_of, show
from citycloud.yaml_files import parse_yaml, read_text


def known_kpis() -> tuple[str, ...]:
    """The KPIs a contract may be paid on: the metrics marked `payable` in the semantic layer
    (dbt_project/models/semantic, kpis.md "Contracts and settlement")."""
    return registry.load().payable()


def rate_kpis() -> frozenset[str]:
    """Ratios (shown as percentages); the others are counts. From the metrics' `format`."""
    return registry.load().rates()

WEIGHT_TOLERANCE = Decimal("1e-9")
# Targets, weights, tiers are stored as DECIMAL(38,18); the fee as DECIMAL(18,2).
MAX_TERM_PLACES = 18
# weight × factor must fit 18 places exactly, so each has at most 9.
MAX_FACTOR_PLACES = 9
MAX_TERM_VALUE = Decimal("1e20")
MAX_FEE = Decimal("1e16")

_CONTRACT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")



@dataclass(frozen=True)
class KpiTerm:
    kpi: str
    target: Decimal
    weight: Decimal


@dataclass(frozen=True)
class Tier:
    min_attainment: Decimal
    factor: Decimal


@dataclass(frozen=True)
class Contract:
    contract_id: str
    city_code: str
    operator: str
    start_month: str  # YYYY-MM, first month covered
    end_month: str  # YYYY-MM, last month covered
    monthly_fee_cny: Decimal
    kpis: tuple[KpiTerm, ...]
    tiers: tuple[Tier, ...]  # sorted by min_attainment, highest first
    city_name: str | None = None
    notes: str | None = None

    def covers(self, month: str) -> bool:
        return self.start_month <= month <= self.end_month

    def terms(self) -> dict[str, Any]:
        """The full terms as JSON-ready data (decimals as strings, exactly as in the file)."""
        return {
            "contract_id": self.contract_id,
            "city_code": self.city_code,
            "city_name": self.city_name,
            "operator": self.operator,
            "start_month": self.start_month,
            "end_month": self.end_month,
            "monthly_fee_cny": _dec_text(self.monthly_fee_cny),
            "kpis": [
                {"kpi": k.kpi, "target": _dec_text(k.target), "weight": _dec_text(k.weight)} for k in self.kpis
            ],
            "tiers": [
                {"min_attainment": _dec_text(t.min_attainment), "factor": _dec_text(t.factor)} for t in self.tiers
            ],
        }

    def terms_json(self) -> str:
        return json.dumps(self.terms(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def payment_terms_hash(self) -> str:
        """sha256 of the terms that decide the payment (city, fee, KPIs, tiers).

        The operator's spelling, the city name or the contract's month range do not change
        a month's figures, so editing them does not make a new statement version.
        """
        data = {
            "city_code": self.city_code,
            "monthly_fee_cny": _norm(self.monthly_fee_cny),
            "kpis": [[k.kpi, _norm(k.target), _norm(k.weight)] for k in self.kpis],
            "tiers": [[_norm(t.min_attainment), _norm(t.factor)] for t in self.tiers],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _dec_text(d: Decimal) -> str:
    return format(d, "f")


def _norm(d: Decimal) -> str:
    """Canonical text of a decimal: 0.30 and 0.3 are the same term."""
    return format(d.normalize(), "f")


# --------------------------------------------------------------------------------------------
# Validation: the shape of a contract as pydantic models, each field type raising its rule
# --------------------------------------------------------------------------------------------
def _contract_id(value: Any) -> str:
    if isinstance(value, str) and _CONTRACT_ID_RE.match(value):
        return value
    raise ValueError("is required: a string of letters, digits, '.', '_' or '-' (it is used in file names), "
                     f"got {show(value)}")


def _city_code(value: Any) -> str:
    if is_city_code(value):
        return value
    quote = ' (quote it: city_code: "310000")' if isinstance(value, int) and not isinstance(value, bool) else ""
    raise ValueError(f"must be a 6-digit string{quote}, got {show(value)}")


def _non_empty_text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"must be a non-empty string, got {show(value)}")


def _optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"must be a string, got {show(value)}")


def _fee(d: Decimal) -> Decimal:
    if d <= 0:
        raise ValueError(f"must be positive, got {show(d)}")
    if decimal_places(d) > 2:
        raise ValueError(f"must be in whole fen (at most 2 decimal places), got {show(d)}")
    if d >= MAX_FEE:
        raise ValueError(f"is implausibly large (must be below 1e16), got {show(d)}")
    return d.quantize(Decimal("0.01"))


def _term(rule: str, ok, places: int = MAX_TERM_PLACES) -> AfterValidator:
    """A contract term (target, weight, threshold, factor): `rule` holds and it fits DECIMAL(38,18)."""
    def check(d: Decimal) -> Decimal:
        if not ok(d):
            raise ValueError(f"{rule}, got {show(d)}")
        if decimal_places(d) > places or abs(d) >= MAX_TERM_VALUE:
            raise ValueError(f"must have at most {places} decimal places and be below 1e20, got {show(d)}")
        return d
    return AfterValidator(check)


def _payable_kpi(value: Any) -> str:
    if value in known_kpis():
        return value
    raise ValueError(f"unknown KPI {show(value)} (known: {', '.join(known_kpis())})")


def _non_empty_list(shape: str):
    def check(value: Any) -> Any:
        if isinstance(value, list) and value:
            return value
        raise ValueError(f"must be a non-empty list of {shape}")
    return BeforeValidator(check)


Number = Annotated[Decimal, BeforeValidator(as_number)]
Month = Annotated[str, BeforeValidator(lambda v: month_text(v, example="2026-01"))]
Weight = Annotated[Number, _term("must be > 0 and at most 1", lambda d: 0 < d <= 1, MAX_FACTOR_PLACES)]
Factor = Annotated[Number, _term("must be between 0 and 1", lambda d: 0 <= d <= 1, MAX_FACTOR_PLACES)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping {{{', '.join(cls.model_fields)}}}, got {show(value)}")
        return value


class KpiTermIn(_Entry):
    kpi: Annotated[str, BeforeValidator(_payable_kpi)]
    target: Annotated[Number, _term("must be > 0", lambda d: d > 0)]
    weight: Weight


class TierIn(_Entry):
    min_attainment: Annotated[Number, _term("must be >= 0", lambda d: d >= 0)]
    factor: Factor


class ContractIn(BaseModel):
    """One entry of `contracts:` as the contract manager wrote it."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: Annotated[str, BeforeValidator(_contract_id)] = Field(None, validate_default=True)
    city_code: Annotated[str, BeforeValidator(_city_code)]
    operator: Annotated[str, BeforeValidator(_non_empty_text)]
    start_month: Month
    end_month: Month
    monthly_fee_cny: Annotated[Number, AfterValidator(_fee)]
    kpis: Annotated[list[KpiTermIn], _non_empty_list("{kpi, target, weight}")]
    tiers: Annotated[list[TierIn], _non_empty_list("{min_attainment, factor}")]
    city_name: Annotated[str | None, BeforeValidator(_optional_text)] = None
    notes: Annotated[str | None, BeforeValidator(_optional_text)] = None


REQUIRED_FIELDS = tuple(n for n, f in ContractIn.model_fields.items() if f.is_required() or n == "contract_id")
OPTIONAL_FIELDS = tuple(n for n in ContractIn.model_fields if n not in REQUIRED_FIELDS)
_FIELDS_OF = {(): ContractIn.model_fields, ("kpis",): KpiTermIn.model_fields, ("tiers",): TierIn.model_fields}


def _valid(kind: Any, value: Any) -> Any:
    """`value` read as `kind`, or None when it breaks a rule (reported by the model already)."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return None


def _cross_field_problems(raw: dict) -> list[tuple[str, str]]:
    """The rules across fields, on the raw entry: checked wherever the fields they read are valid,
    so one refusal lists every problem even when another field of the contract is broken."""
    out = []
    start, end = _valid(Month, raw.get("start_month")), _valid(Month, raw.get("end_month"))
    if start and end and start > end:
        out.append(("start_month/end_month", f"the month range runs backwards: start_month {start} is after end_month {end}"))
    items = raw.get("kpis") if isinstance(raw.get("kpis"), list) else []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        name = item.get("kpi") if isinstance(item, dict) else None
        if isinstance(name, str) and name in known_kpis():
            if name in seen:
                out.append((f"kpis[{i}].kpi", f"KPI {name} is listed twice"))
            seen.add(name)
    weights = [_valid(Weight, item.get("weight")) if isinstance(item, dict) else None for item in items]
    if weights and None not in weights:
        total = sum(weights, Decimal(0))
        if abs(total - 1) > WEIGHT_TOLERANCE:
            out.append(("kpis.weight", f"weights must sum to 1 (within 1e-9), they sum to {show(total)}"))
    tiers = _valid(list[TierIn], raw.get("tiers")) if isinstance(raw.get("tiers"), list) else None
    if tiers:
        out += _tier_problems(tiers)
    return out


def _tier_problems(tiers: list[TierIn]) -> list[tuple[str, str]]:
    out = []
    thresholds = [t.min_attainment for t in tiers]
    dupes = sorted({_norm(t) for t in thresholds if thresholds.count(t) > 1})
    if dupes:
        out.append(("tiers", f"min_attainment {', '.join(dupes)} appears more than once"))
    if not any(t.min_attainment == 0 for t in tiers):
        out.append(("tiers", "there must be a tier at min_attainment 0 (the factor paid below every other threshold)"))
    ordered = sorted(tiers, key=lambda t: t.min_attainment)
    for lower, higher in zip(ordered, ordered[1:]):
        if higher.factor < lower.factor:
            out.append(("tiers", f"factors must not fall as attainment rises: min_attainment {_norm(higher.min_attainment)} "
                                 f"pays {_norm(higher.factor)}, less than {_norm(lower.factor)} at {_norm(lower.min_attainment)}"))
            break
    return out


def _field_label(loc: tuple, raw: dict) -> tuple:
    """kpis[2].target reads kpis[2](satisfaction_rate).target: the manager sees which KPI it is."""
    if len(loc) == 3 and loc[0] == "kpis" and isinstance(loc[1], int) and loc[2] in ("target", "weight"):
        item = raw["kpis"][loc[1]]
        if isinstance(item.get("kpi"), str):
            return (f"kpis[{loc[1] + 1}]({item['kpi']})", loc[2])
    return loc


def _validate_contract(index: int, raw: Any) -> tuple[Contract | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"contract #{index + 1}: must be a mapping of fields, got {show(raw)}"]
    cid = raw.get("contract_id")
    where = f"contract {cid}" if isinstance(cid, str) and _CONTRACT_ID_RE.match(cid) else f"contract #{index + 1}"
    problems: list[tuple[str, str]] = []
    entry = None
    try:
        entry = ContractIn.model_validate(raw)
    except ValidationError as exc:
        problems += problems_of(exc, label=lambda loc: _field_label(loc, raw), fields_of=_FIELDS_OF)
    problems += _cross_field_problems(raw)
    if problems:
        return None, [f"{where}: {field}: {rule}" if field else f"{where}: {rule}" for field, rule in problems]
    return Contract(
        contract_id=entry.contract_id, city_code=entry.city_code, operator=entry.operator,
        start_month=entry.start_month, end_month=entry.end_month, monthly_fee_cny=entry.monthly_fee_cny,
        kpis=tuple(KpiTerm(k.kpi, k.target, k.weight) for k in entry.kpis),
        tiers=tuple(Tier(t.min_attainment, t.factor) for t in sorted(entry.tiers, key=lambda t: t.min_attainment, reverse=True)),
        city_name=entry.city_name, notes=entry.notes,
    ), []


def contract_problems(data: Any) -> tuple[list[Contract], list[str]]:
    """Validate parsed YAML data; returns the valid contracts and the list of problems."""
    if not isinstance(data, dict) or "contracts" not in data:
        return [], ["contracts file: contracts: the file must be a mapping with a top-level `contracts:` list"]
    problems = []
    extra = sorted(set(data) - {"contracts"})
    if extra:
        problems.append(f"contracts file: {', '.join(map(str, extra))}: unknown top-level key(s) (only `contracts:` is allowed)")
    items = data["contracts"]
    if not isinstance(items, list) or not items:
        return [], problems + ["contracts file: contracts: must be a non-empty list of contracts"]
    contracts: list[Contract] = []
    for i, raw in enumerate(items):
        contract, found = _validate_contract(i, raw)
        problems += found
        if contract is not None:
            contracts.append(contract)
    ids = [raw.get("contract_id") for raw in items if isinstance(raw, dict) and isinstance(raw.get("contract_id"), str)]
    for cid in sorted({c for c in ids if ids.count(c) > 1}):
        problems.append(f"contract {cid}: contract_id: appears {ids.count(cid)} times: contract ids must be unique")
    return contracts, problems


def parse_contracts(text: str, source: str = "contracts file") -> list[Contract]:
    """Parse and validate YAML text; raises CitycloudError listing every problem."""
    try:
        data = parse_yaml(text, source)
    except CitycloudError as exc:
        raise CitycloudError(f"{exc}. Fix the file; nothing was settled.") from None
    contracts, problems = contract_problems(data)
    if problems:
        raise_problems(source, problems)
    return contracts


def load_contracts(path: Path | str) -> list[Contract]:
    """Load and validate a contracts file (all rules that need no warehouse)."""
    text = read_text(path, "contracts file", missing_hint=": pass --contracts FILE or set CITYCLOUD_CONTRACTS")
    return parse_contracts(text, source=f"contracts file {path}")


def raise_problems(source: str, problems: Iterable[str]) -> None:
    problems = list(problems)
    lines = "\n".join(f"  - {x}" for x in problems)
    raise CitycloudError(
        f"{source} was refused ({len(problems)} problem{'s' if len(problems) != 1 else ''}); "
        f"nothing was settled. Fix these and run again:\n{lines}"
    )


def city_problems(contracts: Iterable[Contract], cities_with_data: set[str]) -> list[str]:
    """The rule that needs the warehouse: every contract's city has KPI data."""
    out = []
    for c in contracts:
        if c.city_code not in cities_with_data:
            out.append(
                f"contract {c.contract_id}: city_code: city {c.city_code} has no data in the warehouse "
                "(no marts.kpi_monthly rows): check the code, or ingest its deliveries with `citycloud run` first"
            )
    return out

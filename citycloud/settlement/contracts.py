"""Contract terms: load `contracts.yml` and refuse anything a contract manager would not sign.

Every number in the file is read as `decimal.Decimal` straight from its YAML text (a custom
loader: `52000.10` never passes through a binary float), so weights, targets, tiers and fees
are exactly what the contract manager typed.

A file with any problem settles nothing: `load_contracts` raises one `CitycloudError` that
lists every problem found, each naming the contract, the field and the rule.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

import yaml

from citycloud import registry
from citycloud.config import CitycloudError


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

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_CONTRACT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CITY_RE = re.compile(r"^\d{6}$")

REQUIRED_FIELDS = ("contract_id", "city_code", "operator", "start_month", "end_month", "monthly_fee_cny", "kpis", "tiers")
OPTIONAL_FIELDS = ("city_name", "notes")


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
# YAML: numbers as Decimal, duplicate keys refused
# --------------------------------------------------------------------------------------------
class _ContractsLoader(yaml.SafeLoader):
    """SafeLoader that reads floats as Decimal (from their text) and refuses duplicate keys and
    aliases (a few hundred bytes of nested aliases expand to gigabytes: a "billion laughs")."""

    def compose_node(self, parent, index):  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed: write each value out", event.start_mark)
        return super().compose_node(parent, index)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        # .inf, .nan and friends: keep YAML's meaning; validation refuses non-finite numbers.
        return yaml.SafeLoader.construct_yaml_float(loader, node)
    return value


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=True)


_ContractsLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_ContractsLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, field: str, rule: str) -> None:
        self.items.append(f"{where}: {field}: {rule}" if field else f"{where}: {rule}")


def _number(value: Any) -> Decimal | None:
    """A finite number from YAML (int or Decimal), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


def _places(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def _describe(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return repr(value)


def _check_term_number(
    p: _Problems, where: str, field: str, value: Any, rule: str, ok, places: int = MAX_TERM_PLACES
) -> Decimal | None:
    d = _number(value)
    if d is None:
        p.add(where, field, f"must be a number, got {_describe(value)}")
        return None
    if not ok(d):
        p.add(where, field, f"{rule}, got {_describe(value)}")
        return None
    if _places(d) > places or abs(d) >= MAX_TERM_VALUE:
        p.add(where, field, f"must have at most {places} decimal places and be below 1e20, got {_describe(value)}")
        return None
    return d


def _check_month(p: _Problems, where: str, field: str, value: Any) -> str | None:
    if isinstance(value, str):
        m = _MONTH_RE.match(value)
        if m and 1 <= int(m.group(2)) <= 12:
            return value
    hint = " (write the month, not a date)" if hasattr(value, "year") else ""
    p.add(where, field, f"must be a month written YYYY-MM, e.g. 2026-01{hint}, got {_describe(value)}")
    return None


def _validate_contract(p: _Problems, index: int, raw: Any) -> Contract | None:
    if not isinstance(raw, dict):
        p.add(f"contract #{index + 1}", "", f"must be a mapping of fields, got {_describe(raw)}")
        return None
    cid = raw.get("contract_id")
    if isinstance(cid, str) and _CONTRACT_ID_RE.match(cid):
        where = f"contract {cid}"
    else:
        where = f"contract #{index + 1}"
        p.add(
            where,
            "contract_id",
            "is required: a string of letters, digits, '.', '_' or '-' (it is used in file names), "
            f"got {_describe(cid)}",
        )
        cid = None
    ok = cid is not None

    for key in raw:
        if key not in REQUIRED_FIELDS and key not in OPTIONAL_FIELDS:
            p.add(where, str(key), f"unknown field (allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
            ok = False
    for key in REQUIRED_FIELDS:
        if key != "contract_id" and key not in raw:
            p.add(where, key, "is required")
            ok = False

    city = raw.get("city_code")
    if "city_code" in raw and not (isinstance(city, str) and _CITY_RE.match(city)):
        quote = ' (quote it: city_code: "310000")' if isinstance(city, int) and not isinstance(city, bool) else ""
        p.add(where, "city_code", f"must be a 6-digit string{quote}, got {_describe(city)}")
        ok = False

    operator = raw.get("operator")
    if "operator" in raw and not (isinstance(operator, str) and operator.strip()):
        p.add(where, "operator", f"must be a non-empty string, got {_describe(operator)}")
        ok = False
    for key in OPTIONAL_FIELDS:
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            p.add(where, key, f"must be a string, got {_describe(raw[key])}")
            ok = False

    start = _check_month(p, where, "start_month", raw.get("start_month")) if "start_month" in raw else None
    end = _check_month(p, where, "end_month", raw.get("end_month")) if "end_month" in raw else None
    if start and end and start > end:
        p.add(where, "start_month/end_month", f"the month range runs backwards: start_month {start} is after end_month {end}")
        ok = False
    if ("start_month" in raw and not start) or ("end_month" in raw and not end):
        ok = False

    fee = None
    if "monthly_fee_cny" in raw:
        fee = _number(raw["monthly_fee_cny"])
        if fee is None:
            p.add(where, "monthly_fee_cny", f"must be a number, got {_describe(raw['monthly_fee_cny'])}")
        elif fee <= 0:
            p.add(where, "monthly_fee_cny", f"must be positive, got {_describe(fee)}")
            fee = None
        elif _places(fee) > 2:
            p.add(where, "monthly_fee_cny", f"must be in whole fen (at most 2 decimal places), got {_describe(fee)}")
            fee = None
        elif fee >= MAX_FEE:
            p.add(where, "monthly_fee_cny", f"is implausibly large (must be below 1e16), got {_describe(fee)}")
            fee = None
        ok = ok and fee is not None

    kpis: list[KpiTerm] = []
    raw_kpis = raw.get("kpis")
    if "kpis" in raw:
        if not isinstance(raw_kpis, list) or not raw_kpis:
            p.add(where, "kpis", "must be a non-empty list of {kpi, target, weight}")
            ok = False
        else:
            seen: set[str] = set()
            weights_ok = True
            for i, item in enumerate(raw_kpis):
                f = f"kpis[{i + 1}]"
                if not isinstance(item, dict):
                    p.add(where, f, f"must be a mapping {{kpi, target, weight}}, got {_describe(item)}")
                    ok = weights_ok = False
                    continue
                extra = sorted(set(item) - {"kpi", "target", "weight"})
                if extra:
                    p.add(where, f, f"unknown field(s) {', '.join(map(str, extra))} (allowed: kpi, target, weight)")
                    ok = False
                name = item.get("kpi")
                if name not in known_kpis():
                    p.add(where, f"{f}.kpi", f"unknown KPI {_describe(name)} (known: {', '.join(known_kpis())})")
                    ok = False
                elif name in seen:
                    p.add(where, f"{f}.kpi", f"KPI {name} is listed twice")
                    ok = False
                else:
                    seen.add(name)
                label = f"{f}({name})" if isinstance(name, str) else f
                target = _check_term_number(p, where, f"{label}.target", item.get("target"), "must be > 0", lambda d: d > 0)
                weight = _check_term_number(
                    p, where, f"{label}.weight", item.get("weight"), "must be > 0 and at most 1", lambda d: 0 < d <= 1,
                    MAX_FACTOR_PLACES,
                )
                if weight is None:
                    weights_ok = False
                if target is None or weight is None:
                    ok = False
                    continue
                kpis.append(KpiTerm(str(name), target, weight))
            if weights_ok and kpis:
                total = sum((k.weight for k in kpis), Decimal(0))
                if abs(total - 1) > WEIGHT_TOLERANCE:
                    p.add(where, "kpis.weight", f"weights must sum to 1 (within 1e-9), they sum to {_describe(total)}")
                    ok = False

    tiers: list[Tier] = []
    raw_tiers = raw.get("tiers")
    if "tiers" in raw:
        if not isinstance(raw_tiers, list) or not raw_tiers:
            p.add(where, "tiers", "must be a non-empty list of {min_attainment, factor}")
            ok = False
        else:
            tiers_ok = True
            for i, item in enumerate(raw_tiers):
                f = f"tiers[{i + 1}]"
                if not isinstance(item, dict):
                    p.add(where, f, f"must be a mapping {{min_attainment, factor}}, got {_describe(item)}")
                    ok = tiers_ok = False
                    continue
                extra = sorted(set(item) - {"min_attainment", "factor"})
                if extra:
                    p.add(where, f, f"unknown field(s) {', '.join(map(str, extra))} (allowed: min_attainment, factor)")
                    ok = False
                lo = _check_term_number(
                    p, where, f"{f}.min_attainment", item.get("min_attainment"), "must be >= 0", lambda d: d >= 0
                )
                fac = _check_term_number(
                    p, where, f"{f}.factor", item.get("factor"), "must be between 0 and 1", lambda d: 0 <= d <= 1,
                    MAX_FACTOR_PLACES,
                )
                if lo is None or fac is None:
                    ok = tiers_ok = False
                    continue
                tiers.append(Tier(lo, fac))
            if tiers_ok:
                thresholds = [t.min_attainment for t in tiers]
                dupes = sorted({_norm(t) for t in thresholds if thresholds.count(t) > 1})
                if dupes:
                    p.add(where, "tiers", f"min_attainment {', '.join(dupes)} appears more than once")
                    ok = False
                if not any(t.min_attainment == 0 for t in tiers):
                    p.add(
                        where,
                        "tiers",
                        "there must be a tier at min_attainment 0 (the factor paid below every other threshold)",
                    )
                    ok = False
                ordered = sorted(tiers, key=lambda t: t.min_attainment)
                for lower, higher in zip(ordered, ordered[1:]):
                    if higher.factor < lower.factor:
                        p.add(
                            where,
                            "tiers",
                            f"factors must not fall as attainment rises: min_attainment {_norm(higher.min_attainment)} "
                            f"pays {_norm(higher.factor)}, less than {_norm(lower.factor)} at {_norm(lower.min_attainment)}",
                        )
                        ok = False
                        break

    if not ok:
        return None
    return Contract(
        contract_id=cid,
        city_code=city,
        operator=operator.strip(),
        start_month=start,
        end_month=end,
        monthly_fee_cny=fee.quantize(Decimal("0.01")),
        kpis=tuple(kpis),
        tiers=tuple(sorted(tiers, key=lambda t: t.min_attainment, reverse=True)),
        city_name=raw.get("city_name"),
        notes=raw.get("notes"),
    )


def contract_problems(data: Any) -> tuple[list[Contract], list[str]]:
    """Validate parsed YAML data; returns the valid contracts and the list of problems."""
    p = _Problems()
    if not isinstance(data, dict) or "contracts" not in data:
        p.add("contracts file", "contracts", "the file must be a mapping with a top-level `contracts:` list")
        return [], p.items
    extra = sorted(set(data) - {"contracts"})
    if extra:
        p.add("contracts file", ", ".join(map(str, extra)), "unknown top-level key(s) (only `contracts:` is allowed)")
    items = data["contracts"]
    if not isinstance(items, list) or not items:
        p.add("contracts file", "contracts", "must be a non-empty list of contracts")
        return [], p.items
    contracts: list[Contract] = []
    for i, raw in enumerate(items):
        c = _validate_contract(p, i, raw)
        if c is not None:
            contracts.append(c)
    ids = [raw.get("contract_id") for raw in items if isinstance(raw, dict) and isinstance(raw.get("contract_id"), str)]
    for cid in sorted({c for c in ids if ids.count(c) > 1}):
        p.add(f"contract {cid}", "contract_id", f"appears {ids.count(cid)} times: contract ids must be unique")
    return contracts, p.items


def parse_contracts(text: str, source: str = "contracts file") -> list[Contract]:
    """Parse and validate YAML text; raises CitycloudError listing every problem."""
    try:
        loader = _ContractsLoader(text)
        loader.name = source  # YAML errors then name the file, not "<unicode string>"
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise CitycloudError(f"{source} is not valid YAML: {exc}. Fix the file; nothing was settled.") from exc
    contracts, problems = contract_problems(data)
    if problems:
        raise_problems(source, problems)
    return contracts


def load_contracts(path: Path | str) -> list[Contract]:
    """Load and validate a contracts file (all rules that need no warehouse)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CitycloudError(
            f"contracts file {path} does not exist: pass --contracts FILE or set CITYCLOUD_CONTRACTS"
        ) from exc
    except UnicodeDecodeError as exc:
        raise CitycloudError(f"contracts file {path} is not UTF-8 text: save it as UTF-8") from exc
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

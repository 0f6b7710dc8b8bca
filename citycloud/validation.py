"""Field rules and problem wording shared by the validation of people's files (contracts,
evaluation schemes, assessments): pydantic models whose field types raise ValueError(rule), and
their errors turned into "field: rule" lines a contract manager or reviewer can act on."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Mapping

from pydantic import ValidationError

from citycloud.config import CitycloudError

# [0-9], not \d: \d (and str.isdigit, int()) also take other scripts' digits, e.g. Arabic-Indic ٣١٠٠٠٠.
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
CITY_CODE = re.compile(r"[0-9]{6}")


def month_start(text: str | None) -> date:
    """The first day of a `--month YYYY-MM`; CitycloudError (one line) for anything else."""
    if not _MONTH.fullmatch(text or ""):
        raise CitycloudError(f"--month must be YYYY-MM, e.g. 2026-02, got {text!r}")
    return date.fromisoformat(f"{text}-01")


def is_city_code(value: Any) -> bool:
    """A 6-digit city code (a Chinese administrative division code) in ASCII digits."""
    return isinstance(value, str) and CITY_CODE.fullmatch(value) is not None


def show(value: Any) -> str:
    """A value as the person wrote it: decimals as plain text, anything else as its repr."""
    return format(value, "f") if isinstance(value, Decimal) else repr(value)


def as_number(value: Any) -> Decimal:
    """A finite number from YAML (int or Decimal; never a bool or a string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    raise ValueError(f"must be a number, got {show(value)}")


def decimal_places(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def month_text(value: Any, example: str) -> str:
    if isinstance(value, str) and _MONTH.fullmatch(value):
        return value
    hint = " (write the month, not a date)" if isinstance(value, date) else ""
    raise ValueError(f"must be a month written YYYY-MM, e.g. {example}{hint}, got {show(value)}")


def field_path(loc: tuple) -> str:
    """('indicators', 2, 'weight') -> 'indicators[3].weight' (1-based, as a person counts)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        elif not str(part).startswith(("function-", "list[", "literal[")):  # pydantic's union branch names
            text += ("." if text else "") + str(part)
    return text or "(entry)"


def problems_of(exc: ValidationError, label: Callable[[tuple], tuple] = lambda loc: loc,
                fields_of: Mapping[tuple, Mapping] | None = None) -> list[tuple[str, str]]:
    """(field, rule) for each pydantic error. `label` may rewrite a location; `fields_of` maps a
    location (without list indexes) to the fields allowed there, named when a field is unknown."""
    out = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            allowed = (fields_of or {}).get(tuple(p for p in err["loc"][:-1] if isinstance(p, str)))
            msg = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif err["type"] == "too_short":
            msg = "must not be empty"
        out.append((field_path(label(err["loc"])), msg))
    return out

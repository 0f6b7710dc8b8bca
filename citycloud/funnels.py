"""Funnels operators define in a funnels.yml (docs/spec/user_ops.md, "Funnels"; docs/user_ops.md).

The file is read with the project's YAML loader (no anchors or aliases, no duplicate keys),
validated here with pydantic, and handed to dbt as JSON in an environment variable that the
models read when they compile (macros/funnels.sql), as CITYCLOUD_SINCE_BATCH is: a new value
keeps dbt's partial parsing. Each funnel carries a fingerprint of its definition, so
marts.funnel_conversion rebuilds a funnel whose definition changed and no other.
Every refusal is one line naming the file, the funnel and the rule.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citycloud.config import CitycloudError
from citycloud.yaml_files import parse_yaml, read_text

ACCOUNT_EVENTS = ("register", "verify")
# The filters in the order a step's default label names them.
FILTERS = ("min_auth_level", "service_id", "category", "department", "outcome", "channel")
CATALOG_FILTERS = ("service_id", "category", "department")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["register", "verify", "access"]
    label: str | None = Field(None, min_length=1)
    min_auth_level: int | None = None
    service_id: str | None = Field(None, min_length=1)
    category: str | None = Field(None, min_length=1)
    department: str | None = Field(None, min_length=1)
    outcome: str | None = Field(None, min_length=1)
    channel: str | None = Field(None, min_length=1)
    first: bool = False

    @model_validator(mode="after")
    def _filters_fit_the_event(self) -> Step:
        if self.event == "access" and self.min_auth_level is not None:
            raise ValueError("min_auth_level filters register / verify steps, not access")
        if self.event in ACCOUNT_EVENTS:
            wrong = [f for f in ("service_id", "category", "department", "outcome") if getattr(self, f) is not None]
            if wrong:
                raise ValueError(f"{wrong[0]} filters access steps, not {self.event}")
        return self

    def default_label(self) -> str:
        parts = [self.event] + [f"{f}={getattr(self, f)}" for f in FILTERS if getattr(self, f) is not None]
        return " ".join(parts + (["first"] if self.first else []))


class Funnel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    label: str | None = None
    window_days: int = Field(gt=0)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _first_only_on_step_1(self) -> Funnel:
        if any(s.first for s in self.steps[1:]):
            raise ValueError("first: true is allowed on step 1 only")
        return self

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class FunnelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    funnels: list[Funnel] = Field(default_factory=list)


def _where(data, loc: tuple) -> str:
    """'funnel NAME: step K: FIELD' from a pydantic error location."""
    parts, node = [], data
    for i, key in enumerate(loc):
        if key == "funnels" and i == 0:
            pass
        elif isinstance(key, int) and i == 1:
            name = node[key].get("name") if isinstance(node, list) and isinstance(node[key], dict) else None
            parts.append(f"funnel {name or f'#{key + 1}'}")
        elif isinstance(key, int):
            parts.append(f"step {key + 1}")
        elif key != "steps":
            parts.append(str(key))
        node = node[key] if isinstance(node, (dict, list)) and _has(node, key) else None
    return ": ".join(parts)


def _has(node, key) -> bool:
    return (isinstance(node, dict) and key in node) or (isinstance(node, list) and isinstance(key, int) and key < len(node))


def load_funnels(path: Path | str) -> list[Funnel]:
    """The funnels of a funnels.yml, or CitycloudError "<file>: funnel <name>: step <k>: <rule>"."""
    source = str(path)
    data = parse_yaml(read_text(path, "funnels file"), source)
    if data is None:
        data = {}
    try:
        parsed = FunnelsFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _where(data, tuple(error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown {'filter' if 'step' in where else 'key'}"
        raise CitycloudError(f"{source}: {where + ': ' if where else ''}{message}") from None
    seen: set[str] = set()
    for funnel in parsed.funnels:
        if funnel.name in seen:
            raise CitycloudError(f"{source}: funnel {funnel.name}: duplicate name")
        seen.add(funnel.name)
    return list(parsed.funnels)


def check_against_catalog(funnels: list[Funnel], source: str, known: dict[str, set[str]]) -> None:
    """Refuse a service_id, category or department no catalog snapshot ever listed.
    `known` maps each catalog filter to the values the warehouse's catalogs had."""
    for funnel in funnels:
        for k, step in enumerate(funnel.steps, 1):
            for name in CATALOG_FILTERS:
                value = getattr(step, name)
                if value is not None and value not in known.get(name, set()):
                    raise CitycloudError(f"{source}: funnel {funnel.name}: step {k}: {name} {value!r} is in no "
                                         f"catalog snapshot the warehouse has")


def catalog_values(con) -> dict[str, set[str]]:  # noqa: ANN001 - a DuckDB connection
    """Every service_id, category and department the ingested catalog snapshots list."""
    try:
        rows = con.execute("SELECT DISTINCT service_id, category, department FROM raw.service_catalog").fetchall()
    except Exception:  # noqa: BLE001 - no catalog ingested yet: nothing is known
        rows = []
    return {name: {r[i] for r in rows if r[i] is not None} for i, name in enumerate(CATALOG_FILTERS)}


def definitions_json(funnels: list[Funnel]) -> str:
    """One row per funnel step, the form macros/funnels.sql reads."""
    rows = [{"funnel": f.name, "fingerprint": f.fingerprint(), "window_days": f.window_days, "step": k,
             "step_label": s.label or s.default_label(), "event": s.event, "is_first": s.first,
             **{name: getattr(s, name) for name in FILTERS}}
            for f in funnels for k, s in enumerate(f.steps, 1)]
    return json.dumps(rows, ensure_ascii=False, sort_keys=True)


def funnel_summary(published: Path, month: str) -> list[str]:
    """One line per funnel and city: the month's step counts (all channels) from the readers'
    snapshot, as `make demo` shows them."""
    from citycloud.publish import open_snapshot

    con = open_snapshot(path=published)
    try:
        rows = con.execute(
            "SELECT funnel, city_code, list(users ORDER BY step), list(step_label ORDER BY step), bool_and(window_complete) "
            "FROM marts.funnel_conversion WHERE grain = 'month' AND channel = 'all' AND strftime(period_start, '%Y-%m') = ? "
            "GROUP BY ALL ORDER BY ALL", [month]).fetchall()
    finally:
        con.close()
    lines = [f"funnels {month} (all channels; users per step):"] if rows else []
    for funnel, city, users, labels, complete in rows:
        steps = " → ".join(f"{label} {n:,}" for label, n in zip(labels, users))
        rate = f"{users[-1] / users[0]:.1%}" if users[0] else "n/a"
        lines.append(f"  {funnel} {city}: {steps} ({rate}){'' if complete else ', window incomplete'}")
    return lines

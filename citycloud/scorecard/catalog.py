"""The indicator catalogue (indicators.yml): names, dimensions, kinds and labels."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CATALOG_FILE = Path(__file__).with_name("indicators.yml")


@dataclass(frozen=True)
class Indicator:
    indicator: str
    dimension: str
    kind: str  # measured | assessed
    label: str
    format: str  # count | rate | score (display only)
    source: str


@dataclass(frozen=True)
class Dimension:
    dimension: str
    label: str
    label_en: str


@cache
def _load() -> tuple[dict[str, Indicator], dict[str, Dimension]]:
    data = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    indicators = {d["indicator"]: Indicator(**d) for d in data["indicators"]}
    dimensions = {d["dimension"]: Dimension(**d) for d in data["dimensions"]}
    return indicators, dimensions


def indicators() -> dict[str, Indicator]:
    return _load()[0]


def dimensions() -> dict[str, Dimension]:
    """In display order (content, mechanism, capability, results)."""
    return _load()[1]


def assessed() -> tuple[str, ...]:
    return tuple(name for name, i in indicators().items() if i.kind == "assessed")

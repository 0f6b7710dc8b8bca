"""The cities citycloud knows: the dbt seed `city_reference`, the one home of city facts."""
from __future__ import annotations

import csv
import functools

from citycloud.config import DBT_PROJECT_DIR

CITY_REFERENCE = DBT_PROJECT_DIR / "seeds" / "city_reference.csv"


@functools.cache
def city_names() -> dict[str, str]:
    """Code → official name, from the seed."""
    with CITY_REFERENCE.open(encoding="utf-8") as fh:
        return {row["city_code"]: row["official_name"] for row in csv.DictReader(fh)}

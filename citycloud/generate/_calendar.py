"""Holidays, make-up working days and injected anomalies for the generator (`--holidays`,
`--inject-drops`): how busy a city-day is relative to an ordinary Wednesday.

The calendar is the dbt seed holiday_calendar (its one home): a holiday is as quiet as half a
Sunday, a make-up working day (调休) on a weekend as busy as a Wednesday. An injected drop is an
ordinary working day whose access volume falls to DROP_FACTOR: the anomalies a demo or a test
expects `citycloud alerts` to flag."""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from citycloud.config import DBT_PROJECT_DIR, CitycloudError

from ._common import WEEKDAY_FACTOR, day_date, day_number, rng_for

HOLIDAY_CSV = DBT_PROJECT_DIR / "seeds" / "holiday_calendar.csv"
HOLIDAY_FACTOR = 0.5 * WEEKDAY_FACTOR[6]
DROP_FACTOR = 0.3
MISSING_SOURCES = ("registrations", "service_access", "ratings")
FIRST_DROP_AFTER = 63  # days: 8 same-weekday weeks of history before an injected drop


def read_calendar() -> dict[int, str]:
    with open(HOLIDAY_CSV, encoding="utf-8", newline="") as f:
        return {day_number(dt.date.fromisoformat(r["day"])): r["kind"] for r in csv.DictReader(f)}


@dataclass
class Busyness:
    calendar: dict[int, str] = field(default_factory=dict)  # day number -> holiday | workday
    drops: dict[tuple[str, int], float] = field(default_factory=dict)  # (city, day number) -> factor
    missing: list[tuple[str, str, int]] = field(default_factory=list)  # (city, source, day number) never delivered

    def factor(self, city: str, dn: int) -> float:
        kind = self.calendar.get(dn)
        base = HOLIDAY_FACTOR if kind == "holiday" else WEEKDAY_FACTOR[2] if kind == "workday" else WEEKDAY_FACTOR[(dn + 3) % 7]
        return float(base) * self.drops.get((city, dn), 1.0)

    def factors(self, dns: np.ndarray) -> np.ndarray:
        """City-independent factors of many days (registrations)."""
        return np.array([self.factor("", int(d)) for d in dns])

    def injected(self) -> list[str]:
        return [f"{city}/service_access/dt={day_date(dn)}" for city, dn in sorted(self.drops)]

    def missing_folders(self) -> list[str]:
        return [f"{city}/{source}/dt={day_date(dn)}" for city, source, dn in sorted(self.missing)]


def make_busyness(seed: int, cities: list[str], start_dn: int, last_dn: int, holidays: bool, drops: int,
                  missing: int = 0) -> Busyness:
    b = Busyness(read_calendar() if holidays else {})
    rng = rng_for(seed, 9)
    ordinary = [d for d in range(start_dn + FIRST_DROP_AFTER, last_dn + 1)
                if d not in b.calendar and (d + 3) % 7 < 5]
    if drops > len(ordinary) * len(cities):
        raise CitycloudError(f"--inject-drops {drops}: only {len(ordinary) * len(cities)} ordinary working days "
                             f"after the first {FIRST_DROP_AFTER} days; generate more --days")
    while len(b.drops) < drops:
        b.drops[(cities[int(rng.integers(0, len(cities)))], ordinary[int(rng.integers(0, len(ordinary)))])] = DROP_FACTOR
    # Missing deliveries (an event source's folder never written), after the first week so the
    # source is expected by then; not the last day (that one is judged only after its deadline).
    days = list(range(start_dn + 7, last_dn))
    if missing > len(days) * len(cities):
        raise CitycloudError(f"--inject-missing {missing}: only {len(days) * len(cities)} city-days after the "
                             "first week; generate more --days")
    mrng = rng_for(seed, 10)
    while len(b.missing) < missing:
        pick = (cities[int(mrng.integers(0, len(cities)))], MISSING_SOURCES[int(mrng.integers(0, len(MISSING_SOURCES)))],
                days[int(mrng.integers(0, len(days)))])
        if pick not in b.missing:
            b.missing.append(pick)
    return b

"""`citycloud generate`: a realistic synthetic landing area (layout and dirt per landing.md),
deterministic by seed.

Per city: an account history since the platform opened (registrations: initial load, then
daily files), a service catalog with services going online and offline (snapshots on some
days), the gateway log of accesses (several JSONL / JSONL.gz parts a day; volume from the user
base or ``accesses_per_day``), reviews of those accesses (ratings) and the rectification
tickets of the bad reviews (review_tickets, _tickets.py). Every random draw comes
from a numpy Generator seeded by (seed, city, source, day, part) and gzip is written with mtime 0,
so the same arguments give the same bytes.
"""
from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from citycloud.config import SOURCES, CitycloudError

from ._access import AccessWriter
from ._calendar import make_busyness
from ._catalog import build_catalog, write_catalog
from ._cities import PROFILES
from ._common import FLOOR_DN, CityProfile, Landing, day_date, day_number
from ._dirt import Plan, make_plan
from ._people import id_number_ok, phone_ok, simulate
from ._ratings import RatingsWriter
from ._registrations import write_registrations
from ._tickets import TicketsWriter

CITIES: dict[str, str] = {p.code: p.name for p in PROFILES}
CITY_SCALE: dict[str, float] = {p.code: p.scale for p in PROFILES}  # accounts relative to Shanghai
MAX_USERS = 50_000_000

__all__ = ["CITIES", "CITY_SCALE", "generate", "id_number_ok", "phone_ok"]


@dataclass
class City:
    profile: CityProfile
    seed: int
    start_dn: int
    last_dn: int
    open_dn: int
    dirt: bool
    plan: Plan

    @property
    def code(self) -> str:
        return self.profile.code


def _check(cities, start, days, users, seed, accesses_per_day) -> None:
    def bad(msg: str) -> CitycloudError:
        return CitycloudError(f"{msg}")
    if not isinstance(cities, int) or not 1 <= cities <= len(PROFILES):
        raise bad(f"--cities must be between 1 and {len(PROFILES)} (got {cities!r}); the cities are, in order: "
                  + ", ".join(f"{c} {n}" for c, n in CITIES.items()))
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise bad(f"--start must be a date YYYY-MM-DD (got {start!r})")
    if not dt.date(2016, 1, 1) <= start <= dt.date(2099, 1, 1):
        raise bad(f"--start must be between 2016-01-01 and 2099-01-01 (got {start})")
    if not isinstance(days, int) or not 1 <= days <= 3660:
        raise bad(f"--days must be between 1 and 3660 (got {days!r})")
    if not isinstance(users, int) or not 1 <= users <= MAX_USERS:
        raise bad(f"--users must be between 1 and {MAX_USERS:,} (got {users!r})")
    if not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise bad(f"--seed must be a non-negative integer (got {seed!r})")
    if accesses_per_day is not None and (not isinstance(accesses_per_day, int) or not
                                         0 <= accesses_per_day <= 500_000_000):
        raise bad(f"accesses per day must be between 0 and 500,000,000 (got {accesses_per_day!r})")


def _prepare(out: Path, codes: list[str], overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CitycloudError(f"--out {out} exists and is not a directory; choose another path")
    existing = [c for c in codes if (out / c).exists()]
    if existing and not overwrite:
        raise CitycloudError(
            f"generate: {out} already holds landing data for {', '.join(existing)}; remove it, choose another "
            "--out, or overwrite it (--overwrite, overwrite=True) so no stale files mix with the new ones")
    for c in existing:
        shutil.rmtree(out / c)
    out.mkdir(parents=True, exist_ok=True)


def _write(profiles, users, seed, start_dn, last_dn, accesses_per_day, dirt, plan, landing, say) -> None:
    days = last_dn - start_dn + 1
    for prof in profiles:
        open_dn = max(min(day_number(prof.opened), start_dn - 365), FLOOR_DN + 1)
        city = City(prof, seed, start_dn, last_dn, open_dn, dirt, plan)
        say(f"{prof.code} {prof.name}: simulating accounts and services")
        pop = simulate(prof.code, seed, max(1, round(users * prof.scale)), open_dn, start_dn, last_dn,
                       [d for d, _ in prof.districts], dirt, very_late=days >= 16, busyness=plan.busyness)
        cat = build_catalog(prof.code, seed, prof.services, prof.districts, open_dn, start_dn, last_dn)
        write_catalog(city, cat, landing)
        write_registrations(city, pop, landing)
        access = AccessWriter(city, pop, cat, landing, accesses_per_day, say)
        ratings = RatingsWriter(city, pop, cat, landing)
        tickets = TicketsWriter(city, cat, landing)
        for i, dn in enumerate(range(start_dn, last_dn + 1)):
            ratings.add(access.deliver(dn), dn)
            ratings.deliver(dn)
            tickets.add(ratings.take_bad(), dn)
            if dn > start_dn:  # a day behind, so a ticket can come before its (late) rating
                tickets.deliver(dn - 1)
            say(f"{prof.code} {prof.name}: dt={day_date(dn)} ({i + 1}/{days}) written")
        tickets.deliver(last_dn)


def generate(out: Path, cities: int = 3, start: dt.date = dt.date(2026, 1, 1), days: int = 60,
             users: int = 2000, seed: int = 42, accesses_per_day: int | None = None,
             dirt: bool = True, progress: Callable[[str], None] | None = None,
             overwrite: bool = False, holidays: bool = False, inject_drops: int = 0,
             inject_missing: int = 0) -> dict:
    """Write a synthetic landing area under ``out`` for the first ``cities`` of CITIES.

    ``users`` is the number of accounts Shanghai has when the window opens (the other cities are
    smaller, see CITY_SCALE); ``accesses_per_day`` fixes the number of access events of every
    city-day delivery (default: about 0.4 per account, with weekly seasonality). ``dirt=False``
    leaves out everything that breaks the contract or needs flagging (late events and re-delivered
    duplicates remain: they are normal). ``overwrite`` first removes the cities' existing folders.
    ``holidays`` makes public holidays quiet and make-up working days busy (holiday_calendar seed);
    ``inject_drops`` ordinary working days get 30 % of their accesses, ``inject_missing`` event
    deliveries are never written (generate/_calendar.py).
    """
    _check(cities, start, days, users, seed, accesses_per_day)
    if inject_drops < 0 or inject_missing < 0:
        raise CitycloudError(f"--inject-drops and --inject-missing must be 0 or more, got {inject_drops}, {inject_missing}")
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    out = Path(out)
    profiles = PROFILES[:cities]
    codes = [p.code for p in profiles]
    start_dn = day_number(start)
    last_dn = start_dn + days - 1
    plan = make_plan(seed, codes, start_dn, last_dn, dirt)
    if holidays or inject_drops or inject_missing:
        plan.busyness = make_busyness(seed, codes, start_dn, last_dn, holidays, inject_drops, inject_missing)
    try:
        _prepare(out, codes, overwrite)
        landing = Landing(out)
        try:
            _write(profiles, users, seed, start_dn, last_dn, accesses_per_day, dirt, plan, landing, say)
        finally:
            landing.close()
    except OSError as exc:
        raise CitycloudError(f"cannot write the landing area under {out}: {exc}") from exc
    for folder in plan.busyness.missing_folders() if plan.busyness else []:
        shutil.rmtree(out / folder)  # never delivered (written first so every other day's bytes stay the same)
    stats = landing.stats
    summary = {
        "out": str(out), "cities": codes, "start": start.isoformat(), "end": day_date(last_dn).isoformat(),
        "days": days, "users": users, "seed": seed, "dirt": dirt, "files": stats.files,
        "rows": {s: stats.rows.get(s, 0) for s in SOURCES}, "bytes": stats.bytes,
        "seconds": round(time.perf_counter() - t0, 2),
        "incomplete": [f"{plan.incomplete[0]}/{plan.incomplete[1]}/dt={day_date(last_dn)}"] if plan.incomplete else [],
        "unreadable": dict(sorted(stats.unreadable.items())),
        "bad_rows": plan.bad_rows(),
        "injected_drops": plan.busyness.injected() if plan.busyness else [],
        "injected_missing": plan.busyness.missing_folders() if plan.busyness else [],
    }
    say(f"generated {summary['files']} files, {sum(summary['rows'].values()):,} rows, "
        f"{summary['bytes'] / 1e6:,.1f} MB for {len(codes)} cities x {days} days in {summary['seconds']} s")
    return summary

"""Where the dirt goes (a deterministic plan) and hand-made rows that break the contract."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from citycloud.config import BUSINESS_UTC_OFFSET_ISO

from ._common import (CHANNELS, DAY, F_EPOCH_MS, F_LOCAL_SPACE, F_LOCAL_T, F_OFFSET, F_Z, day_date, day_start,
                      iso_local, rng_for)

ACCESS_BAD = ("missing_field", "bad_timestamp", "unknown_outcome", "after_delivery_day", "before_2015",
              "malformed_json")
RATING_BAD = ("missing_field", "bad_timestamp", "bad_score", "after_delivery_day", "before_2015",
              "malformed_json")
REG_BAD = ("missing_field", "bad_timestamp", "unknown_event_type", "after_delivery_day", "before_2015",
           "bad_auth_level")
# review_tickets: an epoch number is no timestamp there, called_back must be a JSON boolean, a
# rectified ticket needs rectified_at (reviews.md).
TICKET_BAD = ("missing_field", "bad_timestamp", "bad_called_back", "missing_rectified_at", "malformed_json")
TICKET_REQUIRED = ("ticket_id", "rating_event_id", "department", "opened_at", "status", "updated_at", "called_back")
BAD_KINDS = {"registrations": REG_BAD, "service_access": ACCESS_BAD, "ratings": RATING_BAD,
             "review_tickets": TICKET_BAD}
EVENT_SOURCES = ("registrations", "service_access", "ratings")


@dataclass
class Plan:
    """Deterministic placement of the rare dirt: each file-level problem once in the whole area,
    every kind of bad row at least once per city and source."""
    dirt: bool
    last_dn: int
    truncated_gzip: tuple[str, int] | None = None      # (city, dt) of service_access
    non_utf8: tuple[str, int] | None = None            # (city, dt) of registrations
    no_header: tuple[str, int] | None = None           # (city, dt) of registrations
    incomplete: tuple[str, str] | None = None          # (city, source) whose last dt lacks _SUCCESS
    forced: dict = field(default_factory=dict)         # (city, source, dt) -> [bad kinds]
    very_late: dict = field(default_factory=dict)      # (city, source) -> dt with a weeks-late event
    log: list = field(default_factory=list)            # (city, source, dt, kind) of every bad row written
    busyness: object = None                            # _calendar.Busyness: holidays, injected drops

    def complete(self, city: str, source: str, dn: int) -> bool:
        return not (self.incomplete == (city, source) and dn == self.last_dn)

    def bad_kinds(self, rng: np.random.Generator, city: str, source: str, dn: int, rows: int,
                  base_rate: float = 0.12) -> list[str]:
        if not self.dirt:
            return []
        kinds = list(self.forced.get((city, source, dn), []))
        extra = int(rng.poisson(base_rate + min(rows * 2e-6, 40)))
        pool = BAD_KINDS[source]
        kinds += [pool[int(i)] for i in rng.integers(0, len(pool), extra)]
        self.log += [(city, source, dn, kind) for kind in kinds]
        return kinds

    def bad_rows(self) -> dict:
        """Bad rows written into complete folders: {source: {reason: count}}."""
        out: dict = {}
        for city, source, dn, kind in self.log:
            if self.complete(city, source, dn):
                out.setdefault(source, {}).setdefault(kind, 0)
                out[source][kind] += 1
        return out


def make_plan(seed: int, cities: list[str], start_dn: int, last_dn: int, dirt: bool) -> Plan:
    rng = rng_for(seed, 7)
    plan = Plan(dirt, last_dn)
    days = last_dn - start_dn + 1
    for city in cities:
        for source in EVENT_SOURCES:
            plan.very_late[(city, source)] = start_dn + int(rng.integers(min(15, days - 1), days))
    if not dirt:
        return plan
    pick_city = lambda: cities[int(rng.integers(0, len(cities)))]  # noqa: E731
    # With a single day, leave the big sources complete (benchmarks ingest them).
    plan.incomplete = (pick_city(), EVENT_SOURCES[int(rng.integers(0, 3))] if days > 1 else "ratings")
    # Complete folders only, where there is a choice.
    usable = lambda c, s: [d for d in range(start_dn, last_dn + 1) if plan.complete(c, s, d)] or [last_dn]  # noqa
    choose = lambda c, s: (lambda ds: ds[int(rng.integers(0, len(ds)))])(usable(c, s))  # noqa: E731
    c = pick_city()
    plan.truncated_gzip = (c, choose(c, "service_access"))
    c = pick_city()
    plan.non_utf8 = (c, choose(c, "registrations"))
    c = pick_city()
    plan.no_header = (c, choose(c, "registrations"))
    for city in cities:
        for source in EVENT_SOURCES:
            for kind in BAD_KINDS[source]:
                plan.forced.setdefault((city, source, choose(city, source)), []).append(kind)
    for city in cities:  # drawn last, so the other sources' dirt stays where it was
        for kind in TICKET_BAD:
            plan.forced.setdefault((city, "review_tickets", choose(city, "review_tickets")), []).append(kind)
    return plan


def _channel(rng) -> str:
    return CHANNELS[int(rng.integers(0, len(CHANNELS)))]


def _timestamp_for(rng, kind: str, dn: int, epoch: bool):
    """An event_time value (JSON-ready Python value) for a bad row of the given kind, or a
    valid one inside the delivery day."""
    forms = [F_OFFSET, F_Z, F_LOCAL_T, F_LOCAL_SPACE] + ([F_EPOCH_MS] if epoch else [])
    form = forms[int(rng.integers(0, len(forms)))]
    if kind == "bad_timestamp":
        d = day_date(dn)
        return [f"{d:%Y-%m}-32T09:15:00{BUSINESS_UTC_OFFSET_ISO}", "yesterday", f"{d.year}-13-01 10:00:00", "N/A",
                f"{d:%Y-%m-%d}T25:61:00", "#VALUE!", "0000-00-00 00:00:00"][int(rng.integers(0, 7))]
    if kind == "after_delivery_day":
        ts = day_start(dn + 1) + int(rng.integers(60, 3 * DAY))
    elif kind == "before_2015":
        ts = [0, 946_684_800, int(rng.integers(1_262_304_000, 1_420_041_600))][int(rng.integers(0, 3))]  # 1970,
        # 2000 (default values of broken clients) or some time in 2010-2014
    else:
        ts = day_start(dn) + int(rng.integers(0, DAY))
    text = iso_local(ts, form)
    return int(text) if form == F_EPOCH_MS else text


def access_bad_line(rng, kind: str, code: str, dn: int, event_id: str, service_id: str, user_id: str) -> str:
    row = {"event_id": event_id, "user_id": user_id, "service_id": service_id,
           "event_time": _timestamp_for(rng, kind, dn, True), "channel": _channel(rng),
           "outcome": "success", "duration_ms": int(rng.integers(50, 3000)),
           "client_ip": f"116.{rng.integers(0, 256)}.{rng.integers(0, 256)}.{rng.integers(1, 255)}"}
    if kind == "unknown_outcome":
        row["outcome"] = ["ok", "error", "cancelled", "pending", "200"][int(rng.integers(0, 5))]
    return _finish(rng, kind, row, ("event_id", "service_id", "event_time", "outcome"))


def rating_bad_line(rng, kind: str, code: str, dn: int, event_id: str, service_id: str, user_id: str) -> str:
    row = {"event_id": event_id, "access_event_id": None, "user_id": user_id, "service_id": service_id,
           "score": int(rng.integers(1, 6)), "event_time": _timestamp_for(rng, kind, dn, False),
           "comment": None}
    if kind == "bad_score":
        row["score"] = [0, 6, 10, -1, 99][int(rng.integers(0, 5))]
    return _finish(rng, kind, row, ("event_id", "service_id", "score", "event_time"))


def ticket_bad_line(rng, kind: str, code: str, dn: int, base: dict | None) -> str:
    """A ticket version that breaks the contract: a copy of one of the day's versions (or a made-up
    one) with one fault."""
    when = iso_local(day_start(dn) + int(rng.integers(9 * 3600, 18 * 3600)))
    row = dict(base) if base else {
        "ticket_id": f"T{code}-{day_date(dn):%Y%m%d}-X{int(rng.integers(0, 10**5)):05d}",
        "rating_event_id": f"G{code}-{day_date(dn):%Y%m%d}-{int(rng.integers(0, 10**4)):08d}",
        "department": "市政务服务办", "category": "其他", "opened_at": when, "status": "open", "rectified_at": None,
        "replied_at": None, "called_back": False, "updated_at": when, "handler_note": None}
    if kind == "bad_timestamp":  # epoch milliseconds: allowed in service_access only
        key = ("opened_at", "updated_at")[int(rng.integers(0, 2))]
        row[key] = (day_start(dn) + int(rng.integers(0, DAY))) * 1000
    elif kind == "bad_called_back":
        row["called_back"] = ["true", "false", "是", "1"][int(rng.integers(0, 4))]
    elif kind == "missing_rectified_at":
        row.update(status="rectified", rectified_at=None)
        if rng.random() < 0.5:
            del row["rectified_at"]
    return _finish(rng, kind, row, TICKET_REQUIRED)


def _finish(rng, kind: str, row: dict, required: tuple[str, ...]) -> str:
    if kind == "missing_field":
        key = required[int(rng.integers(0, len(required)))]
        if rng.random() < 0.5:
            del row[key]
        else:
            row[key] = None
    line = json.dumps(row, ensure_ascii=False)
    if kind == "malformed_json":
        variants = [line[: int(len(line) * rng.uniform(0.3, 0.9))],              # cut off
                    line.replace('"', "'"),                                         # single quotes
                    line.replace(", ", " ", 1),                                     # missing comma
                    line[:-1] + ', "extra": }']                                     # dangling key
        line = variants[int(rng.integers(0, len(variants)))]
        try:
            json.loads(line)
            line = line[:-2]
        except ValueError:
            pass
    return line


def registration_bad_row(rng, kind: str, dn: int, event_id: str, user_id: str) -> dict:
    row = {"event_id": event_id, "event_type": "register", "user_id": user_id,
           "event_time": str(_timestamp_for(rng, kind, dn, False)), "channel": _channel(rng),
           "phone": f"139{rng.integers(10**7, 10**8)}", "id_number": None, "auth_level": "1",
           "district_code": None}
    if kind == "missing_field":
        row[("event_id", "event_type", "user_id", "event_time")[int(rng.integers(0, 4))]] = None
    elif kind == "unknown_event_type":
        row["event_type"] = ["upgrade", "delete", "merge", "login", "unregister"][int(rng.integers(0, 5))]
    elif kind == "bad_auth_level":
        row["event_type"] = "verify"
        row["auth_level"] = ["5", "-1", "高", "9", "2.5"][int(rng.integers(0, 5))]
    return row


def catalog_bad_rows(code: str) -> list[dict]:
    """A planned service without a date yet and a row that lost its id."""
    return [
        {"service_id": f"S{code}8001", "service_name": "智慧停车一件事", "department": "市交通委",
         "category": "交通", "online_date": "待定", "offline_date": None, "handling_mode": "全程网办"},
        {"service_id": None, "service_name": "临时测试服务", "department": "市大数据中心",
         "category": "其他", "online_date": "2020-01-01", "offline_date": None, "handling_mode": None},
    ]

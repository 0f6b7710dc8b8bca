"""An independent recomputation of marts.review_monthly and marts.review_tags_monthly (reviews.md)
straight from a landing area: its own reader of landing.md, Python and polars, no SQL and nothing
of the pipeline. Tests compare it with the marts cell for cell.

The rules it applies, in order:
- deliveries: only folders with `_SUCCESS`; a city's day series runs from its earliest to its
  latest complete delivery of any source; a month is covered when the series holds all its days;
- ratings: rows missing a required field, with an unparseable timestamp (epoch numbers are not
  timestamps here), a score outside 1-5, a time after the end of the delivery day or before
  2015-01-01, or malformed JSON are rejected; one rating per event_id;
- tickets: rejected for a missing required field, a timestamp that is not one (any of the four),
  an unknown status, a called_back that is not a JSON boolean, `rectified` without rectified_at,
  a timestamp after the end of the delivery day or before 2015; the version with the latest
  updated_at wins (ties: later delivery, then later file name, then later line); a ticket naming no
  counted rating of its city is an orphan; of the tickets of one rating the latest opened_at wins
  (ties: larger ticket_id);
- deadlines: the N-th working day after the rating day (holiday_calendar seed); the as-of day is
  the city's latest complete review_tickets delivery (none: nothing is overdue, nothing settled);
  `settled` is the month's (every row of a month the same).
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from citycloud.config import BUSINESS_TZ as SH

FLOOR = dt.datetime(2015, 1, 1, tzinfo=SH)
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?")
SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "holiday_calendar.csv"
RATING_REQUIRED = ("event_id", "service_id", "score", "event_time")
TICKET_REQUIRED = ("ticket_id", "rating_event_id", "department", "opened_at", "status", "updated_at", "called_back")
TICKET_TIMES = ("opened_at", "updated_at", "rectified_at", "replied_at")
STATUSES = ("open", "rectified", "unresolvable", "appeal_upheld")
MONTHLY = ("ratings", "grade_5", "grade_4", "grade_3", "grade_2", "grade_1", "average_score", "bad_reviews",
           "unfounded", "rectified_on_time", "rectified_late", "overdue_open", "on_time_rate", "real_name_bad",
           "called_back", "callback_rate", "replied", "settled", "as_of_day")


# The columns of marts.review_items whose meaning reviews_interface.md fixes without doubt.
ITEM_COLUMNS = ("month", "rating_day", "ticket_id", "department", "category", "status", "due_day", "outcome")


def parse_ts(value) -> dt.datetime | None:
    """An aware datetime, or None when the value is not a landing.md timestamp (epoch numbers included)."""
    if not isinstance(value, str) or not TS_RE.fullmatch(value):
        return None
    text = value.replace(" ", "T")
    try:
        t = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=SH)


def local_day(t: dt.datetime) -> dt.date:
    return t.astimezone(SH).date()


def working_days() -> tuple[dict[dt.date, str], callable]:
    with open(SEED, encoding="utf-8", newline="") as f:
        kinds = {dt.date.fromisoformat(r["day"]): r["kind"] for r in csv.DictReader(f)}

    def is_working(d: dt.date) -> bool:
        return kinds.get(d, "workday" if d.weekday() < 5 else "holiday") == "workday"
    return kinds, is_working


def due_day(rating_day: dt.date, n: int, is_working) -> dt.date:
    d, k = rating_day, 0
    while k < n:
        d += dt.timedelta(days=1)
        k += is_working(d)
    return d


@dataclass
class Landing:
    """The complete deliveries of one landing area, read per landing.md."""
    root: Path
    delivered: dict = field(default_factory=lambda: defaultdict(set))   # city -> {dt}
    tickets_delivered: dict = field(default_factory=lambda: defaultdict(set))
    ratings: dict = field(default_factory=dict)       # (city, event_id) -> (dt, rating row)
    versions: list = field(default_factory=list)      # (city, dt, file, line, row)

    def read(self) -> "Landing":
        for folder in sorted(self.root.glob("*/*/dt=*")):
            if not (folder / "_SUCCESS").exists():
                continue
            city, source = folder.parts[-3], folder.parts[-2]
            day = dt.date.fromisoformat(folder.name[3:])
            self.delivered[city].add(day)
            if source == "review_tickets":
                self.tickets_delivered[city].add(day)
            if source not in ("ratings", "review_tickets"):
                continue
            for f in sorted(p for p in folder.iterdir() if p.name != "_SUCCESS"):
                for line_no, row in _json_lines(f):
                    if source == "ratings":
                        self._rating(city, day, row)
                    elif ticket_ok(row, day):
                        self.versions.append((city, day, f.name, line_no, row))
        return self

    def _rating(self, city: str, day: dt.date, row) -> None:
        if not isinstance(row, dict) or any(row.get(k) in (None, "") for k in RATING_REQUIRED):
            return
        t = parse_ts(row["event_time"])
        if t is None or not _inside(t, day) or type(row["score"]) is not int or not 1 <= row["score"] <= 5:
            return
        old = self.ratings.get((city, row["event_id"]))
        if old is None or old[0] <= day:  # the copy of the latest delivery
            self.ratings[(city, row["event_id"])] = (day, dict(row, ts=t))


def _json_lines(f: Path):
    data = f.read_bytes()
    if f.name.endswith(".gz"):
        data = gzip.decompress(data)
    for i, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
        try:
            yield i, json.loads(line)
        except ValueError:
            continue  # malformed JSON: rejected


def _inside(t: dt.datetime, day: dt.date) -> bool:
    return FLOOR <= t < dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), SH)


def ticket_ok(row, day: dt.date) -> bool:
    if not isinstance(row, dict) or any(row.get(k) in (None, "") for k in TICKET_REQUIRED):
        return False
    if row["status"] not in STATUSES or not isinstance(row["called_back"], bool):
        return False
    if row["status"] == "rectified" and row.get("rectified_at") in (None, ""):
        return False
    for key in TICKET_TIMES:
        if row.get(key) is not None:
            t = parse_ts(row[key])
            if t is None or not _inside(t, day):
                return False
    return True


def winning_tickets(landing: Landing) -> tuple[dict, list]:
    """({(city, rating_event_id): winning version row}, orphans [(city, ticket_id, rating_event_id, dt)])."""
    latest: dict = {}
    for city, day, name, line, row in landing.versions:
        key = (parse_ts(row["updated_at"]), day, name, line)
        if (city, row["ticket_id"]) not in latest or latest[(city, row["ticket_id"])][0] < key:
            latest[(city, row["ticket_id"])] = (key, row)
    per_rating: dict = {}
    orphans = []
    for (city, ticket_id), (key, row) in sorted(latest.items()):
        if (city, row["rating_event_id"]) not in landing.ratings:
            orphans.append((city, ticket_id, row["rating_event_id"], key[1]))
            continue
        rank = (parse_ts(row["opened_at"]), ticket_id)
        held = per_rating.get((city, row["rating_event_id"]))
        if held is None or held[0] < rank:
            per_rating[(city, row["rating_event_id"])] = (rank, row)
    return {k: row for k, (_, row) in per_rating.items()}, orphans


def covered_months(days: set[dt.date]) -> list[dt.date]:
    first, last = min(days), max(days)
    months, m = [], first.replace(day=1)
    while m <= last:
        nxt = (m + dt.timedelta(days=32)).replace(day=1)
        if m >= first and nxt - dt.timedelta(days=1) <= last:
            months.append(m)
        m = nxt
    return months


def as_of_day(landing: Landing, city: str) -> dt.date | None:
    """The city's latest complete review_tickets delivery (None: it has none)."""
    days = landing.tickets_delivered.get(city)
    return max(days) if days else None


def outcome(status: str | None, rectified: dt.date | None, due: dt.date, as_of: dt.date | None) -> str:
    if status == "appeal_upheld":
        return "unfounded"
    if status == "rectified":
        return "rectified_on_time" if rectified <= due else "rectified_late"
    return "overdue_open" if as_of is not None and due < as_of else "open_not_due"  # no ticket, open, unresolvable


def review_items(landing: Landing, n: int) -> pl.DataFrame:
    """One row per counted rating of a covered month; for a bad review its ticket, due day and
    outcome (the columns of marts.review_items that the monthly marts sum)."""
    _, is_working = working_days()
    tickets, _ = winning_tickets(landing)
    covered = {c: set(covered_months(days)) for c, days in landing.delivered.items()}
    rows = []
    for (city, event_id), (_, r) in landing.ratings.items():
        rday = local_day(r["ts"])
        if rday.replace(day=1) not in covered.get(city, ()):
            continue
        bad = r["score"] <= 2
        t = tickets.get((city, event_id)) if bad else None
        status = t["status"] if t else None
        rectified = local_day(parse_ts(t["rectified_at"])) if status == "rectified" else None
        cat = t.get("category") if t else None
        due = due_day(rday, n, is_working)
        rows.append({
            "city_code": city, "month": rday.replace(day=1), "rating_day": rday, "rating_event_id": event_id,
            "score": r["score"], "bad": bad, "real_name": r.get("user_id") is not None,
            "ticket_id": t["ticket_id"] if t else None, "department": t["department"] if t else "unassigned",
            "category": cat if cat not in (None, "") else "untagged", "status": status, "due_day": due,
            "outcome": outcome(status, rectified, due, as_of_day(landing, city)) if bad else None,
            "replied": bool(t and t.get("replied_at") is not None), "called_back": bool(t and t["called_back"]),
        })
    schema = {"city_code": pl.Utf8, "month": pl.Date, "rating_day": pl.Date, "rating_event_id": pl.Utf8,
              "score": pl.Int64, "bad": pl.Boolean, "real_name": pl.Boolean, "ticket_id": pl.Utf8,
              "department": pl.Utf8, "category": pl.Utf8, "status": pl.Utf8, "due_day": pl.Date, "outcome": pl.Utf8,
              "replied": pl.Boolean, "called_back": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _measures() -> list[pl.Expr]:
    bad = pl.col("bad")
    is_ = lambda o: bad & (pl.col("outcome") == o)  # noqa: E731
    counted = bad & (pl.col("outcome") != "unfounded")
    real = counted & pl.col("real_name")
    return [bad.sum().alias("bad_reviews"), is_("unfounded").sum().alias("unfounded"),
            is_("rectified_on_time").sum().alias("rectified_on_time"),
            is_("rectified_late").sum().alias("rectified_late"), is_("overdue_open").sum().alias("overdue_open"),
            real.sum().alias("real_name_bad"), (real & pl.col("called_back")).sum().alias("called_back"),
            (counted & pl.col("replied")).sum().alias("replied")]


def recompute(root: Path, n: int) -> dict[str, dict[tuple, tuple]]:
    """{"review_monthly": {(city, month, department): values in MONTHLY order},
        "review_tags_monthly": {(city, month, category): (bad_reviews,)},
        "review_items": {(city, rating_event_id): values in ITEM_COLUMNS order} (bad reviews),
        "orphans": {(city, ticket_id): (rating_event_id, dt of the winning version)}}."""
    landing = Landing(root).read()
    items = review_items(landing, n)
    monthly: dict = {}
    tags: dict = {}
    for city, days in sorted(landing.delivered.items()):
        as_of = as_of_day(landing, city)
        for month in covered_months(days):
            m = items.filter((pl.col("city_code") == city) & (pl.col("month") == month))
            bad = m.filter(pl.col("bad"))
            latest_due = bad["due_day"].max()
            settled = bad.height == 0 or (as_of is not None and latest_due < as_of)
            groups = [("all", m)] + [(d, bad.filter(pl.col("department") == d))
                                     for d in sorted(bad["department"].unique())]
            for dept, g in groups:
                v = g.select(_measures()).row(0, named=True)
                grades = [int((g["score"] == s).sum()) for s in (5, 4, 3, 2, 1)]
                head = [g.height, *grades, g["score"].mean() if g.height else None] if dept == "all" \
                    else [None] * 7
                denominator = v["bad_reviews"] - v["unfounded"]
                monthly[(city, month, dept)] = tuple(head) + (
                    v["bad_reviews"], v["unfounded"], v["rectified_on_time"], v["rectified_late"], v["overdue_open"],
                    v["rectified_on_time"] / denominator if denominator else None, v["real_name_bad"],
                    v["called_back"], v["called_back"] / v["real_name_bad"] if v["real_name_bad"] else None,
                    v["replied"], settled, as_of)
            for cat, k in bad.group_by("category").len().iter_rows():
                tags[(city, month, cat)] = (k,)
    _, orphans = winning_tickets(landing)
    return {"review_monthly": monthly, "review_tags_monthly": tags,
            "review_items": {(r["city_code"], r["rating_event_id"]): tuple(r[c] for c in ITEM_COLUMNS)
                             for r in items.filter(pl.col("bad")).iter_rows(named=True)},
            "orphans": {(c, t): (r, d) for c, t, r, d in orphans}}

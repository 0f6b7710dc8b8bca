"""review_tickets deliveries (reviews.md): the rectification ticket of each bad review (score <= 2).

A ticket is opened within a day or two of its rating and delivered again each time its state
changes (open -> replied -> rectified / unresolvable / appeal_upheld -> called back), in the
delivery of the day of the change (now and then the next day). Departments work on working days
of the holiday_calendar seed and aim at the common 15-working-day deadline: most rectify on
time, some late, some never. Valid oddities the pipeline must order right: re-sent (even stale)
versions, a corrected copy with the same updated_at in a later delivery, a second ticket for
one rating. Dirt (dirt=True): bad rows (_dirt.TICKET_BAD), an orphan naming no rating, and a
ticket delivered the day before its (late) rating.

Ticket deliveries lag the ratings loop by one day (``deliver(dn - 1)`` after the ratings of
``dn``), so a ticket can land before its rating."""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import polars as pl

from ._calendar import read_calendar
from ._common import DAY, F_LOCAL_SPACE, F_LOCAL_T, F_OFFSET, F_Z, day_start, iso_local, local_day, rng_for, ymd
from ._dirt import ticket_bad_line
from ._people import phone_numbers

TARGET_WORKING_DAYS = 15  # how fast the simulated departments aim to work (reviews.md's common rule)
CATEGORIES = ("办事效率", "系统故障", "流程繁琐", "服务态度", "指南不准", "其他", "", None)
CATEGORY_P = np.cumsum([0.3, 0.24, 0.14, 0.1, 0.1, 0.06, 0.03, 0.03])
NO_TICKET = 0.03  # bad reviews nobody opens a ticket for
# Fates of a ticket: rectified on time / late, open for good, unresolvable, appeal upheld.
FATES = ("on_time", "late", "open", "unresolvable", "appeal")
FATE_P = np.cumsum([0.8, 0.08, 0.04, 0.05, 0.03])
NOTES = ("已联系业务处室核实", "系统已修复，已告知市民", "已优化办事指南", "窗口人员已批评教育", "申诉材料已提交",
         "已转办区级部门", "市民诉求超出受理范围")
FORMS = (F_OFFSET, F_Z, F_LOCAL_T, F_LOCAL_SPACE)
HOUR = 3600


def working_days(first_dn: int, last_dn: int) -> np.ndarray:
    """Sorted day numbers of the working days in [first_dn, last_dn]: Monday to Friday less the
    seed's holidays, plus its make-up working days."""
    kind = read_calendar()
    days = np.arange(first_dn, last_dn + 1)
    weekday = (days + 3) % 7 < 5  # day 0 (1970-01-01) was a Thursday
    return np.array([d for d, w in zip(days, weekday) if kind.get(int(d), "workday" if w else "holiday") == "workday"])


class TicketsWriter:
    def __init__(self, city, cat, landing):
        self.city, self.cat, self.landing = city, cat, landing
        self.work = working_days(city.start_dn - 60, city.last_dn + 120)
        dept = cat.frame["department"].to_list()
        self.dept_of = dict(zip(cat.ids.to_list(), dept))
        self.departments = sorted(set(dept))
        self.pending: dict[int, list[tuple]] = defaultdict(list)  # delivery day -> [(updated_at, row)]
        self.count = 0
        self.forced_orphan = self.forced_early = not city.dirt
        self.stale_done = self.tie_done = False
        self.unseen = ["appeal", "unresolvable", "open", "late", "none"]  # the rare fates, each once early on

    def add(self, bad: pl.DataFrame, dn: int) -> None:
        """Tickets for the bad reviews delivered on day ``dn`` (event_id, ts, svc, real)."""
        rng = rng_for(self.city.seed, int(self.city.code), 701, dn)
        rows = list(bad.iter_rows())
        early = None
        if not self.forced_early and dn > self.city.start_dn:
            late = [i for i, r in enumerate(rows) if local_day(r[1]) < dn]
            if not late and (dn - self.city.start_dn >= 14 or dn == self.city.last_dn):
                late = list(range(len(rows)))  # none came late: one opened before its rating (clock skew)
            if late:
                early = late[int(rng.integers(0, len(late)))]
                self.forced_early = True
        for i, (event_id, ts, svc, real) in enumerate(rows):
            copies = 0 if rng.random() < NO_TICKET else 1 + int(rng.random() < 0.02)  # a second ticket now and then
            fate = self.unseen.pop() if self.unseen and i != early else None
            copies = 0 if fate == "none" else max(copies, int(fate is not None or i == early))
            for k in range(copies):
                self._ticket(rng, event_id, int(ts), svc, real, dn, early=i == early and k == 0,
                             fate=fate if k == 0 else None)
        if not self.forced_orphan and rows:  # a ticket whose rating never arrives
            _, ts, svc, real = rows[0]
            self._ticket(rng, f"G{self.city.code}-{ymd(self.city.start_dn - 1)}-{self.count:08d}", int(ts), svc,
                         real, dn)
            self.forced_orphan = True

    def _day(self, rating_day: int, k: int) -> int:
        """The k-th working day after ``rating_day`` (which itself never counts)."""
        i = int(np.searchsorted(self.work, rating_day, side="right")) + k - 1
        return int(self.work[min(i, len(self.work) - 1)])  # far past the window: the last one known will do

    def _at(self, rng, day: int, after: int) -> int:
        """A moment in office hours of ``day``, not before ``after``."""
        return max(int(day_start(day)) + 9 * HOUR + int(rng.integers(0, 9 * HOUR)), after + 600)

    def _ticket(self, rng, event_id: str, ts: int, svc: str, real: bool, dn: int, early: bool = False,
                fate: str | None = None) -> None:
        city, n = self.city, TARGET_WORKING_DAYS
        self.count += 1
        ticket_id = f"T{city.code}-{ymd(dn)}-{self.count:06d}"
        if early:  # opened and delivered the day before its rating's delivery
            opened = ts + int((day_start(dn) - ts) * rng.uniform(0.1, 0.5)) if ts < day_start(dn) \
                else int(day_start(dn)) - int(rng.integers(HOUR, 12 * HOUR))
        else:
            opened = ts + 60 + int(min(rng.exponential(8 * HOUR), 2 * DAY - 120))
        rday = int(local_day(ts))
        drawn = FATES[min(int(np.searchsorted(FATE_P, rng.random() * FATE_P[-1], side="right")), len(FATES) - 1)]
        fate = fate or drawn
        dept = self.dept_of.get(svc)
        if dept is None or rng.random() < 0.08:  # an unknown service, or routed to another department
            dept = self.departments[int(rng.integers(0, len(self.departments)))]
        cat = CATEGORIES[int(np.searchsorted(CATEGORY_P, rng.random() * CATEGORY_P[-1], side="right"))]
        state = {"ticket_id": ticket_id, "rating_event_id": event_id, "department": dept, "category": cat,
                 "opened_at": opened, "status": "open", "rectified_at": None, "replied_at": None,
                 "called_back": False, "updated_at": opened + int(rng.integers(60, 1800)), "handler_note": None}
        if early:  # still inside the day before the rating's delivery
            state["updated_at"] = min(state["updated_at"], int(day_start(dn)) - 1)
        events = self._events(rng, fate, rday, n, state["updated_at"], real)
        versions = [dict(state)]
        for t, change in sorted(events, key=lambda e: e[0]):
            state.update(change, updated_at=t)
            if change.get("status") in ("rectified", "unresolvable", "appeal_upheld") and rng.random() < 0.4:
                state["handler_note"] = self._note(rng)
            versions.append(dict(state))
        self._deliver_versions(rng, versions, dn, early)

    def _events(self, rng, fate: str, rday: int, n: int, opened: int, real: bool) -> list[tuple[int, dict]]:
        """(time, change) of a ticket's life after it is opened."""
        out: list[tuple[int, dict]] = []
        done = None
        if fate in ("on_time", "late"):
            k = n if rng.random() < 0.06 else min(n, 1 + int(rng.geometric(0.2)))  # some on the due day itself
            if fate == "late":
                k = n + int(rng.geometric(0.25))
            done = self._at(rng, self._day(rday, k), opened)
            out.append((done + int(rng.integers(60, 4 * HOUR)), {"status": "rectified", "rectified_at": done}))
        elif fate in ("unresolvable", "appeal"):
            k = int(rng.integers(2, n + 6 if fate == "unresolvable" else n + 1))
            done = self._at(rng, self._day(rday, k), opened)
            out.append((done, {"status": "unresolvable" if fate == "unresolvable" else "appeal_upheld"}))
        p_reply = {"on_time": 0.88, "late": 0.8, "open": 0.4, "unresolvable": 0.6, "appeal": 0.3}[fate]
        if rng.random() < p_reply:
            base = done if done is not None and rng.random() < 0.7 else opened
            replied = base + int(rng.integers(HOUR, 2 * DAY))
            out.append((replied, {"replied_at": replied}))
        if real and fate != "appeal" and rng.random() < (0.85 if done is not None else 0.25):
            called = (done or opened) + int(rng.integers(2 * HOUR, 5 * DAY))
            out.append((called, {"called_back": True}))
        return out

    def _note(self, rng) -> str:
        note = NOTES[int(rng.integers(0, len(NOTES)))]
        if rng.random() < 0.2:  # personal data the pipeline must mask
            note += f"，市民电话{int(phone_numbers(rng, 1)[0])}"
        return note

    def _deliver_versions(self, rng, versions: list[dict], dn: int, early: bool) -> None:
        last = self.city.last_dn
        day = dn - 1 if early else dn
        placed = []
        for v in versions:
            # in the export of the change's day, now and then the next; never before this batch
            day = max(day, int(local_day(v["updated_at"])) + int(rng.random() < 0.1))
            if early and v is versions[0]:
                day = dn - 1
            placed.append(day)
            if day <= last:
                self.pending[day].append((v["updated_at"], self._line(rng, v)))
        # Now and then (and at least once per city): a version sent again in a later delivery,
        # even a stale one, or the latest version corrected without a new updated_at.
        r = rng.random()
        kind = "resend" if r < 0.03 else "tie" if r < 0.05 else None
        if len(versions) > 1 and (not self.stale_done or not self.tie_done):
            kind = "resend" if not self.stale_done else "tie"
        if kind is None:
            return
        again = placed[-1] + int(rng.integers(1, 3))
        if again > last:
            return
        if kind == "resend":
            v = versions[0] if not self.stale_done else versions[int(rng.integers(0, len(versions)))]
            self.stale_done = self.stale_done or len(versions) > 1
        else:  # the later delivery wins the tie
            v = dict(versions[-1], category=CATEGORIES[(CATEGORIES.index(versions[-1]["category"]) + 1) % 6])
            self.tie_done = True
        self.pending[again].append((v["updated_at"], self._line(rng, v)))

    def _line(self, rng, v: dict) -> dict:
        """The version as a JSON-ready dict, timestamps in one of the landing's forms."""
        form = FORMS[int(rng.integers(0, len(FORMS)))]
        row = dict(v)
        for key in ("opened_at", "rectified_at", "replied_at", "updated_at"):
            if row[key] is not None:
                row[key] = iso_local(row[key], form)
        return row

    def deliver(self, dn: int) -> None:
        city, plan = self.city, self.city.plan
        rng = rng_for(city.seed, int(city.code), 702, dn)
        rows = [row for _, row in sorted(self.pending.pop(dn, []), key=lambda e: e[0])]
        # a few lines out of order within the file (latest updated_at still wins)
        if len(rows) > 2 and rng.random() < 0.2:
            i = int(rng.integers(0, len(rows) - 1))
            rows[i], rows[i + 1] = rows[i + 1], rows[i]
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
        kinds = plan.bad_kinds(rng, city.code, "review_tickets", dn, len(rows), base_rate=0.02)  # a small source
        for kind in kinds:
            base = rows[int(rng.integers(0, len(rows)))] if rows else None
            bad = ticket_bad_line(rng, kind, city.code, dn, base)
            lines.insert(int(rng.integers(0, len(lines) + 1)), bad)
        gz = bool(rng.random() < 0.3)
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        self.landing.put(city.code, "review_tickets", dn, "review_tickets.jsonl" + (".gz" if gz else ""), data,
                         rows=len(lines), gz=gz)
        self.landing.success(city.code, "review_tickets", dn)

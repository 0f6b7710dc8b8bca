"""Citizens of one city: phone and identity numbers, and the account history of the platform
(register / verify / cancel events since launch) simulated as numpy arrays."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from ._cities import MIGRANT_REGIONS
from ._common import DAY, WEEKDAY_FACTOR, Sampler, channel_idx, day_start, local_day, rng_for, seconds_of_day

REGISTER, VERIFY, CANCEL = 0, 1, 2
NEVER = np.iinfo(np.int64).max // 4
UNREG_POOL = 5000  # user ids seen at the gateway that never registered (dirt)

PHONE_PREFIXES = np.array([130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156,
                           157, 158, 159, 166, 172, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185,
                           186, 187, 188, 189, 191, 193, 195, 198, 199], dtype=np.int64)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
_PHONE_RE = re.compile(r"1[3-9]\d{9}")
_ID_RE = re.compile(r"\d{17}[\dX]")


def phone_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    return PHONE_PREFIXES[rng.integers(0, len(PHONE_PREFIXES), n)] * 10**8 + rng.integers(0, 10**8, n)


def phone_ok(value: str) -> bool:
    return bool(_PHONE_RE.fullmatch(value or ""))


def id_check_index(base17: np.ndarray) -> np.ndarray:
    """Position in ID_CHECK of the GB 11643-1999 check character of 17-digit integers."""
    x = np.asarray(base17, dtype=np.int64).copy()
    total = np.zeros(len(x), dtype=np.int64)
    for w in ID_WEIGHTS[::-1]:
        total += (x % 10) * w
        x //= 10
    return total % 11


def id_check_char(body17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(body17, ID_WEIGHTS)) % 11]


def id_number_ok(value: str) -> bool:
    """Format and check digit of an 18-character resident identity number (GB 11643-1999)."""
    if not value or not _ID_RE.fullmatch(value):
        return False
    return id_check_char(value[:17]) == value[17]


def id_bases(rng: np.random.Generator, n: int, local_codes: list[str]) -> np.ndarray:
    """17-digit bodies: birthplace (70 % local) + birth date + sequence."""
    local = np.array([int(c) for c in local_codes], dtype=np.int64)
    other = np.array([int(c) for c in MIGRANT_REGIONS], dtype=np.int64)
    region = np.where(rng.random(n) < 0.7, local[rng.integers(0, len(local), n)],
                      other[rng.integers(0, len(other), n)])
    birth = np.datetime64("1986-06-01") + np.clip(rng.normal(0, 14 * 365, n), -45 * 365, 22 * 365).astype(
        "timedelta64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = birth.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    mday = (birth - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    seq = rng.integers(1, 1000, n)
    return region * 10**11 + (year * 10000 + month * 100 + mday) * 1000 + seq


@dataclass
class Population:
    """Accounts in serial (= first registration) order and their account events sorted by time."""
    code: str
    first_reg: np.ndarray      # UTC seconds of each user's first registration (sorted)
    cancel_day: np.ndarray     # day number the account was closed, NEVER if not
    rereg_day: np.ndarray      # day number it was opened again, NEVER if not
    cumw: np.ndarray           # cumulative activity weights (who uses the portal how much)
    ev: dict                   # event columns: user, type, ts, auth, auth_blank, chan, phone, idb,
                               # district, delivery, bad_phone, bad_id (all numpy, one entry per event)

    _sampler: Sampler | None = None
    _tokens: dict | None = None

    def tokens(self, before: str = "", after: str = "") -> pl.Series:
        """JSON tokens for user_id, by index: 0..n-1 the accounts, n anonymous (null),
        n+1+k one of UNREG_POOL ids that never registered; wrapped in ``before``/``after``."""
        if self._tokens is None:
            self._tokens = {}
        key = (before, after)
        if key not in self._tokens:
            serial = pl.Series(np.arange(1, self.n + 1)).cast(pl.Utf8).str.zfill(6)
            never = pl.Series(np.arange(UNREG_POOL)).cast(pl.Utf8).str.zfill(8)
            quoted = pl.concat([
                (f'{before}"U{self.code}' + serial + f'"{after}'),
                pl.Series([f"{before}null{after}"]),
                (f'{before}"U{self.code}9' + never + f'"{after}'),
            ])
            self._tokens[key] = quoted
        return self._tokens[key]

    @property
    def n(self) -> int:
        return len(self.first_reg)

    def registered_by(self, dn: np.ndarray) -> np.ndarray:
        """Number of accounts opened by the end of each day (serials 1..result)."""
        return np.searchsorted(self.first_reg, day_start(np.asarray(dn) + 1), side="left")

    def sample(self, rng: np.random.Generator, event_dn: np.ndarray) -> np.ndarray:
        """User index (0-based) for events on the given days, weighted by activity;
        -1 when nobody could be logged in (no account yet, or the account is closed)."""
        n = len(event_dn)
        if n == 0 or self.n == 0:
            return np.full(n, -1, dtype=np.int64)
        if self._sampler is None:
            self._sampler = Sampler(self.cumw)
        lo = int(event_dn.min())
        nreg = self.registered_by(np.arange(lo, int(event_dn.max()) + 1))[event_dn - lo]
        top = np.where(nreg > 0, self.cumw[np.maximum(nreg - 1, 0)], 0.0)
        idx = self._sampler.draw(rng.random(n) * top)
        idx = np.minimum(idx, nreg - 1)
        closed = (self.cancel_day[idx] <= event_dn) & (self.rereg_day[idx] > event_dn)
        return np.where((nreg > 0) & ~closed, idx, -1)


def _exp_days(rng, mean_days: float, n: int) -> np.ndarray:
    return (rng.exponential(mean_days * DAY, n)).astype(np.int64)


def simulate(code: str, seed: int, n0: int, open_dn: int, start_dn: int, last_dn: int,
             districts: list[str], dirt: bool, very_late: bool, busyness=None) -> Population:
    rng = rng_for(seed, int(code), 101)
    # Accounts opened before the window (growing adoption), then daily sign-ups.
    span = (start_dn - open_dn) * DAY
    t0 = day_start(open_dn) + (rng.random(n0) ** 0.6 * span).astype(np.int64)
    d = np.arange(last_dn - start_dn + 1)
    factor = busyness.factors(start_dn + d) if busyness else WEEKDAY_FACTOR[(start_dn + d + 3) % 7]
    lam = n0 * 0.0012 * (1 + 0.004 * d) * factor
    new_dn = np.repeat(start_dn + d, rng.poisson(lam))
    first = np.sort(np.concatenate([t0, day_start(new_dn) + seconds_of_day(rng, len(new_dn))]))
    n = len(first)
    users = np.arange(n)
    auth0 = rng.choice(4, n, p=[0.08, 0.62, 0.25, 0.05])
    phone, phone2 = phone_numbers(rng, n), phone_numbers(rng, n)
    idb = id_bases(rng, n, districts)
    district = np.where(rng.random(n) < 0.08, -1, rng.integers(0, len(districts), n))
    chan = channel_idx(rng, n)
    # Real-name verification raises the level; some later add face verification.
    v1 = (auth0 < 2) & (rng.random(n) < 0.45)
    v1_lvl = np.where(auth0 == 0, rng.choice([1, 2], n, p=[0.6, 0.4]), rng.choice([2, 3], n, p=[0.85, 0.15]))
    v1_t = first + _exp_days(rng, 35, n) + 60
    lvl = np.where(v1, v1_lvl, auth0)
    v2 = (lvl == 2) & (rng.random(n) < 0.12)
    v2_t = np.where(v1, v1_t, first) + _exp_days(rng, 60, n) + 60
    final_lvl = np.where(v2, 3, lvl)
    # Closed accounts, some opened again later; now and then a cancel + register at one instant.
    c = rng.random(n) < 0.025
    c_t = first + _exp_days(rng, 300, n) + 3600
    rr = c & (rng.random(n) < 0.3)
    rr_t = c_t + _exp_days(rng, 90, n) + 3600
    si = ~c & (rng.random(n) < 0.003)
    si_t = first + _exp_days(rng, 200, n) + 7200
    end_ts = day_start(last_dn + 1)
    if not si.any() and n > 1:
        k = int(rng.integers(0, n))
        si[k], c[k], rr[k] = True, False, False
        si_t[k] = first[k] + (end_ts - first[k]) // 2
    v1 &= ~c | (v1_t < c_t)
    v2 &= ~c | (v2_t < c_t)
    has_id = lambda level: (level >= 2) & (rng.random(n) < 0.97)  # noqa: E731
    parts = [  # (mask, type, ts, auth, id shown, phone)
        (np.ones(n, bool), REGISTER, first, auth0, has_id(auth0), phone),
        (v1, VERIFY, v1_t, v1_lvl, has_id(v1_lvl), phone),
        (v2, VERIFY, v2_t, np.full(n, 3), np.ones(n, bool), phone),
        (c, CANCEL, c_t, final_lvl, np.zeros(n, bool), phone),
        (rr, REGISTER, rr_t, np.ones(n, np.int64), np.zeros(n, bool),
         np.where(rng.random(n) < 0.3, phone2, phone)),
        (si, REGISTER, si_t, final_lvl, has_id(final_lvl), phone),
        (si, CANCEL, si_t, final_lvl, np.zeros(n, bool), phone),
    ]
    cols = {k: [] for k in ("user", "type", "ts", "auth", "idshow", "phone")}
    for mask, etype, ts, auth, idshow, ph in parts:
        cols["user"].append(users[mask])
        cols["type"].append(np.full(int(mask.sum()), etype, np.int8))
        for key, arr in (("ts", ts), ("auth", auth), ("idshow", idshow), ("phone", ph)):
            cols[key].append(np.asarray(arr)[mask])
    ev = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(ev["ts"], kind="stable")
    ev = {k: v[order] for k, v in ev.items()}
    keep = ev["ts"] < end_ts
    ev = {k: v[keep] for k, v in ev.items()}
    m = len(ev["ts"])
    u = ev["user"]
    ev["idb"] = np.where(ev["idshow"], idb[u], 0)
    ev["district"] = district[u]
    ev["chan"] = np.where(rng.random(m) < 0.8, chan[u], channel_idx(rng, m))
    ev["auth_blank"] = (ev["auth"] == 0) & (rng.random(m) < 0.5)
    ev["phone"] = np.where((ev["auth"] == 0) & (rng.random(m) < 0.05), 0, ev["phone"])
    ev["delivery"] = _deliveries(rng, ev, start_dn, last_dn, very_late)
    if not dirt:  # a clean area holds every account of the window (none still in the pipe)
        ev["delivery"] = np.minimum(ev["delivery"], last_dn)
    ev["bad_phone"], ev["bad_id"] = _bad_pii(rng, ev, dirt, last_dn)
    w = rng.lognormal(0.0, 1.2, n) * np.where(rng.random(n) < 0.25, 0.05, 1.0)
    return Population(code, first, np.where(c, local_day(c_t), NEVER), np.where(rr, local_day(rr_t), NEVER),
                      np.cumsum(w), ev)


def _deliveries(rng, ev, start_dn, last_dn, very_late: bool) -> np.ndarray:
    """Delivery day of each event: the initial load for history, else the event day plus lateness.
    Events not delivered within the window get a day after ``last_dn``."""
    m = len(ev["ts"])
    day = local_day(ev["ts"])
    r = rng.random(m)
    late = np.where(r < 0.035, np.clip(rng.geometric(0.35, m), 1, 7), 0)
    late = np.where(r < 0.003, rng.integers(8, 36, m), late)
    late[day < start_dn] = 0  # history goes into the initial load
    # The cancel + register pairs (same instant) travel together.
    same = np.zeros(m, bool)
    same[1:] = (ev["ts"][1:] == ev["ts"][:-1]) & (ev["user"][1:] == ev["user"][:-1])
    same[:-1] |= same[1:]
    late[same] = 0
    cand = np.flatnonzero((day >= start_dn) & (day < last_dn) & ~same & (late == 0))
    if not ((late >= 1) & (late <= 7) & (day + late <= last_dn)).any() and len(cand):  # at least one a few days late
        k = cand[int(rng.integers(0, len(cand)))]
        late[k] = int(rng.integers(1, min(7, last_dn - day[k]) + 1))
    if very_late:  # one event a few weeks late, whatever the volume
        cand = np.flatnonzero((day >= start_dn) & (day <= last_dn - 15) & ~same & (late == 0))
        if len(cand):
            k = cand[int(rng.integers(0, len(cand)))]
            late[k] = int(rng.integers(14, min(35, last_dn - day[k]) + 1))
    return np.where(day < start_dn, start_dn, day + late)


def _bad_pii(rng, ev, dirt: bool, last_dn: int):
    """Kinds of invalid phone (1 short, 2 landline, 3 long) / id number (1 check digit,
    2 old 15-digit, 3 17 characters) on otherwise valid account events."""
    m = len(ev["ts"])
    if not dirt or m == 0:
        return np.zeros(m, np.int8), np.zeros(m, np.int8)
    bad_phone = np.where((ev["phone"] > 0) & (rng.random(m) < 0.004), rng.integers(1, 4, m), 0).astype(np.int8)
    bad_id = np.where((ev["idb"] > 0) & (rng.random(m) < 0.004), rng.integers(1, 4, m), 0).astype(np.int8)
    sent = ev["delivery"] <= last_dn
    for arr, ok in ((bad_phone, ev["phone"] > 0), (bad_id, ev["idb"] > 0)):
        cand = np.flatnonzero(ok & sent)
        if not arr.any() and len(cand):  # at least one of each, wherever the volume
            arr[cand[-1 - int(rng.integers(0, min(len(cand), 50)))]] = int(rng.integers(1, 4))
    return bad_phone, bad_id

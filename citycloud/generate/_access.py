"""service_access deliveries: the gateway log, built column-wise (numpy draws, polars string
assembly), written as several JSONL / JSONL.gz parts per delivery."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl

from ._catalog import GHOSTS
from ._common import (CHANNELS, ODD_CHANNELS, WEEKDAY_FACTOR, channel_idx, day_date, day_start, format_ts,
                      format_ts_day, insert_rows, lines_bytes, local_day, pick_forms, rng_for, seconds_of_day,
                      ymd)
from ._dirt import access_bad_line
from ._people import UNREG_POOL

PART_ROWS = 1_500_000
CN_FIRST_OCTET = np.array([36, 39, 42, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117, 118,
                           119, 120, 121, 122, 123, 124, 125, 139, 171, 175, 180, 182, 183, 211, 218, 219,
                           220, 221, 222, 223])
EXTRA_FIELDS = ('', ', "app_version": "6.4.2"', ', "gateway": "gw-03"')
_DIGITS = pl.Series([f"{i:03d}" for i in range(1000)])
_CO_TOK = pl.Series([f', "channel": "{ch}", "outcome": "{oc}", "duration_ms": '
                     for ch in CHANNELS + ODD_CHANNELS for oc in ("success", "failure", "timeout")])
_IP_HI = pl.Series([f', "client_ip": "{a}.{b}.' for a in CN_FIRST_OCTET for b in range(256)])
_IP_LO: dict[str, pl.Series] = {}


def _ip_lo(extra: str) -> pl.Series:
    if extra not in _IP_LO:
        _IP_LO[extra] = pl.Series([f'{c}.{d}"{extra}}}' for c in range(256) for d in range(1, 255)])
    return _IP_LO[extra]


class AccessWriter:
    def __init__(self, city, pop, cat, landing, per_day: int | None, say=lambda _msg: None):
        self.city, self.pop, self.cat, self.landing, self.per_day = city, pop, cat, landing, per_day
        self.say = say
        self.resend: dict[int, list[pl.Series]] = defaultdict(list)
        self.all_ids = pl.concat([cat.ids, cat.ghost_ids()])
        # Token tables: each gathered piece carries the JSON around it, so a line is one concat.
        self.user_tok = pop.tokens('", "user_id": ', ', "service_id": "')
        self.svc_tok = self.all_ids + '", "event_time": '

    def volume(self, dn: int, rng) -> int:
        if self.per_day is not None:
            return self.per_day
        busy = self.city.plan.busyness
        factor = busy.factor(self.city.code, dn) if busy else WEEKDAY_FACTOR[(dn + 3) % 7]
        base = self.pop.registered_by(np.array([dn]))[0] * 0.4 * factor
        return int(rng.poisson(max(base, 5.0)))

    def deliver(self, dn: int) -> list[pl.DataFrame]:
        """Write the service_access delivery of day ``dn``; return rating candidates."""
        city, plan = self.city, self.city.plan
        frng = rng_for(city.seed, int(city.code), 501, dn)
        total = self.volume(dn, frng)
        n_parts = max(2 + int(frng.random() < 0.4), -(-total // PART_ROWS))
        sizes = [total // n_parts + (1 if i < total % n_parts else 0) for i in range(n_parts)]
        complete = plan.complete(city.code, "service_access", dn)
        written = n_parts if complete else n_parts - 1  # the last part is still being written
        kinds = plan.bad_kinds(frng, city.code, "service_access", dn, total)
        bad = [access_bad_line(frng, kind, city.code, dn, f"A{city.code}-{ymd(dn)}-{total + j:09d}",
                               self.all_ids[int(frng.integers(0, len(self.all_ids)))],
                               f"U{city.code}{int(frng.integers(1, self.pop.n + 1)):06d}")
               for j, kind in enumerate(kinds)]
        bad_part = int(frng.integers(0, written))
        carry = self.resend.pop(dn, [])
        candidates, seq0 = [], 0
        for i, size in enumerate(sizes[:written]):
            prng = rng_for(city.seed, int(city.code), 502, dn, i)
            cols = self._rows(prng, size, dn, seq0, force=city.dirt and i == 0,
                              late_first=(i == 0 and plan.very_late.get((city.code, "service_access")) == dn))
            lines = self._lines(cols, dn, EXTRA_FIELDS[int(frng.integers(0, 3))] if city.dirt else "")
            candidates.append(self._candidates(prng, cols, dn, lines))
            self._pick_resend(prng, lines, dn)
            extra_s = pl.Series(bad if i == bad_part else [], dtype=pl.Utf8)
            if i == written - 1 and carry:
                extra_s = pl.concat([extra_s, *carry])
            dups = prng.integers(0, size, int(prng.binomial(size, 0.0004)) + int(prng.random() < 0.3)) \
                if size else np.array([], dtype=np.int64)
            order = insert_rows(size, prng, dups, len(extra_s))
            out = pl.concat([lines, extra_s]).gather(pl.Series(order)) if len(order) else lines
            gz = (i + dn) % (2 if n_parts <= 3 else 3) == 1  # a mix; fewer to compress when big
            self.landing.put(city.code, "service_access", dn, f"part-{i:04d}.jsonl" + (".gz" if gz else ""),
                             out, rows=len(out), gz=gz, level=1,
                             bom=city.dirt and bool(prng.random() < 0.03))
            seq0 += size
            if n_parts > 3:
                self.say(f"{city.code} service_access dt={day_date(dn)}: part {i + 1}/{n_parts} "
                         f"({seq0:,}/{total:,} events)")
        if plan.truncated_gzip == (city.code, dn):
            prng = rng_for(city.seed, int(city.code), 503, dn)
            cols = self._rows(prng, 600, dn, total + len(bad), force=False, late_first=False)
            self.landing.put(city.code, "service_access", dn, f"part-{n_parts:04d}.jsonl.gz",
                             lines_bytes(self._lines(cols, dn, "")), rows=600, gz=True, truncate=0.6,
                             unreadable="truncated gzip")
        if complete:
            self.landing.success(city.code, "service_access", dn)
        return candidates

    def _rows(self, rng, n: int, dn: int, seq0: int, force: bool, late_first: bool) -> dict:
        dirt, npop, nsvc = self.city.dirt, self.pop.n, len(self.cat.ids)
        r = rng.random(n)
        late = np.where(r < 0.03, np.clip(rng.geometric(0.4, n), 1, 7), 0)
        late = np.where(r < 0.0008, rng.integers(8, 36, n), late)
        if late_first and n:
            late[0] = int(rng.integers(14, 29))
        ts = np.sort(day_start(dn - late) + seconds_of_day(rng, n))
        event_dn = local_day(ts)
        # user: an account (index), anonymous (npop) or an id that never registered (npop + 1 + k)
        user = self.pop.sample(rng, event_dn)
        user = np.where((rng.random(n) < 0.12) | (user < 0), npop, user)
        if dirt:
            user = np.where((rng.random(n) < 0.003) & (user < npop), npop + 1 + rng.integers(0, UNREG_POOL, n), user)
        svc = self.cat.sample(rng, event_dn)
        if dirt:
            svc = np.where(rng.random(n) < 0.0005, nsvc + rng.integers(0, GHOSTS, n), svc)
        u = rng.random(n)
        known = np.minimum(svc, nsvc - 1)
        pf = self.cat.p_fail[known]
        outcome = np.where(u < pf, 1, np.where(u < pf + self.cat.p_timeout[known], 2, 0))
        chan = channel_idx(rng, n).astype(np.int64)
        if dirt:
            chan = np.where(rng.random(n) < 0.0005, 5 + rng.integers(0, len(ODD_CHANNELS), n), chan)
        dur = rng.lognormal(6.0, 0.9, n).astype(np.int64)
        dur = np.where(outcome == 2, np.where(rng.random(n) < 0.4, -1, 15_000 + rng.integers(0, 15_000, n)), dur)
        dur = np.where(rng.random(n) < 0.012, -1, dur)
        if force and n >= 3:  # at least one of each per delivery: unknown service, unknown user, odd channel
            a, b, c = rng.choice(n, 3, replace=False)
            svc[a] = nsvc + int(rng.integers(0, GHOSTS))
            user[b] = npop + 1 + int(rng.integers(0, UNREG_POOL))
            chan[c] = 5 + int(rng.integers(0, len(ODD_CHANNELS)))
        return {"seq": np.arange(seq0, seq0 + n), "ts": ts, "user": user, "svc": svc, "outcome": outcome,
                "chan": chan, "dur": dur, "form": pick_forms(rng, n, epoch=True),
                "ip_hi": rng.integers(0, len(CN_FIRST_OCTET) * 256, n), "ip_lo": rng.integers(0, 256 * 254, n)}

    def _lines(self, c: dict, dn: int, extra: str) -> pl.Series:
        n = len(c["ts"])
        if n == 0:
            return pl.Series([], dtype=pl.Utf8)
        seq = c["seq"]
        g = lambda table, idx: table.gather(pl.Series(np.asarray(idx, dtype=np.int64)))  # noqa: E731
        df = pl.DataFrame({
            "a": g(_DIGITS, seq // 1_000_000), "b": g(_DIGITS, seq // 1000 % 1000), "c": g(_DIGITS, seq % 1000),
            "user": g(self.user_tok, c["user"]), "svc": g(self.svc_tok, c["svc"]),
            "et": (format_ts_day(c["ts"], c["form"], dn) if n > 300_000 else
                   format_ts(c["ts"], c["form"], json=True)),
            "co": g(_CO_TOK, c["chan"] * 3 + c["outcome"]), "dur": c["dur"],
            "hi": g(_IP_HI, c["ip_hi"]), "lo": g(_ip_lo(extra), c["ip_lo"]),
        })
        dur = pl.when(pl.col("dur") < 0).then(pl.lit("null")).otherwise(pl.col("dur").cast(pl.Utf8))
        line = pl.concat_str([pl.lit(f'{{"event_id": "A{self.city.code}-{ymd(dn)}-'), "a", "b", "c", "user",
                              "svc", "et", "co", dur, "hi", "lo"])
        return df.select(line.alias("line")).to_series()

    def _candidates(self, rng, c: dict, dn: int, lines: pl.Series) -> pl.DataFrame:
        """Accesses that get rated: ~1.5 % of logged-in successes, more of the failures."""
        n = len(c["ts"])
        anon = c["user"] == self.pop.n
        p = np.where(c["outcome"] == 0, np.where(anon, 0.001, 0.015), 0.05)
        pick = np.flatnonzero(rng.random(n) < p)
        k = len(pick)
        rating_ts = c["ts"][pick] + 30 + rng.exponential(900, k).astype(np.int64)
        r = rng.random(k)
        later = np.where(r < 0.03, rng.integers(1, 8, k), 0)
        later = np.where(r < 0.002, rng.integers(8, 36, k), later)
        seq = c["seq"][pick]
        return pl.DataFrame({
            "acc": pl.Series([f"A{self.city.code}-{ymd(dn)}-"] * k, dtype=pl.Utf8)
            + pl.Series(seq).cast(pl.Utf8).str.zfill(9),
            "user": self.pop.tokens().gather(pl.Series(c["user"][pick], dtype=pl.Int64)),
            "svc": self.all_ids.gather(pl.Series(c["svc"][pick], dtype=pl.Int64)),
            "outcome": c["outcome"][pick], "ts": rating_ts,
            "deliver": np.maximum(dn, local_day(rating_ts)) + later,
        })

    def _pick_resend(self, rng, lines: pl.Series, dn: int) -> None:
        """Some events come again in one of the next three deliveries, byte for byte."""
        n = len(lines)
        if n == 0:
            return
        k = int(rng.binomial(n, 0.001)) + int(rng.random() < 0.3)
        idx = np.sort(rng.choice(n, min(k, n), replace=False))
        target = dn + rng.integers(1, 4, len(idx))
        for t in np.unique(target):
            if t <= self.city.last_dn:
                self.resend[int(t)].append(lines.gather(pl.Series(idx[target == t])))

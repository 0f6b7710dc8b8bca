"""registrations deliveries: the initial load, daily CSV files, re-sent rows and the two unreadable
files (a legacy GB18030 export and a file without its header)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl

from ._common import CHANNELS, ODD_CHANNELS, csv_bytes, day_start, format_ts, insert_rows, pick_forms, rng_for, ymd
from ._dirt import registration_bad_row
from ._people import ID_CHECK, Population, id_check_char, id_check_index

COLUMNS = ["event_id", "event_type", "user_id", "event_time", "channel", "phone", "id_number", "auth_level",
           "district_code"]
TYPES = pl.Series(["register", "verify", "cancel"])
INITIAL_PART_ROWS = 1_000_000


def _frame(city, pop: Population, sel: np.ndarray, rng, dn: int, seq0: int, districts: pl.Series,
           force_odd: bool = False) -> pl.DataFrame:
    ev = {k: v[sel] for k, v in pop.ev.items()}
    n = len(sel)
    if n == 0:
        return pl.DataFrame(schema={c: pl.Utf8 for c in COLUMNS})
    chan = pl.Series(list(CHANNELS)).gather(pl.Series(ev["chan"].astype(np.int64)))
    if city.dirt:
        odd = np.flatnonzero((rng.random(n) < 0.003) | ((np.arange(n) == n // 2) & force_odd))
        if len(odd):
            chan = chan.scatter(odd, [ODD_CHANNELS[i % len(ODD_CHANNELS)] for i in odd])
    idb = ev["idb"]
    chars = np.array(list(ID_CHECK))
    df = pl.DataFrame({
        "seq": np.arange(seq0, seq0 + n), "user": ev["user"] + 1, "phone": ev["phone"], "idb": idb,
        "check": chars[id_check_index(idb)], "auth": ev["auth"], "blank": ev["auth_blank"],
    })
    out = df.select(
        event_id=pl.concat_str([pl.lit(f"R{city.code}-{ymd(dn)}-"), pl.col("seq").cast(pl.Utf8).str.zfill(7)]),
        event_type=TYPES.gather(pl.Series(ev["type"].astype(np.int64))),
        user_id=pl.concat_str([pl.lit(f"U{city.code}"), pl.col("user").cast(pl.Utf8).str.zfill(6)]),
        event_time=format_ts(ev["ts"], pick_forms(rng, n, epoch=False), json=False),
        channel=chan,
        phone=pl.when(pl.col("phone") == 0).then(None).otherwise(pl.col("phone").cast(pl.Utf8)),
        id_number=pl.when(pl.col("idb") == 0).then(None).otherwise(
            pl.concat_str([pl.col("idb").cast(pl.Utf8), pl.col("check")])),
        auth_level=pl.when(pl.col("blank")).then(None).otherwise(pl.col("auth").cast(pl.Utf8)),
        district_code=pl.when(pl.lit(pl.Series(ev["district"])) < 0).then(None)
        .otherwise(districts.gather(pl.Series(np.maximum(ev["district"], 0)))),
    )
    # The few invalid phone / id numbers (flagging dirt), patched in place.
    bad = np.flatnonzero(ev["bad_phone"])
    if len(bad):
        out = out.with_columns(phone=out["phone"].scatter(bad, [
            _bad_phone(str(ev["phone"][i]), int(ev["bad_phone"][i])) for i in bad]))
    bad = np.flatnonzero(ev["bad_id"])
    if len(bad):
        out = out.with_columns(id_number=out["id_number"].scatter(bad, [
            _bad_id(str(idb[i]), int(ev["bad_id"][i]), int(rng.integers(1, 11))) for i in bad]))
    return out


def _bad_phone(phone: str, kind: int) -> str:
    return {1: phone[:10], 2: "021" + phone[3:11], 3: phone + "8"}[kind]  # short, landline, long


def _bad_id(body: str, kind: int, shift: int) -> str:
    if kind == 1:  # wrong check digit
        right = ID_CHECK.index(id_check_char(body))
        return body + ID_CHECK[(right + shift) % 11]
    return body[:6] + body[8:] if kind == 2 else body  # old 15-digit form / 17 characters


def _shape(city, rng, df: pl.DataFrame) -> pl.DataFrame:
    """Column order and additive drift as one upstream exporter happens to write them."""
    if not city.dirt:
        return df
    if rng.random() < 0.3:
        df = df.with_columns(app_version=pl.lit(["5.9.2", "6.0.1", "6.1.0"][int(rng.integers(0, 3))]))
    if rng.random() < 0.15:
        df = df.with_columns(source_system=pl.lit("uc-v2"))
    if rng.random() < 0.45:
        df = df.select([df.columns[i] for i in rng.permutation(df.width)])
    return df


def write_registrations(city, pop: Population, landing) -> None:
    plan = city.plan
    districts = pl.Series([d for d, _ in city.profile.districts])
    resend: dict[int, list[pl.DataFrame]] = defaultdict(list)
    recent = None
    dsel = pop.ev["delivery"]
    initial_end = day_start(city.start_dn)
    for dn in range(city.start_dn, city.last_dn + 1):
        rng = rng_for(city.seed, int(city.code), 301, dn)
        sel = np.flatnonzero(dsel == dn)
        seq = 0
        if dn == city.start_dn:  # the initial load: every account event since launch
            init = sel[pop.ev["ts"][sel] < initial_end]
            sel = sel[pop.ev["ts"][sel] >= initial_end]
            chunks = max(1, -(-len(init) // INITIAL_PART_ROWS))
            for k, part in enumerate(np.array_split(init, chunks)):
                df = _frame(city, pop, part, rng, dn, seq, districts, force_odd=k == 0)
                seq += len(part)
                name = "initial_load.csv.gz" if chunks == 1 else f"initial_load-{k + 1:03d}.csv.gz"
                twice = rng.integers(0, df.height, 1 + int(rng.random() < 0.5)) if df.height else []
                full = df[insert_rows(df.height, rng, np.asarray(twice, dtype=np.int64), 0)]
                landing.put(city.code, "registrations", dn, name, csv_bytes(_shape(city, rng, full)),
                            rows=full.height, gz=True)
                recent = df if df.height else recent
                if k == 0 and df.height and dn < city.last_dn:  # a few history rows come again
                    for i in rng.choice(df.height, min(df.height, 3), replace=False):
                        resend[dn + 1 + int(rng.integers(0, min(3, city.last_dn - dn)))].append(df[int(i)])
        df = _frame(city, pop, sel, rng, dn, seq, districts)
        n = df.height
        # Re-sent later (same id, same content): about one row in a hundred.
        for i in np.flatnonzero(rng.random(n) < 0.01):
            target = dn + int(rng.integers(1, 4))
            if target <= city.last_dn:
                resend[target].append(df[int(i)])
        kinds = plan.bad_kinds(rng, city.code, "registrations", dn, n)
        bad = [registration_bad_row(rng, kind, dn, f"R{city.code}-{ymd(dn)}-{seq + n + j:07d}",
                                    f"U{city.code}{int(rng.integers(1, pop.n + 1)):06d}")
               for j, kind in enumerate(kinds)]
        dups = rng.integers(0, n, int(rng.random() < 0.3) + int(rng.random() < 0.1)) if n else np.array([], int)
        extra = pl.DataFrame(bad, schema={c: pl.Utf8 for c in COLUMNS})
        full = pl.concat([df, extra]) if len(bad) else df
        full = full[insert_rows(n, rng, dups, len(bad))]
        gz = bool(rng.random() < 0.5)
        landing.put(city.code, "registrations", dn, f"reg_{ymd(dn)}.csv" + (".gz" if gz else ""),
                    csv_bytes(_shape(city, rng, full)), rows=full.height, gz=gz,
                    bom=city.dirt and bool(rng.random() < 0.2))
        if resend.get(dn):
            again = pl.concat(resend.pop(dn))
            landing.put(city.code, "registrations", dn, "resend.csv", csv_bytes(_shape(city, rng, again)),
                        rows=again.height)
        recent = df if n else recent
        _unreadable(city, rng, dn, recent, landing)
        if plan.complete(city.code, "registrations", dn):
            landing.success(city.code, "registrations", dn)


def _unreadable(city, rng, dn: int, recent: pl.DataFrame | None, landing) -> None:
    """A legacy export in GB18030 (not UTF-8) and a file without its header row. Both only
    repeat events delivered elsewhere, so setting them aside loses nothing."""
    if recent is None or recent.height == 0:
        return
    plan = city.plan
    rows = recent[np.sort(rng.choice(recent.height, min(recent.height, 12), replace=False))]
    if plan.non_utf8 == (city.code, dn):
        names = dict(city.profile.districts)
        legacy = rows.with_columns(district_name=pl.col("district_code").replace_strict(
            names, default="未知区县", return_dtype=pl.Utf8).fill_null("未知区县"), remark=pl.lit("历史系统导出"))
        data = csv_bytes(legacy).decode("utf-8").encode("gb18030")
        landing.put(city.code, "registrations", dn, "legacy_export.csv", data, rows=legacy.height,
                    unreadable="not UTF-8 (GB18030)")
    if plan.no_header == (city.code, dn):
        landing.put(city.code, "registrations", dn, "supplement.csv", csv_bytes(rows, header=False),
                    rows=rows.height, unreadable="missing header")

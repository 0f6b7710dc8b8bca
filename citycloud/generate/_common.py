"""Shared pieces of the generator: city profiles, day arithmetic, seeds, vectorised
timestamp formatting and the (ordered, background) file writer."""
from __future__ import annotations

import datetime as dt
import io
import queue
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from citycloud import channels
from citycloud.config import BUSINESS_UTC_OFFSET_HOURS, BUSINESS_UTC_OFFSET_ISO

DAY = 86_400
TZ = BUSINESS_UTC_OFFSET_HOURS * 3600  # the business time zone keeps one offset (config)
EPOCH_ORD = dt.date(1970, 1, 1).toordinal()
FLOOR_DN = dt.date(2015, 1, 1).toordinal() - EPOCH_ORD  # contract: nothing before 2015-01-01
BOM = "\ufeff".encode()

# Timestamp forms (landing.md, Timestamps). EPOCH_MS is allowed in service_access only.
F_OFFSET, F_Z, F_LOCAL_T, F_LOCAL_SPACE, F_EPOCH_MS = range(5)

CHANNELS = channels.CHANNELS  # ios, android, alipay_mini, wechat_mini, web: the order the draws depend on
CHANNEL_P = np.array([0.17, 0.21, 0.30, 0.24, 0.08])
ODD_CHANNELS = ("harmony_os", "douyin_mini", "kiosk", "baidu_mini", "unknown")

# Hour-of-day profile of a government portal (local time): office hours and evening peaks.
_HOURS = np.array([0.5, 0.25, 0.15, 0.1, 0.1, 0.2, 0.6, 1.5, 3.2, 4.6, 5.0, 4.7, 3.4, 3.9,
                   4.7, 4.8, 4.4, 3.7, 3.0, 3.3, 3.6, 3.1, 2.0, 1.0])
HOUR_CDF = np.cumsum(_HOURS) / _HOURS.sum()
WEEKDAY_FACTOR = np.array([1.05, 1.0, 1.0, 1.0, 0.97, 0.74, 0.70])  # Mon..Sun


@dataclass(frozen=True)
class CityProfile:
    code: str
    name: str
    scale: float            # users relative to Shanghai
    opened: dt.date         # platform launch: the initial load starts here
    services: int           # catalog size
    districts: tuple[tuple[str, str], ...]  # (district code, name)


def day_number(d: dt.date) -> int:
    return d.toordinal() - EPOCH_ORD


def day_date(n: int) -> dt.date:
    return dt.date.fromordinal(int(n) + EPOCH_ORD)


def ymd(n: int) -> str:
    return day_date(n).strftime("%Y%m%d")


def day_start(n):
    """UTC epoch seconds of local midnight starting day number ``n`` (scalar or array)."""
    return n * DAY - TZ


def local_day(ts):
    """Asia/Shanghai day number of UTC epoch seconds ``ts`` (scalar or array)."""
    return (ts + TZ) // DAY


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *[int(k) for k in keys]])


class Sampler:
    """Draws from a discrete distribution given by increasing cumulative weights, with a guide
    table (much faster than searchsorted on random queries). ``draw(x)`` returns, for each x in
    [0, cum[-1]), the i with cum[i-1] <= x < cum[i] (numpy.searchsorted side="right")."""

    def __init__(self, cum: np.ndarray):
        self.cum = np.asarray(cum, dtype=np.float64)
        self.k = int(min(max(1024, 4 * len(self.cum)), 1 << 22))
        self.scale = self.k / self.cum[-1] if len(self.cum) and self.cum[-1] > 0 else 0.0
        self.guide = np.searchsorted(self.cum, np.arange(self.k) / self.scale if self.scale else
                                     np.zeros(self.k), side="right")

    def draw(self, x: np.ndarray) -> np.ndarray:
        last = len(self.cum) - 1
        idx = self.guide[np.clip((x * self.scale).astype(np.int64), 0, self.k - 1)].clip(0, last)
        todo = np.flatnonzero(self.cum[idx] <= x)
        while len(todo):
            idx[todo] = np.minimum(idx[todo] + 1, last)
            todo = todo[(self.cum[idx[todo]] <= x[todo]) & (idx[todo] < last)]
        return idx

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.draw(rng.random(n) * self.cum[-1])


_HOUR = Sampler(HOUR_CDF)
_CHANNEL = Sampler(np.cumsum(CHANNEL_P))
_FORMS = {True: Sampler(np.cumsum([0.36, 0.16, 0.12, 0.11, 0.25])),
          False: Sampler(np.cumsum([0.48, 0.2, 0.17, 0.15]))}


def seconds_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    return _HOUR.sample(rng, n) * 3600 + rng.integers(0, 3600, n)


def channel_idx(rng: np.random.Generator, n: int) -> np.ndarray:
    return _CHANNEL.sample(rng, n).astype(np.int8)


def pick_forms(rng: np.random.Generator, n: int, epoch: bool) -> np.ndarray:
    return _FORMS[epoch].sample(rng, n).astype(np.int8)


_TOD: pl.Series | None = None
_PRE = pl.Series(['"', '"', '"', '"', ""])
_SEP = pl.Series(["T", "T", "T", " ", ""])
_SUF_JSON = pl.Series([f'{BUSINESS_UTC_OFFSET_ISO}"', 'Z"', '"', '"', ""])
_SUF_CSV = pl.Series([BUSINESS_UTC_OFFSET_ISO, "Z", "", "", ""])


def format_ts(ts: np.ndarray, form: np.ndarray, json: bool) -> pl.Series:
    """Vectorised timestamps in the given forms; for JSON a ready token (quoted or integer)."""
    global _TOD
    n = len(ts)
    if n == 0:
        return pl.Series([], dtype=pl.Utf8)
    if _TOD is None:
        _TOD = pl.Series([f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])
    ts = np.asarray(ts, dtype=np.int64)
    eff = np.where(form == F_Z, ts, ts + TZ)
    dn = eff // DAY
    lo = int(dn.min())
    dates = pl.Series([day_date(d).isoformat() for d in range(lo, int(dn.max()) + 1)])
    fs = pl.Series(form.astype(np.int8))
    cols = {
        "d": dates.gather(pl.Series(dn - lo)),
        "t": _TOD.gather(pl.Series(eff - dn * DAY)),
        "sep": _SEP.gather(fs),
        "suf": (_SUF_JSON if json else _SUF_CSV).gather(fs),
        "f": fs,
        "ms": pl.Series(ts * 1000),
    }
    parts = ([pl.lit('"')] if json else []) + [pl.col("d"), pl.col("sep"), pl.col("t"), pl.col("suf")]
    expr = pl.concat_str(parts)
    if json:
        expr = pl.when(pl.col("f") == F_EPOCH_MS).then(pl.col("ms").cast(pl.Utf8)).otherwise(expr)
    return pl.DataFrame(cols).select(expr.alias("ts")).to_series()


_DAY_TABLE: dict = {}


def format_ts_day(ts: np.ndarray, form: np.ndarray, dn: int) -> pl.Series:
    """JSON tokens like format_ts for big, sorted arrays ending within day ``dn``: the rows of
    day ``dn`` come from a per-day table of every second in every form (cached)."""
    k = int(np.searchsorted(ts, day_start(dn)))
    table = _DAY_TABLE.get(dn)
    if table is None:
        every = np.tile(day_start(dn) + np.arange(DAY, dtype=np.int64), 5)
        table = format_ts(every, np.repeat(np.arange(5, dtype=np.int8), DAY), json=True)
        _DAY_TABLE.clear()
        _DAY_TABLE[dn] = table
    on = table.gather(pl.Series(form[k:].astype(np.int64) * DAY + (ts[k:] - day_start(dn))))
    return pl.concat([format_ts(ts[:k], form[:k], json=True), on]) if k else on


def iso_local(ts: int, form: int = F_OFFSET) -> str:
    """One timestamp as text (for hand-made rows)."""
    if form == F_EPOCH_MS:
        return str(int(ts) * 1000)
    if form == F_Z:
        return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = dt.datetime.fromtimestamp(int(ts) + TZ, dt.timezone.utc).replace(tzinfo=None)
    return local.strftime({F_OFFSET: "%Y-%m-%dT%H:%M:%S" + BUSINESS_UTC_OFFSET_ISO, F_LOCAL_T: "%Y-%m-%dT%H:%M:%S"}.get(
        form, "%Y-%m-%d %H:%M:%S"))


def lines_bytes(lines: pl.Series) -> bytes:
    """Join text lines (no embedded newlines) into UTF-8 bytes, one per line."""
    if len(lines) == 0:
        return b""
    buf = io.BytesIO()
    pl.DataFrame({"l": lines}).write_csv(buf, include_header=False, quote_style="never")
    return buf.getvalue()


def csv_bytes(df: pl.DataFrame, header: bool = True) -> bytes:
    buf = io.BytesIO()
    df.write_csv(buf, include_header=header)
    return buf.getvalue()


def insert_rows(n: int, rng: np.random.Generator, dup_src: np.ndarray, extra: int) -> np.ndarray:
    """Gather order for ``n`` rows plus copies of ``dup_src`` rows (placed right after or a bit
    after their original) plus ``extra`` appended rows (indices n..n+extra-1) at random places."""
    order = np.arange(n, dtype=np.int64)
    if len(dup_src):
        dup_src = np.sort(dup_src)
        at = np.minimum(dup_src + 1 + rng.integers(0, 4, len(dup_src)), n)
        order = np.insert(order, np.sort(at), dup_src)
    if extra:
        pos = np.sort(rng.integers(0, len(order) + 1, extra))
        order = np.insert(order, pos, np.arange(n, n + extra))
    return order


@dataclass
class Stats:
    files: int = 0
    bytes: int = 0
    rows: dict = field(default_factory=dict)
    unreadable: dict = field(default_factory=dict)  # relative path -> why a reader must set it aside


class Landing:
    """Writes delivery files in order on a background thread (compression overlaps generation).

    ``_SUCCESS`` goes through the same queue, so it lands only after the folder's files."""

    def __init__(self, root: Path):
        self.root = root
        self.stats = Stats()
        self._q: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="citycloud-generate-writer", daemon=True)
        self._thread.start()

    def folder(self, city: str, source: str, dn: int) -> Path:
        return self.root / city / source / f"dt={day_date(dn).isoformat()}"

    def put(self, city: str, source: str, dn: int, name: str, data: bytes | pl.Series, *, rows: int,
            gz: bool = False, level: int = 6, bom: bool = False, truncate: float | None = None,
            unreadable: str | None = None) -> str:
        """Queue one file; ``data`` is bytes or a Series of text lines (joined on the writer thread)."""
        if self._error:
            raise self._error
        self.stats.files += 1
        self.stats.rows[source] = self.stats.rows.get(source, 0) + rows
        path = self.folder(city, source, dn) / name
        if unreadable:
            self.stats.unreadable[str(path.relative_to(self.root))] = unreadable
        self._q.put(("file", path, data, gz, level, bom, truncate))
        return str(path.relative_to(self.root))

    def success(self, city: str, source: str, dn: int) -> None:
        self._q.put(("success", self.folder(city, source, dn) / "_SUCCESS", b"", False, 0, False, None))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error:
                continue
            try:
                _, path, data, gz, level, bom, truncate = item
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(data, pl.Series):
                    if not (gz or bom or truncate) and len(data):  # straight from polars to the file
                        pl.DataFrame({"l": data}).write_csv(path, include_header=False, quote_style="never")
                        self.stats.bytes += path.stat().st_size
                        continue
                    data = lines_bytes(data)
                if bom:
                    data = BOM + data
                if gz:  # gzip with mtime 0 and no file name; big files fast rather than small
                    data = zlib.compress(data, level=level if len(data) < 8 << 20 else 1, wbits=31)
                if truncate is not None:
                    data = data[: max(20, int(len(data) * truncate))]
                path.write_bytes(data)
                self.stats.bytes += len(data)
            except BaseException as exc:  # surfaced on the generating thread
                self._error = exc

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error:
            raise self._error

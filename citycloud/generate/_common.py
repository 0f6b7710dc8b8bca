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

DAY = 86_400
TZ = 8 * 3600  # Asia/Shanghai, UTC+8, no daylight saving
EPOCH_ORD = dt.date(1970, 1, 1).toordinal()
FLOOR_DN = dt.date(2015, 1, 1).toordinal() - EPOCH_ORD  # contract: nothing before 2015-01-01
BOM = "\ufeff".encode()

# Timestamp forms (landing.md, Timestamps). EPOCH_MS is allowed in service_access only.
F_OFFSET, F_Z, F_LOCAL_T, F_LOCAL_SPACE, F_EPOCH_MS = range(5)

CHANNELS = ("ios", "android", "alipay_mini", "wechat_mini", "web")
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


def seconds_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    hour = np.searchsorted(HOUR_CDF, rng.random(n), side="right").clip(0, 23)
    return hour * 3600 + rng.integers(0, 3600, n)


def channel_idx(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(CHANNEL_P), rng.random(n) * CHANNEL_P.sum()).clip(0, 4).astype(np.int8)


def pick_forms(rng: np.random.Generator, n: int, epoch: bool) -> np.ndarray:
    p = [0.36, 0.16, 0.12, 0.11, 0.25] if epoch else [0.48, 0.2, 0.17, 0.15, 0.0]
    return rng.choice(5, n, p=p).astype(np.int8)


_TOD: pl.Series | None = None
_PRE = pl.Series(['"', '"', '"', '"', ""])
_SEP = pl.Series(["T", "T", "T", " ", ""])
_SUF_JSON = pl.Series(['+08:00"', 'Z"', '"', '"', ""])
_SUF_CSV = pl.Series(["+08:00", "Z", "", "", ""])


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


def iso_local(ts: int, form: int = F_OFFSET) -> str:
    """One timestamp as text (for hand-made rows)."""
    if form == F_EPOCH_MS:
        return str(int(ts) * 1000)
    if form == F_Z:
        return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = dt.datetime.fromtimestamp(int(ts) + TZ, dt.timezone.utc).replace(tzinfo=None)
    return local.strftime({F_OFFSET: "%Y-%m-%dT%H:%M:%S+08:00", F_LOCAL_T: "%Y-%m-%dT%H:%M:%S"}.get(
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


class Landing:
    """Writes delivery files in order on a background thread (compression overlaps generation).

    ``_SUCCESS`` goes through the same queue, so it lands only after the folder's files."""

    def __init__(self, root: Path):
        self.root = root
        self.stats = Stats()
        self._q: queue.Queue = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="citycloud-generate-writer", daemon=True)
        self._thread.start()

    def folder(self, city: str, source: str, dn: int) -> Path:
        return self.root / city / source / f"dt={day_date(dn).isoformat()}"

    def put(self, city: str, source: str, dn: int, name: str, data: bytes, *, rows: int, gz: bool = False,
            level: int = 6, bom: bool = False, truncate: float | None = None) -> str:
        if self._error:
            raise self._error
        self.stats.files += 1
        self.stats.rows[source] = self.stats.rows.get(source, 0) + rows
        path = self.folder(city, source, dn) / name
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
                if bom:
                    data = BOM + data
                if gz:
                    data = zlib.compress(data, level=level, wbits=31)  # gzip, mtime 0, no file name
                if truncate is not None:
                    data = data[: max(20, int(len(data) * truncate))]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                self.stats.bytes += len(data)
            except BaseException as exc:  # surfaced on the generating thread
                self._error = exc

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error:
            raise self._error

"""Data access for the dashboard: reads only the published, read-only snapshot.

The warehouse itself is never opened: DuckDB lets no reader in while a run holds the file for
writing. Every publish writes `<warehouse stem>.published.duckdb` beside it (temp file, then an
atomic rename, see `citycloud.publish.export_snapshot`). Each data load here opens a fresh
read-only connection to that file, runs all of its queries on that one connection (so one page
shows one consistent snapshot) and closes it again, so a replaced snapshot is picked up by the
next load and an old one is never held open.

Every read is scoped (access.md): `open_snapshot` and `run_load` take the person's `Scope` as a
required argument and read through `citycloud.access.scoped_connection`, whose `marts.*` and
`audit.*` are views keeping only the scope's cities (filtered in SQL). A loader that forgets
to filter by city still sees only those.

Nothing here imports Streamlit: the functions take a `Snapshot` and return pandas frames, so
they are tested without a browser. Caching lives in `citycloud.dashboards.ui`.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import pandas as pd
from scipy.stats import fisher_exact

from citycloud.access import Scope, scoped_connection
from citycloud.config import BUSINESS_TZ, SOURCES, WAITED_SOURCES, Settings, published_path

from citycloud.dashboards import fmt

def kpi_source(kpi: str) -> str | None:
    """The landing source that feeds a KPI (to point at a likely cause when it moves): the
    metric's config.meta.source in the registry."""
    metric = fmt.registry().metrics.get(kpi)
    return metric.source if metric else None


class SnapshotMissing(Exception):
    """No published snapshot beside the warehouse yet."""

    def __init__(self, path: Path):
        super().__init__(f"no published snapshot at {path}: run `citycloud run` first")
        self.path = path


class SnapshotBusy(Exception):
    """The snapshot could not be read just now (being replaced); retry shortly."""


@dataclass(frozen=True)
class SnapshotVersion:
    """Identifies one published snapshot file: changes whenever a new one is renamed in."""

    path: str
    inode: int
    mtime_ns: int
    size: int

    @property
    def published_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.mtime_ns / 1e9, tz=BUSINESS_TZ)


def snapshot_path(warehouse: Path | str) -> Path:
    return published_path(Path(warehouse))


def snapshot_version(warehouse: Path | str) -> SnapshotVersion | None:
    path = snapshot_path(warehouse)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return SnapshotVersion(str(path), st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass
class Snapshot:
    """One open read-only connection to the snapshot, with its table list."""

    con: duckdb.DuckDBPyConnection
    path: Path
    tables: dict[str, set[str]] = field(default_factory=dict)  # "schema.table" -> columns
    scope: Scope | None = None  # whose view of the snapshot this is (the connection is filtered to it)

    def has(self, table: str, *columns: str) -> bool:
        cols = self.tables.get(table)
        return cols is not None and all(c in cols for c in columns)

    def df(self, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        return self.con.execute(sql, list(params or [])).df()


@contextmanager
def open_snapshot(warehouse: Path | str, scope: Scope, attempts: int = 8, delay: float = 0.05) -> Iterator[Snapshot]:
    """A fresh read-only connection to the published snapshot as `scope` may see it, closed on exit.

    Opening is retried briefly: a snapshot being renamed into place or a transient I/O error
    must not reach the operator. Raises SnapshotMissing or SnapshotBusy.
    """
    path = snapshot_path(warehouse)
    last: Exception | None = None
    con = None
    for attempt in range(attempts):
        if not path.exists():
            raise SnapshotMissing(path)
        try:
            con = scoped_connection(path, scope)
            rows = con.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = current_database()"
            ).fetchall()
            break
        except duckdb.Error as exc:  # lock, partial file, I/O: wait for the next state
            last = exc
            if con is not None:
                try:
                    con.close()
                except duckdb.Error:
                    pass
                con = None
            time.sleep(delay * (attempt + 1))
    else:
        raise SnapshotBusy(str(last))
    tables: dict[str, set[str]] = {}
    for schema, table, column in rows:
        tables.setdefault(f"{schema}.{table}", set()).add(column)
    try:
        yield Snapshot(con, path, tables, scope)
    finally:
        con.close()


def run_load(warehouse: Path | str, scope: Scope, loader, *args, attempts: int = 4, **kwargs):
    """Open the snapshot as `scope` sees it, run `loader(snapshot, *args)`, retrying on read errors."""
    if not isinstance(scope, Scope):
        raise TypeError("run_load needs the reader's Scope (citycloud.access.Scope)")
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            with open_snapshot(warehouse, scope) as snap:
                return loader(snap, *args, **kwargs)
        except SnapshotMissing:
            raise
        except (SnapshotBusy, duckdb.IOException, duckdb.InternalException) as exc:
            last = exc
            time.sleep(0.1 * (attempt + 1))
    raise SnapshotBusy(str(last))


# ---------------------------------------------------------------- loaders (one per page)

KEYS = ("city_code", "kpi_date")
WEEKS_OF_HISTORY = 4  # the same weekday of this many previous weeks: the weekday pattern of a KPI


def daily_in_mart() -> dict[str, str]:
    """Daily KPIs that marts.kpi_daily holds: metric -> column (the registry says which)."""
    held = fmt.registry().in_mart("kpi_daily")
    return {k: held[k] for k in fmt.daily_kpis() if k in held}


def daily_from_semantic_layer() -> tuple[str, ...]:
    """Daily KPIs no mart holds: answered by the semantic layer (citycloud query)."""
    held = daily_in_mart()
    return tuple(k for k in fmt.daily_kpis() if k not in held)


def _add_semantic(snap: Snapshot, df: pd.DataFrame, cities: Sequence[str], grain: str, key: str) -> pd.DataFrame:
    """Add the KPIs of `grain` that no mart holds, answered by the semantic layer (MetricFlow
    on this snapshot), to `df` keyed by city_code and `key` (the period's first day)."""
    mart = {"day": "kpi_daily", "month": "kpi_monthly"}[grain]
    held = fmt.registry().in_mart(mart)
    extra = tuple(m.name for m in fmt.registry().at_grain(grain) if m.name not in held)
    if not extra or df.empty:
        return df
    from citycloud import query

    answer = query.run_query(snap.con, fmt.registry(), query.QueryRequest(metrics=extra, grain=grain))
    answer = answer[answer["city_code"].isin(list(cities))].rename(columns={"period": "_period"})
    answer["_period"] = pd.to_datetime(answer["_period"])
    merged = df.assign(_period=pd.to_datetime(df[key])).merge(answer, on=["city_code", "_period"], how="left")
    return merged.drop(columns="_period")


def _add_semantic_daily(snap: Snapshot, df: pd.DataFrame, cities: Sequence[str]) -> pd.DataFrame:
    return _add_semantic(snap, df, cities, "day", "kpi_date")


def _in(values: Sequence) -> str:
    return ", ".join("?" for _ in values) or "NULL"


def load_overview(snap: Snapshot) -> dict:
    """Cities and the day range of marts.kpi_daily; which optional tables exist."""
    out: dict = {"tables": sorted(snap.tables)}
    if snap.has("marts.kpi_daily", "city_code", "kpi_date"):
        out["cities"] = snap.df(
            "SELECT city_code::VARCHAR AS city_code, min(kpi_date) AS first_day, max(kpi_date) AS last_day, "
            "count(*) AS days FROM marts.kpi_daily GROUP BY 1 ORDER BY 1"
        )
    else:
        out["cities"] = None
    if snap.has("marts.kpi_monthly", "city_code", "month"):
        out["months"] = snap.df("SELECT DISTINCT month FROM marts.kpi_monthly ORDER BY 1")
    else:
        out["months"] = None
    return out


def load_today(snap: Snapshot, cities: Sequence[str], day: dt.date) -> dict:
    """Per city: the latest day <= `day`, the day before and the same weekday a week before,
    with the data-quality status, rejects and deliveries around it."""
    out: dict = {"missing": []}
    held = daily_in_mart()
    if not snap.has("marts.kpi_daily", *KEYS, *held.values()):
        out["missing"].append("marts.kpi_daily")
        out["kpis"] = pd.DataFrame(columns=KEYS + tuple(fmt.daily_kpis()) + ("as_of",))
        return out
    kpis = _load_today_kpis(snap, cities, day, held)
    out["kpis"] = kpis
    if kpis.empty:
        return out
    # The audit tables around the days shown: the week up to the latest day of any city.
    lo = min(kpis["as_of"]) - dt.timedelta(days=6)
    hi = max(kpis["as_of"])
    # Each loader fills its keys of `out` (None, and a name in out["missing"], for a table the
    # snapshot lacks); the order of the calls is the order of out["missing"].
    _load_today_quality(snap, cities, lo, hi, out)
    _load_today_rejected_rows(snap, cities, lo, hi, out)
    _load_today_rejected_files(snap, cities, lo, hi, out)
    _load_today_deliveries(snap, cities, lo, hi, out)
    out["landing_issues"] = load_landing_issues(snap, cities, lo, hi)
    out["service_days"] = _service_days(snap, cities, min(kpis["as_of"]) - dt.timedelta(days=7), hi)
    out["builds"] = load_builds(snap)
    return out


def _load_today_kpis(snap: Snapshot, cities: Sequence[str], day: dt.date, held: dict) -> pd.DataFrame:
    """Each city's daily KPIs for the weeks of history up to its latest day <= `day` (`as_of`)."""
    cols = ", ".join(f"k.{c} AS {k}" for k, c in held.items())
    kpis = snap.df(
        f"""
        WITH latest AS (
            SELECT city_code, max(kpi_date) AS as_of FROM marts.kpi_daily
            WHERE kpi_date <= ? AND city_code IN ({_in(cities)}) GROUP BY 1
        )
        SELECT k.city_code::VARCHAR AS city_code, k.kpi_date, {cols}, l.as_of
        FROM marts.kpi_daily k JOIN latest l USING (city_code)
        WHERE k.kpi_date BETWEEN l.as_of - INTERVAL (? * 7) DAY AND l.as_of
        ORDER BY city_code, kpi_date
        """,
        [day, *cities, WEEKS_OF_HISTORY],
    )
    kpis = _add_semantic_daily(snap, kpis, cities)
    for col in ("kpi_date", "as_of"):
        kpis[col] = pd.to_datetime(kpis[col]).dt.date
    return kpis


def _load_today_quality(snap: Snapshot, cities: Sequence[str], lo: dt.date, hi: dt.date, out: dict) -> None:
    if snap.has(
        "audit.quality_results", "run_id", "suite", "expectation", "city_code", "day", "severity", "success",
        "observed_value", "details", "checked_at",
    ):
        # the latest result of each check (an earlier run's result for the same check is stale)
        out["quality"] = snap.df(
            f"""
            SELECT run_id::VARCHAR AS run_id, suite, expectation, city_code::VARCHAR AS city_code, day,
                   severity, success, observed_value::VARCHAR AS observed_value, details::VARCHAR AS details,
                   checked_at
            FROM audit.quality_results
            WHERE (city_code IS NULL OR city_code IN ({_in(cities)}))
              AND (day IS NULL OR day BETWEEN ? AND ?)
            QUALIFY row_number() OVER (
                PARTITION BY suite, expectation, city_code, day ORDER BY checked_at DESC) = 1
            """,
            [*cities, lo, hi],
        )
        out["quality"]["day"] = pd.to_datetime(out["quality"]["day"]).dt.date
    else:
        out["missing"].append("audit.quality_results")
        out["quality"] = None


def _load_today_rejected_rows(snap: Snapshot, cities: Sequence[str], lo: dt.date, hi: dt.date,
                              out: dict) -> None:
    """Rejected rows counted by city, source, day and reason, and up to 20 sample rows a city-day."""
    if snap.has("audit.rejected_rows", "city_code", "source", "dt", "reason"):
        out["rejected_rows"] = snap.df(
            f"""
            SELECT city_code::VARCHAR AS city_code, source, dt, reason, count(*) AS rows
            FROM audit.rejected_rows
            WHERE city_code IN ({_in(cities)}) AND dt BETWEEN ? AND ?
            GROUP BY ALL ORDER BY city_code, dt DESC, rows DESC
            """,
            [*cities, lo, hi],
        )
        out["rejected_rows"]["dt"] = pd.to_datetime(out["rejected_rows"]["dt"]).dt.date
        # sample columns only where the snapshot has them
        sample_cols = [c for c in ("file", "line", "raw") if snap.has("audit.rejected_rows", c)]
        select = ", ".join(["city_code::VARCHAR AS city_code", "source", "dt", *sample_cols, "reason"])
        out["rejected_samples"] = snap.df(
            f"""
            SELECT {select} FROM audit.rejected_rows
            WHERE city_code IN ({_in(cities)}) AND dt BETWEEN ? AND ?
            QUALIFY row_number() OVER (PARTITION BY city_code, dt ORDER BY source, reason) <= 20
            """,
            [*cities, lo, hi],
        )
        out["rejected_samples"]["dt"] = pd.to_datetime(out["rejected_samples"]["dt"]).dt.date
    else:
        out["missing"].append("audit.rejected_rows")
        out["rejected_rows"] = None
        out["rejected_samples"] = None


def _load_today_rejected_files(snap: Snapshot, cities: Sequence[str], lo: dt.date, hi: dt.date,
                               out: dict) -> None:
    if snap.has("audit.rejected_files", "city_code", "source", "dt", "file", "reason"):
        out["rejected_files"] = snap.df(
            f"""
            SELECT city_code::VARCHAR AS city_code, source, dt, file, reason FROM audit.rejected_files
            WHERE city_code IN ({_in(cities)}) AND dt BETWEEN ? AND ?
            ORDER BY city_code, dt DESC, source, file
            """,
            [*cities, lo, hi],
        )
        out["rejected_files"]["dt"] = pd.to_datetime(out["rejected_files"]["dt"]).dt.date
    else:
        out["missing"].append("audit.rejected_files")
        out["rejected_files"] = None


def _load_today_deliveries(snap: Snapshot, cities: Sequence[str], lo: dt.date, hi: dt.date,
                           out: dict) -> None:
    if snap.has(
        "audit.deliveries", "city_code", "source", "dt", "files", "rows_read", "rows_loaded", "rows_rejected",
        "ingested_at",
    ):
        # the earliest ingestion of any later day's delivery of the city: a delivery that came
        # after it arrived out of order (late)
        if snap.has("audit.deliveries", "batch_id"):
            later = ("(SELECT min(l.batch_id) FROM audit.deliveries l "
                     "WHERE l.city_code = d.city_code AND l.dt > d.dt) < d.batch_id")
        else:
            later = ("(SELECT min(l.ingested_at) FROM audit.deliveries l "
                     "WHERE l.city_code = d.city_code AND l.dt > d.dt) < d.ingested_at - INTERVAL 1 HOUR")
        out["deliveries"] = snap.df(
            f"""
            SELECT d.city_code::VARCHAR AS city_code, d.source, d.dt, d.files, d.rows_read, d.rows_loaded,
                   d.rows_rejected, d.ingested_at, coalesce({later}, false) AS after_later_day
            FROM audit.deliveries d
            WHERE d.city_code IN ({_in(cities)}) AND d.dt BETWEEN ? AND ?
            ORDER BY city_code, source, dt
            """,
            [*cities, lo, hi],
        )
        out["deliveries"]["dt"] = pd.to_datetime(out["deliveries"]["dt"]).dt.date
    else:
        out["missing"].append("audit.deliveries")
        out["deliveries"] = None


# A folder the ingestion saw but could not read as a delivery (audit.landing_issues kinds).
DELIVERED_NOT_READ = ("incomplete_delivery", "empty_delivery")
LANDING_FOLDER = re.compile(r"(?:^|/)(?P<city>[^/]+)/(?P<source>[^/]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/?$")


def load_landing_issues(snap: Snapshot, cities: Sequence[str], lo: dt.date, hi: dt.date) -> pd.DataFrame | None:
    """Folders delivered but not read (no `_SUCCESS` yet, or `_SUCCESS` without data) of `cities`
    between `lo` and `hi`: city_code, source, dt, folder, kind, reason."""
    if not snap.has("audit.landing_issues", "path", "kind"):
        return None
    reason = "reason::VARCHAR" if snap.has("audit.landing_issues", "reason") else "NULL::VARCHAR"
    raw = snap.df(f"SELECT path::VARCHAR AS path, kind, {reason} AS reason FROM audit.landing_issues "
                  f"WHERE kind IN ({_in(DELIVERED_NOT_READ)}) ORDER BY path", list(DELIVERED_NOT_READ))
    return landing_folders(raw, cities, lo, hi)


def landing_folders(raw: pd.DataFrame, cities: Sequence[str], lo: dt.date, hi: dt.date) -> pd.DataFrame:
    """The issue rows whose path is a delivery folder `<city>/<source>/dt=<day>` in range."""
    rows = []
    for r in raw.itertuples(index=False):
        m = LANDING_FOLDER.search(str(r.path).rstrip("/"))
        if not m:
            continue
        day = dt.date.fromisoformat(m["dt"])
        if m["city"] in cities and lo <= day <= hi:
            rows.append({"city_code": m["city"], "source": m["source"], "dt": day, "folder": str(r.path).rstrip("/"),
                         "kind": r.kind, "reason": r.reason})
    return pd.DataFrame(rows, columns=["city_code", "source", "dt", "folder", "kind", "reason"])


def _service_days(snap: Snapshot, cities: Sequence[str], lo: dt.date, hi: dt.date) -> pd.DataFrame | None:
    """Per service and day: accesses and failures (what a "what moved" explanation can point at)."""
    if not snap.has("marts.service_daily", "city_code", "kpi_date", "service_id", "total_accesses",
                    "successful_accesses"):
        return None
    name = "coalesce(service_name, service_id::VARCHAR)" if snap.has("marts.service_daily", "service_name") \
        else "service_id::VARCHAR"
    df = snap.df(
        f"""
        SELECT city_code::VARCHAR AS city_code, kpi_date, service_id::VARCHAR AS service_id, {name} AS service_name,
               total_accesses::BIGINT AS total_accesses,
               (total_accesses - successful_accesses)::BIGINT AS failed_accesses
        FROM marts.service_daily WHERE city_code IN ({_in(cities)}) AND kpi_date BETWEEN ? AND ?
        """,
        [*cities, lo, hi],
    )
    df["kpi_date"] = pd.to_datetime(df["kpi_date"]).dt.date
    return df


def load_builds(snap: Snapshot) -> pd.DataFrame | None:
    if not snap.has("audit.builds", "build_id", "status", "finished_at"):
        return None
    msg = "message::VARCHAR" if snap.has("audit.builds", "message") else "NULL::VARCHAR"
    started = "started_at" if snap.has("audit.builds", "started_at") else "NULL::TIMESTAMP"
    return snap.df(
        f"SELECT build_id, status, {started} AS started_at, finished_at, {msg} AS message "
        "FROM audit.builds ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST, build_id DESC LIMIT 5"
    )


def load_trends(snap: Snapshot, cities: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame | None:
    held = daily_in_mart()
    if not snap.has("marts.kpi_daily", *KEYS, *held.values()):
        return None
    df = snap.df(
        f"""
        SELECT city_code::VARCHAR AS city_code, kpi_date, {", ".join(f"{c} AS {k}" for k, c in held.items())}
        FROM marts.kpi_daily
        WHERE city_code IN ({_in(cities)}) AND kpi_date BETWEEN ? AND ?
        ORDER BY city_code, kpi_date
        """,
        [*cities, start, end],
    )
    df = _add_semantic_daily(snap, df, cities)
    df["kpi_date"] = pd.to_datetime(df["kpi_date"])
    if snap.has("marts.kpi_daily", "good_ratings"):
        good = snap.df(
            f"SELECT city_code::VARCHAR AS city_code, kpi_date, good_ratings FROM marts.kpi_daily "
            f"WHERE city_code IN ({_in(cities)}) AND kpi_date BETWEEN ? AND ?", [*cities, start, end])
        good["kpi_date"] = pd.to_datetime(good["kpi_date"])
        df = df.merge(good, on=["city_code", "kpi_date"], how="left")
    else:  # an older snapshot: the day's count of good ratings is its rate times its ratings
        df["good_ratings"] = (df["satisfaction_rate"].astype("float64") * df["ratings"].astype("float64")).round()
    # A trend line of the day, not the monthly activity_rate KPI (mau / registered_users):
    # 30-day active users over registered users; named apart so no one takes it for the KPI.
    reg = df["registered_users"].astype("float64")
    df["activity_30d_rate"] = (df["mau_30d"].astype("float64") / reg).where(reg > 0)
    return df


SERVICE_COLUMNS = (
    "city_code", "kpi_date", "service_id", "service_name", "department", "category", "total_accesses",
    "successful_accesses", "users",
)


def load_services(snap: Snapshot, cities: Sequence[str], start: dt.date, end: dt.date) -> dict:
    out: dict = {"missing": []}
    if snap.has("marts.service_daily", *SERVICE_COLUMNS):
        out["services"] = snap.df(
            f"""
            SELECT city_code::VARCHAR AS city_code, service_id::VARCHAR AS service_id,
                   coalesce(any_value(service_name), service_id::VARCHAR) AS service_name,
                   coalesce(any_value(department), '（未知部门）') AS department,
                   coalesce(any_value(category), '（未分类）') AS category,
                   sum(total_accesses)::BIGINT AS total_accesses,
                   sum(successful_accesses)::BIGINT AS successful_accesses,
                   (sum(total_accesses) - sum(successful_accesses))::BIGINT AS failed_accesses,
                   avg(users)::DOUBLE AS avg_daily_users,
                   count(DISTINCT kpi_date) FILTER (WHERE successful_accesses > 0) AS active_days
            FROM marts.service_daily
            WHERE city_code IN ({_in(cities)}) AND kpi_date BETWEEN ? AND ?
            GROUP BY city_code, service_id
            """,
            [*cities, start, end],
        )
        total = out["services"]["total_accesses"].astype("float64")
        out["services"]["success_rate"] = (out["services"]["successful_accesses"] / total).where(total > 0)
    else:
        out["missing"].append("marts.service_daily")
        out["services"] = None
    return out


def load_settlement(snap: Snapshot, cities: Sequence[str]) -> dict:
    out: dict = {"missing": []}
    held = fmt.registry().in_mart("kpi_monthly")
    monthly = {m.name: held[m.name] for m in fmt.registry().at_grain("month") if m.name in held}
    if snap.has("marts.kpi_monthly", "city_code", "month", *monthly.values()):
        cols = ", ".join(["city_code", "month"] + [f"{c} AS {k}" for k, c in monthly.items()])
        out["monthly"] = snap.df(
            f"SELECT {cols} FROM marts.kpi_monthly WHERE city_code IN ({_in(cities)}) "
            "ORDER BY city_code, month",
            list(cities),
        )
        out["monthly"]["city_code"] = out["monthly"]["city_code"].astype(str)
        out["monthly"] = _add_semantic(snap, out["monthly"], cities, "month", "month")
        out["monthly"]["month"] = pd.to_datetime(out["monthly"]["month"]).dt.date
    else:
        out["missing"].append("marts.kpi_monthly")
        out["monthly"] = None
    if snap.has("marts.kpi_daily", "city_code", "kpi_date"):
        out["last_day"] = snap.df(
            f"SELECT city_code::VARCHAR AS city_code, max(kpi_date) AS last_day FROM marts.kpi_daily "
            f"WHERE city_code IN ({_in(cities)}) GROUP BY 1",
            list(cities),
        )
    else:
        out["last_day"] = None
    stmt_cols = (
        "contract_id", "city_code", "month", "version", "status", "monthly_fee_cny", "payment_cny", "computed_at",
        "input_fingerprint",
    )
    if snap.has("marts.settlement_statements", *stmt_cols):
        # the terms each version was settled with (operator, tiers): shown, never re-applied
        terms = ("contract_terms::VARCHAR" if snap.has("marts.settlement_statements", "contract_terms")
                 else "NULL::VARCHAR")
        out["statements"] = snap.df(
            f"""
            SELECT contract_id, city_code::VARCHAR AS city_code, month, version, status,
                   monthly_fee_cny::VARCHAR AS monthly_fee_cny, payment_cny::VARCHAR AS payment_cny,
                   computed_at, input_fingerprint::VARCHAR AS input_fingerprint, {terms} AS contract_terms
            FROM marts.settlement_statements WHERE city_code IN ({_in(cities)})
            ORDER BY contract_id, month, version
            """,
            list(cities),
        )
        out["statements"]["month"] = pd.to_datetime(out["statements"]["month"]).dt.date
    else:
        out["missing"].append("marts.settlement_statements")
        out["statements"] = None
    line_cols = ("contract_id", "city_code", "month", "version", "kpi", "actual", "target", "attainment", "weight",
                 "factor")
    if snap.has("marts.settlement_lines", *line_cols):
        out["lines"] = snap.df(
            f"""
            SELECT contract_id, city_code::VARCHAR AS city_code, month, version, kpi,
                   actual::DOUBLE AS actual, target::DOUBLE AS target, attainment::DOUBLE AS attainment,
                   weight::VARCHAR AS weight, factor::VARCHAR AS factor
            FROM marts.settlement_lines WHERE city_code IN ({_in(cities)})
            ORDER BY contract_id, month, version, kpi
            """,
            list(cities),
        )
        out["lines"]["month"] = pd.to_datetime(out["lines"]["month"]).dt.date
    else:
        out["missing"].append("marts.settlement_lines")
        out["lines"] = None
    return out


# ---------------------------------------------------------------- derived views (pure)


def comparison_table(kpis: pd.DataFrame, city: str) -> tuple[dt.date | None, pd.DataFrame]:
    """Rows: KPI; columns: the day's value, change vs the day before, vs the same weekday a week
    before (all formatted). Returns (as_of, table)."""
    rows = kpis[kpis["city_code"] == city]
    if rows.empty:
        return None, pd.DataFrame()
    as_of = rows["as_of"].iloc[0]
    by_day = {r.kpi_date: r for r in rows.itertuples(index=False)}
    today = by_day.get(as_of)
    prev = by_day.get(as_of - dt.timedelta(days=1))
    week = by_day.get(as_of - dt.timedelta(days=7))
    table = []
    for kpi in fmt.daily_kpis():
        value = getattr(today, kpi, None) if today is not None else None
        p = getattr(prev, kpi, None) if prev is not None else None
        w = getattr(week, kpi, None) if week is not None else None
        table.append(
            {
                "指标": fmt.kpi_label(kpi),
                "当日": fmt.fmt_kpi(kpi, value),
                "较前一日": fmt.fmt_delta(kpi, value, p),
                "较上周同日": fmt.fmt_delta(kpi, value, w),
                "前一日": fmt.fmt_kpi(kpi, p),
                "上周同日": fmt.fmt_kpi(kpi, w),
            }
        )
    return as_of, pd.DataFrame(table)


def kpi_values(kpis: pd.DataFrame, city: str, offset_days: int = 0) -> dict | None:
    rows = kpis[kpis["city_code"] == city]
    if rows.empty:
        return None
    day = rows["as_of"].iloc[0] - dt.timedelta(days=offset_days)
    match = rows[rows["kpi_date"] == day]
    return None if match.empty else match.iloc[0].to_dict()


def quality_summary(quality: pd.DataFrame | None, city: str, day: dt.date) -> dict:
    """Blocking failures and warnings of the checks that concern `city` on `day` (or all days)."""
    if quality is None:
        return {"available": False, "blocking": 0, "warnings": 0, "passed": 0, "checks": 0, "failures": pd.DataFrame()}
    q = quality[
        (quality["city_code"].isna() | (quality["city_code"] == city))
        & (quality["day"].isna() | (quality["day"] == day))
    ]
    failed = q[~q["success"].fillna(False).astype(bool)]
    return {
        "available": True,
        "checks": len(q),
        "passed": int(len(q) - len(failed)),
        "blocking": int((failed["severity"] == "blocking").sum()),
        "warnings": int((failed["severity"] != "blocking").sum()),
        "failures": failed.sort_values(["severity", "suite", "expectation"]),
    }


def _local_naive(ts) -> dt.datetime | None:
    if fmt.is_missing(ts):
        return None
    if hasattr(ts, "to_pydatetime"):
        ts = ts.to_pydatetime()
    if isinstance(ts, dt.datetime) and ts.tzinfo is not None:
        ts = ts.astimezone(BUSINESS_TZ).replace(tzinfo=None)
    return ts


def delivery_status(
    deliveries: pd.DataFrame | None, city: str, day: dt.date, days: int = 7,
    deadline_hours: float | None = None, landing_issues: pd.DataFrame | None = None,
) -> pd.DataFrame | None:
    """One row per (source, dt) over the `days` days up to `day`: on time, late, incomplete,
    empty or missing.

    Incomplete / empty: the folder was delivered but not read (no `_SUCCESS` yet, or `_SUCCESS`
    without data: `landing_issues`, from audit.landing_issues); its `folder` is named.

    Late: the delivery was ingested after a later day's delivery of the same city (it arrived
    out of order: a later ingestion batch), or — only when a deadline is set (argument, or the
    delivery deadline with CITYCLOUD_LATE_AFTER_DEADLINE on) — more than that many hours after
    the start of its `dt` (Asia/Shanghai). No deadline by default: a backfill ingests old deliveries long after
    their day, which is not lateness. A missing catalog snapshot is normal (catalogs are not
    delivered every day)."""
    if deliveries is None:
        return None
    if deadline_hours is None:
        deadline_hours = Settings().late_after_hours
    d = deliveries[deliveries["city_code"] == city]
    index = {(r.source, r.dt): r for r in d.itertuples(index=False)}
    waiting = {}
    if landing_issues is not None:
        mine = landing_issues[landing_issues["city_code"] == city]
        waiting = {(r.source, r.dt): r for r in mine.itertuples(index=False)}
    out = []
    for source in SOURCES:
        for i in range(days):
            when = day - dt.timedelta(days=i)
            r = index.get((source, when))
            if r is None:
                issue = waiting.get((source, when))
                if issue is not None:
                    status = "incomplete" if issue.kind == "incomplete_delivery" else "empty"
                else:
                    # only a waited source is missing (config.WAITED_SOURCES): no catalog snapshot or
                    # no ticket delivery on a day is normal
                    status = "missing" if source in WAITED_SOURCES else "no_snapshot"
                out.append({"source": source, "dt": when, "status": status, "files": None, "rows_read": None,
                            "rows_loaded": None, "rows_rejected": None, "ingested_at": None,
                            "folder": None if issue is None else issue.folder})
                continue
            late = bool(getattr(r, "after_later_day", False))
            ingested = _local_naive(r.ingested_at)
            if deadline_hours is not None and ingested is not None:
                late = late or ingested > dt.datetime.combine(when, dt.time()) + dt.timedelta(hours=deadline_hours)
            out.append({"source": source, "dt": when, "status": "late" if late else "on_time", "files": r.files,
                        "rows_read": r.rows_read, "rows_loaded": r.rows_loaded, "rows_rejected": r.rows_rejected,
                        "ingested_at": r.ingested_at, "folder": None})
    return pd.DataFrame(out)


DELIVERY_STATUS_LABELS = {
    "on_time": "✅ 按时",
    "late": "🕒 迟到",
    "incomplete": "⚠️ 未完成",
    "empty": "⚠️ 空交付",
    "missing": "❌ 缺失",
    "no_snapshot": "— 无快照",
}


def delivery_symbol(status: str) -> str:
    """The symbol of a delivery status, the grid's (⚠️ incomplete, ❌ missing), wherever it is shown."""
    return DELIVERY_STATUS_LABELS[status].split()[0]


# What a delivery problem is called in a sentence ("好差评 未完成"); on time / no snapshot are none.
DELIVERY_PROBLEMS = {"late": "迟到", "incomplete": "未完成（无 _SUCCESS）", "empty": "空交付（无数据文件）",
                     "missing": "缺失"}


def resolve_day(wanted: str | None, first: dt.date, last: dt.date, default: dt.date) -> tuple[dt.date, str | None]:
    """The day to show for a requested `?day=` and, when it is not that day, why (one sentence).

    A day before the data shows the first day with data, a day after it the last one, a text
    that is no date the default day."""
    if not wanted:
        return default, None
    try:
        day = dt.date.fromisoformat(str(wanted))
    except ValueError:
        return default, (f"“{wanted}” 不是日期（YYYY-MM-DD），显示 {default}。 "
                         f"“{wanted}” is not a date (YYYY-MM-DD); showing {default}.")
    if day < first:
        return first, (f"{day} 早于最早有数据的日期（{first}），显示 {first}。 "
                       f"{day} is before the first day with data ({first}); showing {first}.")
    if day > last:
        return last, (f"{day} 晚于最近有数据的日期（{last}），显示 {last}。 "
                      f"{day} is after the last day with data ({last}); showing {last}.")
    return day, None


def pooled_satisfaction(df: pd.DataFrame, window: int = 7) -> pd.Series:
    """Per row (one city and day): good ratings over ratings of the `window` days up to that day
    (sum over sum: a day with 3 ratings weighs what its 3 ratings weigh, not one day's rate).
    Days with no row count as no ratings; None where the window has no rating at all."""
    out = pd.Series(float("nan"), index=df.index, dtype="float64")
    for _, g in df.groupby("city_code"):
        g = g.sort_values("kpi_date")
        days = pd.DatetimeIndex(pd.to_datetime(g["kpi_date"]))
        good = pd.Series(g["good_ratings"].astype("float64").to_numpy(), index=days).fillna(0)
        ratings = pd.Series(g["ratings"].astype("float64").to_numpy(), index=days).fillna(0)
        span = f"{window}D"  # calendar days: a day without a row adds nothing
        rate = good.rolling(span).sum() / ratings.rolling(span).sum()
        out.loc[g.index] = rate.where(ratings.rolling(span).sum() > 0).to_numpy()
    return out


def movers(kpis: pd.DataFrame, city: str, threshold: float = 0.10) -> list[dict]:
    """KPIs of the day that moved by more than `threshold` (relative; rates: points × 100)
    against the same weekday a week before or the day before."""
    today = kpi_values(kpis, city, 0)
    if today is None:
        return []
    found = []
    for label, offset in (("较上周同日", 7), ("较前一日", 1)):
        base = kpi_values(kpis, city, offset)
        if base is None:
            continue
        for kpi in fmt.daily_kpis():
            if not fmt.registry().metrics[kpi].alert_on_move:
                continue
            cur, old = today.get(kpi), base.get(kpi)
            if fmt.is_missing(cur) or fmt.is_missing(old):
                continue
            sample = ""
            if fmt.is_rate(kpi):
                change = float(cur) - float(old)
                big = abs(change) >= threshold / 2  # 5 points for a 10% threshold
                den = fmt.registry().metrics[kpi].denominator
                n_cur, n_old = today.get(den), base.get(den)
                if big and not (fmt.is_missing(n_cur) or fmt.is_missing(n_old)):
                    big = not chance_explains(float(old), int(n_old), float(cur), int(n_cur))
                    sample = f"（{fmt.kpi_label(den)} {fmt.fmt_int(n_old)} → {fmt.fmt_int(n_cur)}）"
            else:
                if float(old) == 0:
                    continue
                change = (float(cur) - float(old)) / abs(float(old))
                big = abs(change) >= threshold and abs(float(cur) - float(old)) >= 5
            if big and not any(m["kpi"] == kpi for m in found):
                found.append({"kpi": kpi, "against": label, "offset": offset, "change": change,
                              "current": float(cur), "base": float(old),
                              "text": f"{fmt.kpi_label(kpi)} {label} {fmt.fmt_delta(kpi, cur, old)}{sample}"})
    return found


CHANCE_P = 0.01  # a rate's move is shown only when chance gives one as large less than once in 100


def chance_explains(rate_before: float, n_before: int, rate_now: float, n_now: int) -> bool:
    """Whether two days' rates (of n_before and n_now trials: ratings, accesses) differ by no
    more than chance would make them: Fisher's exact test of the 2×2 table, p >= CHANCE_P.
    Two ratings, one good then none (−50 points), are chance; 80% of 1,000 then 70% is not."""
    if n_before <= 0 or n_now <= 0:
        return True
    before, now = round(rate_before * n_before), round(rate_now * n_now)
    table = [[before, n_before - before], [now, n_now - now]]
    return fisher_exact(table).pvalue >= CHANCE_P

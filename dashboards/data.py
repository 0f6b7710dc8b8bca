"""Data access for the dashboard: reads only the published, read-only snapshot.

The warehouse itself is never opened: DuckDB lets no reader in while a run holds the file for
writing. Every publish writes `<warehouse stem>.published.duckdb` beside it (temp file, then an
atomic rename, see `citycloud.publish.export_snapshot`). Each data load here opens a fresh
read-only connection to that file, runs all of its queries on that one connection (so one page
shows one consistent snapshot) and closes it again, so a replaced snapshot is picked up by the
next load and an old one is never held open.

Nothing here imports Streamlit: the functions take a `Snapshot` and return pandas frames, so
they are tested without a browser. Caching lives in `dashboards.ui`.
"""
from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import pandas as pd

from citycloud.config import SOURCES, published_path

from dashboards import fmt

# Which landing source feeds which KPI (to point at a likely cause when a KPI moves).
KPI_SOURCE = {
    "registered_users": "registrations",
    "new_registrations": "registrations",
    "cancellations": "registrations",
    "verified_users": "registrations",
    "dau": "service_access",
    "wau": "service_access",
    "mau_30d": "service_access",
    "total_accesses": "service_access",
    "successful_accesses": "service_access",
    "success_rate": "service_access",
    "active_services": "service_access",
    "ratings": "ratings",
    "satisfaction_rate": "ratings",
    "connected_services": "service_catalog",
}


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
        return dt.datetime.fromtimestamp(self.mtime_ns / 1e9, tz=fmt.SHANGHAI)


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

    def has(self, table: str, *columns: str) -> bool:
        cols = self.tables.get(table)
        return cols is not None and all(c in cols for c in columns)

    def df(self, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        return self.con.execute(sql, list(params or [])).df()


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'Asia/Shanghai'")
        con.execute("SET threads = 2")
    except duckdb.Error:
        pass
    return con


@contextmanager
def open_snapshot(warehouse: Path | str, attempts: int = 8, delay: float = 0.05) -> Iterator[Snapshot]:
    """A fresh read-only connection to the published snapshot, closed on exit.

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
            con = _connect(path)
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
        yield Snapshot(con, path, tables)
    finally:
        con.close()


def run_load(warehouse: Path | str, loader, *args, attempts: int = 4, **kwargs):
    """Open the snapshot, run `loader(snapshot, *args)`, retrying on read errors."""
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            with open_snapshot(warehouse) as snap:
                return loader(snap, *args, **kwargs)
        except SnapshotMissing:
            raise
        except (SnapshotBusy, duckdb.IOException, duckdb.InternalException) as exc:
            last = exc
            time.sleep(0.1 * (attempt + 1))
    raise SnapshotBusy(str(last))


# ---------------------------------------------------------------- loaders (one per page)

DAILY_COLUMNS = ("city_code", "kpi_date") + fmt.DAILY_KPIS


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
    if not snap.has("marts.kpi_daily", *DAILY_COLUMNS):
        out["missing"].append("marts.kpi_daily")
        out["kpis"] = pd.DataFrame(columns=DAILY_COLUMNS + ("as_of",))
        return out
    cols = ", ".join(f"k.{c}" for c in DAILY_COLUMNS[2:])
    kpis = snap.df(
        f"""
        WITH latest AS (
            SELECT city_code, max(kpi_date) AS as_of FROM marts.kpi_daily
            WHERE kpi_date <= ? AND city_code IN ({_in(cities)}) GROUP BY 1
        )
        SELECT k.city_code::VARCHAR AS city_code, k.kpi_date, {cols}, l.as_of
        FROM marts.kpi_daily k JOIN latest l USING (city_code)
        WHERE k.kpi_date IN (l.as_of, l.as_of - INTERVAL 1 DAY, l.as_of - INTERVAL 7 DAY)
        ORDER BY city_code, kpi_date
        """,
        [day, *cities],
    )
    for col in ("kpi_date", "as_of"):
        kpis[col] = pd.to_datetime(kpis[col]).dt.date
    out["kpis"] = kpis
    if kpis.empty:
        return out
    lo = min(kpis["as_of"]) - dt.timedelta(days=6)
    hi = max(kpis["as_of"])

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

    out["builds"] = load_builds(snap)
    return out


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
    if not snap.has("marts.kpi_daily", *DAILY_COLUMNS):
        return None
    df = snap.df(
        f"""
        SELECT city_code::VARCHAR AS city_code, kpi_date, {", ".join(DAILY_COLUMNS[2:])}
        FROM marts.kpi_daily
        WHERE city_code IN ({_in(cities)}) AND kpi_date BETWEEN ? AND ?
        ORDER BY city_code, kpi_date
        """,
        [*cities, start, end],
    )
    df["kpi_date"] = pd.to_datetime(df["kpi_date"])
    reg = df["registered_users"].astype("float64")
    df["activity_rate"] = (df["mau_30d"].astype("float64") / reg).where(reg > 0)
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
    monthly_cols = (
        "city_code", "month", "connected_services", "registered_users", "mau", "activity_rate",
        "satisfaction_rate", "new_registrations", "total_accesses",
    )
    if snap.has("marts.kpi_monthly", *monthly_cols):
        out["monthly"] = snap.df(
            f"SELECT {', '.join(monthly_cols)} FROM marts.kpi_monthly WHERE city_code IN ({_in(cities)}) "
            "ORDER BY city_code, month",
            list(cities),
        )
        out["monthly"]["city_code"] = out["monthly"]["city_code"].astype(str)
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
        out["statements"] = snap.df(
            f"""
            SELECT contract_id, city_code::VARCHAR AS city_code, month, version, status,
                   monthly_fee_cny::VARCHAR AS monthly_fee_cny, payment_cny::VARCHAR AS payment_cny,
                   computed_at, input_fingerprint::VARCHAR AS input_fingerprint
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
    for kpi in fmt.DAILY_KPIS:
        value = getattr(today, kpi) if today is not None else None
        p = getattr(prev, kpi) if prev is not None else None
        w = getattr(week, kpi) if week is not None else None
        table.append(
            {
                "指标": fmt.KPI_LABELS[kpi],
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
        ts = ts.astimezone(fmt.SHANGHAI).replace(tzinfo=None)
    return ts


def delivery_status(
    deliveries: pd.DataFrame | None, city: str, day: dt.date, days: int = 7,
    deadline_hours: float | None = None,
) -> pd.DataFrame | None:
    """One row per (source, dt) over the `days` days up to `day`: on time, late, or missing.

    Late: the delivery was ingested after a later day's delivery of the same city (it arrived
    out of order: a later ingestion batch), or — only when a deadline is set (argument or
    CITYCLOUD_DELIVERY_DEADLINE_HOURS) — more than that many hours after the start of its `dt`
    (Asia/Shanghai). No deadline by default: a backfill ingests old deliveries long after
    their day, which is not lateness. A missing catalog snapshot is normal (catalogs are not
    delivered every day)."""
    if deliveries is None:
        return None
    if deadline_hours is None:
        env = os.environ.get("CITYCLOUD_DELIVERY_DEADLINE_HOURS")
        deadline_hours = float(env) if env else None
    d = deliveries[deliveries["city_code"] == city]
    index = {(r.source, r.dt): r for r in d.itertuples(index=False)}
    out = []
    for source in SOURCES:
        for i in range(days):
            when = day - dt.timedelta(days=i)
            r = index.get((source, when))
            if r is None:
                status = "no_snapshot" if source == "service_catalog" else "missing"
                out.append({"source": source, "dt": when, "status": status, "files": None, "rows_read": None,
                            "rows_loaded": None, "rows_rejected": None, "ingested_at": None})
                continue
            late = bool(getattr(r, "after_later_day", False))
            ingested = _local_naive(r.ingested_at)
            if deadline_hours is not None and ingested is not None:
                late = late or ingested > dt.datetime.combine(when, dt.time()) + dt.timedelta(hours=deadline_hours)
            out.append({"source": source, "dt": when, "status": "late" if late else "on_time", "files": r.files,
                        "rows_read": r.rows_read, "rows_loaded": r.rows_loaded, "rows_rejected": r.rows_rejected,
                        "ingested_at": r.ingested_at})
    return pd.DataFrame(out)


DELIVERY_STATUS_LABELS = {
    "on_time": "✅ 按时",
    "late": "🕒 迟到",
    "missing": "❌ 缺失",
    "no_snapshot": "— 无快照",
}


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
        for kpi in fmt.DAILY_KPIS:
            if kpi in {"successful_accesses", "wau", "mau_30d", "cancellations"}:
                continue
            cur, old = today.get(kpi), base.get(kpi)
            if fmt.is_missing(cur) or fmt.is_missing(old):
                continue
            if kpi in fmt.RATE_KPIS:
                change = float(cur) - float(old)
                big = abs(change) >= threshold / 2  # 5 points for a 10% threshold
            else:
                if float(old) == 0:
                    continue
                change = (float(cur) - float(old)) / abs(float(old))
                big = abs(change) >= threshold and abs(float(cur) - float(old)) >= 5
            if big and not any(m["kpi"] == kpi for m in found):
                found.append({"kpi": kpi, "against": label, "change": change,
                              "text": f"{fmt.KPI_LABELS[kpi]} {label} {fmt.fmt_delta(kpi, cur, old)}"})
    return found


# ---------------------------------------------------------------- contracts (indicative)


def load_contracts(path: Path | str | None) -> tuple[list[dict], str | None]:
    """The contract terms from contracts.yml (for targets and tiers); (contracts, problem)."""
    if path is None:
        return [], "no contract file configured"
    path = Path(path)
    if not path.exists():
        return [], f"contract file {path} not found"
    try:
        import yaml

        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        contracts = list(doc.get("contracts") or [])
        for c in contracts:
            c["city_code"] = str(c.get("city_code"))
            for key in ("start_month", "end_month"):
                c[key] = str(c.get(key))[:7]
        return contracts, None
    except Exception as exc:  # a broken file is shown, not raised
        return [], f"contract file {path} could not be read: {exc}"


def tier_factor(tiers: list[dict], attainment: Decimal) -> Decimal:
    best = None
    for t in tiers:
        threshold = Decimal(str(t["min_attainment"]))
        if attainment >= threshold and (best is None or threshold > best[0]):
            best = (threshold, Decimal(str(t["factor"])))
    return best[1] if best else Decimal(0)


def estimate_settlement(contract: dict, month_row: dict) -> tuple[pd.DataFrame, Decimal]:
    """Attainment, tier factor and payment per contract KPI for one month, as the spec defines
    them (decimal arithmetic). Indicative only: the settled statement is the reference."""
    lines = []
    total = Decimal(0)
    for k in contract.get("kpis") or []:
        kpi = k["kpi"]
        actual = month_row.get(kpi)
        target = Decimal(str(k["target"]))
        if fmt.is_missing(actual) or target == 0:
            attainment = Decimal(0)
        else:
            attainment = Decimal(str(actual)) / target
        factor = tier_factor(contract.get("tiers") or [], attainment)
        weight = Decimal(str(k["weight"]))
        total += weight * factor
        lines.append({"kpi": kpi, "actual": actual, "target": float(target), "attainment": float(attainment),
                      "weight": weight, "factor": factor})
    fee = Decimal(str(contract.get("monthly_fee_cny", 0)))
    payment = (fee * total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return pd.DataFrame(lines), payment


def contract_covers(contract: dict, month: dt.date) -> bool:
    key = f"{month.year:04d}-{month.month:02d}"
    return contract.get("start_month", "0000-00") <= key <= contract.get("end_month", "9999-99")

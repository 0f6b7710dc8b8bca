"""What is wrong as of a moment: delivery problems from audit.* and KPI anomalies from
marts.kpi_anomalies (alerts.md), each an Alert with its stable key and one Chinese line."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

import duckdb

from citycloud import registry
from citycloud.config import BUSINESS_TZ, WAITED_SOURCES, CitycloudError, Settings

_WEEKDAYS = "一二三四五六日"
_PROBLEMS = {
    "missing": "截止 {deadline} 未收到完整交付",
    "incomplete": "交付不完整(缺少 _SUCCESS 标记),截止 {deadline} 仍未补齐",
    "empty": "交付为空(有 _SUCCESS 但没有数据)",
    "rejected": "拒收 {rejected:,} 行,占 {share:.1%},超过 {limit:.0%}",
}


@dataclass(frozen=True)
class Alert:
    key: str
    kind: str  # anomaly | delivery
    city_code: str
    day: date
    message: str
    source: str | None = None
    problem: str | None = None
    metric: str | None = None
    service_id: str | None = None
    value: float | None = None
    expected: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    direction: str | None = None

    def body(self, status: str) -> dict:
        """The webhook's JSON object (alerts.md); `status` open or resolved."""
        body = asdict(self) | {"status": status, "day": self.day.isoformat()}
        if status == "resolved":
            body["message"] = "已恢复:" + self.message
        return body


def alert_key(kind: str, city_code: str, what: str, service_id: str | None, day: date) -> str:
    return "|".join((kind, city_code, what, service_id or "", day.isoformat()))


def _day(d: date) -> str:
    return f"{d.isoformat()}(周{_WEEKDAYS[d.weekday()]})"


def deadline(settings: Settings, day: date) -> datetime:
    """Day D's deliveries are due at the start of D + 1 (Asia/Shanghai) plus the timeout."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), BUSINESS_TZ) + \
        timedelta(hours=settings.delivery_timeout_hours)


def delivery_problems(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: datetime,
                      names: dict[str, str]) -> list[Alert]:
    """Per city, source and day from the source's first delivery to the last day due as of `as_of`:
    missing, incomplete or empty (the sources the DAG waits for: not the service catalog); and
    every delivered day of at least `alert_rejected_min_rows` rows whose rejected rows exceed the share.
    Deliveries are those the warehouse holds (`as_of` decides which days are due). Missing days are
    looked for over the last `expected_lookback_days` (the DAG's sensors' window; 0 = all)."""
    local = as_of.astimezone(BUSINESS_TZ)
    last_due = local.date() - timedelta(days=1)
    if local < deadline(settings, last_due):
        last_due -= timedelta(days=1)
    lookback = settings.expected_lookback_days
    from_day = last_due - timedelta(days=lookback - 1) if lookback else date.min
    rows = con.execute(
        """
        with firsts as (select city_code, source, greatest(min(dt), cast(? as date)) as first_dt
                        from audit.deliveries where list_contains(?, source) group by all),
        expected as (
            select city_code, source, cast(unnest(generate_series(first_dt, cast(? as date), interval 1 day)) as date) as dt
            from firsts
        ),
        issues as (
            select regexp_extract(path, '^([0-9]{6})/', 1) as city_code,
                   regexp_extract(path, '^[^/]+/([^/]+)/', 1) as source,
                   cast(regexp_extract(path, 'dt=([0-9-]{10})', 1) as date) as dt,
                   min(case kind when 'empty_delivery' then 'empty' else 'incomplete' end) as problem
            from audit.landing_issues where kind in ('incomplete_delivery', 'empty_delivery') group by all
        )
        select e.city_code, e.source, e.dt, coalesce(i.problem, 'missing'), 0, 0
        from expected e
        left join audit.deliveries d on d.city_code = e.city_code and d.source = e.source and d.dt = e.dt
        left join issues i on i.city_code = e.city_code and i.source = e.source and i.dt = e.dt
        where d.dt is null
        union all
        select city_code, source, dt, 'rejected', rows_rejected, rows_read
        from audit.deliveries
        where dt <= cast(? as date) and rows_rejected > ? * rows_read and rows_read >= ?
        order by 1, 3, 2
        """, [from_day, list(WAITED_SOURCES), last_due, local.date(), settings.alert_rejected_share,
              settings.alert_rejected_min_rows]).fetchall()
    out = []
    for city, source, day, problem, rejected, read in rows:
        text = _PROBLEMS[problem].format(deadline=deadline(settings, day).strftime("%Y-%m-%d %H:%M"),
                                         rejected=rejected, share=rejected / read if read else 0,
                                         limit=settings.alert_rejected_share)
        out.append(Alert(alert_key("delivery", city, source, None, day), "delivery", city, day,
                         f"{names.get(city, city)} {day.isoformat()} {source} 数据{text}", source=source, problem=problem))
    return out


def _figure(value: float, is_rate: bool) -> str:
    return f"{value:.1%}" if is_rate else f"{value:,.0f}"


def anomalies(con: duckdb.DuckDBPyConnection, as_of: datetime, names: dict[str, str]) -> list[Alert]:
    reg = registry.load()
    calendar = dict(con.execute("select day, kind from marts.holiday_calendar").fetchall())
    rows = con.execute(
        "select city_code, kpi_date, metric, service_id, value, expected, lower_bound, upper_bound, direction "
        "from marts.kpi_anomalies where kpi_date <= ? order by city_code, kpi_date, metric, service_id nulls first",
        [as_of.astimezone(BUSINESS_TZ).date()]).fetchall()
    out = []
    for city, day, metric, service, value, expected, low, high, direction in rows:
        is_rate = metric in reg.rates()
        f = lambda v: _figure(v, is_rate)  # noqa: E731 - one formatter for the line's four figures
        usual = ("近28天工作日中位数" if calendar.get(day) == "workday" else f"近8个周{_WEEKDAYS[day.weekday()]}中位数")
        figure = (f"服务 {service} " if service else "") + reg.label(metric)
        side = "高于" if direction == "up" else "低于"
        message = (f"{names.get(city, city)} {_day(day)}{figure} {f(value)},{usual} {f(expected)},"
                   f"{side}预期区间 {f(low)}–{f(high)}")
        out.append(Alert(alert_key("anomaly", city, metric, service, day), "anomaly", city, day, message,
                         metric=metric, service_id=service, value=value, expected=expected,
                         lower_bound=low, upper_bound=high, direction=direction))
    return out


def open_alerts(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: datetime) -> list[Alert]:
    tables = {r[0] for r in con.execute(
        "select table_schema || '.' || table_name from information_schema.tables").fetchall()}
    for needed in ("marts.kpi_anomalies", "audit.deliveries", "audit.landing_issues"):
        if needed not in tables:
            raise CitycloudError(f"warehouse {settings.warehouse}: no {needed}: run `citycloud run` first")
    names = dict(con.execute("select city_code, city_name from marts.city_reference").fetchall())
    return delivery_problems(con, settings, as_of, names) + anomalies(con, as_of, names)

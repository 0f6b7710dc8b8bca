"""Number, date and label formatting for Chinese operators (no Streamlit import).

Counts get thousands separators (``1,234,567``), rates are shown as percentages with two
decimals (``93.48%``), changes of a rate in percentage points (``+1.20个百分点``), money as
``¥33,800.00`` with decimal arithmetic. Missing values show as ``—``.
"""
from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from citycloud.access import cities
from citycloud.config import BUSINESS_TZ
from citycloud.registry import Registry
from citycloud.registry import load as load_registry
from citycloud.settlement.statements import STATUS_ZH

MISSING = "—"

# Code → official name, from the one home of city facts: the dbt seed city_reference.
city_names = cities.city_names
CITY_REFERENCE = cities.CITY_REFERENCE

WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")

# KPI names, labels and formats come from the metric registry (dbt_project/models/semantic,
# citycloud.registry); statement statuses from the statements module. Nothing is listed here.
STATUS_LABELS = STATUS_ZH


def registry() -> Registry:
    return load_registry()


def kpi_label(kpi: str) -> str:
    """The KPI's one Chinese label (the metric's `label`)."""
    return registry().label(kpi)


def is_rate(kpi: str) -> bool:
    return kpi in registry().rates() or kpi.endswith("_rate") or kpi == "attainment"


def daily_kpis() -> tuple[str, ...]:
    """The KPIs kpis.md defines per day, in the registry's order."""
    return tuple(m.name for m in registry().at_grain("day"))


def __getattr__(name: str):
    # The former constants, now read from the registry on use (kept for callers and tests).
    if name == "KPI_LABELS":
        return {n: m.label for n, m in registry().metrics.items()}
    if name == "RATE_KPIS":
        return registry().rates()
    if name == "DAILY_KPIS":
        return daily_kpis()
    raise AttributeError(name)


SEVERITY_LABELS = {"blocking": "阻断", "warning": "警告"}
SOURCE_LABELS = {
    "registrations": "注册日志 registrations",
    "service_access": "访问日志 service_access",
    "service_catalog": "服务目录 service_catalog",
    "ratings": "好差评 ratings",
}


def city_label(code: str | None) -> str:
    if code is None:
        return "全部城市"
    name = city_names().get(str(code))
    return f"{name}（{code}）" if name else str(code)


def city_name(code: str | None) -> str:
    if code is None:
        return "全部城市"
    return city_names().get(str(code), str(code))


def is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value) or (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False
    except Exception:  # pandas.NA and friends
        return True


def fmt_int(value) -> str:
    if is_missing(value):
        return MISSING
    return f"{int(round(float(value))):,}"


def fmt_num(value, digits: int = 2) -> str:
    if is_missing(value):
        return MISSING
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def fmt_pct(value, digits: int = 2) -> str:
    if is_missing(value):
        return MISSING
    return f"{float(value) * 100:,.{digits}f}%"


def fmt_weight(value) -> str:
    """A contract or scorecard weight (stored as DECIMAL(38,18), 0.3) as a whole percentage: 30%."""
    return fmt_pct(value, 0)


def fmt_factor(value) -> str:
    """A payment factor (DECIMAL(38,18), 0.9) to two places: 0.90."""
    return MISSING if is_missing(value) else f"{Decimal(str(value)):.2f}"


def fmt_kpi(kpi: str, value) -> str:
    if is_rate(kpi):
        return fmt_pct(value)
    return fmt_int(value)


def fmt_money(value) -> str:
    if is_missing(value):
        return MISSING
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return str(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def fmt_signed_money(value) -> str:
    if is_missing(value):
        return MISSING
    amount = Decimal(str(value))
    return ("+" if amount > 0 else "") + fmt_money(amount)


def fmt_delta(kpi: str, current, previous) -> str:
    """Change from `previous` to `current`: counts as `+1,234（+2.5%）`, rates in points."""
    if is_missing(current) or is_missing(previous):
        return MISSING
    current, previous = float(current), float(previous)
    if is_rate(kpi):
        points = (current - previous) * 100
        if abs(points) < 0.005:
            return "持平"
        return f"{points:+.2f}个百分点"
    diff = current - previous
    if diff == 0:
        return "持平"
    text = f"{int(round(diff)):+,}"
    if previous:
        text += f"（{diff / abs(previous) * 100:+.1f}%）"
    return text


def fmt_date(value) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def fmt_day(value) -> str:
    """`2026-03-03（星期二）`."""
    if is_missing(value):
        return MISSING
    day = to_date(value)
    return f"{day.isoformat()}（{WEEKDAYS[day.weekday()]}）"


def fmt_month(value) -> str:
    if is_missing(value):
        return MISSING
    day = to_date(value)
    return f"{day.year}年{day.month:02d}月"


def fmt_ts(value) -> str:
    """A timestamp in Asia/Shanghai time; naive timestamps are shown as stored."""
    if is_missing(value):
        return MISSING
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(BUSINESS_TZ)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def to_date(value) -> dt.date:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])

"""Data of the Users page (用户运营): the user-operations marts of user_ops.md, read from the
published snapshot like every other page (no Streamlit import: tested without a browser).

Several cities are added up (a user of two cities is two users, as in the marts); rates are
recomputed from the summed counts, never averaged.
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import pandas as pd

from citycloud.dashboards import fmt
from citycloud.dashboards.data import Snapshot

# Display labels of the lifecycle classes, in drawing order (dormant is drawn below zero).
CHANNEL_DAYS = 90  # the channel mix shows this many days up to the chosen day

def _labels(mart: str, skip: str | None = None) -> dict[str, str]:
    """Column of `mart` → "中文 English" label of the metric the registry says it holds, in the
    registry's order (the semantic layer is the one home of these labels)."""
    reg = fmt.registry()
    return {col: f"{reg.metrics[m].label} {reg.metrics[m].label_en}" for m, col in reg.in_mart(mart).items()
            if col != skip}


def lifecycle_labels() -> dict[str, str]:
    """new, returning, resurrecting, dormant (active is their sum)."""
    return _labels("user_lifecycle", skip="active_users")


def funnel_labels() -> dict[str, str]:
    """first registrations, then activated and verified within 7 days."""
    return _labels("activation_daily")


def tables() -> dict[str, tuple[str, ...]]:
    """The marts the page reads and the columns it needs of each."""
    return {
        "marts.user_lifecycle": ("city_code", "grain", "period_start", "active_users", *lifecycle_labels()),
        "marts.retention_monthly": ("city_code", "cohort_month", "channel", "months_since", "cohort_users",
                                    "retained_users"),
        "marts.activation_daily": ("city_code", "registration_day", *funnel_labels(), "window_complete"),
        "marts.stickiness_monthly": ("city_code", "month", "active_days", "users"),
        "marts.channel_daily": ("city_code", "kpi_date", "channel", "total_accesses", "successful_accesses",
                                "active_users", "new_registrations"),
    }


def _in(values: Sequence) -> str:
    return ", ".join("?" for _ in values) or "NULL"


def load_users(snap: Snapshot, cities: Sequence[str], day: dt.date) -> dict:
    """The five marts for `cities` up to `day`, summed over the cities. A table missing from the
    snapshot gives None (and its name in `missing`)."""
    cities = list(cities)
    out: dict = {"missing": [t for t, cols in tables().items() if not snap.has(t, *cols)]}

    def frame(table: str, sql: str, params: list) -> pd.DataFrame | None:
        return None if table in out["missing"] else snap.df(sql, params)

    where = f"city_code IN ({_in(cities)})"
    out["lifecycle"] = frame("marts.user_lifecycle", f"""
        SELECT grain, period_start, sum(active_users)::BIGINT AS active_users,
               {', '.join(f'sum({c})::BIGINT AS {c}' for c in lifecycle_labels())}
        FROM marts.user_lifecycle WHERE {where} AND period_start <= ?
        GROUP BY ALL ORDER BY grain, period_start""", [*cities, day])
    out["retention"] = frame("marts.retention_monthly", f"""
        SELECT cohort_month, channel, months_since, sum(cohort_users)::BIGINT AS cohort_users,
               sum(retained_users)::BIGINT AS retained_users, sum(retained_users) / sum(cohort_users) AS retention_rate
        FROM marts.retention_monthly WHERE {where} AND cohort_month + to_months(months_since) <= ?
        GROUP BY ALL ORDER BY channel, cohort_month, months_since""", [*cities, day])
    out["activation"] = frame("marts.activation_daily", f"""
        SELECT registration_day, {', '.join(f'sum({c})::BIGINT AS {c}' for c in funnel_labels())},
               bool_and(window_complete) AS window_complete
        FROM marts.activation_daily WHERE {where} AND registration_day BETWEEN ? AND ?
        GROUP BY ALL ORDER BY registration_day""", [*cities, day - dt.timedelta(days=29), day])
    out["stickiness"] = frame("marts.stickiness_monthly", f"""
        SELECT month, active_days, sum(users)::BIGINT AS users
        FROM marts.stickiness_monthly WHERE {where} AND month <= ?
        GROUP BY ALL ORDER BY month, active_days""", [*cities, day])
    out["channels"] = frame("marts.channel_daily", f"""
        SELECT kpi_date, channel, sum(total_accesses)::BIGINT AS total_accesses,
               sum(successful_accesses)::BIGINT AS successful_accesses, sum(active_users)::BIGINT AS active_users,
               sum(new_registrations)::BIGINT AS new_registrations
        FROM marts.channel_daily WHERE {where} AND kpi_date BETWEEN ? AND ?
        GROUP BY ALL ORDER BY kpi_date, channel""", [*cities, day - dt.timedelta(days=CHANNEL_DAYS - 1), day])
    return out


def lifecycle_long(lifecycle: pd.DataFrame, grain: str) -> pd.DataFrame:
    """One row per period and class, dormant negative (drawn below zero)."""
    rows = lifecycle[lifecycle["grain"] == grain]
    long = rows.melt(id_vars=["period_start"], value_vars=list(lifecycle_labels()), var_name="kind", value_name="users")
    long["signed"] = long["users"].where(long["kind"] != "dormant_users", -long["users"])
    long["类别"] = long["kind"].map(lifecycle_labels())
    long["order"] = long["kind"].map({k: i for i, k in enumerate(lifecycle_labels())})
    return long


def funnel(activation: pd.DataFrame) -> pd.DataFrame:
    """Registrants → activated → verified over the days whose 7-day window is complete."""
    done = activation[activation["window_complete"]]
    total = int(done["registrations"].sum())
    return pd.DataFrame({
        "step": list(funnel_labels().values()),
        "users": [int(done[c].sum()) for c in funnel_labels()],
        "share": [done[c].sum() / total if total else None for c in funnel_labels()],
    })


def channel_mix(channels: pd.DataFrame) -> pd.DataFrame:
    """Per channel over the range: accesses, successes, share of successful accesses."""
    g = channels.groupby("channel", as_index=False)[
        ["total_accesses", "successful_accesses", "new_registrations"]].sum()
    total = g["successful_accesses"].sum()
    g["share"] = g["successful_accesses"] / total if total else None
    return g.sort_values(["successful_accesses", "channel"], ascending=[False, True])

"""Airflow glue: everything the DAG files in ``dags/`` use besides Airflow itself.

The DAG files stay thin (schedule, tasks, wiring, operator docs); the logic lives here so it
can be unit-tested without a scheduler:

- which deliveries a day is expected to have, and the sensor that waits for them;
- which month a settlement run is for, and the sensor that waits for its data to be published;
- the task bodies, which call ``citycloud.pipeline`` / ``citycloud.settlement`` (the same code
  as the ``citycloud`` CLI) with ``Settings()`` from the environment;
- the PII key from the environment, an Airflow Variable or an Airflow Connection;
- failure callbacks that log one clear alert line.

Heavy modules (the pipeline, dbt, DuckDB, Great Expectations) are imported inside the task
bodies only: the dag-processor parses these files every few seconds.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from citycloud.config import BUSINESS_TZ, BUSINESS_TZ_NAME, PII_KEY_ENV, PUBLISHED_MARTS, WAITED_SOURCES, Settings

log = logging.getLogger("citycloud.airflow")

# Every task that opens the DuckDB warehouse read-write runs in this pool, created with ONE slot
# (docker-compose.yml's airflow-init, tests/airflow/airflow_harness.py, docs/airflow.md). DuckDB allows
# one writing process per file: a second writer fails on the file lock. The pool serialises the
# writers of all DAGs (daily pipeline and settlement) across all workers.
WAREHOUSE_POOL = "citycloud_warehouse"
OWNER = "citycloud-data"
TAGS = ["citycloud"]


# The published marts (outlets of the daily DAG's publish task) and the settlement tables.
MARTS_ASSETS = [
    Asset(name=f"citycloud.marts.{table}", uri=f"x-citycloud://warehouse/marts/{table}", group="citycloud")
    for table in PUBLISHED_MARTS
]
SETTLEMENT_ASSET = Asset(
    name="citycloud.marts.settlement_statements",
    uri="x-citycloud://warehouse/marts/settlement_statements",
    group="citycloud",
)

PII_KEY_VARIABLE = "citycloud_pii_key"
PII_KEY_CONNECTION = "citycloud_pii"  # the key is the connection's password

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


# --------------------------------------------------------------------------- configuration
# Every value comes from citycloud.config.Settings (the CITYCLOUD_* variables, docs/airflow.md).
def delivery_timeout() -> dt.timedelta:
    """How long after the end of day D its deliveries may still arrive (CITYCLOUD_DELIVERY_TIMEOUT_HOURS)."""
    return dt.timedelta(hours=Settings().delivery_timeout_hours)


def delivery_poke_interval() -> dt.timedelta:
    return dt.timedelta(minutes=Settings().delivery_poke_minutes)


def expected_lookback() -> int:
    """A (city, source) is expected on D if it delivered within this many days before D."""
    return Settings().expected_lookback_days


def settlement_wait() -> dt.timedelta:
    return dt.timedelta(hours=Settings().settlement_wait_hours)


def settlement_poke_interval() -> dt.timedelta:
    return dt.timedelta(minutes=Settings().settlement_poke_minutes)


def default_args() -> dict[str, Any]:
    """Task defaults shared by the DAGs: owner, retries with exponential backoff, alerting."""
    s = Settings()
    return {
        "owner": OWNER,
        "retries": s.task_retries,
        "retry_delay": dt.timedelta(minutes=s.retry_delay_minutes),
        "retry_exponential_backoff": 2.0,  # 2 min, 4 min, 8 min ... capped below
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": [on_task_failure],
        "on_retry_callback": [on_task_retry],
    }


def settings() -> Settings:
    """Settings from the environment, after making sure the PII key is available."""
    resolve_pii_key()
    return Settings()


def resolve_pii_key() -> str:
    """Make CITYCLOUD_PII_KEY available to the pipeline and say where it came from.

    Order: the environment variable (also what a secrets manager usually injects), then the
    Airflow Variable ``citycloud_pii_key`` (which Airflow itself also reads from
    ``AIRFLOW_VAR_CITYCLOUD_PII_KEY`` or a secrets backend), then the password of the Airflow
    Connection ``citycloud_pii``. Without any of them the pipeline refuses to run
    (``citycloud.config.pii_key`` raises with instructions).
    """
    secret = Settings().pii_key
    if secret is not None and secret.get_secret_value():
        _mask(secret.get_secret_value())
        return "environment"
    key = None
    source = "none"
    try:
        from airflow.sdk import Variable

        key = Variable.get(PII_KEY_VARIABLE, default=None)
        source = f"Airflow Variable {PII_KEY_VARIABLE}"
    except Exception as exc:  # outside a task, or no API: fall through
        log.debug("no PII key Variable: %s", exc)
    if not key:
        try:
            from airflow.sdk import Connection

            conn = Connection.get(PII_KEY_CONNECTION)
            key = conn.password if conn else None
            source = f"Airflow Connection {PII_KEY_CONNECTION}"
        except Exception as exc:
            log.debug("no PII key Connection: %s", exc)
    if key:
        _mask(key)
        os.environ[PII_KEY_ENV] = key  # so every Settings() of this task process sees it
        log.info("PII key taken from %s", source)
        return source
    return "none"


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret, name=PII_KEY_ENV)
    except Exception:  # pragma: no cover - masking is best effort outside a task
        pass


# --------------------------------------------------------------------------- alerts
ALERT_PREFIX = "CITYCLOUD ALERT"


def alert(message: str) -> str:
    """Log one alert line that operators (and log-based alerting) can grep for."""
    line = f"{ALERT_PREFIX}: {message}"
    log.error(line)
    return line


def on_task_failure(context: dict) -> None:
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = getattr(ti, "run_id", None) or getattr(context.get("dag_run"), "run_id", "?")
    exc = context.get("exception")
    period = _period_label(context)
    hint = FAILURE_HINTS.get(task_id, "see the task log; the task is safe to clear and re-run")
    alert(
        f"task {dag_id}.{task_id} FAILED for {period} (run {run_id}, try {getattr(ti, 'try_number', '?')}): "
        f"{type(exc).__name__ + ': ' if exc else ''}{exc or 'no exception recorded'} | what to do: {hint}"
    )


def on_task_retry(context: dict) -> None:
    ti = context.get("ti") or context.get("task_instance")
    log.warning(
        "citycloud: task %s.%s failed on try %s and will be retried with backoff: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "try_number", "?"),
        context.get("exception"),
    )


def on_dag_failure(context: dict) -> None:
    dag_run = context.get("dag_run")
    alert(
        f"DAG run {getattr(dag_run, 'dag_id', '?')} {getattr(dag_run, 'run_id', '?')} FAILED: "
        f"{context.get('reason', 'a task failed')}; open the run in the UI, read the failed task's log, "
        "fix the cause and clear the failed task (every task is safe to re-run)"
    )


FAILURE_HINTS = {
    "wait_for_deliveries": "the deliveries listed were not complete by the deadline; the run went on "
    "with what was there and the next run ingests them once they land (ask the city if they stay missing)",
    "ingest": "check the landing area and the message; re-run clears nothing that was already ingested",
    "build": "read the dbt output in the task log; fix the model or data and clear the task",
    "check": "a blocking data-quality check failed: the marts were NOT published (readers keep the "
    "previous figures); see audit.quality_results and the task log",
    "publish": "the candidate marts are built and checked; clear the task to publish them",
    "wait_for_month_published": "the month's last day is not published yet: check citycloud_daily",
    "settle": "see the message (contract file rules, missing data); fix and clear the task",
}


def _period_label(context: dict) -> str:
    try:
        if context.get("dag") is not None and getattr(context["dag"], "dag_id", "").endswith("settlement"):
            return f"month {settlement_request(context)[0]}"
        return f"day {business_day(context).isoformat()}"
    except Exception:
        return "this run"


# --------------------------------------------------------------------------- periods
def _run_instant(context: dict) -> tuple[dt.datetime | None, dt.datetime | None]:
    dag_run = context.get("dag_run")
    logical = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    run_after = getattr(dag_run, "run_after", None) or dt.datetime.now(dt.timezone.utc)
    return logical, run_after


def business_day(context: dict) -> dt.date:
    """Day D of a daily run: the logical date's calendar day in Asia/Shanghai.

    Scheduled runs have logical date D 02:00 (the start of their data interval), and
    ``airflow dags test citycloud_daily 2026-03-03`` is about 2026-03-03. A run without a
    logical date (possible in Airflow 3) is about the last day that has ended.
    """
    logical, run_after = _run_instant(context)
    if logical is not None:
        return _local(logical).date()
    return _local(run_after).date() - dt.timedelta(days=1)


def _local(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(BUSINESS_TZ)


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``YYYY-MM``."""
    year, mon = (int(x) for x in month.split("-"))
    first = dt.date(year, mon, 1)
    nxt = dt.date(year + (mon == 12), mon % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def settlement_request(context: dict) -> tuple[str, bool]:
    """(month, final) of a settlement run.

    ``month`` is the ``month`` param when given, else the logical date's month (a scheduled
    run's logical date is the first day of the month it settles), else (run without logical
    date) the last month that has ended. ``final`` is the ``final`` param; a final settlement
    must name its month explicitly.
    """
    params = context.get("params") or {}
    month = (params.get("month") or "").strip() or None
    final = bool(params.get("final", False))
    if month is not None and not MONTH_RE.match(month):
        raise AirflowFailException(f"param month={month!r} is not YYYY-MM")
    if final and month is None:
        raise AirflowFailException(
            "a final settlement must name its month: trigger with params {\"month\": \"YYYY-MM\", \"final\": true}"
        )
    if month is None:
        logical, run_after = _run_instant(context)
        if logical is not None:
            month = _local(logical).strftime("%Y-%m")
        else:
            month = (_local(run_after).date().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return month, final


# --------------------------------------------------------------------------- deliveries
@dataclasses.dataclass
class DeliveryState:
    day: dt.date
    expected: list[tuple[str, str]]
    complete: list[tuple[str, str]]
    incomplete: list[tuple[str, str]]  # folder exists, no _SUCCESS yet
    absent: list[tuple[str, str]]

    @property
    def missing(self) -> list[tuple[str, str]]:
        return sorted(self.incomplete + self.absent)

    def describe_missing(self) -> str:
        parts = [f"{c}/{s} (no _SUCCESS yet)" for c, s in self.incomplete]
        parts += [f"{c}/{s} (not delivered)" for c, s in self.absent]
        return ", ".join(sorted(parts)) or "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "expected": [f"{c}/{s}" for c, s in self.expected],
            "complete": [f"{c}/{s}" for c, s in self.complete],
            "missing": [f"{c}/{s}" for c, s in self.missing],
        }


def delivery_state(landing: Path, day: dt.date, lookback_days: int | None = None) -> DeliveryState:
    """Which deliveries of day ``day`` are expected, and which of them are complete.

    Expected = every (city, source) that completed a delivery in the ``lookback_days`` before
    ``day`` (CITYCLOUD_EXPECTED_LOOKBACK_DAYS, default 30; 0 = any time before), except the
    service catalog, which is not delivered every day. A city seen for the first time is
    ingested when it arrives but never waited for; a city silent for longer than the
    lookback is no longer waited for (and was alerted every day until then). Folders are
    read with the pipeline's own discovery, so layout and completeness mean the same here.
    """
    from citycloud.ingestion.discover import discover

    lookback = expected_lookback() if lookback_days is None else lookback_days
    landing = Path(landing)
    if not landing.is_dir():  # the ingest task says so; nothing to wait for
        return DeliveryState(day, [], [], [], [])
    found = discover(landing, start=day - dt.timedelta(days=lookback) if lookback > 0 else None, end=day)
    waited = [d for d in found.complete + found.incomplete if d.source in WAITED_SOURCES]
    expected = sorted({(d.city_code, d.source) for d in waited if d.complete and d.dt < day})
    today = {(d.city_code, d.source): d.complete for d in waited if d.dt == day}
    return DeliveryState(
        day,
        expected,
        complete=[k for k in expected if today.get(k) is True],
        incomplete=[k for k in expected if today.get(k) is False],
        absent=[k for k in expected if k not in today],
    )


def delivery_deadline(day: dt.date, timeout: dt.timedelta | None = None) -> dt.datetime:
    """Deliveries of day D are due by the end of D (Asia/Shanghai) plus the timeout."""
    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=BUSINESS_TZ)
    return end_of_day + (delivery_timeout() if timeout is None else timeout)


class DeliverySensor(BaseSensorOperator):
    """Wait until every expected delivery of day D is complete, or its deadline has passed.

    Each poke lists the landing area (no warehouse access, so it is not in the writers' pool).
    With everything already there the first poke succeeds and nothing waits. Past the deadline
    (end of D + CITYCLOUD_DELIVERY_TIMEOUT_HOURS) it fails with an alert naming the missing
    deliveries, without retrying; the ingest task runs anyway (trigger rule ``all_done``), so a
    city that delivers nothing never blocks the others, and a later run catches it up.
    Backfilling an old day therefore never waits: its deadline has long passed.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")  # frees the worker slot between pokes
        kwargs.setdefault("poke_interval", delivery_poke_interval())
        # Backstop only: the real limit is the deadline checked in poke(). A run triggered
        # during day D itself may have to wait for the rest of D plus the timeout.
        kwargs.setdefault("timeout", dt.timedelta(days=1) + delivery_timeout() + dt.timedelta(hours=1))
        super().__init__(**kwargs)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        day = business_day(context)
        landing = Settings().landing
        state = delivery_state(landing, day)
        if not state.missing:
            self.log.info(
                "all %d expected deliveries for %s are complete in %s", len(state.expected), day, landing
            )
            return PokeReturnValue(is_done=True, xcom_value=state.as_dict())
        deadline = delivery_deadline(day)
        now = dt.datetime.now(dt.timezone.utc)
        if now >= deadline:
            raise AirflowSensorTimeout(
                f"deliveries for {day} still missing at the deadline {deadline.isoformat()}: "
                f"{state.describe_missing()}. The {len(state.complete)} complete ones (of {len(state.expected)} "
                "expected) are ingested now; the missing ones by a later run once they land"
            )
        self.log.info(
            "waiting for %d of %d deliveries for %s (deadline %s): %s",
            len(state.missing),
            len(state.expected),
            day,
            deadline.isoformat(),
            state.describe_missing(),
        )
        return False


# --------------------------------------------------------------------------- settlement wait
def published_coverage(settings_: Settings) -> dict[str, dt.date]:
    """Latest published kpi_date per city, from the readers' snapshot (never locks the warehouse)."""
    if not settings_.published.exists():
        return {}
    import duckdb

    from citycloud.publish import open_snapshot

    con = open_snapshot(settings_)
    try:
        rows = con.execute("SELECT city_code, max(kpi_date) FROM marts.kpi_daily GROUP BY city_code").fetchall()
    except duckdb.Error:  # a snapshot without marts yet
        return {}
    finally:
        con.close()
    return {str(city): day for city, day in rows if day is not None}


def contract_cities(contracts: Path, month: str) -> set[str]:
    """Cities with a contract covering ``month``; a contract file that breaks the rules fails
    at once (waiting would not fix it)."""
    from citycloud.config import CitycloudError
    from citycloud.settlement import load_contracts

    try:
        return {c.city_code for c in load_contracts(contracts) if c.covers(month)}
    except CitycloudError as exc:
        raise AirflowFailException(str(exc)) from exc


def cities_without_data(landing: Path, cities: list[str]) -> list[str]:
    """The ``cities`` that have no delivery folder at all in the landing area (complete or not).

    Says nothing when the landing area itself is missing (the ingest task reports that)."""
    landing = Path(landing)
    if not landing.is_dir():
        return []
    return [c for c in cities if not any((landing / c).glob("*/dt=*"))]


class PublishedMonthSensor(BaseSensorOperator):
    """Wait until month M has ended and the published marts cover its last day.

    "Covered" means every city with a contract for M has a published ``marts.kpi_daily`` row
    for M's last day or later, i.e.
    the daily run for that day (or a later, catching-up one) ingested, checked and published.
    Reads only the published snapshot, so it is not a writer. A city with a contract but no data
    at all (nothing published, no delivery folder) fails the wait at once: it would never come.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", settlement_poke_interval())
        kwargs.setdefault("timeout", settlement_wait())
        super().__init__(**kwargs)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        month, final = settlement_request(context)
        first, last = month_bounds(month)
        today = dt.datetime.now(BUSINESS_TZ).date()
        if today <= last:
            raise AirflowFailException(
                f"month {month} has not ended yet (today is {today} in {BUSINESS_TZ_NAME}): "
                "a month can be settled from its next day on"
            )
        s = Settings()
        coverage = published_coverage(s)
        cities = sorted(contract_cities(s.contracts, month))
        lacking = [c for c in cities if coverage.get(c, dt.date.min) < last]
        never = cities_without_data(s.landing, [c for c in lacking if c not in coverage])
        if never:
            # Waiting cannot help: nothing of theirs was ever delivered, so nothing will be published.
            raise AirflowFailException(
                f"cannot settle {month}: {len(never)} cit{'y' if len(never) == 1 else 'ies'} with a contract in "
                f"{month} ha{'s' if len(never) == 1 else 've'} no data at all (nothing published, no delivery in "
                f"{s.landing}): {', '.join(never)}. Check the contracts file ({s.contracts}) against the cities "
                "that deliver, or the landing area"
            )
        if not lacking:
            self.log.info(
                "published marts cover %s for the cities with a contract in %s (%s): settling",
                last, month, ", ".join(cities) or "none",
            )
            return PokeReturnValue(is_done=True, xcom_value={"month": month, "final": final})
        self.log.info(
            "waiting for the published marts to cover %s (last day of %s); not yet: %s",
            last,
            month,
            ", ".join(f"{c} (published up to {coverage.get(c, 'nothing')})" for c in lacking),
        )
        return False


# --------------------------------------------------------------------------- task bodies
def summary(report: Any) -> Any:
    """A small JSON-safe summary of a pipeline report for XCom: its summary line, its scalar
    fields, and the length of its lists (a catch-up ingest can list thousands of deliveries)."""
    if report is None:
        return None
    out: dict[str, Any] = {}
    if callable(getattr(report, "summary_line", None)):
        out["summary"] = report.summary_line()
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        for f in dataclasses.fields(report):
            value = getattr(report, f.name)
            if isinstance(value, (list, tuple, set, frozenset, dict)):
                out[f"{f.name}_count"] = len(value)
            else:
                out[f.name] = value
    elif not out:
        out["summary"] = str(report)
    return json.loads(json.dumps(out, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)  # Path, Decimal (money stays exact as text), anything else


def _progress(message: str) -> None:
    log.info("%s", message)


def ingest_step(context: dict) -> Any:
    """Ingest every complete delivery with dt <= D not ingested yet (catches up missed days)."""
    from citycloud.pipeline import steps

    day = business_day(context)
    out = summary(steps.ingest(settings(), end=day, progress=_progress))
    log.info("ingest up to dt=%s: %s", day, out.get("summary"))
    return out


def build_step(context: dict) -> Any:
    """One `dbt build` of all models into the candidate marts (see docs/airflow.md: why not cosmos)."""
    from citycloud.pipeline import steps

    full_refresh = bool((context.get("params") or {}).get("full_refresh", False))
    out = summary(steps.build(settings(), full_refresh=full_refresh, progress=_progress))
    log.info("dbt build (full_refresh=%s): %s", full_refresh, out.get("summary"))
    return out


def check_step(context: dict) -> Any:
    """Run the data-quality checks; a blocking failure blocks the build and fails the task
    without retrying (like `citycloud run`): nothing is published, readers keep the last marts."""
    from citycloud.pipeline import steps

    s = settings()
    report = steps.check(s, progress=_progress)
    out = summary(report)
    log.info("quality checks: %s", out)
    try:
        steps.stop_if_blocked(s, report)
    except steps.BlockingFailure as exc:
        raise AirflowFailException(str(exc)) from None
    return out


def publish_step(context: dict) -> Any:
    """Publish the checked marts and record the Asset events (extra: the day published)."""
    from citycloud.pipeline import steps

    day = business_day(context)
    steps.publish(settings(), progress=_progress)
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        for asset in MARTS_ASSETS:
            outlet_events[asset].extra = {"day": day.isoformat()}
    log.info("published the marts for %s", day)
    return {"day": day.isoformat()}


def alerts_step(context: dict) -> Any:
    """Send new delivery problems and KPI anomalies, and `resolved` for those gone (docs/alerts.md),
    to the channels of CITYCLOUD_ALERTS; without it there is nothing to send. A failing channel
    keeps its messages pending for tomorrow's run and does not fail the task."""
    from citycloud.alerts import send_alerts

    s = settings()
    if not s.alerts:
        log.info("CITYCLOUD_ALERTS is not set: no alerts are sent")
        return {"sent": None}
    line = send_alerts(s, s.alerts, say=log.info)
    log.info("%s", line)
    return {"summary": line}


def settle_step(context: dict) -> Any:
    """Settle every contract for the month (provisional, or final when a person asked for it)."""
    from citycloud.settlement import settle

    month, final = settlement_request(context)
    report = settle(settings(), month, final=final)
    out = summary(report)
    out["contracts"] = [
        {"contract_id": r.contract_id, "status": r.status, "version": r.version, "written": r.written}
        for r in getattr(report, "results", [])
    ]
    log.info("settlement %s (final=%s): %s", month, final, out)
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        outlet_events[SETTLEMENT_ASSET].extra = {"month": month, "final": final}
    return out


# ---- the operations scorecard, scored after settlement (docs/scorecard.md) ----------------------
SCORECARD_ASSET = Asset(
    name="citycloud.marts.scorecard_monthly",
    uri="x-citycloud://warehouse/marts/scorecard_monthly",
    group="citycloud",
)


def scorecard_files() -> tuple[Path, Path | None]:
    """The evaluation scheme and assessments: CITYCLOUD_EVALUATION / CITYCLOUD_ASSESSMENTS, else
    contracts/evaluation.yml and contracts/assessments.yml (when it exists) under the project."""
    s = Settings()
    return s.evaluation, s.assessments


def scorecard_step(context: dict) -> Any:
    """Score the settled month (same code as `citycloud scorecard`); reports under CITYCLOUD_OUTPUT."""
    from citycloud.scorecard.service import score_month

    month, _ = settlement_request(context)
    scheme, assessments = scorecard_files()
    report = score_month(settings(), scheme, month, assessments)
    for scheme_id, city, reason in report.refused:
        log.warning("scorecard %s: %s %s refused: %s", month, scheme_id, city, reason)
    log.info("scorecard %s: %s", month, report.summary_line())
    return summary(report)

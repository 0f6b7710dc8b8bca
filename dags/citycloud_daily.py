"""citycloud_daily: wait for day D's deliveries, ingest, dbt build, check, publish.

Thin DAG file: the logic is in pipeline/orchestration.py (tested without a scheduler) and the
work in pipeline/steps.py, the same code the `citycloud run` CLI uses.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, task

import citycloud.pipeline.orchestration as orch

DOC_MD = """
# citycloud_daily — the daily KPI pipeline

**For day D** (the run's *logical date*, a calendar day in Asia/Shanghai; the scheduled run for
D starts at 02:00 on D+1, Shanghai time):

1. **wait_for_deliveries** — waits until every *expected* delivery of D has its `_SUCCESS`
   file. Expected = each city/source that delivered in the last
   `CITYCLOUD_EXPECTED_LOOKBACK_DAYS` (30) days; the service catalog is never waited for. If all
   is there, nothing waits. At the deadline (end of D + `CITYCLOUD_DELIVERY_TIMEOUT_HOURS`, 6 h)
   the task **fails with a `CITYCLOUD ALERT` naming the missing deliveries** and the run goes on
   without them: a silent city never blocks the others.
2. **ingest** — loads every complete delivery with `dt <= D` that is not ingested yet (and
   re-exported folders), so a missed or late day is caught up by the next run.
3. **build** — one `dbt build` of all models into the candidate marts.
4. **check** — data-quality checks. A *blocking* failure fails the run without retry and
   **nothing is published**: readers keep yesterday's figures.
5. **publish** — copies the checked marts into `marts.*`, refreshes the readers' snapshot and
   updates the Assets `citycloud.marts.*` (the settlement DAG and others may schedule on them).
6. **send_alerts** — (also when an earlier task failed) sends each new delivery problem and KPI
   anomaly once, and `resolved` when one went away, to the channels of `CITYCLOUD_ALERTS`
   (alerts.yml, docs/alerts.md); a failing channel keeps its messages for the next run.

**Single writer.** DuckDB allows one writing process per file: tasks 2–5 run in the pool
`citycloud_warehouse` (1 slot), shared with the settlement DAG, and one run of this DAG at a time.

**Operating it.**
- Missing delivery alert: nothing to do if it lands later (the next run ingests it); otherwise
  ask the city. Re-run a day after a late delivery: clear the run (every task is idempotent).
- Backfill a range (`airflow backfill create --dag-id citycloud_daily --from-date ... --to-date ...`):
  runs go one at a time in date order; old days never wait for deliveries.
- Rebuild everything after a model change: trigger with `full_refresh = true`.
- Config (environment): `CITYCLOUD_LANDING`, `CITYCLOUD_WAREHOUSE`, `CITYCLOUD_CONTRACTS`,
  `CITYCLOUD_OUTPUT`; `CITYCLOUD_ENGINE` (`duckdb` or `spark`, with `CITYCLOUD_SPARK_MASTER`:
  the engine that builds the models, docs/spark.md); the PII key from `CITYCLOUD_PII_KEY`, the Variable `citycloud_pii_key`
  or the password of the Connection `citycloud_pii`.
"""


@dag(
    dag_id="citycloud_daily",
    description="Ingest day D's deliveries, build, check and publish the KPI marts",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=orch.BUSINESS_TZ_NAME),
    start_date=pendulum.datetime(2025, 1, 1, tz=orch.BUSINESS_TZ_NAME),
    # Missed days are caught up by the data (ingest takes every dt <= D not yet ingested), not
    # by Airflow creating a run per missed interval.
    catchup=False,
    # DuckDB allows one writing process per file: with one run at a time, day D+1's ingest can
    # never interleave with day D's build/check/publish, and backfills run in date order. The
    # pool citycloud_warehouse (1 slot) on every writing task serialises writers across DAGs.
    max_active_runs=1,
    default_args=orch.default_args(),
    on_failure_callback=orch.on_dag_failure,
    tags=[*orch.TAGS, "daily", "kpi"],
    doc_md=DOC_MD,
    params={
        "full_refresh": Param(
            False, type="boolean", description="Rebuild every dbt model from all raw data (after a model change)."
        )
    },
)
def citycloud_daily():
    # Not a writer (lists the landing area only), so not in the pool; reschedule mode frees
    # the worker between pokes.
    wait = orch.DeliverySensor(task_id="wait_for_deliveries")

    # all_done: a late city fails the sensor (alert) but the others are ingested anyway.
    @task(pool=orch.WAREHOUSE_POOL, trigger_rule=TriggerRule.ALL_DONE)
    def ingest(**context):
        return orch.ingest_step(context)

    @task(pool=orch.WAREHOUSE_POOL)
    def build(**context):
        return orch.build_step(context)

    @task(pool=orch.WAREHOUSE_POOL, retries=0)  # a failed check is about data: retrying can't help
    def check(**context):
        return orch.check_step(context)

    @task(pool=orch.WAREHOUSE_POOL, outlets=orch.MARTS_ASSETS)
    def publish(**context):
        return orch.publish_step(context)

    # all_done: a missing delivery or a failed check is exactly when people must hear about it.
    @task(pool=orch.WAREHOUSE_POOL, trigger_rule=TriggerRule.ALL_DONE)
    def send_alerts(**context):
        return orch.alerts_step(context)

    wait >> ingest() >> build() >> check() >> publish() >> send_alerts()


citycloud_daily()

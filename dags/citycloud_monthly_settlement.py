"""citycloud_monthly_settlement: settle every contract for a month that has ended.

Thin DAG file: the logic is in pipeline/orchestration.py, the work in citycloud/settlement/
(the same code as `citycloud settle`).
"""
from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

import citycloud.pipeline.orchestration as orch

DOC_MD = """
# citycloud_monthly_settlement — contract settlement statements

**For month M** (the `month` param, or else the month of the run's logical date; the scheduled
run for M starts at 03:00 on the 1st of M+1, Shanghai time):

1. **wait_for_month_published** — refuses a month that has not ended, then waits until the
   published marts cover M's last day for every city with a contract in M (i.e. the daily run
   for that day, or a later catching-up one, succeeded). After
   `CITYCLOUD_SETTLEMENT_WAIT_HOURS` (48 h) it fails with a `CITYCLOUD ALERT`. A city with a
   contract in M but no data at all (nothing published, no delivery folder in the landing area)
   fails it at once, naming the city: waiting would not make it deliver.
2. **settle** — settles every contract of `contracts.yml` for M and writes the statement files
   (CSV, XLSX) under `CITYCLOUD_OUTPUT`. Scheduled runs settle **provisionally**.
3. **score** — scores every city for M against the evaluation scheme (`CITYCLOUD_EVALUATION`,
   default `contracts/evaluation.yml`, with `CITYCLOUD_ASSESSMENTS`) and writes the scorecard
   tables and the PDF reports under `CITYCLOUD_OUTPUT/scorecard/M` (docs/scorecard.md).

**Final settlement (a person decides).** *Trigger DAG w/ config* with
`{"month": "2026-02", "final": true}`. A final version is never changed; settling again after
late data changed a figure writes a *restatement* version with the difference to the last final
one; settling again with nothing changed writes nothing new. So re-running this DAG is always
safe: the version rules live in `citycloud.settlement`.

**Single writer.** `settle` writes the warehouse: it runs in the pool `citycloud_warehouse`
(1 slot) shared with citycloud_daily, and one run of this DAG at a time.
"""


@dag(
    dag_id="citycloud_monthly_settlement",
    description="Settle every contract for the month that ended (provisional; final on request)",
    schedule=CronDataIntervalTimetable("0 3 1 * *", timezone=orch.BUSINESS_TZ_NAME),
    start_date=pendulum.datetime(2025, 1, 1, tz=orch.BUSINESS_TZ_NAME),
    catchup=False,
    # DuckDB allows one writing process per file: one settlement run at a time, and the
    # settle task is in the one-slot pool citycloud_warehouse with the daily pipeline's writers.
    max_active_runs=1,
    default_args=orch.default_args(),
    on_failure_callback=orch.on_dag_failure,
    tags=[*orch.TAGS, "monthly", "settlement"],
    doc_md=DOC_MD,
    params={
        "month": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            description="Month to settle, YYYY-MM. Empty: the month of the run's logical date.",
        ),
        "final": Param(
            False,
            type="boolean",
            description="Settle final (contract managers sign it). Needs an explicit month.",
        ),
    },
)
def citycloud_monthly_settlement():
    wait = orch.PublishedMonthSensor(task_id="wait_for_month_published")

    @task(pool=orch.WAREHOUSE_POOL, outlets=[orch.SETTLEMENT_ASSET])
    def settle(**context):
        return orch.settle_step(context)

    @task(pool=orch.WAREHOUSE_POOL, outlets=[orch.SCORECARD_ASSET])
    def score(**context):
        return orch.scorecard_step(context)

    wait >> settle() >> score()


citycloud_monthly_settlement()

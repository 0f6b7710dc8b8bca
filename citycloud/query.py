"""`citycloud query`: metrics of the semantic layer per city and period, through MetricFlow.

MetricFlow plans the SQL from the dbt semantic manifest (the metric definitions in
dbt_project/models/semantic/); the SQL runs on a read-only connection to the published
snapshot, so a query never waits for (nor blocks) a running pipeline. The semantic models
point at dbt's candidate marts (`marts_build`); the snapshot holds their published copies
in `marts`, so the relations are re-pointed there before planning.

Rows: one per city and period the city's day series covers completely (as kpi_monthly: a
month still running has no row), unless `include_partial`. Columns: city_code, period (the
period's first day), one per metric in the order asked.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from citycloud import outputs, registry
from citycloud.config import BUILD_SCHEMA, CitycloudError, Settings, published_path
from citycloud.publish import check_city, open_snapshot
from citycloud.validation import is_city_code

GRAINS = ("day", "week", "month")
PUBLISHED_SCHEMA = "marts"
# Anchors the rows: every period of the city's series, zeros where a metric has no events.
ANCHOR = "days_covered"
_PERIOD_DAYS = {"day": "1", "week": "7", "month": "day(last_day(period))"}


@dataclass(frozen=True)
class QueryRequest:
    metrics: tuple[str, ...]
    grain: str
    city: str | None = None
    include_partial: bool = False
    by: str | None = None  # a categorical dimension to cut the metrics by (e.g. channel)


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    if not names:
        raise CitycloudError("--metrics: name at least one metric (e.g. --metrics dau,mau)")
    return names


def _published_manifest(manifest: dict) -> str:
    """The semantic manifest with every relation in the build schema re-pointed at `marts`."""
    manifest = json.loads(json.dumps(manifest))
    models = [(m["name"], m["node_relation"]) for m in manifest["semantic_models"]]
    models += [("time spine", s["node_relation"]) for s in manifest["project_configuration"].get("time_spines", [])]
    for name, rel in models:
        if rel["schema_name"] != BUILD_SCHEMA:
            raise CitycloudError(
                f"semantic model {name} reads {rel['schema_name']}.{rel['alias']}: the semantic layer answers from "
                f"the published snapshot, so it may only sit on models built into {BUILD_SCHEMA} and published "
                "(dbt_project/models/marts or models/semantic; see docs/extending.md)")
        rel.update(schema_name=PUBLISHED_SCHEMA, database=None,
                   relation_name=f'"{PUBLISHED_SCHEMA}"."{rel["alias"]}"')
    return json.dumps(manifest)


class _PlanOnlyDuckDb:
    """The SqlClient MetricFlow plans for: DuckDB's dialect. MetricFlow only plans here (explain);
    the SQL runs on the caller's read-only connection, so this client never executes."""

    def __init__(self):
        from metricflow.protocols.sql_client import SqlEngine
        from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer

        self.sql_engine_type = SqlEngine.DUCKDB
        self.sql_plan_renderer = DuckDbSqlPlanRenderer()

    def _refuse(self, *args, **kwargs):
        raise NotImplementedError("citycloud.query plans with MetricFlow and runs the SQL itself")

    query = execute = dry_run = _refuse

    def close(self) -> None:
        pass

    def render_bind_parameter_key(self, bind_parameter_key: str) -> str:
        return f"${bind_parameter_key}"


_ENGINES: dict[int, tuple[dict, object]] = {}


def _engine(manifest: dict):
    """One MetricFlow engine per manifest (building one parses every semantic model: ~1 s).
    It only plans: the SQL runs on the caller's read-only connection."""
    cached = _ENGINES.get(id(manifest))
    if cached is None or cached[0] is not manifest:
        logging.getLogger("metricflow").setLevel(logging.WARNING)
        from metricflow.engine.metricflow_engine import MetricFlowEngine
        from metricflow_semantics.model.dbt_manifest_parser import parse_manifest_from_dbt_generated_manifest
        from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

        lookup = SemanticManifestLookup(parse_manifest_from_dbt_generated_manifest(_published_manifest(manifest)))
        cached = (manifest, MetricFlowEngine(lookup, _PlanOnlyDuckDb()))
        _ENGINES.clear()  # one manifest at a time: a changed registry replaces the engine
        _ENGINES[id(manifest)] = cached
    return cached[1]


def answering(reg: "registry.Registry", request: QueryRequest) -> dict[str, str]:
    """metric asked -> the MetricFlow metric answering it at the grain (config.meta.by_grain:
    a per-period figure, e.g. new_users, is a different metric at week and month grain)."""
    return {m: reg.metrics[m].by_grain.get(request.grain, m) for m in request.metrics}


def dimension(manifest: dict, name: str) -> str:
    """MetricFlow's name (`<primary entity>__<name>`) of the categorical dimension `name`."""
    found = sorted({f"{sm['primary_entity']}__{d['name']}" for sm in manifest["semantic_models"]
                    for d in sm["dimensions"] if d["name"] == name and d["type"] == "categorical"})
    if len(found) != 1:
        raise CitycloudError(f"--by {name}: " + (f"ambiguous, one of {', '.join(found)}" if found else
                                                 "no semantic model has a categorical dimension of that name"))
    return found[0]


def metrics_with_dimension(manifest: dict, name: str) -> list[str]:
    """The metrics every measure of which sits on a semantic model with the categorical dimension
    `name` (so MetricFlow can cut them by it), in the YAML's order."""
    has = {sm["name"]: any(d["name"] == name and d["type"] == "categorical" for d in sm["dimensions"])
           for sm in manifest["semantic_models"]}
    model_of = {m["name"]: sm["name"] for sm in manifest["semantic_models"] for m in sm.get("measures", [])}
    out = []
    for metric in manifest["metrics"]:
        measures = [m["name"] for m in (metric["type_params"].get("input_measures") or [])]
        if measures and all(has.get(model_of.get(m), False) for m in measures):
            out.append(metric["name"])
    return out


def plan_sql(manifest: dict, request: QueryRequest, anchor: bool = True) -> str:
    """MetricFlow's SQL for the metrics (plus the anchor), by city and metric_time at the grain
    (and the dimension `request.by`, MetricFlow's name)."""
    from metricflow.engine.metricflow_engine import MetricFlowQueryRequest

    metrics = ([ANCHOR] if anchor else []) + [m for m in dict.fromkeys(request.metrics) if m != ANCHOR]
    where = ["{{ Entity('city') }} = '%s'" % request.city] if request.city else None
    group_by = ["city", f"metric_time__{request.grain}"] + ([request.by] if request.by else [])
    mf_request = MetricFlowQueryRequest.create(metric_names=metrics, group_by_names=group_by, where_constraints=where)
    try:
        return _engine(manifest).explain(mf_request).sql_statement.sql
    except CitycloudError:
        raise
    except Exception as exc:  # MetricFlow's own errors (e.g. a metric defined only by month)
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CitycloudError(
            f"--metrics {','.join(request.metrics)} --grain {request.grain}: MetricFlow cannot answer this: {first}"
        ) from exc


def run_query(con: duckdb.DuckDBPyConnection, reg: "registry.Registry", request: QueryRequest) -> pd.DataFrame:
    try:
        return _run_query(con, reg, request)
    except (duckdb.BinderException, duckdb.CatalogException) as exc:
        raise _snapshot_lacks(request, exc) from None


def _run_query(con: duckdb.DuckDBPyConnection, reg: "registry.Registry", request: QueryRequest) -> pd.DataFrame:
    mf_names = answering(reg, request)
    asked = QueryRequest(tuple(mf_names.values()), request.grain, request.city)
    # counts as integers (MetricFlow's sums come back as HUGEINT/DOUBLE), rates as DOUBLE
    metric_cols = ", ".join(
        f'CAST("{mf_names[m]}" AS {"DOUBLE" if reg.metrics[m].is_rate else "BIGINT"}) AS "{m}"'
        for m in request.metrics)
    complete = "" if request.include_partial else f"AND {ANCHOR} = {_PERIOD_DAYS[request.grain]}"
    if request.by:
        return _run_by(con, reg, request, asked, metric_cols, complete)
    sql = plan_sql(reg.manifest, asked)
    return con.execute(
        f"""
        WITH mf AS ({sql}),
        periods AS (
            SELECT CAST(city AS VARCHAR) AS city_code, CAST(metric_time__{request.grain} AS DATE) AS period, *
            FROM mf
        )
        SELECT city_code, period, {metric_cols} FROM periods
        WHERE {ANCHOR} IS NOT NULL {complete}
        ORDER BY city_code, period
        """
    ).df()


def _run_by(con, reg, request: QueryRequest, asked: QueryRequest, metric_cols: str, complete: str) -> pd.DataFrame:
    """Cut by a dimension: the anchor (a city's days) has no such dimension, so MetricFlow plans
    the metrics by city, period and dimension and the anchor by city and period, joined here.
    Rows: the dimension's values present in the period (no zero rows for absent ones)."""
    dim, t = dimension(reg.manifest, request.by), f"metric_time__{request.grain}"
    anchor_sql = plan_sql(reg.manifest, QueryRequest((), request.grain, request.city))
    metrics_sql = plan_sql(reg.manifest, QueryRequest(asked.metrics, request.grain, request.city, by=dim), anchor=False)
    return con.execute(
        f"""
        WITH anchor AS ({anchor_sql}), mf AS ({metrics_sql}),
        periods AS (
            SELECT CAST(mf.city AS VARCHAR) AS city_code, CAST(mf.{t} AS DATE) AS period,
                   CAST(mf.{dim} AS VARCHAR) AS "{request.by}", anchor.{ANCHOR}, mf.*
            FROM mf JOIN anchor ON anchor.city = mf.city AND anchor.{t} = mf.{t}
        )
        SELECT city_code, period, "{request.by}", {metric_cols} FROM periods
        WHERE {ANCHOR} IS NOT NULL {complete}
        ORDER BY city_code, period, "{request.by}"
        """
    ).df()


def check_request(reg: "registry.Registry", request: QueryRequest) -> None:
    if request.grain not in GRAINS:
        raise CitycloudError(f"--grain {request.grain!r}: must be one of {', '.join(GRAINS)}")
    unknown = [m for m in request.metrics if m not in reg.metrics]
    if unknown:
        raise CitycloudError(
            f"--metrics: unknown metric(s) {', '.join(unknown)} (known: {', '.join(reg.names())})")
    # figures of a whole week or month (config.meta.periods): a sum of shorter periods is wrong
    refused = [m for m in request.metrics
               if reg.metrics[m].periods is not None and request.grain not in reg.metrics[m].periods]
    if refused:
        raise CitycloudError(
            f"--grain {request.grain}: {', '.join(refused)} is a figure of a whole period, answered only at "
            f"--grain {' or '.join(reg.metrics[refused[0]].periods)} (a sum of shorter periods would be wrong)")
    if request.by is not None:
        dimension(reg.manifest, request.by)
        can = metrics_with_dimension(reg.manifest, request.by)
        cannot = [m for m in request.metrics if m not in can]
        if cannot:
            raise CitycloudError(
                f"--by {request.by}: {', '.join(cannot)} cannot be cut by {request.by} (no {request.by} in "
                f"{'its' if len(cannot) == 1 else 'their'} semantic model); metrics that can: {', '.join(can)}")
    if request.city is not None and not is_city_code(request.city):
        raise CitycloudError(f"--city {request.city!r}: must be a 6-digit city code (ASCII digits 0-9)")


def query(settings: Settings, request: QueryRequest) -> pd.DataFrame:
    """Answer `request` from the published snapshot beside settings.warehouse."""
    reg = registry.load()
    check_request(reg, request)
    snapshot = published_path(settings.warehouse)
    if not snapshot.exists():
        raise CitycloudError(f"--warehouse {settings.warehouse}: no published snapshot at {snapshot}: "
                             "run `citycloud run` first")
    con = open_snapshot(path=snapshot)
    try:
        if request.city is not None:
            check_city(con, request.city)
        return run_query(con, reg, request)
    finally:
        con.close()


def _snapshot_lacks(request: QueryRequest, exc: duckdb.Error) -> CitycloudError:
    """A metric whose mart column (or mart) the published snapshot does not have yet: one line."""
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return CitycloudError(
        f"--metrics {','.join(request.metrics)}: the published marts lack what the metric reads ({first}): "
        "a new or changed model is built by `citycloud run` (it rebuilds after a model change), then ask again")


def write_csv(df: pd.DataFrame, out: Path) -> None:
    """`out` already passed the output guard (citycloud.outputs.output_file): written whole or not at all."""
    outputs.atomic_write(out, as_text(df))


def as_text(df: pd.DataFrame) -> str:
    # Text cells (dimension values are delivered text) made inert for spreadsheets; numbers untouched.
    text_columns = [c for c in df.columns if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)]
    safe = df.assign(**{c: df[c].map(outputs.csv_cell) for c in text_columns}) if text_columns else df
    return safe.to_csv(index=False, date_format="%Y-%m-%d")

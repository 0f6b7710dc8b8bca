"""Facts with one home in the dbt project, each checked against dbt's own manifest (issue #30)."""
from __future__ import annotations

import json

import pytest

from citycloud.config import BUILD_SCHEMA, PUBLISHED_MARTS
from citycloud.dbt_runner import run_dbt
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    settings = make_settings(tmp_path_factory.mktemp("parse"))
    settings.warehouse.parent.mkdir(parents=True)
    run_dbt(settings, ["parse"])
    return json.loads((settings.warehouse.parent / ".dbt" / "target" / "manifest.json").read_text())


def test_published_marts_are_what_dbt_builds_into_marts_build(manifest):
    built = sorted(n["name"] for n in manifest["nodes"].values()
                   if n["resource_type"] in ("model", "seed") and n["schema"] == BUILD_SCHEMA)
    assert len(PUBLISHED_MARTS) == 12
    assert list(PUBLISHED_MARTS) == built


def test_a_mart_column_holding_a_kpi_has_the_kpi_text(manifest):
    """A published column that holds a metric (its config.meta.marts) is described by the metric's
    own doc block (models/semantic/kpis.md): one text for dbt docs and the registry."""
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    pairs = [(metric["name"], mart, column) for metric in manifest["metrics"].values()
             for mart, column in (metric["config"]["meta"].get("marts") or {}).items()
             if mart in ("kpi_daily", "kpi_monthly") and column in models[mart]["columns"]]
    assert len(pairs) == 21  # every documented KPI column of the two KPI marts
    differing = [(name, mart, column) for name, mart, column in pairs
                 if models[mart]["columns"][column]["description"] != manifest["metrics"][f"metric.citycloud.{name}"]["description"]]
    assert differing == []

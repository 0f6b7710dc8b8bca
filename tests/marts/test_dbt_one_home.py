"""Facts with one home in the dbt project, each checked against dbt's own manifest (issue #30)."""
from __future__ import annotations

import json

import pytest

from citycloud import registry
from citycloud.config import BUILD_SCHEMA, PUBLISHED_MARTS


@pytest.fixture(scope="module")
def manifest() -> dict:
    """dbt's manifest of the project from the registry's own full parse (citycloud/registry.py:
    parsed again whenever a project file is newer), not a second parse of the same files."""
    return json.loads((registry.manifest_path().parent / "manifest.json").read_text())


def test_published_marts_are_what_dbt_builds_into_marts_build(manifest):
    built = sorted(n["name"] for n in manifest["nodes"].values()
                   if n["resource_type"] in ("model", "seed") and n["schema"] == BUILD_SCHEMA)
    assert len(PUBLISHED_MARTS) == 20
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


def test_a_mart_is_its_sql_and_one_yaml_beside_it(manifest):
    """jaffle-shop's shape (docs/dbt.md, "One table, one YAML"): every model built into marts_build
    is X.sql with X.yml beside it, and X.yml holds all of X: docs and columns, the data tests
    on X alone, its unit tests and the semantic models over it. (Tests across tables are
    singular tests in dbt_project/tests; metrics are the ordered catalogues in models/semantic.)"""
    home = {n["unique_id"]: n["original_file_path"].removesuffix(".sql") + ".yml"
            for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["schema"] == BUILD_SCHEMA}
    found = [(uid, "docs", (n["patch_path"] or "none").removeprefix("citycloud://"))
             for uid, n in manifest["nodes"].items() if uid in home]
    found += [(n["attached_node"], "data test " + n["name"], n["original_file_path"])
              for n in manifest["nodes"].values() if n["resource_type"] == "test" and n.get("attached_node") in home]
    found += [(n["depends_on"]["nodes"][0], "unit test " + n["name"], n["original_file_path"])
              for n in manifest["unit_tests"].values() if n["depends_on"]["nodes"][0] in home]
    found += [(n["depends_on"]["nodes"][0], "semantic model " + n["name"], n["original_file_path"])
              for n in manifest["semantic_models"].values()]
    assert len(home) == 18 and len(found) == 142
    assert [(uid, what, path) for uid, what, path in found if home.get(uid) != path] == []

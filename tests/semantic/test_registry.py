"""The registry reads metrics from a semantic manifest and refuses an incomplete definition
with one line naming the metric and the missing key."""
from __future__ import annotations

import json

import pytest

from citycloud import registry
from citycloud.config import CitycloudError

META = {"grains": ["day"], "label_en": "Failed accesses", "unit": "events", "format": "integer", "payable": False}


def manifest(tmp_path, meta: dict):
    path = tmp_path / "semantic_manifest.json"
    path.write_text(json.dumps({"metrics": [
        {"name": "failed_accesses", "label": "失败访问次数", "description": " Failed. ", "config": {"meta": meta}},
        {"name": "mau", "label": "月活跃用户 MAU", "description": "",
         "config": {"meta": {**META, "grains": ["month"], "format": "integer", "payable": True,
                             "marts": {"kpi_monthly": "mau"}, "headline": 1}}},
    ]}), encoding="utf-8")
    return path


def test_reads_labels_meta_and_order(tmp_path):
    reg = registry.read(manifest(tmp_path, META))
    assert reg.names() == ["failed_accesses", "mau"]
    m = reg.metrics["failed_accesses"]
    assert (m.label, m.label_en, m.description, m.unit, m.is_rate, m.alert_on_move) == (
        "失败访问次数", "Failed accesses", "Failed.", "events", False, True)
    assert reg.payable() == ("mau",) and reg.in_mart("kpi_monthly") == {"mau": "mau"}
    assert [x.name for x in reg.at_grain("day")] == ["failed_accesses"] and reg.headline() == ("mau",)
    assert reg.label("nope") == "nope"


@pytest.mark.parametrize("meta,message", [
    ({k: v for k, v in META.items() if k != "payable"}, "config.meta.payable is missing"),
    ({**META, "format": "money"}, "config.meta.format must be integer or percent, got 'money'"),
])
def test_incomplete_definition_is_refused_naming_metric(tmp_path, meta, message):
    with pytest.raises(CitycloudError) as err:
        registry.read(manifest(tmp_path, meta))
    assert str(err.value) == f"metric failed_accesses (dbt_project/models/semantic): {message}"


def test_distinct_count_metric_without_periods_is_refused(tmp_path):
    """A count_distinct measure answers a different figure at every grain (mau by day is a DAU):
    its metric must say which periods it answers, or the registry refuses it."""
    def written(meta):
        path = tmp_path / "semantic_manifest.json"
        path.write_text(json.dumps({
            "semantic_models": [{"name": "service_daily", "measures": [
                {"name": "accessed_services", "agg": "count_distinct"}, {"name": "accesses", "agg": "sum"}]}],
            "metrics": [{"name": "accessed_services", "label": "访问服务数", "config": {"meta": meta},
                         "type_params": {"input_measures": [{"name": "accessed_services"}]}},
                        {"name": "accesses", "label": "访问次数", "config": {"meta": META},
                         "type_params": {"input_measures": [{"name": "accesses"}]}}]}), encoding="utf-8")
        return path

    with pytest.raises(CitycloudError) as err:
        registry.read(written(META))
    assert str(err.value) == (
        "metric accessed_services (dbt_project/models/semantic): reads count_distinct measure accessed_services, "
        "a figure of one period: config.meta.periods is missing (the grains it answers; a longer period is not "
        "the sum of shorter ones)")
    assert registry.read(written({**META, "periods": ["day"]})).metrics["accessed_services"].periods == ("day",)

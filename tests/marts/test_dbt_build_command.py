"""The production dbt command (dbt_runner.build_args) and what it leaves to `make test`.

dbt's unit tests check the models' SQL on fixed inputs; production builds exclude them, so they
run here. The batch a build starts after comes from CITYCLOUD_SINCE_BATCH, read when nodes
compile: a new value must not make dbt parse the project again (docs/performance.md)."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from citycloud.config import DBT_PROJECT_DIR, CitycloudError
from citycloud.dbt_runner import SINCE_BATCH_ENV, DbtCommand, build_args, run_dbt
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


def _declared_unit_tests() -> set[str]:
    names = set()
    for path in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        names |= {u["name"] for u in (yaml.safe_load(path.read_text()) or {}).get("unit_tests") or []}
    return names


@pytest.fixture
def warehouse_copy(tiny_built, tmp_path):
    """A copy of the worked example's warehouse: dbt reads the unit tests' input columns there."""
    settings = make_settings(tmp_path)
    settings.warehouse.parent.mkdir(parents=True)
    shutil.copy(tiny_built.warehouse, settings.warehouse)
    return settings


def test_production_build_runs_data_tests_but_no_unit_tests(tiny_built):
    results = json.loads((tiny_built.warehouse.parent / ".dbt" / "target" / "run_results.json").read_text())
    kinds = {r["unique_id"].split(".")[0] for r in results["results"]}
    assert "unit_test" not in kinds
    assert {"model", "test", "seed"} <= kinds
    assert build_args(4).args[:3] == ["build", "--exclude-resource-type", "unit_test"]


def test_production_build_writes_run_results_but_not_the_manifest(tiny_built):
    """dbt's manifest.json is written twice a build and read by nothing of ours (issue #28);
    run_results.json, which operators read, is still written, with every node's result."""
    target = tiny_built.warehouse.parent / ".dbt" / "target"
    results = json.loads((target / "run_results.json").read_text())
    assert not (target / "manifest.json").exists() and not (target / "semantic_manifest.json").exists()
    assert (target / "partial_parse.msgpack").exists()  # the next build's parse starts from it
    assert {r["status"] for r in results["results"]} <= {"success", "pass", "warn"}
    assert any(r["unique_id"] == "model.citycloud.kpi_daily" for r in results["results"])


def test_every_dbt_unit_test_passes(warehouse_copy):
    declared = _declared_unit_tests()
    assert len(declared) >= 10  # the models' YAML declares them; none may go missing silently
    results = run_dbt(warehouse_copy, ["test", "--select", "test_type:unit"])  # raises on a failure
    ran = {line.split(":")[0].split(".")[-1]: line.rsplit(": ", 1)[1] for line in results
           if line.startswith("unit_test.")}  # not the on-run-start hook
    assert ran == dict.fromkeys(declared, "pass")


def test_a_new_since_batch_keeps_partial_parsing(warehouse_copy):
    perf = warehouse_copy.warehouse.parent / ".dbt" / "target" / "perf_info.json"
    run_dbt(warehouse_copy, DbtCommand(["parse"], build_args(5).env))
    run_dbt(warehouse_copy, DbtCommand(["parse"], build_args(6).env))
    info = json.loads(perf.read_text())
    assert info["is_partial_parse_enabled"] and info["parsed_path_count"] == 0


def test_since_batch_must_be_a_number(warehouse_copy):
    with pytest.raises(CitycloudError, match="CITYCLOUD_SINCE_BATCH must be a batch number"):
        run_dbt(warehouse_copy, DbtCommand(["compile", "--select", "stg_audit__delivery_changes"],
                                           {SINCE_BATCH_ENV: "1 or true"}))


# Two whole runs around an edited model (~13 s): the e2e tier (#30).
@pytest.mark.e2e
def test_run_rebuilds_when_a_model_changed_since_the_last_build(tiny_built, tmp_path, monkeypatch):
    """No delivery is new, but a model's definition is: `run` rebuilds the marts (not "marts
    unchanged" over marts built from the old SQL), and says why in one note."""
    from citycloud import definitions, pipeline
    from tests.conftest import TEST_KEY

    settings = make_settings(tmp_path, tiny_built.landing)
    shutil.copytree(tiny_built.warehouse.parent, settings.warehouse.parent, dirs_exist_ok=True)
    monkeypatch.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
    record = settings.warehouse.parent / ".dbt" / "built_from.json"
    assert definitions.changed_since_build(settings) == [] and record.is_file()
    assert pipeline.run(settings).notes[0].startswith("nothing new since the last published build")
    built = json.loads(record.read_text())  # as if the mart's SQL was edited after this build
    record.write_text(json.dumps({**built, "models/marts/kpi_daily.sql": "0" * 64}))
    report = pipeline.run(settings)
    assert report.notes == ["the dbt project changed since the last build (models/marts/kpi_daily.sql): "
                            "every mart rebuilt"]
    assert report.build is not None and report.build.since_batch == -1 and report.published
    assert definitions.changed_since_build(settings) == []  # the new build recorded what it came from
    # the DAG's build task calls build() alone: a changed model rebuilds there too
    record.write_text(json.dumps({**built, "models/marts/kpi_daily.sql": "0" * 64}))
    rebuilt = pipeline.build(settings)
    assert not rebuilt.skipped and rebuilt.since_batch == -1
    assert definitions.changed_since_build(settings) == []

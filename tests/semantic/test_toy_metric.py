"""Adding a KPI is YAML only: docs/extending.md's walkthrough, replayed on a copy of the dbt
project. The new metric appears in the registry, on the dashboard's KPI table (data layer)
and in `citycloud query`, with no Python touched and no rebuild."""
from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from citycloud import config, registry
from citycloud.dashboards import data
from citycloud.access import Scope

EVERY_CITY = Scope.local(())  # local mode: every city, nothing filtered

pytestmark = pytest.mark.slow

# Step 1 of docs/extending.md "Add a KPI": a metric in a YAML file under models/semantic/.
TOY = """version: 2
metrics:
  - name: failed_accesses
    label: 失败访问次数
    description: Access events on D that did not succeed (failure or timeout).
    type: derived
    type_params:
      expr: total_accesses - successful_accesses
      metrics: [total_accesses, successful_accesses]
    config:
      meta: {grains: [day, month], label_en: Failed accesses, unit: events, format: integer, payable: false,
             source: service_access}
"""


@pytest.fixture(scope="module")
def toy_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("toy_home")
    shutil.copytree(config.DBT_PROJECT_DIR, home / "dbt_project", ignore=shutil.ignore_patterns("target", "logs"))
    (home / "dbt_project" / "models" / "semantic" / "toy_failed_accesses.yml").write_text(TOY, encoding="utf-8")
    return home


def _failed_by_day(settings) -> dict[dt.date, int]:
    con = duckdb.connect(str(settings.published), read_only=True)
    try:
        rows = con.execute("SELECT kpi_date, total_accesses - successful_accesses FROM marts.kpi_daily").fetchall()
    finally:
        con.close()
    return dict(rows)


def test_toy_metric_in_registry_and_on_the_dashboard_table(toy_home, tiny_settings, monkeypatch):
    monkeypatch.setattr(config, "DBT_PROJECT_DIR", toy_home / "dbt_project")
    reg = registry.load()
    toy = reg.metrics["failed_accesses"]
    assert (toy.label, toy.format, toy.payable, toy.grains) == ("失败访问次数", "integer", False, ("day", "month"))
    assert "failed_accesses" in data.daily_from_semantic_layer()

    last = dt.date(2026, 3, 2)
    d = data.run_load(tiny_settings.warehouse, EVERY_CITY, data.load_today, ("430100",), last)
    as_of, table = data.comparison_table(d["kpis"], "430100")
    row = table[table["指标"] == "失败访问次数"].iloc[0]
    failed = _failed_by_day(tiny_settings)
    assert as_of == last
    assert (row["当日"], row["前一日"], row["上周同日"]) == tuple(
        f"{failed[last - dt.timedelta(days=n)]:,}" for n in (0, 1, 7))

    # and on the Settlement page's monthly table, for the complete month (February)
    monthly = data.run_load(tiny_settings.warehouse, EVERY_CITY, data.load_settlement, ("430100",))["monthly"]
    assert monthly[["month", "failed_accesses"]].values.tolist() == [
        [dt.date(2026, 2, 1), sum(v for d, v in failed.items() if d.month == 2)]]


def test_toy_metric_in_citycloud_query(toy_home, tiny_settings, tmp_path):
    out = tmp_path / "toy.csv"
    env = {**os.environ, "CITYCLOUD_HOME": str(toy_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "citycloud.pipeline.cli", "query", "--warehouse", str(tiny_settings.warehouse),
         "--metrics", "failed_accesses", "--grain", "day", "--csv", str(out)],
        capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    got = {dt.date.fromisoformat(r["period"]): int(r["failed_accesses"]) for r in csv.DictReader(out.open())}
    failed = _failed_by_day(tiny_settings)
    assert got == failed and got[dt.date(2026, 1, 30)] == 46 - 43  # kpi_daily.csv: 46 accesses, 43 successful

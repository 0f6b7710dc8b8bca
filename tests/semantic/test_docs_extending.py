"""docs/extending.md's walkthrough, followed literally: the fenced block after the
`test_docs_extending` marker runs as it stands with bash, in a fresh shell (no CITYCLOUD_
variables, no activated venv), in a copy of the clone (tracked top-level entries linked, the
dbt project copied since the block writes into it, `.venv` this interpreter's) with the worked
example's built warehouse as the demo's. As tests/airflow/test_docs_local_run.py does for
docs/airflow.md: the doc cannot drift from what works."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from citycloud.pipeline import demo
from tests.doc_blocks import documented_block

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "extending.md"
MARKER = "<!-- test_docs_extending: the block below is run literally -->"


def clone_with_demo_warehouse(root: Path, built) -> Path:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    clone = root / "citycloud"
    clone.mkdir()
    for name in sorted({line.split("/", 1)[0] for line in tracked.splitlines()}):
        if name == "dbt_project":  # the walkthrough writes a metric file into it: a copy
            shutil.copytree(REPO / name, clone / name, ignore=shutil.ignore_patterns("target", "logs"))
        else:
            (clone / name).symlink_to(REPO / name)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    (clone / "demo" / "warehouse").mkdir(parents=True)
    for path in (built.warehouse, built.published):
        shutil.copy(path, clone / "demo" / "warehouse" / path.name)
    return clone


# A documented walkthrough run for real (`make test-e2e`); `make test` asserts the same behaviour,
# a KPI added by YAML alone in the registry, on the dashboard's table and in `citycloud query`, in
# tests/semantic/test_toy_metric.py.
@pytest.mark.e2e
def test_the_walkthrough_runs_as_written(tiny_built, tmp_path):
    block = documented_block(DOC, MARKER)
    clone = clone_with_demo_warehouse(tmp_path, tiny_built)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYCLOUD_", "VIRTUAL_ENV"))}
    # a fresh shell: the venv's bin not on PATH until the block activates it; this checkout's code
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(Path(sys.prefix))))
    env.update({"PYTHONPATH": str(REPO), "CITYCLOUD_HOME": str(clone)})
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = list(csv.DictReader((clone / "failed_accesses.csv").open(encoding="utf-8")))
    con = duckdb.connect(str(tiny_built.published), read_only=True)
    try:
        # the complete months (kpi_monthly's rows), summed from the days by hand
        expected = con.execute("""
            SELECT d.city_code, strftime(m.month, '%Y-%m-%d'), sum(d.total_accesses - d.successful_accesses),
                   sum(d.total_accesses)
            FROM marts.kpi_daily d JOIN marts.kpi_monthly m
              ON m.city_code = d.city_code AND m.month = date_trunc('month', d.kpi_date)
            GROUP BY ALL ORDER BY 1, 2""").fetchall()
    finally:
        con.close()
    assert [(r["city_code"], r["period"], int(r["failed_accesses"]), int(r["total_accesses"])) for r in rows] \
        == [(c, m, int(f), int(t)) for c, m, f, t in expected] and rows


def test_the_documented_key_command_prints_the_demos_key():
    text = DOC.read_text(encoding="utf-8")
    assert "export CITYCLOUD_PII_KEY=$(.venv/bin/python -m citycloud.pipeline.demo --print-key)" in text
    out = subprocess.run([sys.executable, "-m", "citycloud.pipeline.demo", "--print-key"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    assert out == demo.DEMO_PII_KEY + "\n"


def test_architecture_kpi_lookup_names_real_places():
    """docs/architecture.md's one-minute lookup (definition, tests, DAG of a KPI) points at files
    and folders that exist, and at the DAG ids the DAG files declare."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Where a KPI lives", 1)[1].split("\n## ", 1)[0]
    paths = [p for p in re.findall(r"`([\w./<>-]+/[\w./<>-]*)`", section) if "<" not in p]
    assert len(paths) >= 12
    assert [p for p in paths if not (REPO / p).exists()] == []
    for dag in ("citycloud_daily", "citycloud_monthly_settlement"):
        assert f'dag_id="{dag}"' in (REPO / "dags" / f"{dag}.py").read_text(encoding="utf-8")
        assert f"`{dag}`" in section

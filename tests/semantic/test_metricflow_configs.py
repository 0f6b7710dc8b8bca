"""`mf validate-configs` passes on the dbt project (semantic models, metrics, time spine)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from citycloud import registry
from citycloud.config import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow


def test_mf_validate_configs(tmp_path):
    # mf reads target/semantic_manifest.json inside the project: work on a copy, not the repo. The
    # manifest is the registry's own full `dbt parse` of the project (parsed again when a project
    # file is newer; it raises naming the failure), not a second parse of the same files.
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "target").mkdir()
    shutil.copy(registry.manifest_path(), project / "target" / "semantic_manifest.json")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DBT_PROFILES_DIR": str(project), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "CITYCLOUD_WAREHOUSE": str(tmp_path / "wh" / "citycloud.duckdb")}
    proc = subprocess.run([str(bin_dir / "mf"), "validate-configs", "--skip-dw"], cwd=project, env=env,
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Successfully validated the semantics of built manifest (ERRORS: 0" in out

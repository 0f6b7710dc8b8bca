"""A process runs Spark for one warehouse and one master (engine.check_session): a second
warehouse or master is refused in one line naming both, before any dbt or lake work.

A real local SparkSession in a child process (the JVM outlives session.stop(), and Hive's
per-thread metastore clients are what the check guards against), started with the settings the
spark target gives a build: its tables folder and master."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from citycloud.config import PROJECT_ROOT

if shutil.which("java") is None:
    pytest.skip("Java not installed: `make java`", allow_module_level=True)
pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(600)]

CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from citycloud.config import CitycloudError, Settings
    from citycloud.spark.engine import check_session

    tmp = Path(sys.argv[1])
    def settings(name, master="local[1]"):
        return Settings(warehouse=tmp / name / "citycloud.duckdb", spark_master=master)

    first = settings("a")
    outcomes = {"before any session": None}
    from pyspark.sql import SparkSession
    check_session(first)  # pyspark imported, no session yet: nothing to refuse
    session = (SparkSession.builder.master(first.spark_master)
               .config("spark.sql.warehouse.dir", str(first.spark_dir / "tables"))
               .config("spark.ui.enabled", "false").getOrCreate())
    for label, other in [("same warehouse and master", first), ("another warehouse", settings("b")),
                         ("another master", settings("a", "local[2]"))]:
        try:
            check_session(other)
            outcomes[label] = None
        except CitycloudError as exc:
            outcomes[label] = str(exc)
    session.stop()
    print(json.dumps(outcomes))
""")


def test_a_second_warehouse_or_master_in_one_process_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcomes["before any session"] is None
    assert outcomes["same warehouse and master"] is None  # a second build of the same warehouse reuses it
    tables_a = (tmp_path / "a" / "spark" / "tables").resolve()
    for label, named in [("another warehouse", tmp_path / "b" / "citycloud.duckdb"),
                         ("another master", tmp_path / "a" / "citycloud.duckdb")]:
        message = outcomes[label]
        assert message is not None, f"{label}: not refused"
        assert "\n" not in message
        assert f"already runs Spark for {tables_a} on local[1]" in message, message
        assert str(named) in message and "--engine spark in a process of its own" in message

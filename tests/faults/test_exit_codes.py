"""Exit 1 means blocking data-quality failures (BlockingFailure), exit 2 any other error: the CLI
decides by the exception's type, not by the word "blocking" somewhere in a message."""
from __future__ import annotations

import shutil

import pytest

from tests.faults.conftest import LANDING, citycloud, run_args

pytestmark = pytest.mark.faults


def test_an_error_mentioning_blocking_is_not_a_blocking_failure(tmp_path):
    missing = tmp_path / "blocking-exports"  # a folder name, not a data-quality verdict
    done = citycloud(run_args(tmp_path / "wh" / "citycloud.duckdb", missing), check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == \
        f"citycloud run: error: landing area {missing} is not a directory"


@pytest.mark.slow
@pytest.mark.faults_full
def test_blocking_failures_exit_1_and_publish_nothing(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(LANDING, landing)
    # A broken export: 30 lines, none of them JSON (more than half rejected blocks the run).
    folder = landing / "430100" / "service_access" / "dt=2026-02-01"
    for part in folder.glob("part-*"):
        part.unlink()
    (folder / "part-0.jsonl").write_text("".join(f"not json {i}\n" for i in range(30)))
    warehouse = tmp_path / "wh" / "citycloud.duckdb"

    done = citycloud(run_args(warehouse, landing), check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "citycloud run: error: blocking data-quality failures, marts NOT published:" in done.stderr
    assert "rejected_share_at_most_half" in done.stderr
    assert not warehouse.with_name(warehouse.stem + ".published.duckdb").exists()

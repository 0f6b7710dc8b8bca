"""Two writers at once: the second gets one clear line naming the first, nothing is lost."""
from __future__ import annotations

import time

import pytest

from tests.faults.conftest import (Paused, assert_consistent, assert_same, citycloud, content, run_args,
                                   settle_args)


@pytest.mark.slow
@pytest.mark.faults
def test_second_writer_is_refused_and_nothing_is_lost(tmp_path, clean_build):
    t0 = time.perf_counter()
    warehouse = tmp_path / "wh" / "citycloud.duckdb"
    first = Paused(run_args(warehouse), "checks", tmp_path)  # mid-run, between dbt and publish

    for args in (run_args(warehouse), settle_args(warehouse, final=False)):
        second = citycloud(args, check=False)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == (
            f"citycloud {args[0]}: error: warehouse {warehouse} is being written by another citycloud process "
            f"(pid {first.proc.pid}): DuckDB allows one writer. Wait for it to finish and try again.")
        assert "Traceback" not in second.stderr

    assert first.release() == 0, first.output()[-3000:]
    assert_consistent(warehouse)
    assert_same(content(warehouse), clean_build["content"])
    print(f"two writers: {time.perf_counter() - t0:.1f}s")

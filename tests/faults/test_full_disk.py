"""A full disk during ingestion, dbt and the snapshot export: one clear line, exit 2, the
published marts and snapshot as they were, and a rerun (with space again) equal to a clean build.

The warehouse lives on a small tmpfs (needs root and mount; skipped otherwise). The run is
paused at the phase (citycloud/fault_hook.py), the disk is filled to the last byte, then the
run goes on and meets the full disk.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (LAST_CHECKS, Paused, assert_consistent, assert_same, citycloud, content,
                                   copy_warehouse, run_args)

PHASES = ["ingest-early", "dbt-middle", "snapshot-export"]


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk refuses another byte."""
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return ballast


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.faults_full
@pytest.mark.parametrize("phase", PHASES)
def test_full_disk_leaves_published_state_and_reruns_clean(phase, small_disk, published_before, clean_build):
    t0 = time.perf_counter()
    warehouse = copy_warehouse(published_before, small_disk / "wh")
    snapshot = warehouse.with_name(warehouse.stem + ".published.duckdb")
    marts_before, snapshot_before = content(warehouse, schemas=("marts",)), sha256(snapshot)

    paused = Paused(run_args(warehouse), phase, small_disk.parent)
    ballast = fill(small_disk)
    code = paused.release()
    output = paused.output()
    assert code == 2, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"citycloud run: error: no space left on {small_disk}/"), last
    assert last.endswith("the previously published marts and snapshot are unchanged"), last
    assert "Traceback" not in output

    ballast.unlink()
    assert sha256(snapshot) == snapshot_before
    after = content(warehouse, schemas=("marts",))
    assert {t: after[t] for t in after if t.startswith("marts.")} == \
        {t: marts_before[t] for t in marts_before if t.startswith("marts.")}
    assert not list(warehouse.parent.glob(snapshot.name + ".tmp*"))

    citycloud(run_args(warehouse))
    assert_consistent(warehouse)
    assert_same(content(warehouse), clean_build["content"], ignore=(LAST_CHECKS,))
    print(f"full disk at {phase} + rerun: {time.perf_counter() - t0:.1f}s")

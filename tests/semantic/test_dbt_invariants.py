"""The structural invariants of the marts live in dbt beside the models (docs/data_quality.md):
a candidate mart that breaks one fails `dbt test`, which fails the build before any publish."""
from __future__ import annotations

import shutil

import duckdb
import pytest

from citycloud.config import CitycloudError
from citycloud.dbt_runner import run_dbt
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


def test_broken_invariants_fail_dbt_test(tiny_settings, tmp_path):
    settings = make_settings(tmp_path)
    settings.warehouse.parent.mkdir(parents=True)
    shutil.copy(tiny_settings.warehouse, settings.warehouse)
    # cautious: only the tests of these two marts, not the tests that also read other models
    run_dbt(settings, ["test", "--select", "kpi_daily", "kpi_monthly", "--indirect-selection", "cautious"])  # the built marts pass

    con = duckdb.connect(str(settings.warehouse))
    con.execute("UPDATE marts_build.kpi_daily SET dau = wau + 1 WHERE kpi_date = DATE '2026-02-10'")
    con.execute("UPDATE marts_build.kpi_daily SET success_rate = success_rate / 2 WHERE kpi_date = DATE '2026-02-10'")
    con.execute("UPDATE marts_build.kpi_monthly SET activity_rate = activity_rate + 0.01")
    con.close()
    with pytest.raises(CitycloudError) as err:
        run_dbt(settings, ["test", "--select", "kpi_daily", "kpi_monthly", "--indirect-selection", "cautious"])
    failing = [ln for ln in str(err.value).splitlines() if "Failure in test" in ln]
    assert len(failing) == 3, str(err.value)
    text = "\n".join(failing)
    assert "dau_wau" in text and "success_rate" in text and "activity_rate" in text

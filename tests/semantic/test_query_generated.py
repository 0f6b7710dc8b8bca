"""`citycloud query` equals the marts on generated data: two cities, January and February
complete (late events, dirt and all), every metric a mart holds, day and month grain."""
from __future__ import annotations

from datetime import date

import pytest

from citycloud import pipeline, registry
from citycloud.generate import generate
from tests.conftest import TEST_KEY, make_settings
from tests.semantic.test_query_equals_marts import mismatches

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sem_gen")
    generate(tmp / "landing", cities=2, start=date(2026, 1, 1), days=59, users=300, seed=11)
    settings = make_settings(tmp, tmp / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        assert pipeline.run(settings).published
    return settings


@pytest.mark.parametrize("mart,key,grain", [("kpi_daily", "kpi_date", "day"), ("kpi_monthly", "month", "month")])
def test_query_equals_marts_on_generated_data(generated, mart, key, grain):
    rows, diffs = mismatches(generated, registry.load(), mart, key, grain)
    assert rows == (2 * 59 if grain == "day" else 2 * 2) and diffs == []

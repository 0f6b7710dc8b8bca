"""`citycloud query` equals the marts on generated data: three cities, January and February
complete (late events, dirt and all), every metric a mart holds, day and month grain."""
from __future__ import annotations

import pytest

from citycloud import registry
from tests.conftest import GENERATED_CITIES, GENERATED_DAYS
from tests.semantic.test_query_equals_marts import mismatches

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mart,key,grain", [("kpi_daily", "kpi_date", "day"), ("kpi_monthly", "month", "month")])
def test_query_equals_marts_on_generated_data(generated, mart, key, grain):
    rows, diffs = mismatches(generated, registry.load(), mart, key, grain)
    assert rows == GENERATED_CITIES * (GENERATED_DAYS if grain == "day" else 2) and diffs == []

"""`citycloud query` equals the marts on generated data: two cities, January and February
complete (late events, dirt and all), every metric a mart holds, day and month grain."""
from __future__ import annotations

import pytest

from citycloud import registry
from tests.semantic.test_query_equals_marts import mismatches

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mart,key,grain", [("kpi_daily", "kpi_date", "day"), ("kpi_monthly", "month", "month")])
def test_query_equals_marts_on_generated_data(generated, mart, key, grain):
    rows, diffs = mismatches(generated, registry.load(), mart, key, grain)
    assert rows == (2 * 59 if grain == "day" else 2 * 2) and diffs == []

"""Funnels and service paths on generated data (2 cities, 45 days, dirt and late events included),
built in three incremental steps with the demo's three funnels: both marts agree cell for cell
with the independent Python recomputation of journeys_reference.py."""
from __future__ import annotations

import pytest

from citycloud.funnels import load_funnels
from tests.marts import journeys_reference as reference
from tests.marts.conftest import DEMO_FUNNELS as FUNNELS
from tests.marts.test_journeys_golden import _funnel_rows, _path_rows, _same

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def history(two_city_history):
    """tests/marts/conftest.py: 2 cities, 45 days, the demo's funnels, three incremental steps."""
    return two_city_history


def test_funnel_conversion_equals_the_recomputation(history):
    rows = _funnel_rows(history.warehouse)
    assert {k[1] for k in rows} == {f.name for f in load_funnels(FUNNELS)}
    assert _same(rows, reference.funnel_conversion(history.warehouse, load_funnels(FUNNELS))) == []


def test_service_paths_equal_the_recomputation(history):
    rows = _path_rows(history.warehouse)
    assert rows and rows == reference.service_paths(history.warehouse)

"""Funnels and service paths on generated data (2 cities, 45 days, dirt and late events included),
built in three incremental steps with the demo's three funnels: both marts agree cell for cell
with the independent Python recomputation of journeys_reference.py."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import SecretStr

from citycloud import pipeline
from citycloud.config import PROJECT_ROOT
from citycloud.funnels import load_funnels
from citycloud.generate import generate
from tests.conftest import TEST_KEY, make_settings
from tests.marts import journeys_reference as reference
from tests.marts.test_journeys_golden import _funnel_rows, _path_rows, _same

pytestmark = pytest.mark.slow
START, DAYS = date(2026, 1, 1), 45
FUNNELS = PROJECT_ROOT / "citycloud" / "demo_funnels.yml"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("journeys_gen")
    landing = tmp / "landing"
    generate(landing, cities=2, start=START, days=DAYS, users=300, seed=11)
    settings = make_settings(tmp, landing)
    settings.funnels = FUNNELS
    # a module fixture runs before the autouse key fixture: the key goes with the Settings
    settings.pii_key = SecretStr(TEST_KEY)
    for end in (START + timedelta(days=9), START + timedelta(days=30)):
        pipeline.ingest(settings, end=end)
        assert not pipeline.build(settings).skipped
    assert pipeline.run(settings).published
    return settings


def test_funnel_conversion_equals_the_recomputation(history):
    rows = _funnel_rows(history.warehouse)
    assert {k[1] for k in rows} == {f.name for f in load_funnels(FUNNELS)}
    assert _same(rows, reference.funnel_conversion(history.warehouse, load_funnels(FUNNELS))) == []


def test_service_paths_equal_the_recomputation(history):
    rows = _path_rows(history.warehouse)
    assert rows and rows == reference.service_paths(history.warehouse)

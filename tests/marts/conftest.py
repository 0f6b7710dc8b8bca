"""Builds the marts tests share, one each instead of one per module: the generated history of the
journeys and user-operations tests on generated data (the builds were the same but for the funnels
file), and the worked example with its funnels.yml built day by day (test_incremental.py,
test_journeys_golden.py)."""
from __future__ import annotations

import shutil
from datetime import date, timedelta

import pytest
from pydantic import SecretStr

from citycloud.config import PROJECT_ROOT, Settings
from tests.conftest import TEST_KEY, TINY, make_settings

HISTORY_START, HISTORY_DAYS = date(2026, 1, 1), 45  # January covered, February partly: covered and open periods
HISTORY_KEY = "ab" * 32
DEMO_FUNNELS = PROJECT_ROOT / "pipeline" / "demo_funnels.yml"


@pytest.fixture(scope="session")
def two_city_history(tmp_path_factory) -> Settings:
    """45 generated days for 2 cities with the demo's three funnels, built in three incremental
    steps, the last one published. Read only: a test that changes it works on a copy."""
    from citycloud import pipeline
    from citycloud.generate import generate

    tmp = tmp_path_factory.mktemp("two_city_history")
    generate(tmp / "landing", cities=2, start=HISTORY_START, days=HISTORY_DAYS, users=300, seed=11)
    settings = make_settings(tmp, tmp / "landing")
    settings.funnels = DEMO_FUNNELS
    # a session fixture runs before the autouse key fixture: the key goes with the Settings
    settings.pii_key = SecretStr(HISTORY_KEY)
    for end in (HISTORY_START + timedelta(days=9), HISTORY_START + timedelta(days=30)):
        pipeline.ingest(settings, end=end)
        assert not pipeline.build(settings).skipped
    assert pipeline.run(settings).published
    return settings


# The worked example's days up to which the day-by-day build ingests and builds, before its last
# step (everything, a whole run) publishes.
DAY_BY_DAY = (date(2026, 2, 3), date(2026, 2, 12), date(2026, 2, 20))


@pytest.fixture(scope="session")
def tiny_day_by_day(tmp_path_factory):
    """The worked example with tests/data/tiny/funnels.yml, ingested and built up to each day of
    DAY_BY_DAY in turn, then a whole `pipeline.run` (the rest of the landing area, checks,
    published): (Settings, the four BuildReports). test_incremental.py compares its marts with a
    full refresh of a copy; test_journeys_golden.py reads its published funnels and paths (one
    build with the funnels instead of one per module). Read only: a test that changes it works on
    a copy (copy_tiny_day_by_day)."""
    from citycloud import pipeline

    tmp = tmp_path_factory.mktemp("tiny_day_by_day")
    shutil.copytree(TINY / "landing", tmp / "landing")
    settings = make_settings(tmp, tmp / "landing")
    settings.funnels = TINY / "funnels.yml"
    # a session fixture runs before the autouse key fixture: the key goes with the Settings
    settings.pii_key, settings.memory_limit = SecretStr(TEST_KEY), "2GB"
    builds = []
    for end in DAY_BY_DAY:
        pipeline.ingest(settings, end=end)
        builds.append(pipeline.build(settings))
    report = pipeline.run(settings)
    assert report.published
    return settings, [*builds, report.build]


def copy_tiny_day_by_day(built: Settings, tmp_path) -> Settings:
    """A copy of the day-by-day build's landing area and warehouse folder (its dbt state too),
    with the same funnels and key, for a test that writes to it."""
    settings = make_settings(tmp_path, tmp_path / "landing")
    settings.funnels, settings.pii_key, settings.memory_limit = built.funnels, built.pii_key, built.memory_limit
    shutil.copytree(built.landing, settings.landing)
    shutil.copytree(built.warehouse.parent, settings.warehouse.parent)
    return settings

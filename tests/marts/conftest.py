"""The generated history the journeys and user-operations tests on generated data share: one
build instead of one per module (the builds were the same but for the funnels file)."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import SecretStr

from citycloud.config import PROJECT_ROOT, Settings
from tests.conftest import make_settings

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

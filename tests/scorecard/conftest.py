"""The tiny worked example's warehouse, built once for the scorecard tests that need one."""
from __future__ import annotations

import shutil
from datetime import date

import pytest

from citycloud import pipeline
from tests.conftest import TEST_KEY, TINY, make_settings

# Scoring checks "has the month ended" against this day, so the tests do not age.
TODAY = date(2026, 11, 30)


@pytest.fixture(scope="session")
def tiny_warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scorecard_tiny")
    landing = tmp / "landing"
    shutil.copytree(TINY / "landing", landing)
    settings = make_settings(tmp, landing)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        assert pipeline.run(settings).published
    return settings

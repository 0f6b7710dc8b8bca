"""The tiny worked example's warehouse, built once for the scorecard tests that need one."""
from __future__ import annotations

from datetime import date

import pytest


# Scoring checks "has the month ended" against this day, so the tests do not age.
TODAY = date(2026, 11, 30)


@pytest.fixture(scope="session")
def tiny_warehouse(tiny_built):
    return tiny_built

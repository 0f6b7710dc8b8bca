"""The worked example built once for the semantic-layer tests (one pipeline run)."""
from __future__ import annotations

import pytest

from citycloud import registry


@pytest.fixture(scope="session")
def tiny_settings(tiny_built):
    return tiny_built


@pytest.fixture(scope="session")
def tiny_registry(tiny_settings):
    return registry.load()

"""The session's builds (tests/conftest.py) under the semantic-layer tests' names: the worked
example, and the generated two cities over January and February."""
from __future__ import annotations

import pytest

from citycloud import registry


@pytest.fixture(scope="session")
def tiny_settings(tiny_built):
    return tiny_built


@pytest.fixture(scope="session")
def tiny_registry(tiny_settings):
    return registry.load()


@pytest.fixture(scope="session")
def generated(generated_built):
    return generated_built

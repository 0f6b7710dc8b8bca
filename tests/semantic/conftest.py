"""The worked example built once for the semantic-layer tests (one pipeline run)."""
from __future__ import annotations

import shutil

import pytest

from citycloud import pipeline, registry
from tests.conftest import TEST_KEY, TINY, make_settings


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("semantic_tiny")
    shutil.copytree(TINY / "landing", tmp / "landing")
    settings = make_settings(tmp, tmp / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        mp.setenv("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "2GB")
        report = pipeline.run(settings)
    assert report.published
    return settings


@pytest.fixture(scope="session")
def tiny_registry(tiny_settings):
    return registry.load()

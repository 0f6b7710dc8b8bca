"""Facts with one home, each checked against the place a second copy would be (issue #30)."""
from __future__ import annotations

import json

import pytest

from citycloud.config import BUILD_SCHEMA, PUBLISHED_MARTS
from citycloud.dbt_runner import run_dbt
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    settings = make_settings(tmp_path_factory.mktemp("parse"))
    settings.warehouse.parent.mkdir(parents=True)
    run_dbt(settings, ["parse"])
    return json.loads((settings.warehouse.parent / ".dbt" / "target" / "manifest.json").read_text())


def test_published_marts_are_what_dbt_builds_into_marts_build(manifest):
    built = sorted(n["name"] for n in manifest["nodes"].values()
                   if n["resource_type"] in ("model", "seed") and n["schema"] == BUILD_SCHEMA)
    assert len(PUBLISHED_MARTS) == 12
    assert list(PUBLISHED_MARTS) == built

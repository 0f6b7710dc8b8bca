"""citycloud: KPI marts and settlement statements for city citizen-cloud portals.

One installed namespace: pyproject.toml's `package-dir` maps the top-level folders ingestion/,
expectations/, dashboards/ and pipeline/ to citycloud.ingestion, citycloud.expectations,
citycloud.dashboards and citycloud.pipeline (docs/architecture.md). This folder is the ground
they stand on. Use a checkout by installing it (`make setup`).
"""

__version__ = "0.1.0"

"""citycloud: KPI marts and settlement statements for city citizen-cloud portals.

One installed namespace: pyproject.toml's `package-dir` maps the top-level folders ingestion/,
expectations/ and dashboards/ to citycloud.ingestion, citycloud.expectations and
citycloud.dashboards (docs/architecture.md). Use a checkout by installing it (`make setup`).
"""

__version__ = "0.1.0"

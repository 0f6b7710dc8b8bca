"""Paths and settings, from the project root with environment overrides.

Every entry point (CLI, Airflow DAGs, dashboard, tests) resolves its paths here so
that one environment variable moves a path everywhere at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("CITYCLOUD_HOME", Path(__file__).resolve().parents[1]))
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

SOURCES = ("registrations", "service_access", "service_catalog", "ratings")

# The dbt models copied from marts_build into marts (and the readers' snapshot) by each publish;
# here, not in citycloud.publish, so the Airflow DAGs can name them without importing DuckDB.
PUBLISHED_MARTS = ("kpi_daily", "kpi_monthly", "service_daily",
                   # the scorecard's measures and the reference table it divides by
                   "scorecard_measures", "city_reference",
                   # the semantic layer's inputs besides the marts (`citycloud query` reads the snapshot)
                   "user_activity_daily", "metricflow_time_spine",
                   # user operations (user_ops.md)
                   "user_lifecycle", "retention_monthly", "activation_daily", "stickiness_monthly", "channel_daily")



ENGINES = ("duckdb", "spark")


class CitycloudError(Exception):
    """An error the user can act on: printed without a traceback by the CLI."""


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass
class Settings:
    landing: Path = field(default_factory=lambda: _env_path("CITYCLOUD_LANDING", PROJECT_ROOT / "landing"))
    warehouse: Path = field(
        default_factory=lambda: _env_path("CITYCLOUD_WAREHOUSE", PROJECT_ROOT / "warehouse" / "citycloud.duckdb")
    )
    contracts: Path = field(
        default_factory=lambda: _env_path("CITYCLOUD_CONTRACTS", PROJECT_ROOT / "contracts" / "contracts.yml")
    )
    output: Path = field(default_factory=lambda: _env_path("CITYCLOUD_OUTPUT", PROJECT_ROOT / "output"))
    # DuckDB resource limits: bounded memory with spilling, so a 10M-event day fits.
    memory_limit: str = field(default_factory=lambda: os.environ.get("CITYCLOUD_DUCKDB_MEMORY_LIMIT", "4GB"))
    threads: int = field(default_factory=lambda: int(os.environ.get("CITYCLOUD_DUCKDB_THREADS", "0")))
    # The engine that builds the dbt models (docs/spark.md); readers always get the DuckDB file.
    engine: str = field(default_factory=lambda: os.environ.get("CITYCLOUD_ENGINE", "duckdb"))
    # Spark's master on --engine spark: local[N], or spark://host:7077 (scripts/spark_cluster.sh).
    spark_master: str = field(default_factory=lambda: os.environ.get("CITYCLOUD_SPARK_MASTER", "local[2]"))

    @property
    def spill_dir(self) -> Path:
        return _env_path("CITYCLOUD_SPILL_DIR", self.warehouse.parent / ".spill")

    @property
    def spark_dir(self) -> Path:
        """Spark's side of the warehouse: the parquet lake, Spark's tables and its Derby metastore."""
        return _env_path("CITYCLOUD_SPARK_DIR", self.warehouse.parent / "spark")

    @property
    def published(self) -> Path:
        """Read-only snapshot of the published marts, for readers (dashboard)."""
        return published_path(self.warehouse)


def published_path(warehouse: Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + ".published.duckdb")


MIN_KEY_BYTES = 32
MAKE_KEY = "`export CITYCLOUD_PII_KEY=$(openssl rand -hex 32)`"


def check_key_strength(key: str, name: str = "CITYCLOUD_PII_KEY") -> bytes:
    """At least 32 bytes of key material: a short or blank key makes the pseudonyms guessable."""
    material = key.strip().encode("utf-8")
    if len(material) < MIN_KEY_BYTES or len(set(material)) < 2:
        raise CitycloudError(
            f"{name} is too weak ({len(material)} bytes after trimming spaces{', one repeated character' if len(set(material)) == 1 else ''}): "
            f"it needs at least {MIN_KEY_BYTES} bytes of key material. Make one with {MAKE_KEY} "
            "and keep it secret and stable.")
    return key.encode("utf-8")


def pii_key(required: bool = True) -> bytes | None:
    """The HMAC key for pseudonymising personal data (CITYCLOUD_PII_KEY), checked for strength."""
    key = os.environ.get("CITYCLOUD_PII_KEY", "")
    if key:
        return check_key_strength(key)
    if not key:
        if required:
            raise CitycloudError(
                "CITYCLOUD_PII_KEY is not set: the pipeline refuses to run without a key for "
                f"pseudonymising personal data. Set it, e.g. {MAKE_KEY} "
                "(keep it secret and stable: changing it changes every user hash)."
            )
        return None

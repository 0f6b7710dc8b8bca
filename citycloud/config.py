"""Every setting of citycloud in one object, read from the environment (``CITYCLOUD_*``).

Every entry point (CLI, Airflow DAGs, dashboard, tests) builds ``Settings()`` here, so one
environment variable moves a path or a limit everywhere at once. This module is the ground
floor: it imports nothing else of the project (docs/architecture.md, tests/test_layering.py).
"""
from __future__ import annotations

import re
import warnings
from datetime import date, datetime
from typing import Literal, get_args
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The business time zone: every event_day, KPI day, month and deadline is a calendar day here.
# Python uses the zone; SQL gets the offset (a parameter, or formatted into the text): the zone
# keeps no daylight saving, so a fixed shift of the UTC instant gives the local day.
# tests/test_one_home.py fails on a second home (a zone name or offset written elsewhere).
BUSINESS_TZ_NAME = "Asia/Shanghai"
BUSINESS_TZ = ZoneInfo(BUSINESS_TZ_NAME)
BUSINESS_UTC_OFFSET_HOURS = int(BUSINESS_TZ.utcoffset(datetime(2026, 1, 1)).total_seconds()) // 3600
BUSINESS_UTC_OFFSET_ISO = f"{BUSINESS_UTC_OFFSET_HOURS:+03d}:00"  # as ISO 8601 writes it: +08:00
assert BUSINESS_TZ.utcoffset(datetime(2026, 7, 1)).total_seconds() == BUSINESS_UTC_OFFSET_HOURS * 3600, \
    "the business time zone must keep one UTC offset all year (no daylight saving)"

SOURCES = ("registrations", "service_access", "service_catalog", "ratings", "review_tickets")
# The service catalog is a snapshot that is not delivered every day, and a city may run no 好差评
# ticket system at all (review_tickets, reviews.md): neither is waited for (the DAG's sensor) nor
# reported missing (alerts). A late ticket delivery only delays the reviews marts' as-of day.
WAITED_SOURCES = tuple(s for s in SOURCES if s not in ("service_catalog", "review_tickets"))

PII_KEY_ENV = "CITYCLOUD_PII_KEY"
NEW_PII_KEY_ENV = "CITYCLOUD_NEW_PII_KEY"
MIN_KEY_BYTES = 32
MAKE_KEY = "`export CITYCLOUD_PII_KEY=$(openssl rand -hex 32)`"




class CitycloudError(Exception):
    """An error the user can act on: printed without a traceback by the CLI."""


def _env(name: str, *, default=None, **kwargs):
    """A field read from the environment variable `name` (its historical name), also settable by field name."""
    return Field(default, validation_alias=AliasChoices(name), **kwargs)


class _Home(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYCLOUD_", env_ignore_empty=True, extra="ignore",
                                      populate_by_name=True)

    # The project folder (dbt project, expectations, default landing/warehouse); the package's parent.
    home: Path = Path(__file__).resolve().parents[1]

    def __init__(self, **values) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:  # one line naming the variable, its value and the rule
            raise CitycloudError("; ".join(_describe(e) for e in exc.errors())) from None

    @field_validator("*", mode="after")
    @classmethod
    def _expand_user(cls, value):
        return Path(value).expanduser() if isinstance(value, Path) else value


def _describe(error: dict) -> str:
    name = str(error["loc"][0]) if error.get("loc") else "settings"
    name = name if name.startswith("CITYCLOUD_") else f"CITYCLOUD_{name.upper()}"
    shown = "" if "PII_KEY" in name else f"={error.get('input')!r}"  # never echo a key
    return f"setting {name}{shown}: {error['msg']}"


PROJECT_ROOT = _Home().home
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

# The schema dbt builds the candidate marts into; citycloud.publish copies them into `marts`.
BUILD_SCHEMA = "marts_build"


def _published_marts() -> tuple[str, ...]:
    """The dbt models and seeds built into marts_build, read from their one home: the folders
    dbt_project.yml gives `+schema: marts_build` (a file listing, so the Airflow DAGs can name the
    marts without importing dbt or DuckDB; tests/marts/test_dbt_one_home.py checks it against dbt's manifest)."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    name = project["name"]
    found: list[str] = []
    for key, suffix, paths in (("models", "*.sql", project.get("model-paths", ["models"])),
                               ("seeds", "*.csv", project.get("seed-paths", ["seeds"]))):
        for folder, config in project.get(key, {}).get(name, {}).items():
            if isinstance(config, dict) and config.get("+schema") == BUILD_SCHEMA:
                found += [f.stem for path in paths for f in (DBT_PROJECT_DIR / path / folder).rglob(suffix)]
        if project.get(key, {}).get(name, {}).get("+schema") == BUILD_SCHEMA:  # the whole resource type
            found += [f.stem for path in paths for f in (DBT_PROJECT_DIR / path).rglob(suffix)]
    return tuple(sorted(found))


# Copied from marts_build into marts (and the readers' snapshot) by each publish.
PUBLISHED_MARTS = _published_marts()


# What DuckDB's memory_limit accepts: a number and a unit of bytes (KB, MiB, G, ...), a share
# of RAM (80%), or -1 for no limit.
_MEMORY_SIZE = re.compile(r"\s*(-1|\d+(\.\d+)?\s*(%|b|bytes|[kmgt]i?b?))\s*", re.IGNORECASE)


class Settings(_Home):
    """Paths, limits and schedules; each field is the environment variable CITYCLOUD_<FIELD NAME>
    unless it names another one. Build it with keyword arguments to override (tests, CLI options)."""

    landing: Path | None = None  # default <home>/landing
    warehouse: Path | None = None  # default <home>/warehouse/citycloud.duckdb
    contracts: Path | None = None  # default <home>/contracts/contracts.yml
    output: Path | None = None  # default <home>/output
    evaluation: Path | None = None  # the scorecard's scheme; default <home>/contracts/evaluation.yml
    assessments: Path | None = None  # reviewers' assessments; default <home>/contracts/assessments.yml if it exists
    funnels: Path | None = None  # the funnels.yml the build reads (user_ops.md, "Funnels"); none: no funnels

    # DuckDB resource limits: bounded memory with spilling, so a 10M-event day fits. 3GB keeps
    # the whole 10M-event day under 4 GiB of RSS (measured 3.73 GiB; 4.10 at 4GB, which spilled
    # less: docs/performance.md, "Memory").
    memory_limit: str = _env("CITYCLOUD_DUCKDB_MEMORY_LIMIT", default="3GB")
    # Ingestion's own, lower limit: it streams one file at a time into an open transaction and
    # needs little working memory, but DuckDB fills its buffer pool to the limit with the rows
    # already inserted. Measured on a 10M-event delivery (docs/performance.md, "Memory"): peak
    # RSS 6.41 GiB at 4GB, 4.74 at 2GB, 3.87 at 1GB, each a little faster than the one before.
    ingest_memory_limit: str = _env("CITYCLOUD_DUCKDB_INGEST_MEMORY_LIMIT", default="1GB")
    threads: int = _env("CITYCLOUD_DUCKDB_THREADS", default=0, ge=0)
    # Compression DuckDB must not try when it writes a table. Its dictionary+FSST analysis of
    # high-cardinality strings (hex HMACs, event ids) was the largest CPU cost of every write
    # (docs/performance.md, "Hash storage"); without it writes cost ~2.4x less CPU and tables
    # take ~2x the disk. Empty = DuckDB's defaults.
    disabled_compression: str = _env("CITYCLOUD_DUCKDB_DISABLED_COMPRESSION", default="dict_fsst,fsst")
    spill_dir_setting: Path | None = _env("CITYCLOUD_SPILL_DIR")  # default <warehouse folder>/.spill

    # The engine that builds the dbt models (docs/spark.md); readers always get the DuckDB file.
    engine: Literal["duckdb", "spark"] = "duckdb"
    # Spark's master on --engine spark: local[N], or spark://host:7077 (scripts/spark_cluster.sh).
    spark_master: str = "local[2]"
    spark_dir_setting: Path | None = _env("CITYCLOUD_SPARK_DIR")  # default <warehouse folder>/spark

    # The key pseudonymising personal data: a secret, never shown by repr() or in logs.
    pii_key: SecretStr | None = _env(PII_KEY_ENV)
    new_pii_key: SecretStr | None = _env(NEW_PII_KEY_ENV)  # `citycloud rotate-key` only

    # The one delivery deadline: day D's deliveries are due by the end of D (Asia/Shanghai) plus
    # this many hours. The daily DAG's sensor waits until then; the dashboard calls a delivery
    # ingested after it late when `late_after_deadline` is on.
    delivery_timeout_hours: float = 6.0
    # Off by default: a backfill ingests old days long after their deadline, which is not lateness.
    late_after_deadline: bool = False
    # Deprecated: the dashboard's former deadline, in hours after the START of D. Setting it turns
    # `late_after_deadline` on and, unless CITYCLOUD_DELIVERY_TIMEOUT_HOURS is set, moves the deadline.
    deprecated_deadline_hours: float | None = _env("CITYCLOUD_DELIVERY_DEADLINE_HOURS", exclude=True, repr=False)

    # Alerts (docs/alerts.md): the alerts.yml `citycloud run` sends with at its end (also --alerts);
    # each message is tried this many times with exponential back-off from the wait below, each try
    # bounded by the timeout, then left pending for the next invocation. A delivery whose rejected
    # rows exceed this share of its rows is a problem, if it has at least `alert_rejected_min_rows`
    # rows (as the quality suite's min_rows_for_share: 1 bad row of 5 is chance, not a broken export).
    alerts: Path | None = None
    alert_attempts: int = Field(3, ge=1)
    alert_retry_wait_seconds: float = Field(1.0, ge=0)
    alert_timeout_seconds: float = Field(10.0, gt=0)
    alert_rejected_share: float = Field(0.05, ge=0, le=1)
    alert_rejected_min_rows: int = Field(20, ge=0)

    # Airflow: sensors, retries, the settlement's wait (docs/airflow.md).
    delivery_poke_minutes: float = Field(10.0, gt=0)
    expected_lookback_days: int = Field(30, ge=0)  # 0 = any time before
    settlement_wait_hours: float = Field(48.0, gt=0)
    settlement_poke_minutes: float = Field(30.0, gt=0)
    task_retries: int = Field(2, ge=0)
    retry_delay_minutes: float = Field(2.0, ge=0)

    # A delivered file is set aside whole, with its reason, when it decompresses to more than this
    # many times its size on disk (but never below the floor, so small files pass), or when more than
    # `max_bad_lines` of its lines break the contract: a decompression bomb or a file of another
    # format, not dirt to keep row by row (docs/reliability.md).
    max_decompression_ratio: float = Field(200.0, gt=0)
    min_decompressed_limit_mb: float = Field(100.0, ge=0)
    max_bad_lines: int = Field(1000, ge=0)
    # A JSON-lines or CSV file DuckDB's reader takes whole is read in bulk; off: every file line by line
    # (the same rows and line numbers, slower: docs/performance.md, "Two-pass ingestion").
    two_pass_ingestion: bool = True
    # The day ingestion takes as today (Asia/Shanghai): delivery folders dated after it are refused.
    # Default the real date; set it for tests and replays.
    today: date | None = None

    # 好差评 (reviews.md): a bad review is due at the end of this many working days after its
    # rating day (holiday_calendar seed); passed to dbt as the var rectify_working_days.
    rectify_working_days: int = Field(15, ge=1, le=250)

    # The dashboard's cache lifetime for loads from the published snapshot.
    dashboard_ttl: int = Field(30, ge=0)

    _chosen: frozenset[str] = PrivateAttr(frozenset())

    @field_validator("memory_limit", "ingest_memory_limit")
    @classmethod
    def _duckdb_memory_size(cls, value: str) -> str:
        # Checked here, not when DuckDB first sees it mid-run (a parser traceback then).
        if not _MEMORY_SIZE.fullmatch(value):
            raise ValueError("not a DuckDB memory size: a number and a unit, e.g. 3GB, 512MB, 80%")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        self._chosen = frozenset(self.model_fields_set)
        home = self.home
        self.landing = self.landing or home / "landing"
        self.warehouse = self.warehouse or home / "warehouse" / "citycloud.duckdb"
        self.contracts = self.contracts or home / "contracts" / "contracts.yml"
        self.output = self.output or home / "output"
        self.evaluation = self.evaluation or home / "contracts" / "evaluation.yml"
        if self.assessments is None and (home / "contracts" / "assessments.yml").exists():
            self.assessments = home / "contracts" / "assessments.yml"
        if self.deprecated_deadline_hours is not None:
            warnings.warn("CITYCLOUD_DELIVERY_DEADLINE_HOURS is deprecated: set CITYCLOUD_DELIVERY_TIMEOUT_HOURS "
                          "(hours after the END of the day) and CITYCLOUD_LATE_AFTER_DEADLINE=1", DeprecationWarning,
                          stacklevel=2)
            self.late_after_deadline = True
            if "delivery_timeout_hours" not in self.model_fields_set:
                self.delivery_timeout_hours = self.deprecated_deadline_hours - 24
        return self

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each field and the environment variable it is read from (docs, deployment checks)."""
        return {name: field.validation_alias.choices[0] if isinstance(field.validation_alias, AliasChoices)
                else f"CITYCLOUD_{name.upper()}" for name, field in cls.model_fields.items()}

    def chosen(self, field: str) -> bool:
        """Whether `field` was given (environment or argument) rather than left to its default."""
        return field in self._chosen

    @property
    def current_day(self) -> date:
        """Today in the business time zone (BUSINESS_TZ), unless `today` is set."""
        return self.today or datetime.now(BUSINESS_TZ).date()

    @property
    def spill_dir(self) -> Path:
        return self.spill_dir_setting or self.warehouse.parent / ".spill"

    @property
    def spark_dir(self) -> Path:
        """Spark's side of the warehouse: the parquet lake, Spark's tables and its Derby metastore."""
        return self.spark_dir_setting or self.warehouse.parent / "spark"

    @property
    def published(self) -> Path:
        """Read-only snapshot of the published marts, for readers (dashboard)."""
        return published_path(self.warehouse)

    @property
    def late_after_hours(self) -> float | None:
        """The deadline in hours after the start of a delivery's day, when the dashboard judges by it."""
        return 24 + self.delivery_timeout_hours if self.late_after_deadline else None


def output_beside(warehouse: Path) -> Path:
    """The output folder of a warehouse named on the command line: `output/` beside it, or, for a
    warehouse in the default layout (`<home>/warehouse/<file>`, e.g. the demo's), `<home>/output`,
    where the layout's own default puts it; so every verb on the demo's warehouse writes into the
    demo's one output tree (`demo/output`), never a second one in `demo/warehouse/output`."""
    warehouse = Path(warehouse)
    folder = warehouse.parent
    return (folder.parent if folder.name == "warehouse" else folder) / "output"


def published_path(warehouse: Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + ".published.duckdb")


def check_key_strength(key: str, name: str = PII_KEY_ENV) -> bytes:
    """At least 32 bytes of key material: a short or blank key makes the pseudonyms guessable."""
    material = key.strip().encode("utf-8")
    if len(material) < MIN_KEY_BYTES or len(set(material)) < 2:
        raise CitycloudError(
            f"{name} is too weak ({len(material)} bytes after trimming spaces{', one repeated character' if len(set(material)) == 1 else ''}): "
            f"it needs at least {MIN_KEY_BYTES} bytes of key material. Make one with {MAKE_KEY} "
            "and keep it secret and stable.")
    return key.encode("utf-8")


def pii_key(required: bool = True, settings: Settings | None = None) -> bytes | None:
    """The HMAC key for pseudonymising personal data (CITYCLOUD_PII_KEY), checked for strength.

    The key `settings` were given; without one, the environment's when called (an Airflow task
    sets it just before the step runs, possibly after its `Settings` were made)."""
    secret = (settings.pii_key if settings is not None else None) or Settings().pii_key
    if secret is not None and secret.get_secret_value():
        return check_key_strength(secret.get_secret_value())
    if required:
        raise CitycloudError(
            "CITYCLOUD_PII_KEY is not set: the pipeline refuses to run without a key for "
            f"pseudonymising personal data. Set it, e.g. {MAKE_KEY} "
            "(keep it secret and stable: changing it changes every user hash)."
        )
    return None


ENGINES = get_args(Settings.model_fields["engine"].annotation)  # the --engine choices

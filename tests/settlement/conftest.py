"""Fixtures for the settlement tests: a small DuckDB warehouse built by hand in tmp_path."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from citycloud.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A moment after February 2026 has ended in Shanghai.
MARCH_5 = datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI)

KPI_COLUMNS = (
    "connected_services", "registered_users", "mau", "activity_rate", "satisfaction_rate",
    "new_registrations", "total_accesses",
)

# One city, one contract, a simple 50/50 contract used by many tests.
SIMPLE_CONTRACT = """\
contracts:
  - contract_id: {cid}
    city_code: "{city}"
    operator: 长沙数智科技集团有限公司
    start_month: {start}
    end_month: {end}
    monthly_fee_cny: {fee}
    kpis:
      - {{kpi: connected_services, target: 40, weight: 0.5}}
      - {{kpi: satisfaction_rate, target: 0.8, weight: 0.5}}
    tiers:
      - {{min_attainment: 1.00, factor: 1.00}}
      - {{min_attainment: 0.90, factor: 0.90}}
      - {{min_attainment: 0.75, factor: 0.60}}
      - {{min_attainment: 0.00, factor: 0.00}}
"""


def simple_contract(cid="CS-T-001", city="430100", start="2026-01", end="2026-12", fee="52000.00") -> str:
    return SIMPLE_CONTRACT.format(cid=cid, city=city, start=start, end=end, fee=fee)


class Warehouse:
    """Builds and edits the hand-made warehouse (marts.kpi_monthly, audit.deliveries)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS marts")
            con.execute("CREATE SCHEMA IF NOT EXISTS audit")
            con.execute(
                "CREATE TABLE marts.kpi_monthly (city_code VARCHAR, month DATE, connected_services BIGINT, "
                "registered_users BIGINT, mau BIGINT, activity_rate DOUBLE, satisfaction_rate DOUBLE, "
                "new_registrations BIGINT, total_accesses BIGINT)"
            )
            con.execute(
                "CREATE TABLE audit.deliveries (city_code VARCHAR, source VARCHAR, dt DATE, files INTEGER, "
                "rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT, ingested_at TIMESTAMP, "
                "content_hash VARCHAR, batch_id BIGINT)"
            )

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path))

    def kpi(self, city: str, month: str, **values) -> None:
        """Insert or replace the kpi_monthly row of a city and month (YYYY-MM)."""
        row = {k: None for k in KPI_COLUMNS}
        row.update(values)
        m = date.fromisoformat(month + "-01")
        with self.connect() as con:
            con.execute("DELETE FROM marts.kpi_monthly WHERE city_code = ? AND month = ?", [city, m])
            con.execute(
                f"INSERT INTO marts.kpi_monthly VALUES (?, ?, {', '.join('?' for _ in KPI_COLUMNS)})",
                [city, m] + [row[k] for k in KPI_COLUMNS],
            )

    def deliveries(self, city: str, first: str, last: str, batch_id: int = 1, tag: str = "") -> None:
        """One delivery per source and day from `first` to `last` (replacing earlier copies)."""
        lo, hi = date.fromisoformat(first), date.fromisoformat(last)
        with self.connect() as con:
            con.execute("DELETE FROM audit.deliveries WHERE city_code = ? AND dt BETWEEN ? AND ?", [city, lo, hi])
            con.execute(
                """
                INSERT INTO audit.deliveries
                SELECT $city, s.source, CAST(r.d AS DATE), 2, 100, 98, 2, $ingested,
                       sha256($city || '/' || s.source || '/' || CAST(CAST(r.d AS DATE) AS VARCHAR) || '/' || $tag),
                       $batch
                FROM range(CAST($lo AS TIMESTAMP), CAST($hi AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY) r(d),
                     (VALUES ('registrations'), ('service_access'), ('service_catalog'), ('ratings')) s(source)
                """,
                {"city": city, "lo": lo, "hi": hi, "tag": tag, "batch": batch_id,
                 "ingested": datetime(2026, 3, 1, 2, 0) + timedelta(days=batch_id)},
            )

    def rows(self, sql: str, params=()) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        landing=tmp_path / "landing",
        warehouse=tmp_path / "warehouse" / "citycloud.duckdb",
        contracts=tmp_path / "contracts.yml",
        output=tmp_path / "output",
        memory_limit="1GB",
        threads=2,
    )


@pytest.fixture
def wh(settings: Settings) -> Warehouse:
    w = Warehouse(settings.warehouse)
    w.deliveries("430100", "2026-01-30", "2026-03-03")
    w.deliveries("310000", "2026-02-01", "2026-02-03")  # another city: never listed for 430100
    return w


@pytest.fixture
def contracts_file(settings: Settings):
    def write(text: str) -> Path:
        settings.contracts.write_text(text, encoding="utf-8")
        return settings.contracts

    return write

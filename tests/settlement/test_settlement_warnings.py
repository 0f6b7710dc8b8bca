"""Settlement warns about deliveries of the month that the figures do not include."""
from __future__ import annotations

from citycloud.settlement import settle
from citycloud.ingestion.schema import AUDIT_TABLES

from .conftest import MARCH_5, simple_contract


def _issue(wh, path: str, kind: str) -> None:
    with wh.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS audit.landing_issues ({AUDIT_TABLES['landing_issues']})")
        con.execute("INSERT INTO audit.landing_issues VALUES (?, ?, 'x', now()::TIMESTAMP)", [path, kind])


def test_a_month_with_an_incomplete_delivery_is_settled_with_a_warning_in_the_statement(settings, wh, contracts_file):
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.8)
    contracts_file(simple_contract())
    _issue(wh, "430100/ratings/dt=2026-02-27", "incomplete_delivery")
    _issue(wh, "430100/ratings/dt=2026-03-01", "incomplete_delivery")        # another month
    _issue(wh, "310000/service_access/dt=2026-02-03", "incomplete_delivery")  # another city
    _issue(wh, "430100/service_access/dt=2026-02-10", "empty_delivery")
    report = settle(settings, "2026-02", now=MARCH_5)
    assert report.warnings == [
        "contract CS-T-001: 2 delivery folder(s) of 2026-02 not in the figures: "
        "430100/ratings/dt=2026-02-27 (incomplete delivery), 430100/service_access/dt=2026-02-10 (empty delivery)"]
    assert "1 warning(s) above" in report.summary_line()
    (notes,), = wh.rows("SELECT notes FROM marts.settlement_statements")
    assert "430100/ratings/dt=2026-02-27 (incomplete delivery)" in notes


def test_a_month_no_contract_covers_names_no_statement_folder(settings, wh, contracts_file):
    contracts_file(simple_contract(start="2026-01", end="2026-01"))
    wh.kpi("430100", "2026-01", connected_services=38, satisfaction_rate=0.8)
    wh.kpi("430100", "2026-02", connected_services=38, satisfaction_rate=0.8)
    report = settle(settings, "2026-02", now=MARCH_5)
    assert "no statement written (no contract covers this month)" in report.summary_line()
    assert "statements in" not in report.summary_line()

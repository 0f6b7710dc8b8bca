"""Settlement: contract terms → monthly statements (versions in the warehouse, CSV/XLSX files).

Public API (used by the CLI and the Airflow DAGs):

    from citycloud.settlement import settle
    report = settle(settings, "2026-02", final=False)   # -> SettleReport
    print(report.summary_line())

- `contracts`: load and validate `contracts.yml` (`load_contracts`, `parse_contracts`)
- `compute`: decimal attainment, tiers and payment (`compute`)
- `versions`: statement versions in `marts.settlement_*` (append-only, sealed)
- `statements`: CSV and XLSX files made from stored versions
- `service`: `settle()` itself

See docs/settlement.md.
"""
from citycloud.settlement.compute import Computation, Line, compute
from citycloud.settlement.contracts import Contract, KpiTerm, Tier, known_kpis, load_contracts, parse_contracts
from citycloud.settlement.service import ContractResult, SettleReport, settle

__all__ = [
    "known_kpis",
    "Computation",
    "Contract",
    "ContractResult",
    "KpiTerm",
    "Line",
    "SettleReport",
    "Tier",
    "compute",
    "load_contracts",
    "parse_contracts",
    "settle",
]

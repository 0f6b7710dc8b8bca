"""`settle()`: one month's settlement for every contract, as used by the CLI and the DAGs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from citycloud import db, fault_hook, outputs, publish
from citycloud.config import BUSINESS_TZ, BUSINESS_TZ_NAME, CitycloudError, Settings
from citycloud.settlement import statements, versions
from citycloud.settlement.compute import Computation, actual_text, compute
from citycloud import registry
from citycloud.settlement.contracts import Contract, known_kpis, city_problems, load_contracts, raise_problems

_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass
class ContractResult:
    contract_id: str
    city_code: str
    status: str  # provisional | final | restatement (of `version`), or skipped
    version: int | None = None
    payment: Decimal | None = None
    written: bool = False  # a new version was written by this run
    note: str = ""
    restates_version: int | None = None
    payment_delta: Decimal | None = None
    files: list[Path] = field(default_factory=list)


@dataclass
class SettleReport:
    month: str
    final: bool
    computed_at: datetime
    out_dir: Path
    results: list[ContractResult] = field(default_factory=list)
    summary_files: list[Path] = field(default_factory=list)
    snapshot: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def written(self) -> list[ContractResult]:
        return [r for r in self.results if r.written]

    @property
    def settled(self) -> list[ContractResult]:
        return [r for r in self.results if r.status != "skipped"]

    @property
    def total_payment(self) -> Decimal:
        return sum((r.payment for r in self.settled if r.payment is not None), Decimal("0.00"))

    def summary_line(self) -> str:
        new = self.written
        by_status: dict[str, int] = {}
        for r in new:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        parts = [f"{len(new)} new version{'s' if len(new) != 1 else ''}"]
        if by_status:
            parts[0] += " (" + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + ")"
        unchanged = len(self.settled) - len(new)
        if unchanged:
            parts.append(f"{unchanged} unchanged")
        skipped = len(self.results) - len(self.settled)
        if skipped:
            parts.append(f"{skipped} skipped (month outside the contract)")
        where = (f"statements in {self.out_dir}" if self.settled
                 else "no statement written (no contract covers this month)")
        warned = f"; {len(self.warnings)} warning(s) above" if self.warnings else ""
        return (
            f"settled {self.month}: {len(self.results)} contract{'s' if len(self.results) != 1 else ''}, "
            + ", ".join(parts)
            + f"; payable {self.total_payment:,.2f} CNY; {where}{warned}"
        )


def parse_month(month: str) -> date:
    m = _MONTH_RE.fullmatch(month or "") if isinstance(month, str) else None
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise CitycloudError(f"month {month!r} is not a month: write it YYYY-MM, e.g. --month 2026-02")
    if not 2015 <= int(m.group(1)) <= 2999:
        # Landing data start in 2015 (landing.md); far-future years cannot have ended.
        raise CitycloudError(f"month {month!r} is out of range: months from 2015-01 to 2999-12 can be settled")
    return date(int(m.group(1)), int(m.group(2)), 1)


def next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _now(now: datetime | None) -> datetime:
    """`now` as an aware Asia/Shanghai time (a naive `now` is read as Asia/Shanghai wall time)."""
    if now is None:
        return datetime.now(BUSINESS_TZ)
    if now.tzinfo is None:
        return now.replace(tzinfo=BUSINESS_TZ)
    return now.astimezone(BUSINESS_TZ)


def check_month_ended(month_start: date, now: datetime) -> None:
    end = datetime(*next_month(month_start).timetuple()[:3], tzinfo=BUSINESS_TZ)
    if now < end:
        raise CitycloudError(
            f"month {month_start:%Y-%m} has not ended (it ends {end:%Y-%m-%d %H:%M} {BUSINESS_TZ_NAME}; it is now "
            f"{now:%Y-%m-%d %H:%M}): a month can be settled once it has ended. Settle an earlier month, or wait."
        )


def _fetch_actuals(con: duckdb.DuckDBPyConnection, city_code: str, month: date) -> list[dict]:
    """The city's kpi_monthly row(s) for the month: the KPIs, plus `is_complete` (whether the
    city's day series reaches the month's last day) when the model provides it."""
    extra = [c for c in ("is_complete", "days_covered") if c in versions.columns(con, "marts", "kpi_monthly")]
    # the payable metrics as kpi_monthly holds them (the registry names the column)
    held = registry.load().in_mart("kpi_monthly")
    cols = ", ".join([f"{held[k]} AS {k}" for k in known_kpis() if k in held] + extra)
    cur = con.execute(f"SELECT {cols} FROM marts.kpi_monthly WHERE city_code = ? AND month = ?", [city_code, month])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _changed_kpis(con: duckdb.DuckDBPyConnection, contract: Contract, month: date, version: int, comp: Computation) -> str:
    before = {
        r[0]: r[1]
        for r in con.execute(
            f"SELECT kpi, actual_exact FROM {versions.LINES} WHERE contract_id = ? AND month = ? AND version = ?",
            [contract.contract_id, month, version],
        ).fetchall()
    }
    diffs = [
        f"{ln.kpi} {before.get(ln.kpi) or 'null'} → {actual_text(ln.actual) or 'null'}"
        for ln in comp.lines
        if before.get(ln.kpi) != actual_text(ln.actual)
    ]
    return ", ".join(diffs) if diffs else "contract terms"


def _snapshot_current(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Does the readers' snapshot hold every statement version the warehouse holds?"""
    snap = settings.published
    if not snap.exists():
        return False
    try:
        con.execute(f"ATTACH '{snap.as_posix()}' AS settle_snapshot_check (READ_ONLY)")
    except duckdb.Error:
        return False
    try:
        sql = "SELECT count(*), max(computed_at) FROM {}.settlement_statements"
        return (
            con.execute(sql.format("settle_snapshot_check.marts")).fetchone()
            == con.execute(sql.format("marts")).fetchone()
        )
    except duckdb.Error:
        return False
    finally:
        con.execute("DETACH settle_snapshot_check")


def settle(
    settings: Settings,
    month: str,
    final: bool = False,
    out_dir: Path | None = None,
    contracts_path: Path | None = None,
    now: datetime | None = None,
) -> SettleReport:
    """Settle `month` (YYYY-MM) for every contract, record statement versions, write the files.

    Raises CitycloudError (nothing written) for: a month not ended, a contracts file that breaks
    a rule, a missing warehouse or kpi_monthly, a contract whose city has no kpi_monthly row for
    the month, stored versions altered outside this module.
    """
    month_start = parse_month(month)
    now_sh = _now(now)
    check_month_ended(month_start, now_sh)

    contracts_path = Path(contracts_path or settings.contracts)
    # Static rules first: a bad file is refused before the warehouse is even opened...
    contracts = load_contracts(contracts_path)
    warehouse = Path(settings.warehouse)
    if not warehouse.exists():
        raise CitycloudError(f"warehouse {warehouse} does not exist: run `citycloud run` first")
    out_dir = Path(out_dir) if out_dir is not None else Path(settings.output) / "statements" / month
    outputs.output_folder("--out", out_dir, settings)  # never the warehouse's files or the landing area
    report = SettleReport(month=month, final=final, computed_at=now_sh, out_dir=out_dir)

    # One writer for the whole settlement (see citycloud.db.writer_lock); a full disk is one line.
    with db.writer_lock(settings), db.disk_full_as_error(
            warehouse, "statement versions are written whole or not at all: run the same command again"):
        run = _SettleRun(settings, contracts, contracts_path, month, month_start, final, now_sh, out_dir)
        _settle_locked(run, report)
    order = {c.contract_id: i for i, c in enumerate(contracts)}
    report.results.sort(key=lambda r: order[r.contract_id])
    return report


@dataclass(frozen=True)
class _SettleRun:
    """What one `settle` call asks for, resolved: passed whole to the helpers below instead of
    nine loose parameters."""

    settings: Settings
    contracts: list[Contract]
    contracts_path: Path
    month: str
    month_start: date
    final: bool
    now_sh: datetime
    out_dir: Path


def _settle_locked(run: _SettleRun, report: SettleReport) -> None:
    warehouse = Path(run.settings.warehouse)
    con = db.connect(warehouse, settings=run.settings)
    try:
        covered = _covered_contracts(con, run, report, warehouse)
        actuals, incomplete = _gather_actuals(con, run, covered)
        _note_unfinished_deliveries(con, run, report, covered, incomplete)
        computations = {c.contract_id: compute(c, actuals[c.contract_id]) for c in covered}
        _record_versions(con, run, report, covered, computations, incomplete)

        # Readers (dashboard) see the settlement through the published snapshot: refresh it when
        # this run wrote something, or when it lags behind (an earlier run stopped before it).
        fault_hook.pause_at("settle-committed")
        if report.written or not _snapshot_current(con, run.settings):
            report.snapshot = publish.export_snapshot(con, run.settings)

        _write_files(con, run, report)
    finally:
        con.close()


def _covered_contracts(con: duckdb.DuckDBPyConnection, run: _SettleRun, report: SettleReport,
                       warehouse: Path) -> list[Contract]:
    """Check the rules that need the warehouse, record the contracts the month is outside of as
    skipped, and return those that cover it."""
    if not versions.table_exists(con, "marts", "kpi_monthly"):
        raise CitycloudError(
            f"warehouse {warehouse} has no marts.kpi_monthly: run `citycloud run` to build the KPIs first"
        )
    # ...then the rule that needs the warehouse: every city has data.
    cities = {r[0] for r in con.execute("SELECT DISTINCT city_code FROM marts.kpi_monthly").fetchall()}
    problems = city_problems(run.contracts, cities)
    if problems:
        raise_problems(f"contracts file {run.contracts_path}", problems)

    month = run.month
    covered = [c for c in run.contracts if c.covers(month)]
    for c in run.contracts:
        if not c.covers(month):
            report.results.append(
                ContractResult(
                    c.contract_id, c.city_code, "skipped",
                    note=f"contract covers {c.start_month}..{c.end_month}; {month} is outside it: skipped",
                )
            )
    return covered


def _gather_actuals(con: duckdb.DuckDBPyConnection, run: _SettleRun,
                    covered: list[Contract]) -> tuple[dict[str, dict], dict[str, str]]:
    """Every covered contract's month row, and the provisional notes of incomplete months.

    Every covered contract needs its city's month row; refuse them all at once if not."""
    month = run.month
    actuals: dict[str, dict] = {}
    incomplete: dict[str, str] = {}
    missing = []
    for c in covered:
        rows = _fetch_actuals(con, c.city_code, run.month_start)
        if len(rows) != 1:
            if rows:
                missing.append(
                    f"contract {c.contract_id}: marts.kpi_monthly has {len(rows)} rows for city {c.city_code} "
                    f"and {month}; it must have one. Rebuild the KPIs with `citycloud run`."
                )
            else:
                missing.append(
                    f"contract {c.contract_id}: city {c.city_code} has no marts.kpi_monthly row for {month} "
                    "(no data for that month yet?): ingest its deliveries with `citycloud run`, or settle "
                    "another month."
                )
            continue
        if rows[0].get("is_complete") is False:
            if run.final:
                missing.append(
                    f"contract {c.contract_id}: marts.kpi_monthly marks {month} incomplete for city {c.city_code} "
                    f"(its data covers {rows[0].get('days_covered')} days, not the whole month): a final "
                    "statement needs the whole month. Ingest the missing deliveries with `citycloud run`, "
                    "or settle without --final for a provisional statement."
                )
                continue
            incomplete[c.contract_id] = (
                f"kpi_monthly marks {month} incomplete for city {c.city_code} "
                f"({rows[0].get('days_covered')} days covered): provisional figures"
            )
        actuals[c.contract_id] = rows[0]
    if missing:
        raise_problems(f"settlement of {month}", missing)
    return actuals, incomplete


def _note_unfinished_deliveries(con: duckdb.DuckDBPyConnection, run: _SettleRun, report: SettleReport,
                                covered: list[Contract], incomplete: dict[str, str]) -> None:
    """Warn about deliveries the figures do not include yet, and mark those statements provisional."""
    for c in covered:
        if note := _unfinished_deliveries(con, c.city_code, run.month):
            report.warnings.append(f"contract {c.contract_id}: {note}")
            incomplete[c.contract_id] = "; ".join(filter(None, [incomplete.get(c.contract_id), note]))


def _record_versions(con: duckdb.DuckDBPyConnection, run: _SettleRun, report: SettleReport,
                     covered: list[Contract], computations: dict[str, Computation],
                     incomplete: dict[str, str]) -> None:
    """Store every covered contract's statement version in one transaction: all or none."""
    versions.ensure_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for c in covered:
            versions.verify_sealed(con, c.contract_id, run.month_start)
            comp, warning = computations[c.contract_id], incomplete.get(c.contract_id)
            report.results.append(_settle_one(con, c, run.month_start, comp, run.final, run.now_sh, warning))
        fault_hook.pause_at("settle-versions")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _write_files(con: duckdb.DuckDBPyConnection, run: _SettleRun, report: SettleReport) -> None:
    """Files: each contract's current version, rendered from its stored rows on every run
    (so a run that writes nothing new still repairs missing or stale files)."""
    fault_hook.pause_at("settle-files")
    views = []
    for r in report.results:
        if r.status == "skipped":
            continue
        view = versions.load_view(con, r.contract_id, run.month_start, r.version)
        views.append(view)
        r.files = statements.write_statement_files(view, run.out_dir)
    report.summary_files = statements.write_month_summary(views, run.month, run.out_dir)


def _unfinished_deliveries(con: duckdb.DuckDBPyConnection, city_code: str, month: str) -> str | None:
    """Deliveries of the month that the landing area holds but the figures do not include
    (no _SUCCESS yet, or _SUCCESS without data), as of the last `citycloud run`."""
    if not versions.table_exists(con, "audit", "landing_issues"):
        return None
    rows = con.execute(
        "SELECT path, kind FROM audit.landing_issues WHERE kind IN ('incomplete_delivery', 'empty_delivery') "
        "AND starts_with(path, ?) AND contains(path, ?) ORDER BY path",
        [f"{city_code}/", f"/dt={month}-"]).fetchall()
    if not rows:
        return None
    listed = ", ".join(f"{path} ({kind.replace('_', ' ')})" for path, kind in rows)
    return f"{len(rows)} delivery folder(s) of {month} not in the figures: {listed}"


def _settle_one(
    con: duckdb.DuckDBPyConnection,
    c: Contract,
    month: date,
    comp: Computation,
    final: bool,
    now: datetime,
    warning: str | None = None,
) -> ContractResult:
    figures = comp.figures()
    fig_hash = versions.figures_hash(figures)
    terms_hash = c.payment_terms_hash()
    existing = versions.existing_versions(con, c.contract_id, month)
    decision = versions.decide(existing, fig_hash, terms_hash, final)
    label = f"{month:%Y-%m}"

    if not decision.write:
        latest = existing[-1]
        finals = [v for v in existing if v.status == "final"]
        note = f"nothing changed since version {latest.version} ({latest.status}): nothing new written"
        if finals and finals[-1].version != latest.version:
            note += f"; final version {finals[-1].version} stands, restated by version {latest.version}"
        elif finals:
            note += f"; {label} is final"
        if final and finals:
            note += " (already final: --final changes nothing)"
        if warning:
            note += f"; {warning}"
        return ContractResult(
            c.contract_id, c.city_code, latest.status, latest.version, latest.payment_cny, False, note
        )

    deliveries = versions.read_deliveries(con, c.city_code)
    fingerprint = versions.input_fingerprint(c.city_code, month, deliveries, figures)
    restated = None
    changes = None
    if decision.status == "restatement":
        restated = versions.load_view(con, c.contract_id, month, decision.restates_version)
        changes = versions.restatement_changes(comp, c, restated)

    if decision.reason == "first settlement":
        note = f"version 1 ({decision.status}) written"
    elif decision.reason == "finalised":
        note = f"version {decision.version} (final) written: figures as in version {decision.previous_version}"
    elif decision.reason == "changed":
        what = _changed_kpis(con, c, month, decision.previous_version, comp)
        note = f"changed since version {decision.previous_version} ({what}): version {decision.version} ({decision.status}) written"
    else:  # restatement
        delta = Decimal(changes["payment_delta_cny"])
        what = _changed_kpis(con, c, month, decision.previous_version, comp)
        note = (
            f"changed since version {decision.previous_version} ({what}) after final version "
            f"{decision.restates_version}: restatement version {decision.version} written, payment against the "
            f"final {restated.statement['payment_cny']} → {comp.payment_cny} (delta {delta:+.2f} CNY)"
        )
    stored_notes = note
    if warning:
        stored_notes += f"; {warning}"
    if not deliveries:
        stored_notes += "; no deliveries listed for the city in audit.deliveries"

    versions.write_version(
        con,
        versions.NewVersion(
            contract=c, month=month, decision=decision, computation=comp, computed_at=now,
            deliveries=deliveries, fingerprint=fingerprint, figures_hash=fig_hash, terms_hash=terms_hash,
            notes=stored_notes, restated=restated, changes=changes,
        ),
    )
    return ContractResult(
        c.contract_id, c.city_code, decision.status, decision.version, comp.payment_cny, True, stored_notes,
        restates_version=decision.restates_version,
        payment_delta=None if changes is None else Decimal(changes["payment_delta_cny"]),
    )

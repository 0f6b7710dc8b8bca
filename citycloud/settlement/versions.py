"""Statement versions in the warehouse: append-only tables, sealed rows, version rules.

Tables (schema `marts`, written only by this module, only with INSERT):
- `settlement_statements`: one row per (contract_id, month, version)
- `settlement_lines`: one row per KPI of a version
- `settlement_inputs`: the deliveries (audit.deliveries) the version's figures saw

Nothing here ever runs UPDATE or DELETE on these tables: a version, once written, stays as
written (a final one in particular). Each statement row carries `statement_hash`, a sha256
over the row itself, its lines and its inputs; before writing anything for a contract and
month, `verify_sealed` recomputes it for every existing version and refuses to continue if a
row was changed, deleted or added outside this module.

Version rules (see docs/settlement.md):
- first settlement of a contract and month: version 1, `final` with --final else `provisional`;
- no final yet, figures and terms as in the latest version: nothing new (with --final: a new
  `final` version with the same figures; versions are never re-labelled in place);
- no final yet, something changed: a new `provisional` (or `final` with --final) version;
- a final exists, nothing changed since the latest version: nothing new;
- a final exists, something changed: a new `restatement` version carrying its differences
  from the final version (per KPI before/after, payment delta).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Sequence

import duckdb

from citycloud.config import CitycloudError
from citycloud.settlement.compute import Computation, actual_text
from citycloud.settlement.contracts import Contract

STATUSES = ("provisional", "final", "restatement")

STATEMENTS = "marts.settlement_statements"
LINES = "marts.settlement_lines"
INPUTS = "marts.settlement_inputs"

DDL = (
    "CREATE SCHEMA IF NOT EXISTS marts",
    f"""CREATE TABLE IF NOT EXISTS {STATEMENTS} (
        contract_id VARCHAR NOT NULL,
        city_code VARCHAR NOT NULL,
        month DATE NOT NULL,
        version INTEGER NOT NULL,
        status VARCHAR NOT NULL CHECK (status IN ('provisional', 'final', 'restatement')),
        operator VARCHAR NOT NULL,
        monthly_fee_cny DECIMAL(18,2) NOT NULL,
        weighted_factor DECIMAL(38,18) NOT NULL,
        payment_cny DECIMAL(18,2) NOT NULL,
        computed_at TIMESTAMPTZ NOT NULL,
        input_fingerprint VARCHAR NOT NULL,
        figures_hash VARCHAR NOT NULL,
        terms_hash VARCHAR NOT NULL,
        contract_terms JSON NOT NULL,
        deliveries INTEGER NOT NULL,
        previous_version INTEGER,
        restates_version INTEGER,
        payment_before_cny DECIMAL(18,2),
        payment_delta_cny DECIMAL(18,2),
        changes JSON,
        notes VARCHAR,
        statement_hash VARCHAR NOT NULL,
        PRIMARY KEY (contract_id, month, version)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {LINES} (
        contract_id VARCHAR NOT NULL,
        city_code VARCHAR NOT NULL,
        month DATE NOT NULL,
        version INTEGER NOT NULL,
        line_no INTEGER NOT NULL,
        kpi VARCHAR NOT NULL,
        actual DOUBLE,
        actual_exact VARCHAR,
        target DECIMAL(38,18) NOT NULL,
        attainment DECIMAL(38,18) NOT NULL,
        weight DECIMAL(38,18) NOT NULL,
        tier_min_attainment DECIMAL(38,18) NOT NULL,
        factor DECIMAL(38,18) NOT NULL,
        weighted_factor DECIMAL(38,18) NOT NULL,
        actual_before DOUBLE,
        actual_exact_before VARCHAR,
        target_before DECIMAL(38,18),
        attainment_before DECIMAL(38,18),
        factor_before DECIMAL(38,18),
        PRIMARY KEY (contract_id, month, version, kpi)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {INPUTS} (
        contract_id VARCHAR NOT NULL,
        city_code VARCHAR NOT NULL,
        month DATE NOT NULL,
        version INTEGER NOT NULL,
        source VARCHAR NOT NULL,
        dt DATE NOT NULL,
        content_hash VARCHAR,
        rows_loaded BIGINT,
        batch_id BIGINT,
        ingested_at TIMESTAMP,
        PRIMARY KEY (contract_id, month, version, source, dt)
    )""",
)

STATEMENT_COLUMNS = (
    "contract_id", "city_code", "month", "version", "status", "operator", "monthly_fee_cny",
    "weighted_factor", "payment_cny", "computed_at", "input_fingerprint", "figures_hash", "terms_hash",
    "contract_terms", "deliveries", "previous_version", "restates_version", "payment_before_cny",
    "payment_delta_cny", "changes", "notes",
)  # + statement_hash
LINE_COLUMNS = (
    "contract_id", "city_code", "month", "version", "line_no", "kpi", "actual", "actual_exact", "target",
    "attainment", "weight", "tier_min_attainment", "factor", "weighted_factor", "actual_before",
    "actual_exact_before", "target_before", "attainment_before", "factor_before",
)
INPUT_COLUMNS = (
    "contract_id", "city_code", "month", "version", "source", "dt", "content_hash", "rows_loaded",
    "batch_id", "ingested_at",
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for sql in DDL:
        con.execute(sql)


# --------------------------------------------------------------------------------------------
# Canonical text and hashes
# --------------------------------------------------------------------------------------------
def _canon(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc).isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    return str(value)


def _sha256(data: Any) -> str:
    text = json.dumps(_canon(data), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def figures_hash(figures: dict[str, str | None]) -> str:
    """sha256 of the actuals that decide the payment (kpi → exact decimal text)."""
    return _sha256({"figures": figures})


@dataclass(frozen=True)
class Delivery:
    source: str
    dt: date
    content_hash: str | None
    rows_loaded: int | None
    batch_id: int | None
    ingested_at: Any

    def identity(self) -> list:
        """What the fingerprint sees: which folder, which content (not when it was loaded)."""
        if self.content_hash:
            return [self.source, self.dt.isoformat(), self.content_hash]
        # Ledgers without content_hash: identify the copy by its load instead.
        return [self.source, self.dt.isoformat(), None, self.rows_loaded, self.batch_id, _canon(self.ingested_at)]


def input_fingerprint(city_code: str, month: date, deliveries: Sequence[Delivery], figures: dict[str, str | None]) -> str:
    """sha256 over the sorted deliveries of the city (source, dt, content_hash) and the figures."""
    return _sha256(
        {
            "city_code": city_code,
            "month": month,
            "deliveries": sorted(d.identity() for d in deliveries),
            "figures": figures,
        }
    )


def statement_seal(statement: dict[str, Any], lines: Sequence[dict[str, Any]], inputs: Sequence[dict[str, Any]]) -> str:
    """sha256 over a statement row (without its seal), its lines and its inputs."""
    return _sha256(
        {
            "statement": {k: statement[k] for k in STATEMENT_COLUMNS},
            "lines": sorted(([ln[k] for k in LINE_COLUMNS] for ln in lines), key=lambda r: r[4]),
            "inputs": sorted(
                ([_canon(i[k]) for k in INPUT_COLUMNS] for i in inputs), key=lambda r: (r[4], r[5])
            ),
        }
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return {r[0] for r in rows}


def read_deliveries(con: duckdb.DuckDBPyConnection, city_code: str) -> list[Delivery]:
    """Every delivery of the city in audit.deliveries (its latest ingested copy), sorted."""
    return [Delivery(**row) for row in _dicts(con, _deliveries_sql(con), [city_code])]


def _deliveries_sql(con: duckdb.DuckDBPyConnection) -> str:
    if not table_exists(con, "audit", "deliveries"):
        # No ledger (yet): the statement records no deliveries and says so in its notes.
        return (
            "SELECT NULL::VARCHAR AS source, NULL::DATE AS dt, NULL::VARCHAR AS content_hash, "
            "NULL::BIGINT AS rows_loaded, NULL::BIGINT AS batch_id, NULL::TIMESTAMP AS ingested_at WHERE ? IS NULL"
        )
    cols = columns(con, "audit", "deliveries")

    def col(name: str, cast: str) -> str:
        return f"CAST({name} AS {cast}) AS {name}" if name in cols else f"NULL::{cast} AS {name}"

    return (
        f"SELECT CAST(source AS VARCHAR) AS source, CAST(dt AS DATE) AS dt, {col('content_hash', 'VARCHAR')}, "
        f"{col('rows_loaded', 'BIGINT')}, {col('batch_id', 'BIGINT')}, {col('ingested_at', 'TIMESTAMP')} "
        "FROM audit.deliveries WHERE city_code = ? ORDER BY source, dt"
    )


@dataclass(frozen=True)
class VersionInfo:
    version: int
    status: str
    figures_hash: str
    terms_hash: str
    payment_cny: Decimal
    input_fingerprint: str


def existing_versions(con: duckdb.DuckDBPyConnection, contract_id: str, month: date) -> list[VersionInfo]:
    if not table_exists(con, "marts", "settlement_statements"):
        return []
    rows = con.execute(
        f"SELECT version, status, figures_hash, terms_hash, payment_cny, input_fingerprint FROM {STATEMENTS} "
        "WHERE contract_id = ? AND month = ? ORDER BY version",
        [contract_id, month],
    ).fetchall()
    return [VersionInfo(*r) for r in rows]


@dataclass
class StatementView:
    """One version as stored: what the statement files are made from."""

    statement: dict[str, Any]
    lines: list[dict[str, Any]]
    inputs: list[dict[str, Any]]

    @property
    def changes(self) -> dict[str, Any] | None:
        raw = self.statement.get("changes")
        return json.loads(raw) if raw else None

    @property
    def terms(self) -> dict[str, Any]:
        return json.loads(self.statement["contract_terms"])


def load_view(con: duckdb.DuckDBPyConnection, contract_id: str, month: date, version: int) -> StatementView:
    key = [contract_id, month, version]
    where = "WHERE contract_id = ? AND month = ? AND version = ?"
    st = _dicts(con, f"SELECT * FROM {STATEMENTS} {where}", key)
    if not st:
        raise CitycloudError(f"contract {contract_id}: no statement version {version} for {month:%Y-%m}")
    lines = _dicts(con, f"SELECT * FROM {LINES} {where} ORDER BY line_no", key)
    inputs = _dicts(con, f"SELECT * FROM {INPUTS} {where} ORDER BY source, dt", key)
    return StatementView(st[0], lines, inputs)


def verify_sealed(con: duckdb.DuckDBPyConnection, contract_id: str, month: date) -> None:
    """Refuse to go on if any stored version of this contract and month was altered."""
    if not table_exists(con, "marts", "settlement_statements"):
        return
    label = f"contract {contract_id}, {month:%Y-%m}"
    versions = [v.version for v in existing_versions(con, contract_id, month)]
    if versions != list(range(1, len(versions) + 1)):
        raise CitycloudError(
            f"{label}: statement versions {versions} are not 1..n: a version was deleted outside "
            "citycloud.settlement. Restore the warehouse from a backup; nothing was settled."
        )
    for table in (LINES, INPUTS):
        orphans = con.execute(
            f"SELECT DISTINCT version FROM {table} WHERE contract_id = ? AND month = ? "
            f"AND version NOT IN (SELECT version FROM {STATEMENTS} WHERE contract_id = ? AND month = ?)",
            [contract_id, month, contract_id, month],
        ).fetchall()
        if orphans:
            raise CitycloudError(
                f"{label}: {table} has rows for versions {[o[0] for o in orphans]} without a statement: "
                "the settlement tables were changed outside citycloud.settlement. Restore them from a backup."
            )
    for version in versions:
        view = load_view(con, contract_id, month, version)
        if statement_seal(view.statement, view.lines, view.inputs) != view.statement["statement_hash"]:
            raise CitycloudError(
                f"{label}: version {version} ({view.statement['status']}) no longer matches its seal: its rows were "
                "changed outside citycloud.settlement (a final version is never changed). Restore the "
                "settlement tables from a backup; nothing was settled."
            )


# --------------------------------------------------------------------------------------------
# Deciding
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    write: bool
    status: str  # status of the new version, or of the latest one when nothing is written
    version: int  # the new version, or the latest one
    restates_version: int | None = None
    previous_version: int | None = None
    reason: str = ""


def decide(existing: Sequence[VersionInfo], figures: str, terms: str, final: bool) -> Decision:
    """Apply the version rules (module docstring) to a contract-month's history."""
    if not existing:
        return Decision(True, "final" if final else "provisional", 1, reason="first settlement")
    latest = existing[-1]
    finals = [v for v in existing if v.status == "final"]
    unchanged = latest.figures_hash == figures and latest.terms_hash == terms
    if finals:
        fin = finals[-1]
        if unchanged:
            return Decision(False, latest.status, latest.version, previous_version=latest.version, reason="unchanged")
        return Decision(
            True, "restatement", latest.version + 1, restates_version=fin.version, previous_version=latest.version,
            reason="changed after final",
        )
    if unchanged:
        if final:
            return Decision(True, "final", latest.version + 1, previous_version=latest.version, reason="finalised")
        return Decision(False, latest.status, latest.version, previous_version=latest.version, reason="unchanged")
    return Decision(
        True, "final" if final else "provisional", latest.version + 1, previous_version=latest.version, reason="changed"
    )


# --------------------------------------------------------------------------------------------
# Writing (INSERT only)
# --------------------------------------------------------------------------------------------
@dataclass
class NewVersion:
    contract: Contract
    month: date
    decision: Decision
    computation: Computation
    computed_at: datetime
    deliveries: list[Delivery]
    fingerprint: str
    figures_hash: str
    terms_hash: str
    notes: str
    restated: StatementView | None = None  # the final version a restatement differs from
    changes: dict[str, Any] | None = field(default=None)


def restatement_changes(comp: Computation, contract: Contract, restated: StatementView) -> dict[str, Any]:
    """Differences of a new computation from the final version it restates."""
    before = {ln["kpi"]: ln for ln in restated.lines}
    kpis = []
    for ln in comp.lines:
        b = before.get(ln.kpi)
        after_actual = actual_text(ln.actual)
        before_actual = b["actual_exact"] if b else None
        kpis.append(
            {
                "kpi": ln.kpi,
                "actual_before": before_actual,
                "actual_after": after_actual,
                "target_before": _canon(b["target"]) if b else None,
                "target_after": _canon(ln.target),
                "factor_before": _canon(b["factor"]) if b else None,
                "factor_after": _canon(ln.factor),
                "changed": b is None
                or before_actual != after_actual
                or Decimal(b["target"]) != ln.target
                or Decimal(b["factor"]) != ln.factor
                or Decimal(b["weight"]) != ln.weight,
            }
        )
    payment_before = restated.statement["payment_cny"]
    return {
        "restates_version": restated.statement["version"],
        "payment_before_cny": f"{payment_before:.2f}",
        "payment_after_cny": f"{comp.payment_cny:.2f}",
        "payment_delta_cny": f"{comp.payment_cny - payment_before:.2f}",
        "terms_changed": restated.statement["terms_hash"] != contract.payment_terms_hash(),
        "kpis": kpis,
        "kpis_removed": sorted(set(before) - {ln.kpi for ln in comp.lines}),
    }


def write_version(con: duckdb.DuckDBPyConnection, nv: NewVersion) -> str:
    """Insert one version (inputs, lines, statement) inside the caller's transaction.

    Returns the statement's seal. Raises if the version already exists (primary key)."""
    c, d, comp = nv.contract, nv.decision, nv.computation
    key = {"contract_id": c.contract_id, "city_code": c.city_code, "month": nv.month, "version": d.version}

    con.execute(
        f"INSERT INTO {INPUTS} ({', '.join(INPUT_COLUMNS)}) "
        f"SELECT ?, ?, ?, ?, q.source, q.dt, q.content_hash, q.rows_loaded, q.batch_id, q.ingested_at "
        f"FROM ({_deliveries_sql(con)}) q",
        [c.contract_id, c.city_code, nv.month, d.version, c.city_code],
    )
    stored = con.execute(
        f"SELECT count(*) FROM {INPUTS} WHERE contract_id = ? AND month = ? AND version = ?",
        [c.contract_id, nv.month, d.version],
    ).fetchone()[0]
    if stored != len(nv.deliveries):
        raise CitycloudError(
            f"contract {c.contract_id}: audit.deliveries changed while settling ({len(nv.deliveries)} read, "
            f"{stored} stored); run settle again"
        )

    before = {ln["kpi"]: ln for ln in nv.restated.lines} if nv.restated else {}
    line_rows = []
    for ln in comp.lines:
        b = before.get(ln.kpi)
        line_rows.append(
            {
                **key,
                "line_no": ln.line_no,
                "kpi": ln.kpi,
                "actual": ln.actual_raw,
                "actual_exact": actual_text(ln.actual),
                "target": ln.target,
                "attainment": ln.attainment,
                "weight": ln.weight,
                "tier_min_attainment": ln.tier_min_attainment,
                "factor": ln.factor,
                "weighted_factor": ln.weighted_factor,
                "actual_before": b["actual"] if b else None,
                "actual_exact_before": b["actual_exact"] if b else None,
                "target_before": b["target"] if b else None,
                "attainment_before": b["attainment"] if b else None,
                "factor_before": b["factor"] if b else None,
            }
        )
    con.executemany(
        f"INSERT INTO {LINES} ({', '.join(LINE_COLUMNS)}) VALUES ({', '.join('?' for _ in LINE_COLUMNS)})",
        [[r[k] for k in LINE_COLUMNS] for r in line_rows],
    )

    restated_payment = nv.restated.statement["payment_cny"] if nv.restated else None
    statement = {
        **key,
        "status": d.status,
        "operator": c.operator,
        "monthly_fee_cny": c.monthly_fee_cny,
        "weighted_factor": comp.weighted_factor,
        "payment_cny": comp.payment_cny,
        "computed_at": nv.computed_at,
        "input_fingerprint": nv.fingerprint,
        "figures_hash": nv.figures_hash,
        "terms_hash": nv.terms_hash,
        "contract_terms": c.terms_json(),
        "deliveries": len(nv.deliveries),
        "previous_version": d.previous_version,
        "restates_version": d.restates_version,
        "payment_before_cny": restated_payment,
        "payment_delta_cny": None if restated_payment is None else comp.payment_cny - restated_payment,
        "changes": None if nv.changes is None else json.dumps(nv.changes, ensure_ascii=False, sort_keys=True),
        "notes": nv.notes,
    }
    stored_lines = _dicts(
        con, f"SELECT * FROM {LINES} WHERE contract_id = ? AND month = ? AND version = ?",
        [c.contract_id, nv.month, d.version],
    )
    stored_inputs = _dicts(
        con, f"SELECT * FROM {INPUTS} WHERE contract_id = ? AND month = ? AND version = ?",
        [c.contract_id, nv.month, d.version],
    )
    seal = statement_seal(statement, stored_lines, stored_inputs)
    cols = STATEMENT_COLUMNS + ("statement_hash",)
    con.execute(
        f"INSERT INTO {STATEMENTS} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [statement[k] for k in STATEMENT_COLUMNS] + [seal],
    )
    # Read the row back: the seal must hold for what the warehouse actually stored.
    view = load_view(con, c.contract_id, nv.month, d.version)
    if statement_seal(view.statement, view.lines, view.inputs) != seal:
        raise CitycloudError(
            f"contract {c.contract_id}: version {d.version} did not store exactly as computed (seal mismatch); "
            "nothing was settled. This is a bug: report it with the warehouse file."
        )
    return seal

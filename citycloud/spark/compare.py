"""Do two warehouses publish the same marts? Cell for cell, for the Spark engine's proofs
(tests/spark) and the engine benchmark (bench/engines.py)."""
from __future__ import annotations

import math

from citycloud.config import PUBLISHED_MARTS, Settings
from citycloud.publish import open_snapshot

# The marts of kpis.md and user_ops.md (and the rest that is published), compared whole.
COMPARED = PUBLISHED_MARTS


def published_marts(settings: Settings) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every published mart of the readers' snapshot: (column names, rows in a fixed order)."""
    con = open_snapshot(settings)
    try:
        out = {}
        for table in COMPARED:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()]
            out[table] = (cols, con.execute(f"SELECT * FROM marts.{table} ORDER BY ALL").fetchall())
        return out
    finally:
        con.close()


def differences(expected: dict, actual: dict, limit: int = 10) -> list[str]:
    """Where two engines' marts differ: columns, row counts, then cells (floats to 1e-12 relative:
    Spark sums doubles in whatever order its tasks meet)."""
    found = []
    for table, (cols, rows) in expected.items():
        other_cols, other_rows = actual[table]
        if cols != other_cols:
            found.append(f"{table}: columns {cols} vs {other_cols}")
            continue
        if len(rows) != len(other_rows):
            found.append(f"{table}: {len(rows)} rows vs {len(other_rows)}")
            continue
        for i, (row, other) in enumerate(zip(rows, other_rows)):
            for col, a, b in zip(cols, row, other):
                same = (math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
                        if isinstance(a, float) and isinstance(b, float) else a == b)
                if not same:
                    found.append(f"{table} row {i} {col}: {a!r} vs {b!r} ({row})")
            if len(found) >= limit:
                return found
    return found

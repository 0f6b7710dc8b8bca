"""Two-pass ingestion: a JSON-lines file DuckDB's JSON reader takes whole is read by DuckDB in bulk.

The per-line path (readers.line_chunks + rules.checked_sql) parses each line with its own
`json_transform` so a malformed line gets its reason and its line number, and holds 1M-line
Arrow chunks in Python while it does. For a JSON-lines file:
1. a scan in Python (readers.decompressed: the same decompression, limits, BOM and errors as the
   per-line path) counts the file's lines and checks that every line starts with `{`, and that
   the file holds none of the bytes on which DuckDB's reader and `json_valid` could disagree;
2. DuckDB's `read_json` reads the very same open file (`/proc/self/fd/N`: no path to swap),
   numbers the rows in file order (line = row number: no line is blank) and validates them into
   a temp table, whose valid rows go to raw.* with their user ids hashed (each distinct id once);
3. the lines the bulk rules rejected, if any, are picked from the file again
   (readers.picked_lines) and go through the per-line path: their reason, their masked text, or
   the whole file set aside. The per-line result of a line depends on that line only.
A line DuckDB's reader cannot take (malformed, bad UTF-8, not an object) is a row of NULLs to it
(ignore_errors: an error would abort the delivery's transaction), so it is rejected in bulk and
checked line by line like any other rejected row. A row count other than the line count means
"not bulk-safe": nothing is stored and the file takes the per-line path from its start. Line
numbers and values are those of the per-line path (tests/ingestion/test_two_pass.py). Measured:
the same CPU as the per-line path, a third of its peak memory at 10M (docs/performance.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from citycloud.ingestion.readers import SizeLimit, decompressed, is_gzipped, open_delivered
from citycloud.ingestion.rules import RULES, bulk_checked_sql, with_user_keys

# Bytes on which DuckDB's reader and json_valid may disagree (vertical tab and form feed are
# whitespace to one, not to the other); a file holding one takes the per-line path.
UNSAFE_BYTES = (b"\x0b", b"\x0c")
# service_access's epoch rule reads the key in the line's text: an escaped key (`"event\u005ftime"`)
# would be an integer to the JSON type and not to the text. Backslashes there send it per line.
TEXT_RULE_SOURCES = ("service_access",)
# The sources whose rules the bulk statement states without the line's text (rules.bulk_checked_sql).
# review_tickets' `called_back` must be a JSON boolean, which only the line's text tells apart
# from the string "true": its files (small: one a day per city) stay on the per-line path.
BULK_SOURCES = ("service_access", "ratings")
PROC_FD = Path("/proc/self/fd")


@dataclass(frozen=True)
class Scan:
    lines: int        # lines of the file (all non-blank: each starts with '{')
    safe: bool        # every line starts with '{' and no unsafe byte


def scan(blocks: Iterator[bytes], unsafe: tuple[bytes, ...]) -> Scan:
    """Count the lines of a file's text and check that each starts with `{`."""
    newlines = starts = 0
    first = last = None
    safe = True
    for data in blocks:
        if first is None:
            first = data[:1]
        elif last == b"\n" and data[:1] == b"{":
            starts += 1  # a line starting at the block boundary
        newlines += data.count(b"\n")
        starts += data.count(b"\n{")
        if safe and any(b in data for b in unsafe):
            safe = False
        last = data[-1:]
    if first is None:
        return Scan(0, False)  # empty: nothing to gain
    lines = newlines + (last != b"\n")
    return Scan(lines, safe and first == b"{" and starts + 1 == lines)


@dataclass
class BulkResult:
    lines: int             # lines of the file
    stored: int            # valid rows stored by the bulk statement
    pending: list[int]     # lines to check one by one (rejected by the bulk rules)


class NotBulkSafe(Exception):
    """The file takes the per-line path; nothing of it is stored."""


def ingest_bulk(con: duckdb.DuckDBPyConnection, source: str, path: Path, limit: SizeLimit | None,
                insert_sql: str, render: Callable[[str], str]) -> BulkResult:
    """Store the valid rows of a JSON-lines file read by DuckDB in bulk (`insert_sql` formats
    `{query}`, the checked rows with their user_key; `render` inlines the delivery's literals);
    NotBulkSafe when the file must be read line by line. Raises UnreadableFile as the per-line
    path would (limits, truncated gzip): the caller sets it aside."""
    if RULES[source].format != "jsonl" or not PROC_FD.is_dir():
        raise NotBulkSafe("not JSON lines")
    if source not in BULK_SOURCES:
        raise NotBulkSafe(f"{source}'s rules read the line's text")
    if not con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]:
        raise NotBulkSafe("row numbers follow the file's order only while DuckDB preserves insertion order")
    unsafe = UNSAFE_BYTES + ((b"\\",) if source in TEXT_RULE_SOURCES else ())
    with open_delivered(path) as fh:
        found = scan(decompressed(fh, path.name, limit), unsafe)
        if not found.safe:
            raise NotBulkSafe("a line DuckDB's reader and the per-line rules could read differently")
        fh.seek(0)
        file_sql = "'" + str(PROC_FD / str(fh.fileno())).replace("'", "''") + "'"
        # Inside the delivery's transaction: a DuckDB error here would abort it, hence
        # ignore_errors (a line the reader cannot take is a row of NULLs, rejected, checked per line).
        con.execute(render(f"CREATE OR REPLACE TEMP TABLE _bulk AS "
                           f"{bulk_checked_sql(source, file_sql, 'gzip' if is_gzipped(fh) else 'none')}"))
    try:
        total, pending = con.execute(
            "SELECT count(*), list(line ORDER BY line) FILTER (WHERE reason IS NOT NULL) FROM _bulk").fetchall()[0]
        if total != found.lines:
            raise NotBulkSafe(f"DuckDB read {total} rows from {found.lines} lines")
        stored = _count(con.execute(render(insert_sql.format(query=with_user_keys(source, "_bulk")))))
    finally:
        con.execute("DROP TABLE IF EXISTS _bulk")
    return BulkResult(found.lines, stored, pending or [])


def _count(cursor) -> int:
    rows = cursor.fetchall()
    return int(rows[0][0]) if rows else 0

"""Two-pass ingestion: a file DuckDB's JSON or CSV reader takes whole is read by DuckDB in bulk.

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

A CSV file (registrations, service_catalog) takes the same two passes, its scan stricter
(scan_csv): DuckDB's `read_csv` must split every line exactly as the per-line path's
string_split does, so a file with a quote, a blank line, a line with another field count than its
header, a NUL, a stray carriage return (or CRLF on some lines only), a line over
CSV_MAX_LINE_BYTES, text that is not UTF-8, or a header the per-line path refuses is read line by
line from its start. Line 1 is the header; rows are numbered from line 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import numpy as np

from citycloud.ingestion.readers import SizeLimit, decompressed, is_gzipped, open_delivered, whole_lines
from citycloud.ingestion.rules import (CSV_MAX_LINE_BYTES, RULES, bulk_checked_sql, header_problem, parse_header,
                                       with_user_keys)

# Bytes on which DuckDB's reader and json_valid may disagree (vertical tab and form feed are
# whitespace to one, not to the other); a file holding one takes the per-line path.
UNSAFE_BYTES = (b"\x0b", b"\x0c")
# service_access's epoch rule reads the key in the line's text: an escaped key (`"event\u005ftime"`)
# would be an integer to the JSON type and not to the text. Backslashes there send it per line.
TEXT_RULE_SOURCES = ("service_access",)
# The sources whose rules the bulk statement states without the line's text (rules.bulk_checked_sql).
# review_tickets' `called_back` must be a JSON boolean, which only the line's text tells apart
# from the string "true": its files (small: one a day per city) stay on the per-line path.
BULK_SOURCES = ("service_access", "ratings", "registrations", "service_catalog")
# Bytes of a CSV file on which DuckDB's reader and the per-line split could disagree: a quote
# (quoting, embedded newlines: the per-line path uses Python's csv module per line) and NUL.
CSV_UNSAFE_BYTES = (b'"', b"\x00")
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


@dataclass(frozen=True)
class CsvScan:
    lines: int                     # lines of the file, its header included
    header: list[str] | None       # as the per-line path parses it (rules.parse_header)
    safe: bool                     # DuckDB's read_csv splits every line as the per-line path does


def scan_csv(blocks: Iterator[bytes]) -> CsvScan:
    """Count a CSV file's lines and check that `read_csv` would give every line's fields as the
    per-line path does (module docstring). Numpy over buffers of whole lines, no loop per line."""
    lines = crs = crlfs = newlines = 0
    header, expected = None, None
    for buf in whole_lines(blocks):
        data = bytes(buf)
        if header is None:
            first = data[:data.find(b"\n") + 1 or len(data)]
            try:
                header = parse_header(first.decode("utf-8"))
            except (UnicodeDecodeError, StopIteration):
                return CsvScan(0, None, False)
            expected = len(header) - 1  # commas on every line
        if any(b in data for b in CSV_UNSAFE_BYTES) or not (data.isascii() or _is_utf8(data)):
            return CsvScan(0, header, False)
        arr = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(arr == 10) + 1
        bounds = np.concatenate(([0], ends, [len(arr)] if not len(ends) or ends[-1] != len(arr) else []))
        commas = np.diff(np.searchsorted(np.flatnonzero(arr == 44), bounds))
        if (commas != expected).any() or np.diff(bounds).max() > CSV_MAX_LINE_BYTES:
            return CsvScan(0, header, False)  # (a blank line has no comma: the header has ≥ 2 fields)
        lines += len(bounds) - 1
        newlines += len(ends)
        crs += data.count(b"\r")
        crlfs += data.count(b"\r\n")  # (a buffer ends with a whole line: no CRLF across two)
    if header is None:
        return CsvScan(0, None, False)  # empty
    return CsvScan(lines, header, crs == 0 or crs == crlfs == newlines)  # one kind of line end


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass
class BulkResult:
    lines: int             # lines of the file
    rows: int              # rows read (lines but a CSV file's header)
    stored: int            # valid rows stored by the bulk statement
    pending: list[int]     # lines to check one by one (rejected by the bulk rules; a CSV's header first)


class NotBulkSafe(Exception):
    """The file takes the per-line path; nothing of it is stored."""


def ingest_bulk(con: duckdb.DuckDBPyConnection, source: str, path: Path, limit: SizeLimit | None,
                insert_sql: str, render: Callable[[str], str]) -> BulkResult:
    """Store the valid rows of a file read by DuckDB in bulk (`insert_sql` formats `{query}`, the
    checked rows with their user_key; `render` inlines the delivery's literals); NotBulkSafe when
    the file must be read line by line. Raises UnreadableFile as the per-line path would (limits,
    truncated gzip): the caller sets it aside."""
    csv = RULES[source].format == "csv"
    if source not in BULK_SOURCES:
        raise NotBulkSafe(f"{source}'s rules read the line's text")
    if not PROC_FD.is_dir():
        raise NotBulkSafe("no /proc/self/fd to hand DuckDB the open file")
    if not con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]:
        raise NotBulkSafe("row numbers follow the file's order only while DuckDB preserves insertion order")
    with open_delivered(path) as fh:
        blocks = decompressed(fh, path.name, limit)
        if csv:
            found = scan_csv(blocks)
            safe, header = found.safe and header_problem(source, found.header) is None, found.header
        else:
            found = scan(blocks, UNSAFE_BYTES + ((b"\\",) if source in TEXT_RULE_SOURCES else ()))
            safe, header = found.safe, None
        if not safe:
            raise NotBulkSafe("a line DuckDB's reader and the per-line rules could read differently")
        fh.seek(0)
        file_sql = "'" + str(PROC_FD / str(fh.fileno())).replace("'", "''") + "'"
        # Inside the delivery's transaction: a DuckDB error here would abort it, hence
        # ignore_errors (a line the reader cannot take is a row of NULLs, or missing: see below).
        con.execute(render(f"CREATE OR REPLACE TEMP TABLE _bulk AS "
                           f"{bulk_checked_sql(source, file_sql, 'gzip' if is_gzipped(fh) else 'none', header)}"))
    rows = found.lines - csv
    try:
        total, pending = con.execute(
            "SELECT count(*), list(line ORDER BY line) FILTER (WHERE reason IS NOT NULL) FROM _bulk").fetchall()[0]
        if total != rows:
            raise NotBulkSafe(f"DuckDB read {total} rows from {rows} lines")
        stored = _count(con.execute(render(insert_sql.format(query=with_user_keys(source, "_bulk")))))
    finally:
        con.execute("DROP TABLE IF EXISTS _bulk")
    pending = pending or []
    return BulkResult(found.lines, rows, stored, [1, *pending] if csv and pending else pending)


def _count(cursor) -> int:
    rows = cursor.fetchall()
    return int(rows[0][0]) if rows else 0

"""The landing contract as SQL: parse each line, type it, give the first reason it breaks the
contract (NULL when it doesn't), and shape the valid rows for `raw.*`.

One statement per file, vectorised in DuckDB. The order of the checks fixes which reason a row
gets when it breaks several rules: shape (CSV field count / JSON syntax), required fields,
allowed values, timestamp parse, timestamp range, other field types.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from citycloud.config import BUSINESS_UTC_OFFSET_HOURS


TS_PARSE_MACROS = r"""
CREATE OR REPLACE TEMP MACRO cc_parse_ts(s, is_int) AS CASE
    -- held to 9999-12-31 (rejected as after its delivery day): past year 294247 epoch_ms raises,
    -- and one such line would fail the whole run, every run
    WHEN is_int THEN epoch_ms(least(TRY_CAST(s AS BIGINT), 253402300799999))
    -- no offset: local time, Asia/Shanghai (UTC+8, no daylight saving)
    WHEN regexp_full_match(s, '\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?')
        THEN TRY_CAST(replace(s, 'T', ' ') AS TIMESTAMP) - INTERVAL {UTC_OFFSET_HOURS} HOUR
    WHEN regexp_full_match(s, '\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)')
        THEN TRY_CAST(s AS TIMESTAMPTZ) AT TIME ZONE 'UTC'
END;
CREATE OR REPLACE TEMP MACRO cc_field_ts_problem(name, raw, ts, dt) AS CASE
    WHEN ts IS NULL THEN 'unparseable ' || name || ' ''' || raw || ''''
    WHEN ts < TIMESTAMP '2014-12-31 16:00:00' THEN name || ' ' || raw || ' is before 2015-01-01'
    WHEN ts >= CAST(dt AS TIMESTAMP) + INTERVAL 16 HOUR
        THEN name || ' ' || raw || ' is after the end of delivery day ' || CAST(dt AS VARCHAR)
END;
CREATE OR REPLACE TEMP MACRO cc_ts_problem(raw, ts, dt) AS cc_field_ts_problem('event_time', raw, ts, dt);
-- An optional timestamp (review_tickets): no problem when absent.
CREATE OR REPLACE TEMP MACRO cc_opt_ts_problem(name, raw, ts, dt) AS
    CASE WHEN raw IS NOT NULL THEN cc_field_ts_problem(name, raw, ts, dt) END;
CREATE OR REPLACE TEMP MACRO cc_local_day(ts) AS CAST(ts + INTERVAL {UTC_OFFSET_HOURS} HOUR AS DATE);
CREATE OR REPLACE TEMP MACRO cc_local_ts(ts) AS ts + INTERVAL {UTC_OFFSET_HOURS} HOUR;
CREATE OR REPLACE TEMP MACRO cc_phone_valid(s) AS
    CASE WHEN s IS NULL THEN NULL ELSE regexp_full_match(s, '1[3-9]\d{9}') END;
-- GB 11643-1999: weighted sum of the first 17 digits mod 11 picks the check character.
CREATE OR REPLACE TEMP MACRO cc_id_valid(s) AS CASE
    WHEN s IS NULL THEN NULL
    WHEN NOT regexp_full_match(s, '\d{17}[\dX]') THEN false
    ELSE substr('10X98765432', CAST(list_sum(list_transform(range(17), lambda i:
            CAST(substr(s, i + 1, 1) AS INTEGER) * [7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2][i + 1])) % 11 AS BIGINT) + 1, 1)
         = substr(s, 18, 1)
END;
""".replace("{UTC_OFFSET_HOURS}", str(BUSINESS_UTC_OFFSET_HOURS))  # the business time zone (config)


# The line's text says event_time is a JSON integer (the fast path asks the JSON type instead).
TEXT_IS_INTEGER = "regexp_matches(text, '\"event_time\"\\s*:\\s*\\d')"


@dataclass(frozen=True)
class SourceRule:
    format: str                      # 'csv' | 'jsonl'
    fields: tuple[str, ...]          # delivered fields we keep (others are additive drift)
    required: tuple[str, ...]
    checks: str                      # SQL CASE branches after the required-field checks
    select: str                      # SQL select list of the valid rows (after the common columns)
    typed: str = ""                  # extra typed columns computed before the checks


RULES: dict[str, SourceRule] = {
    "registrations": SourceRule(
        format="csv",
        fields=("event_id", "event_type", "user_id", "event_time", "channel", "phone", "id_number",
                "auth_level", "district_code"),
        required=("event_id", "event_type", "user_id", "event_time"),
        typed="cc_parse_ts(f_event_time, false) AS ts",
        checks="""
            WHEN f_event_type NOT IN ('register', 'verify', 'cancel')
                THEN 'unknown event_type ''' || f_event_type || ''''
            WHEN cc_ts_problem(f_event_time, ts, $dt) IS NOT NULL THEN cc_ts_problem(f_event_time, ts, $dt)
            WHEN coalesce(f_auth_level, '0') NOT IN ('0', '1', '2', '3')
                THEN 'auth_level ''' || f_auth_level || ''' is outside 0–3'
        """,
        select="""
            f_event_id AS event_id, f_event_type AS event_type,
            f_user_id AS _uid,
            ts AS event_ts_utc, cc_local_day(ts) AS event_day, f_channel AS channel,
            pii_hash(f_phone) AS phone_hash, cc_phone_valid(f_phone) AS phone_valid,
            pii_hash(f_id_number) AS id_number_hash, cc_id_valid(f_id_number) AS id_number_valid,
            TRY_CAST(coalesce(f_auth_level, '0') AS INTEGER) AS auth_level, f_district_code AS district_code
        """,
    ),
    "service_access": SourceRule(
        format="jsonl",
        fields=("event_id", "user_id", "service_id", "event_time", "channel", "outcome", "duration_ms",
                "client_ip"),
        required=("event_id", "service_id", "event_time", "outcome"),
        # epoch milliseconds: a JSON integer, not a string of digits (json_transform gives both
        # as text, so look at the line itself, only for all-digit values)
        typed="cc_parse_ts(f_event_time, regexp_full_match(f_event_time, '\\d{1,16}') "
              f"AND {TEXT_IS_INTEGER}) AS ts",
        checks="""
            WHEN f_outcome NOT IN ('success', 'failure', 'timeout')
                THEN 'unknown outcome ''' || f_outcome || ''''
            WHEN cc_ts_problem(f_event_time, ts, $dt) IS NOT NULL THEN cc_ts_problem(f_event_time, ts, $dt)
            WHEN f_duration_ms IS NOT NULL AND NOT regexp_full_match(f_duration_ms, '\\d{1,18}')
                THEN 'duration_ms ''' || f_duration_ms || ''' is not an integer ≥ 0'
        """,
        select="""
            f_event_id AS event_id, f_user_id AS _uid,
            f_service_id AS service_id, ts AS event_ts_utc, cc_local_day(ts) AS event_day,
            f_channel AS channel, f_outcome AS outcome, TRY_CAST(f_duration_ms AS BIGINT) AS duration_ms
        """,
    ),
    "ratings": SourceRule(
        format="jsonl",
        fields=("event_id", "access_event_id", "user_id", "service_id", "score", "event_time", "comment"),
        required=("event_id", "service_id", "score", "event_time"),
        typed="cc_parse_ts(f_event_time, false) AS ts",
        checks="""
            WHEN NOT regexp_full_match(f_score, '[1-5]')
                THEN 'score ''' || f_score || ''' is not an integer 1–5'
            WHEN cc_ts_problem(f_event_time, ts, $dt) IS NOT NULL THEN cc_ts_problem(f_event_time, ts, $dt)
        """,
        select="""
            f_event_id AS event_id, f_access_event_id AS access_event_id,
            f_user_id AS _uid, f_service_id AS service_id,
            TRY_CAST(f_score AS INTEGER) AS score, ts AS event_ts_utc, cc_local_day(ts) AS event_day,
            f_comment IS NOT NULL AS has_comment, pii_hash(f_comment) AS comment_hash
        """,
    ),
    # 好差评 rectification tickets (reviews.md): each state change delivered again as a version.
    # Timestamps without epoch numbers; called_back a JSON boolean (json_transform gives the text
    # of a string "true" too, so look at the line itself, as service_access's epoch does).
    "review_tickets": SourceRule(
        format="jsonl",
        fields=("ticket_id", "rating_event_id", "department", "category", "opened_at", "status",
                "rectified_at", "replied_at", "called_back", "updated_at", "handler_note"),
        required=("ticket_id", "rating_event_id", "department", "opened_at", "status", "updated_at",
                  "called_back"),
        typed="cc_parse_ts(f_opened_at, false) AS opened, cc_parse_ts(f_rectified_at, false) AS rectified, "
              "cc_parse_ts(f_replied_at, false) AS replied, cc_parse_ts(f_updated_at, false) AS updated",
        checks="""
            WHEN f_status NOT IN ('open', 'rectified', 'unresolvable', 'appeal_upheld')
                THEN 'unknown status ''' || f_status || ''''
            WHEN NOT (f_called_back IN ('true', 'false')
                      AND regexp_matches(text, '"called_back"\\s*:\\s*(true|false)'))
                THEN 'called_back ''' || f_called_back || ''' is not a JSON boolean'
            WHEN f_status = 'rectified' AND f_rectified_at IS NULL
                THEN 'missing required field rectified_at (status rectified)'
            WHEN cc_field_ts_problem('opened_at', f_opened_at, opened, $dt) IS NOT NULL
                THEN cc_field_ts_problem('opened_at', f_opened_at, opened, $dt)
            WHEN cc_field_ts_problem('updated_at', f_updated_at, updated, $dt) IS NOT NULL
                THEN cc_field_ts_problem('updated_at', f_updated_at, updated, $dt)
            WHEN cc_opt_ts_problem('rectified_at', f_rectified_at, rectified, $dt) IS NOT NULL
                THEN cc_opt_ts_problem('rectified_at', f_rectified_at, rectified, $dt)
            WHEN cc_opt_ts_problem('replied_at', f_replied_at, replied, $dt) IS NOT NULL
                THEN cc_opt_ts_problem('replied_at', f_replied_at, replied, $dt)
        """,
        select="""
            f_ticket_id AS ticket_id, f_rating_event_id AS rating_event_id, f_department AS department,
            f_category AS category, opened AS opened_ts_utc, cc_local_day(opened) AS event_day,
            f_status AS status, rectified AS rectified_ts_utc, cc_local_ts(rectified) AS rectified_at_local,
            replied AS replied_ts_utc,
            f_called_back = 'true' AS called_back, updated AS updated_ts_utc,
            f_handler_note IS NOT NULL AS has_handler_note, pii_hash(f_handler_note) AS handler_note_hash
        """,
    ),
    "service_catalog": SourceRule(
        format="csv",
        fields=("service_id", "service_name", "department", "category", "online_date", "offline_date"),
        required=("service_id", "online_date"),
        typed="TRY_STRPTIME(f_online_date, '%Y-%m-%d')::DATE AS online, "
              "TRY_STRPTIME(f_offline_date, '%Y-%m-%d')::DATE AS offline",
        checks="""
            WHEN online IS NULL THEN 'unparseable online_date ''' || f_online_date || ''''
            WHEN f_offline_date IS NOT NULL AND offline IS NULL
                THEN 'unparseable offline_date ''' || f_offline_date || ''''
        """,
        select="""
            f_service_id AS service_id, f_service_name AS service_name, f_department AS department,
            f_category AS category, online AS online_date, offline AS offline_date
        """,
    ),
}

# Chunks at least this long hash distinct user ids once and join (cheaper than a hash per
# row); smaller ones hash inline (the materialised CTE costs more than it saves).
DISTINCT_HASH_FROM_ROWS = 50_000

# Lines keep their terminator (zero-copy reading); CSV splitting and raw text trim it.
TRIM_EOL = "rtrim({col}, chr(13) || chr(10))"


def parse_header(text: str) -> list[str]:
    return [name.strip().lower() for name in next(csv.reader([text]))]


def _csv_fields_sql(rule: SourceRule, header: list[str], con: duckdb.DuckDBPyConnection,
                    lines: pa.Table) -> tuple[str, str]:
    """Split CSV lines: plain lines by commas in SQL; lines with quotes by Python's csv module."""
    quoted = [
        (line, next(csv.reader([text])))
        for line, text in zip(lines.column("line").to_pylist(), lines.column("text").to_pylist())
        if '"' in text and line > 1
    ] if pa.compute.any(pa.compute.match_substring(lines.column("text"), '"')).as_py() else []
    con.register("_quoted", pa.table({
        "line": pa.array([q[0] for q in quoted], pa.int64()),
        "qfields": pa.array([q[1] for q in quoted], pa.list_(pa.string())),
    }))
    n = len(header)
    cols = []
    for field in rule.fields:
        if field in header:
            cols.append(f"nullif(trim(parts[{header.index(field) + 1}]), '') AS f_{field}")
        else:
            cols.append(f"NULL::VARCHAR AS f_{field}")
    return TRIM_EOL.format(col="text"), f"""
        SELECT line, text, parts,
               CASE WHEN len(parts) <> {n}
                    THEN 'malformed CSV row: expected {n} fields, found ' || len(parts) END AS parse_error,
               {", ".join(cols)}
        FROM (SELECT l.line, l.text, coalesce(q.qfields, string_split({TRIM_EOL.format(col='l.text')}, ',')) AS parts
              FROM _lines l LEFT JOIN _quoted q USING (line) WHERE l.line > $header_line)
    """


def _json_fields_sql(rule: SourceRule, source: str) -> tuple[str, str]:
    """JSON lines: one parse per line (json_transform to a struct of VARCHARs)."""
    shape = "{" + ", ".join(f'"{f}": "VARCHAR"' for f in rule.fields) + "}"
    cols = ", ".join(f"j.{f} AS f_{f}" for f in rule.fields)
    return TRIM_EOL.format(col="text"), f"""
        SELECT line, text, parse_error, {cols}
        FROM (SELECT line, text,
                     CASE WHEN NOT json_valid(text) THEN 'malformed JSON line'
                          WHEN NOT starts_with(ltrim(text), '{{') THEN 'line is not a JSON object' END AS parse_error,
                     CASE WHEN parse_error IS NULL THEN json_transform(text, '{shape}') END AS j
              FROM _lines)
    """


def checked_sql(source: str, con: duckdb.DuckDBPyConnection, lines: pa.Table,
                header: list[str] | None = None) -> tuple[str, list[str] | None]:
    """One file's lines (registered as `_lines`) → rows of (line, reason, raw, <raw.* columns>).

    `reason` is NULL for a valid row; `raw` is filled only for rejected rows, as delivered: the
    caller masks it (citycloud.ingestion.masking) before anything is stored. Also
    returns the CSV header (None for JSON lines) so the caller can reject a headerless file.
    """
    rule = RULES[source]
    header = None
    if rule.format == "jsonl":
        raw_expr, fields = _json_fields_sql(rule, source)
    else:
        if header is None:
            header = parse_header(lines.column("text")[0].as_py()) if lines.num_rows else []
        raw_expr, fields = _csv_fields_sql(rule, header, con, lines)
    return _hashed(rule, _checked(rule, fields, raw_expr, rule.typed), lines.num_rows), header


def _checked(rule: SourceRule, fields: str, raw_expr: str, typed: str) -> str:
    required = "\n".join(f"WHEN f_{f} IS NULL THEN 'missing required field {f}'" for f in rule.required)
    typed = f", {typed}" if typed else ""
    return f"""
        SELECT line, reason, CASE WHEN reason IS NOT NULL THEN {raw_expr} END AS raw, {rule.select}
        FROM (SELECT *, coalesce(parse_error, CASE {required} {rule.checks} END) AS reason
              FROM (SELECT *{typed} FROM ({fields})))
    """


def _hashed(rule: SourceRule, checked: str, rows: int) -> str:
    """`checked` with its user id replaced by the keyed hash `user_key`."""
    if "_uid" not in rule.select:
        return checked
    if rows < DISTINCT_HASH_FROM_ROWS:
        return f"""
        SELECT checked.* EXCLUDE (_uid), pii_hash($city || ':' || _uid) AS user_key FROM ({checked}) checked
    """
    # Users are far fewer than events: hash each distinct user id once, then join.
    return f"""
        WITH checked AS MATERIALIZED ({checked}),
        user_keys AS (
            SELECT _uid, pii_hash($city || ':' || _uid) AS user_key
            FROM (SELECT DISTINCT _uid FROM checked WHERE _uid IS NOT NULL))
        SELECT checked.* EXCLUDE (_uid), user_keys.user_key
        FROM checked LEFT JOIN user_keys USING (_uid)
    """


def bulk_checked_sql(source: str, file_sql: str, compression: str, header: list[str] | None = None) -> str:
    """The rows `checked_sql` gives for a file DuckDB's reader parses whole (the fast path,
    ingestion/fast.py), the user id not yet hashed (`with_user_keys`): read in bulk by `read_json`
    or `read_csv`, numbered in file order, `raw` NULL. `header`: a CSV file's (parse_header).

    Exact only for a file fast.py has checked: then a row valid here is valid with the same values
    per line; a row rejected here is checked again line by line."""
    rule = RULES[source]
    if rule.format == "csv":
        return _checked(rule, _bulk_csv_fields(rule, file_sql, compression, header), "NULL::VARCHAR", rule.typed)
    return _checked(rule, _bulk_json_fields(rule, file_sql, compression), "NULL::VARCHAR",
                    rule.typed.replace(TEXT_IS_INTEGER, "event_time_is_integer"))


def _bulk_json_fields(rule: SourceRule, file_sql: str, compression: str) -> str:
    """Every line one JSON object (fast.py checks it). `read_json` and `json_transform` share
    DuckDB's transform, so the fields are the same VARCHARs. The one rule that looks at the line's
    text (epoch milliseconds only when `event_time` is a JSON integer) asks the value's JSON type."""
    columns = ", ".join(f"'{f}': '{'JSON' if f == 'event_time' else 'VARCHAR'}'" for f in rule.fields)
    cols = ", ".join("json_transform(f_event_time, '\"VARCHAR\"') AS f_event_time, "
                     "json_type(f_event_time) IN ('UBIGINT', 'BIGINT') AS event_time_is_integer"
                     if f == "event_time" else f"f_{f}" for f in rule.fields)
    renamed = ", ".join(f'"{f}" AS f_{f}' for f in rule.fields)
    return f"""
        SELECT line, NULL::VARCHAR AS parse_error, {cols}
        FROM (SELECT row_number() OVER () AS line, {renamed}
              FROM read_json({file_sql}, format = 'newline_delimited', records = true, columns = {{{columns}}},
                             compression = '{compression}', ignore_errors = true))
    """


# DuckDB's CSV reader refuses longer lines; fast.py sends a file with one to the per-line path.
CSV_MAX_LINE_BYTES = 1 << 20


def _bulk_csv_fields(rule: SourceRule, file_sql: str, compression: str, header: list[str]) -> str:
    """A file of plain lines (fast.py checks it: no quote, no blank line, every line as many
    fields as its header, one kind of line end): DuckDB's `read_csv` splits each line at its
    commas as the per-line path's string_split does; the header (line 1) is skipped, fields are
    taken by their position in it and trimmed as `_csv_fields_sql` trims them. ignore_errors: a
    row DuckDB cannot take is missing, and the row count then sends the file to the per-line
    path (an error would abort the delivery's transaction)."""
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, len(header) + 1))
    cols = ", ".join(f"nullif(trim(c{header.index(f) + 1}), '') AS f_{f}" if f in header
                     else f"NULL::VARCHAR AS f_{f}" for f in rule.fields)
    return f"""
        SELECT row_number() OVER () + 1 AS line, NULL::VARCHAR AS parse_error, {cols}
        FROM read_csv({file_sql}, columns = {{{columns}}}, header = false, skip = 1, auto_detect = false,
                      delim = ',', quote = '"', escape = '"', comment = '', null_padding = false,
                      strict_mode = true, max_line_size = {2 * CSV_MAX_LINE_BYTES}, compression = '{compression}',
                      ignore_errors = true)
    """


def with_user_keys(source: str, table: str) -> str:
    """The valid rows of `table` (rows of `bulk_checked_sql`) with the user id replaced by its
    keyed hash, each distinct id hashed once."""
    if "_uid" not in RULES[source].select:
        return f"SELECT * FROM {table} WHERE reason IS NULL"
    return f"""
        SELECT t.* EXCLUDE (_uid), k.user_key
        FROM {table} t LEFT JOIN (
            SELECT _uid, pii_hash($city || ':' || _uid) AS user_key
            FROM (SELECT DISTINCT _uid FROM {table} WHERE _uid IS NOT NULL AND reason IS NULL)) k USING (_uid)
        WHERE t.reason IS NULL
    """


def header_problem(source: str, header: list[str] | None) -> str | None:
    if header is None:
        return None
    if not header:
        return "empty file: no header row"
    missing = [f for f in RULES[source].required if f not in header]
    if missing:
        return f"missing header row (no column {', '.join(missing)} in the first line)"
    if len(set(header)) != len(header):
        return "header names a column twice"
    return None

"""DDL of the tables ingestion writes (raw.* and audit.*); see docs/architecture.md."""

COMMON = "city_code VARCHAR NOT NULL, dt DATE NOT NULL, file VARCHAR NOT NULL, line BIGINT NOT NULL, batch_id BIGINT NOT NULL"

RAW_TABLES = {
    "registrations": """event_id VARCHAR, event_type VARCHAR, user_key VARCHAR, event_ts_utc TIMESTAMP,
        event_day DATE, channel VARCHAR, phone_hash VARCHAR, phone_valid BOOLEAN, id_number_hash VARCHAR,
        id_number_valid BOOLEAN, auth_level INTEGER, district_code VARCHAR""",
    "service_access": """event_id VARCHAR, user_key VARCHAR, service_id VARCHAR, event_ts_utc TIMESTAMP,
        event_day DATE, channel VARCHAR, outcome VARCHAR, duration_ms BIGINT""",
    "ratings": """event_id VARCHAR, access_event_id VARCHAR, user_key VARCHAR, service_id VARCHAR,
        score INTEGER, event_ts_utc TIMESTAMP, event_day DATE, has_comment BOOLEAN, comment_hash VARCHAR""",
    # event_day: the local day of opened_at (the day a ticket's versions share; staging's partition).
    "review_tickets": """ticket_id VARCHAR, rating_event_id VARCHAR, department VARCHAR, category VARCHAR,
        opened_ts_utc TIMESTAMP, event_day DATE, status VARCHAR, rectified_ts_utc TIMESTAMP,
        rectified_at_local TIMESTAMP, replied_ts_utc TIMESTAMP, called_back BOOLEAN, updated_ts_utc TIMESTAMP, has_handler_note BOOLEAN,
        handler_note_hash VARCHAR""",
    "service_catalog": """service_id VARCHAR, service_name VARCHAR, department VARCHAR, category VARCHAR,
        online_date DATE, offline_date DATE""",
}

DELIVERY_COLUMNS = """city_code VARCHAR NOT NULL, source VARCHAR NOT NULL, dt DATE NOT NULL,
    files INTEGER, rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT, ingested_at TIMESTAMP,
    files_rejected INTEGER, duplicates_in_delivery BIGINT, content_hash VARCHAR, signature VARCHAR,
    batch_id BIGINT"""

AUDIT_TABLES = {
    "deliveries": DELIVERY_COLUMNS + ", PRIMARY KEY (city_code, source, dt)",
    "delivery_history": DELIVERY_COLUMNS,
    "rejected_rows": """city_code VARCHAR, source VARCHAR, dt DATE, file VARCHAR, line BIGINT,
        reason VARCHAR, raw VARCHAR, batch_id BIGINT""",
    "rejected_files": "city_code VARCHAR, source VARCHAR, dt DATE, file VARCHAR, reason VARCHAR, batch_id BIGINT",
    "ingest_batches": """batch_id BIGINT PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP,
        deliveries INTEGER, rows_loaded BIGINT, rows_rejected BIGINT, files_rejected INTEGER""",
    "delivery_changes": """batch_id BIGINT, city_code VARCHAR, source VARCHAR, dt DATE, event_day DATE,
        rows BIGINT, change VARCHAR""",
    # What in the landing area is not a delivery (bad names, refused links, empty deliveries).
    "landing_issues": "path VARCHAR, kind VARCHAR, reason VARCHAR, first_seen TIMESTAMP",
    # Fingerprint of the PII key the warehouse's pseudonyms were made with (never the key).
    "pii_key": "fingerprint VARCHAR NOT NULL, since TIMESTAMP",
    "builds": """build_id BIGINT, batch_id BIGINT, started_at TIMESTAMP, finished_at TIMESTAMP,
        status VARCHAR, message VARCHAR""",
}


def ensure_schema(con) -> None:
    for schema in ("raw", "audit"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for name, cols in RAW_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{name} ({COMMON}, {cols})")
    for name, cols in AUDIT_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS audit.{name} ({cols})")

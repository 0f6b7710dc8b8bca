"""Personal data: keyed hashes (HMAC-SHA256) computed inside DuckDB, and masking of raw text.

HMAC(K, m) = SHA256((K ^ opad) || SHA256((K ^ ipad) || m)) (RFC 2104). DuckDB has sha256
over BLOBs, so the HMAC runs vectorised in SQL; `hmac_hex` is the Python twin used by
tests and by anyone who must look a user up by id.
"""
from __future__ import annotations

import hashlib
import hmac

import duckdb

BLOCK = 64

# Keys in JSON lines and CSV columns whose values are personal data (never stored as delivered).
PII_FIELDS = ("phone", "id_number", "client_ip", "comment", "handler_note")
# Keys whose values link to a person and are stored as keyed hashes (user_key).
USER_FIELDS = ("user_id",)


def hmac_hex(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _blob_literal(data: bytes) -> str:
    return "'" + "".join(f"\\x{b:02X}" for b in data) + "'::BLOB"


def register_hmac(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Create the temp macro pii_hash(text) → hex HMAC-SHA256, NULL for NULL/empty input."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    con.execute(
        f"""CREATE OR REPLACE TEMP MACRO pii_hash(v) AS
            CASE WHEN v IS NULL OR v = '' THEN NULL
                 ELSE sha256({_blob_literal(opad)} || unhex(sha256({_blob_literal(ipad)} || encode(v)))) END"""
    )


def key_fingerprint(key: bytes) -> str:
    """An HMAC of a fixed label under the key: tells keys apart without revealing the key."""
    return hmac.new(key, b"citycloud pii key fingerprint v1", hashlib.sha256).hexdigest()

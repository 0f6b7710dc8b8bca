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
PII_FIELDS = ("phone", "id_number", "client_ip", "comment")


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


# Masking for rejected rows' raw text: JSON values of personal keys (complete or cut off),
# then IPv4 addresses, 11-digit mobile numbers and 18-character identity numbers anywhere.
_KEYS = "|".join(PII_FIELDS)
MASK_SQL = (
    "regexp_replace(regexp_replace(regexp_replace(regexp_replace({col}, "
    f"""'"({_KEYS})"\\s*:\\s*"(?:[^"\\\\]|\\\\.)*("|$)', '"\\1": "***\\2', 'g'), """
    """'\\b\\d{1,3}(?:\\.\\d{1,3}){3}\\b', '***', 'g'), """
    """'\\b1\\d{10}\\b', '***', 'g'), """
    """'\\b\\d{17}[\\dXx]\\b', '***', 'g')"""
)


def mask_sql(col: str) -> str:
    return MASK_SQL.replace("{col}", col)

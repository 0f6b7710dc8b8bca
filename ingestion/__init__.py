"""Ingestion: complete deliveries in the landing area → validated, pseudonymised rows in `raw.*`.

Modules:
- `discover`: finds complete delivery folders and tells new or re-exported ones apart
- `readers`: turns one file (plain or gzip) into numbered lines, or says why it can't be read
- `rules`: per-source SQL that parses, validates and pseudonymises lines
- `pii`: keyed hashing (HMAC-SHA256) and masking of personal data
- `load`: loads a delivery into the warehouse in one transaction (replacing an earlier copy)
"""



from citycloud.ingestion.load import IngestReport, ingest_landing

__all__ = ["IngestReport", "ingest_landing"]

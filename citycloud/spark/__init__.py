"""The Spark engine (`citycloud run --engine spark`, docs/spark.md).

DuckDB stays the ingestion and audit store and the readers' file; for a Spark build the
validated, pseudonymised raw rows are exported to a parquet lake partitioned by source, city
and day (event day, or delivery for registrations: lake.py), dbt builds the same models on Spark from it, and the candidate marts
come back into the DuckDB warehouse (engine.py), where the checks and publishing run unchanged.
"""

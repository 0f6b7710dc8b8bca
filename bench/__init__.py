"""Benchmarks of the citycloud pipeline on this machine: `make bench` / `make bench-quick`.

`python -m bench.run --quick|--full` generates synthetic landing data with `citycloud generate`,
measures ingestion against a read-only DuckDB floor, the incremental daily cost, peak memory of
each step and (full) a 90-day backfill, and writes `bench/results/latest.json` and `latest.md`.
"""

"""The run and the doors that start it, installed as ``citycloud.pipeline`` (docs/architecture.md).

- ``steps``: ingest → dbt build → quality checks → publish, one function per step;
- ``cli`` (the ``citycloud`` command), ``orchestration`` (Airflow's task bodies), ``rotation``
  (the PII-key rotation) and ``demo`` (``make demo``) call them.

This folder is the top layer: it imports citycloud/, ingestion/, expectations/ and dashboards/,
and none of them imports it. ``citycloud.pipeline.run`` (and every other name of ``steps``) is
loaded on first use (PEP 562), so parsing a DAG file or ``citycloud --help`` does not import
dbt, the ingestion and the engines.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(import_module("citycloud.pipeline.steps"), name)

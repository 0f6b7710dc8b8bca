"""Great Expectations, called from our own code: an ephemeral, offline context that validates
pandas frames and renders Data Docs as a static site.

GX's SQL datasource cannot run on DuckDB here (every metric fails), so frames are computed in
DuckDB (see frames.py) and handed to GX as pandas dataframe batches. Nothing here touches the
network: the context keeps its stores in memory and writes only the Data Docs files.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from citycloud.expectations.suites import ExpectationSpec, Suite

# GX logs a lot at INFO (and, under Airflow, through structlog): keep our output readable.
for _name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
    logging.getLogger(_name).setLevel(logging.WARNING)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@contextlib.contextmanager
def quiet():
    """Silence GX's prints, progress bars and library warnings for the duration of a call."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _import_gx():
    """GX's modules (~4.5 CPU s the first time in a process: pydantic builds GX's classes).

    GX probes for pyspark when imported (great_expectations.compatibility.pyspark) and, the
    Spark engine having installed it, imports pyspark, pyspark.ml and scipy: ~0.5 CPU s and two
    warnings for a library that only validates pandas frames here. Unless pyspark is already
    loaded, GX is shown it as absent (its fallback when pyspark is not installed); pyspark stays
    importable afterwards."""
    hidden = "pyspark" not in sys.modules
    if hidden:
        sys.modules["pyspark"] = None  # makes `import pyspark` raise ImportError
    try:
        with quiet():
            import great_expectations as gx
            import great_expectations.expectations.registry as registry
            from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults
    finally:
        if hidden and sys.modules.get("pyspark", False) is None:
            del sys.modules["pyspark"]
    return gx, registry, DataContextConfig, InMemoryStoreBackendDefaults


class GxValidator:
    """One GX context per quality run; one validation per suite; Data Docs built once at the end."""

    def __init__(self, docs_dir: Path, run_id: str) -> None:
        gx, self._registry, DataContextConfig, InMemory = _import_gx()
        self._gx = gx
        self.docs_dir = Path(docs_dir)
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        config = DataContextConfig(
            store_backend_defaults=InMemory(init_temp_docs_sites=False),
            data_docs_sites={
                "citycloud": {
                    "class_name": "SiteBuilder",
                    "show_how_to_buttons": False,
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                      "base_directory": str(self.docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                }
            },
            analytics_enabled=False,
            progress_bars={"globally": False},
        )
        with quiet():
            self.context = gx.get_context(project_config=config, mode="ephemeral")
            self.datasource = self.context.data_sources.add_pandas("citycloud")
        self.run_identifier = gx.RunIdentifier(run_name=run_id, run_time=datetime.now(timezone.utc))

    def _expectation(self, suite: Suite, spec: ExpectationSpec):
        impl = self._registry.get_expectation_impl(spec.expect)
        severity = "critical" if spec.severity == "blocking" else "warning"
        return impl(
            **spec.kwargs,
            meta={"name": spec.name, "severity": spec.severity, "reason": spec.reason,
                  "suite_version": suite.version},
            notes=f"**{spec.name}** · **{spec.severity.upper()}** · {spec.reason}",
            severity=severity,
        )

    def validate(self, suite: Suite, frame: pd.DataFrame) -> dict[str, Any]:
        """Validate `frame` against `suite`; returns {expectation name: GX result or Exception}."""
        out: dict[str, Any] = {}
        gx_suite = self._gx.ExpectationSuite(
            name=suite.name,
            meta={"version": suite.version, "description": suite.description, "grain": suite.grain,
                  "file": f"expectations/suites/{suite.path.name}"},
        )
        for spec in suite.expectations:
            try:
                gx_suite.add_expectation(self._expectation(suite, spec))
            except Exception as exc:  # a suite-file mistake: reported as this expectation's failure
                out[spec.name] = exc
        index_cols = ["row_id"] + [c for c in suite.key if c in frame.columns]
        with quiet():
            gx_suite = self.context.suites.add(gx_suite)
            batch_definition = self.datasource.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe(
                "frame")
            definition = self.context.validation_definitions.add(
                self._gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=gx_suite))
            result = definition.run(
                batch_parameters={"dataframe": frame},
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index_cols,
                               "partial_unexpected_count": 20},
                run_id=self.run_identifier,
            )
        for r in result.results:
            name = (r.expectation_config.meta or {}).get("name")
            if name:
                out[name] = r
        return out

    def build_docs(self) -> Path:
        with quiet():
            self.context.build_data_docs()
        return self.docs_dir / "index.html"

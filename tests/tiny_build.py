"""Build the worked example from a `Settings` object alone: run by tests/conftest.py's `tiny_run`
in a process of its own with an (almost) empty environment, so no CITYCLOUD_* variable helps.

Usage: python -m tests.tiny_build <root with landing/> <pii key>; writes <root>/report.pickle:
(the environment's variable names, the pipeline's RunReport, the Settings used)."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path


def main(root: Path, key: str) -> None:
    from citycloud import pipeline
    from citycloud.config import Settings

    variables = sorted(os.environ)
    settings = Settings(landing=root / "landing", warehouse=root / "wh" / "citycloud.duckdb",
                        output=root / "output", pii_key=key, memory_limit="2GB")
    report = pipeline.run(settings)
    (root / "report.pickle").write_bytes(pickle.dumps((variables, report, settings)))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])

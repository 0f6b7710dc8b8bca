"""Which dbt definitions the marts were built from: a changed model must be rebuilt by `run`.

A build records the sha256 of every file the marts are built from (models, macros, seeds,
dbt_project.yml) in `<warehouse dir>/.dbt/built_from.json`. `citycloud run` compares the
project with it: when a model's SQL or YAML changed since (a new mart column for a new metric),
the run rebuilds the marts though no delivery is new, instead of saying "marts unchanged" over
marts built from the old definitions. The metric catalogues (`models/semantic/*.yml`, `*.md`)
are read at query time from dbt's parse and need no build.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from citycloud import outputs
from citycloud.config import DBT_PROJECT_DIR, Settings

_PARTS = ("models", "macros", "seeds", "dbt_project.yml")
_QUERY_TIME_ONLY = "models/semantic/"


def _record(settings: Settings) -> Path:
    return settings.warehouse.parent / ".dbt" / "built_from.json"


def fingerprint(project: Path = DBT_PROJECT_DIR) -> dict[str, str]:
    """project-relative path -> sha256 of each file the marts are built from."""
    out = {}
    for part in _PARTS:
        path = project / part
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for f in files:
            rel = f.relative_to(project).as_posix()
            if rel.startswith(_QUERY_TIME_ONLY) and f.suffix in (".yml", ".md"):
                continue
            out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def record_built(settings: Settings, project: Path = DBT_PROJECT_DIR) -> None:
    """After a successful build: the definitions the marts now come from."""
    path = _record(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs.atomic_write(path, json.dumps(fingerprint(project), indent=1, sort_keys=True))


def changed_since_build(settings: Settings, project: Path = DBT_PROJECT_DIR) -> list[str]:
    """Files added, removed or changed since the last recorded build (none recorded: [])."""
    try:
        built = json.loads(_record(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    now = fingerprint(project)
    return sorted(p for p in built.keys() | now.keys() if built.get(p) != now.get(p))

"""Who may see which city (spec: access.md): `access.yml`, the scope of a person, the access log.

- `config`: `access.yml` read with the project's YAML loader and validated with pydantic; an
  `AccessFile` re-reads it when it changes (checked on every page load and API request).
- `scope`: a `Scope` (role, cities, pages) and the one place the rule is enforced: a read-only
  DuckDB connection whose `marts.*` / `audit.*` relations are views filtered to the scope's
  cities in SQL (`scoped_connection`). The dashboard and the API read only through it.
- `log`: the append-only access log (one JSON object per line, written whole).
"""
from __future__ import annotations

from citycloud.access.config import AccessConfig, AccessFile, load_access
from citycloud.access.log import AccessLog, default_log_path
from citycloud.access.scope import PAGES, NoAccess, Scope, scoped_connection

__all__ = ["AccessConfig", "AccessFile", "AccessLog", "NoAccess", "PAGES", "Scope", "default_log_path",
           "load_access", "scoped_connection"]

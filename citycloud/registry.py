"""The KPI registry: metric definitions read from dbt's semantic manifest, the one home of
every KPI's name, labels, unit, format and whether contracts may pay on it.

The definitions live in dbt_project/models/semantic/*.yml (MetricFlow metrics, `label` and
`config.meta`). A full `dbt parse` writes them to `target/registry/semantic_manifest.json`
inside the dbt project (git-ignored; `mf` reads its own `target/semantic_manifest.json`). `load()` reads that
file and runs `dbt parse` first when it is missing or older than a file of the project, so a
reader always sees the YAML as it stands (parsing opens no warehouse: it never waits for a
running pipeline). Nothing else in the code lists KPI names or labels.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from citycloud import config
from citycloud.config import CitycloudError

MANIFEST = "semantic_manifest.json"
# Aggregations whose week or month is not the sum of its days: a metric on one names a period.
NON_ADDITIVE_AGGS = ("count_distinct", "percentile", "median")
# dbt project folders whose files define the metrics (or the models they read)
_PROJECT_PARTS = ("models", "macros", "seeds", "dbt_project.yml")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # Chinese: what operators and contract managers read
    label_en: str
    description: str
    unit: str
    format: str  # integer | percent
    payable: bool  # contracts may pay on it
    grains: tuple[str, ...]  # periods kpis.md defines it for (day, month)
    marts: dict[str, str] = field(default_factory=dict)  # published mart -> column holding it
    source: str | None = None  # landing source that feeds it
    alert_on_move: bool = True  # the dashboard flags a big day-on-day or week-on-week move
    headline: int | None = None  # place among the dashboard's headline cards
    denominator: str | None = None  # a ratio's denominator metric: the sample a rate stands on
    # `citycloud query`: the grains it may be asked at (None: any; a figure of a whole week or
    # month must not be summed into longer periods), and the metric answering it at a grain
    periods: tuple[str, ...] | None = None
    by_grain: dict[str, str] = field(default_factory=dict)

    @property
    def is_rate(self) -> bool:
        return self.format == "percent"


@dataclass(frozen=True)
class Registry:
    metrics: dict[str, Metric]
    manifest: dict

    # Every list keeps the order of the YAML (kpis.yml: the spec's order).
    def names(self) -> list[str]:
        return list(self.metrics)

    def label(self, name: str) -> str:
        metric = self.metrics.get(name)
        return metric.label if metric else name

    def at_grain(self, grain: str) -> list[Metric]:
        """Metrics kpis.md defines for `grain` (day or month), by name."""
        return [m for m in self.metrics.values() if grain in m.grains]

    def in_mart(self, mart: str) -> dict[str, str]:
        """metric -> column of the published mart `mart` that holds it."""
        return {n: m.marts[mart] for n, m in self.metrics.items() if mart in m.marts}

    def headline(self) -> tuple[str, ...]:
        """The dashboard's headline KPIs, in their `headline` order."""
        return tuple(n for n, m in sorted(self.metrics.items(), key=lambda i: i[1].headline or 0) if m.headline)

    def payable(self) -> tuple[str, ...]:
        return tuple(n for n, m in self.metrics.items() if m.payable)

    def rates(self) -> frozenset[str]:
        return frozenset(n for n, m in self.metrics.items() if m.is_rate)


def artifacts_dir(project: Path | None = None) -> Path:
    """Where the registry's own `dbt parse` writes the manifests: a folder of dbt's target that
    nothing else writes. The metrics' order is the manifest's, and a partial parse (after a `dbt
    parse` by hand, or a YAML file moved) appends changed files' metrics at the end: a full parse
    into a folder of its own keeps the YAML's order on every machine."""
    return Path(project or config.DBT_PROJECT_DIR).resolve() / "target" / "registry"


def _newest_source(project: Path) -> float:
    newest = 0.0
    for part in _PROJECT_PARTS:
        path = project / part
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for f in files:
            newest = max(newest, f.stat().st_mtime)
    return newest


def _parse(project: Path) -> None:
    dbt = Path(sys.executable).parent / "dbt"
    env = {**os.environ, "DBT_TARGET_PATH": str(artifacts_dir(project)), "DBT_LOG_PATH": str(project / "logs"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(
        [str(dbt), "parse", "--project-dir", str(project), "--profiles-dir", str(project), "--no-use-colors", "--no-partial-parse", "-q"],
        env=env, cwd=project, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        problems = "\n  ".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise CitycloudError(f"dbt parse of {project} failed (the metric definitions):\n  {problems}")


def manifest_path(project: Path | None = None) -> Path:
    """The project's semantic_manifest.json, regenerated when a project file is newer."""
    project = Path(project or config.DBT_PROJECT_DIR).resolve()
    path = artifacts_dir(project) / MANIFEST
    if not path.exists() or path.stat().st_mtime < _newest_source(project):
        _parse(project)
    if not path.exists():
        raise CitycloudError(f"dbt parse wrote no {MANIFEST} in {path.parent}")
    return path


def _metric(raw: dict) -> Metric:
    meta = (raw.get("config") or {}).get("meta") or {}
    where = f"metric {raw['name']} (dbt_project/models/semantic)"
    for key in ("label_en", "unit", "format", "payable", "grains"):
        if key not in meta:
            raise CitycloudError(f"{where}: config.meta.{key} is missing")
    if meta["format"] not in ("integer", "percent"):
        raise CitycloudError(f"{where}: config.meta.format must be integer or percent, got {meta['format']!r}")
    return Metric(
        name=raw["name"], label=raw.get("label") or raw["name"], label_en=meta["label_en"],
        description=(raw.get("description") or "").strip(), unit=meta["unit"], format=meta["format"],
        payable=bool(meta["payable"]), grains=tuple(meta["grains"]), marts=dict(meta.get("marts") or {}),
        source=meta.get("source"), alert_on_move=bool(meta.get("alert_on_move", True)),
        headline=meta.get("headline"), denominator=_denominator(raw),
        periods=tuple(meta["periods"]) if "periods" in meta else None, by_grain=dict(meta.get("by_grain") or {}),
    )


def _denominator(raw: dict) -> str | None:
    if raw.get("type") != "ratio":
        return None
    den = (raw.get("type_params") or {}).get("denominator")
    return den.get("name") if isinstance(den, dict) else den


def check_non_additive_guarded(manifest: dict) -> None:
    """Refuse a metric on a non-additive measure (a distinct count) without config.meta.periods:
    asked at another grain it would answer a different figure under its name (dau by month is
    the month's distinct users, i.e. mau)."""
    aggs = {m["name"]: m["agg"] for sm in manifest.get("semantic_models", []) for m in sm.get("measures", [])}
    for raw in manifest.get("metrics", []):
        meta = (raw.get("config") or {}).get("meta") or {}
        measures = [m["name"] for m in ((raw.get("type_params") or {}).get("input_measures") or [])]
        distinct = [m for m in measures if aggs.get(m) in NON_ADDITIVE_AGGS]
        if distinct and "periods" not in meta:
            raise CitycloudError(
                f"metric {raw['name']} (dbt_project/models/semantic): reads {aggs[distinct[0]]} measure "
                f"{distinct[0]}, a figure of one period: config.meta.periods is missing (the grains it answers; "
                "a longer period is not the sum of shorter ones)")


_CACHE: dict[tuple[str, int], Registry] = {}


def read(path: Path) -> Registry:
    """The registry in one semantic_manifest.json (cached while the file is unchanged)."""
    key = (str(path), os.stat(path).st_mtime_ns)
    if key not in _CACHE:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
        metrics = {raw["name"]: _metric(raw) for raw in manifest.get("metrics", [])}
        check_non_additive_guarded(manifest)
        _CACHE[key] = Registry(metrics, manifest)
    return _CACHE[key]


def mart_columns(mart: str, project: Path | None = None) -> list[str]:
    """The documented columns of a dbt model, in its YAML's order (manifest.json, written by
    the same parse): the mart's interface, for code that builds a stand-in of it."""
    manifest = json.loads((manifest_path(project).parent / "manifest.json").read_text(encoding="utf-8"))
    node = next((n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == mart), None)
    if node is None:
        raise CitycloudError(f"dbt model {mart} not found in the dbt project")
    return list(node.get("columns") or {})


@dataclass(frozen=True)
class ColumnLabel:
    label: str  # Chinese
    label_en: str
    format: str | None = None  # percent | integer | None (as the value is)


def mart_column_labels(mart: str, project: Path | None = None) -> dict[str, ColumnLabel]:
    """column -> its labels: a metric's own (the registry) for a column holding one, else the
    column's `config.meta` {label, label_en, format} in the mart's YAML; unlabelled columns absent."""
    manifest = json.loads((manifest_path(project).parent / "manifest.json").read_text(encoding="utf-8"))
    node = next((n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == mart), None)
    if node is None:
        raise CitycloudError(f"dbt model {mart} not found in the dbt project")
    out = {}
    for name, col in (node.get("columns") or {}).items():
        meta = {**(col.get("meta") or {}), **((col.get("config") or {}).get("meta") or {})}
        if "label" in meta and "label_en" in meta:
            out[name] = ColumnLabel(meta["label"], meta["label_en"], meta.get("format"))
    reg = load(project)
    for metric, column in reg.in_mart(mart).items():
        m = reg.metrics[metric]
        out[column] = ColumnLabel(m.label, m.label_en, m.format)
    return out


def load(project: Path | None = None) -> Registry:
    """The metric registry of the dbt project (default: this checkout's), parsed when stale."""
    return read(manifest_path(project))

"""No KPI list or label outside the registry reader: citycloud/, dashboards/ and expectations/
name KPIs only one at a time (a chart, a lookup), never as a list of KPIs or a label map.

Scans the Python string literals (ast): a collection literal naming 4 or more metrics is a KPI
list, a dict keyed by 2 or more metrics a label/format map, and a metric's Chinese label
anywhere in a literal is a second home for it."""
from __future__ import annotations

import ast
from pathlib import Path

from citycloud import registry

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("citycloud", "dashboards", "expectations")
READER = {ROOT / "citycloud" / "registry.py"}


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def offences(path: Path, names: set[str], labels: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            named = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
            if len(named) >= 4:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: KPI list {named}")
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in names]
            if len(keys) >= 2:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: KPI map keyed {keys}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hits = [label for label in labels if label in node.value]
            if hits:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: KPI label(s) {hits} in a literal")
    return found


def test_no_kpi_lists_or_labels_outside_the_registry():
    reg = registry.load()
    names = set(reg.metrics)
    labels = {m.label for m in reg.metrics.values()}
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if p not in READER]
    assert len(files) > 30
    problems = [o for p in files for o in offences(p, names, labels)]
    assert problems == []


def test_the_scan_catches_a_list_a_map_and_a_label(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('A = ("dau", "wau", "mau", "ratings")\nB = {"dau": 1, "mau": 2}\nC = "注册用户数（人）"\n',
                   encoding="utf-8")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        found = offences(bad, {"dau", "wau", "mau", "ratings"}, {"注册用户数"})
    finally:
        ROOT = root
    assert [f.split(":")[1] for f in found] == ["1", "2", "3"]

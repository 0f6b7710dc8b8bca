"""Facts with one home (issue #30), each checked against the place a second copy would be.

The business time zone lives in citycloud/config.py (BUSINESS_TZ_NAME and the offset derived from
it): no other code file names the zone or writes its UTC offset. Prose may name it (docstrings,
comments, YAML reasons); code may not. The published snapshot is opened by publish.open_snapshot."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from citycloud import config

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("citycloud", "ingestion", "expectations", "dashboards", "dags", "dbt_project", "bench", "scripts")
# A zone name, a UTC offset written out (+08:00, INTERVAL 8 HOUR, hours=8, 8 * 3600, 28800 s).
SECOND_HOME = re.compile(r"Asia/Shanghai|[+]0?8:?00\b|INTERVAL\s*'?8'?\s*HOURS?\b|hours\s*=\s*8\b|\b8\s*\*\s*3600\b|\b28800\b",
                         re.IGNORECASE)


def _code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants, f-string parts, sums and keyword arguments that are not docstrings, SQL `--` comments removed."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    docstrings |= {id(node.value) for node in ast.walk(tree)  # DOC_MD = """…""": a DAG's docs
                   if isinstance(node, ast.Assign) and any("DOC" in ast.unparse(t) for t in node.targets)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            code = "\n".join(line.split("--", 1)[0] for line in node.value.splitlines())
            found.append((node.lineno, code))
        elif isinstance(node, (ast.BinOp, ast.keyword)):
            found.append((getattr(node, "lineno", 0) or getattr(node.value, "lineno", 0), ast.unparse(node)))
    return found


def _second_homes(path: Path, root: Path = ROOT) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        pieces = _code_strings(ast.parse(text))
    elif path.suffix == ".sql":
        pieces = [(i, line.split("--", 1)[0]) for i, line in enumerate(text.splitlines(), 1)]
    else:  # YAML: prose fields (description, reason) may name the zone; anything else is a setting
        pieces = [(i, line) for i, line in enumerate(text.splitlines(), 1)
                  if not re.match(r"\s*(-\s*)?(description|reason|message|#)", line)]
    return sorted(f"{path.relative_to(root)}:{line}: {SECOND_HOME.search(code).group()}"
                  for line, code in pieces if SECOND_HOME.search(code))


def test_the_business_time_zone_is_named_only_in_config():
    found = []
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".sql", ".yml", ".yaml") and path != ROOT / "citycloud" / "config.py" \
                    and "target" not in path.parts and "results" not in path.parts:
                found += _second_homes(path)
    assert found == []


def test_config_derives_the_sql_offset_from_the_zone():
    assert (config.BUSINESS_TZ_NAME, config.BUSINESS_UTC_OFFSET_HOURS, config.BUSINESS_UTC_OFFSET_ISO) == \
        ("Asia/Shanghai", 8, "+08:00")


def test_the_guard_sees_a_second_home(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""Asia/Shanghai in a docstring is prose."""\nTZ = ZoneInfo("Asia/Shanghai")\n'
                   'SQL = "SELECT ts + INTERVAL 8 HOUR -- Asia/Shanghai"\nOFF = dt.timedelta(hours=8)\n')
    assert _second_homes(bad, tmp_path) == ["bad.py:2: Asia/Shanghai", "bad.py:3: INTERVAL 8 HOUR",
                                            "bad.py:4: hours=8"]


def test_only_publish_opens_the_snapshot():
    """Readers open the published snapshot through publish.open_snapshot; the warehouse's writers
    through db.connect. No other module calls duckdb.connect."""
    callers = []
    for folder in ("citycloud", "ingestion", "expectations", "dashboards", "dags"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            callers += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                        if isinstance(node, ast.Call) and ast.unparse(node.func) == "duckdb.connect"]
    assert [c.split(":")[0] for c in callers] == ["citycloud/db.py", "citycloud/publish.py"]


def test_the_staging_dedup_rule_is_one_macro():
    """"Latest delivery wins, then the first file, then the first line" is macros/latest_copy.sql;
    the event staging models call it instead of writing the window again."""
    rule = re.compile(r"dt\s+desc\s*,\s*(\w+\.)?file\s*,\s*(\w+\.)?line", re.IGNORECASE)
    models = ROOT / "dbt_project" / "models"
    assert [p.name for p in sorted(models.rglob("*.sql")) if rule.search(p.read_text(encoding="utf-8"))] == []
    callers = [p.stem for p in sorted((models / "staging").glob("stg_landing__*.sql"))
               if "latest_copy_rank(" in p.read_text(encoding="utf-8")]
    assert callers == ["stg_landing__ratings", "stg_landing__registrations", "stg_landing__service_access"]


def test_the_raw_source_checks_share_one_template():
    """The per-delivery block every raw event source's check needs (time range, business day,
    city code, late rows, duplicate ids) is written once, in expectations/sql/_raw_delivery.sql."""
    sql = ROOT / "expectations" / "sql"
    common = ("event_day_mismatch", "ts_out_of_range", "conflicting_copies", "late_share")
    writers = {p.name for p in sql.glob("*.sql") for word in common if word in p.read_text(encoding="utf-8")}
    assert writers == {"_raw_delivery.sql"}
    extending = sorted(p.name for p in sql.glob("raw_*.sql")
                       if '{% extends "_raw_delivery.sql" %}' in p.read_text(encoding="utf-8"))
    assert extending == ["raw_ratings.sql", "raw_registrations.sql", "raw_service_access.sql"]

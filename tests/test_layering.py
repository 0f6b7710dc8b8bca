"""What may import what (docs/architecture.md), read from the code with `ast`, and the one
installed namespace: pyproject's packages and folder mapping cover every package folder."""
from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FOLDERS = {"citycloud": "citycloud", "citycloud.ingestion": "ingestion",
           "citycloud.expectations": "expectations", "citycloud.dashboards": "dashboards",
           "citycloud.pipeline": "pipeline"}
MAPPED = ("ingestion", "expectations", "dashboards", "pipeline")

# Floors, lowest first: a part imports only parts of lower floors (and itself). config.py is the
# ground floor and db.py stands on it alone; nothing below imports back from what stands on it.
FLOORS = [
    {"config"},
    {"db", "yaml_files", "validation", "fault_hook", "console", "outputs", "channels"},
    {"registry", "generate", "ingestion", "dbt_runner", "publish", "definitions"},
    {"expectations", "query", "spark", "access", "funnels", "alerts", "review_figures"},
    {"settlement", "scorecard", "user_ops_export"},
    {"api", "review_report"},
    {"dashboards"},
    {"pipeline"},
    {"rotation", "orchestration"},
    {"cli"},
    {"demo"},
]
FLOOR_OF = {part: i for i, floor in enumerate(FLOORS) for part in floor}


def part_of(module: str) -> str | None:
    """citycloud.settlement.compute -> 'settlement'; the package itself and foreign modules -> None.
    In pipeline/, the top folder, each door is a part of its own: citycloud.pipeline.cli -> 'cli',
    the package and its steps -> 'pipeline'."""
    parts = module.split(".")
    if parts[0] in MAPPED:  # the folders' names before the namespace
        return parts[0]
    if parts[0] != "citycloud" or len(parts) < 2:
        return None
    if parts[1] == "pipeline" and len(parts) > 2 and parts[2] != "steps":
        return parts[2]
    return parts[1]


def imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (function-level imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def project_files() -> dict[Path, str]:
    """Every Python file of the installed namespace -> its part (config, ingestion, settlement, ...)."""
    out = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            module = ".".join((package, *rel)).removesuffix(".__init__")
            if module != "citycloud":
                out[path] = part_of(module)
    return out


def test_every_part_has_a_floor():
    assert set(project_files().values()) == set(FLOOR_OF)


def test_no_part_imports_from_above_its_floor():
    wrong = []
    for path, part in sorted(project_files().items()):
        for module in sorted(imports(path)):
            target = part_of(module)
            if target is not None and target != part and target in FLOOR_OF and FLOOR_OF[target] >= FLOOR_OF[part]:
                wrong.append(f"{path.relative_to(ROOT)} ({part}, floor {FLOOR_OF[part]}) imports {module} "
                             f"({target}, floor {FLOOR_OF[target]})")
    assert wrong == []


# The top-level folders as layers, lowest first: an import from one folder into another only goes
# down. citycloud/ is the ground (settings, DuckDB, the registry, reports and the readers' code);
# pipeline/ the top (the run's steps and the doors that start them: CLI, Airflow, demo).
FOLDER_LAYERS = ["citycloud", "ingestion", "expectations", "dashboards", "pipeline"]


def folder_of(module: str) -> str | None:
    """The top-level folder a module of the namespace lives in (citycloud.ingestion.load -> ingestion)."""
    parts = module.split(".")
    if parts[0] in MAPPED:
        return parts[0]
    if parts[0] != "citycloud" or len(parts) < 2:
        return None
    return FOLDERS.get(f"citycloud.{parts[1]}", "citycloud")


def folder_imports() -> list[tuple[str, str, str]]:
    """(file, module, folder) for every import of one folder's file into another folder."""
    out = []
    for path in sorted(project_files()):
        own = path.relative_to(ROOT).parts[0]
        for module in sorted(imports(path)):
            folder = folder_of(module)
            if folder is not None and folder != own:
                out.append((str(path.relative_to(ROOT)), module, folder))
    return out


def test_the_top_level_folders_are_layers():
    layer = {folder: i for i, folder in enumerate(FOLDER_LAYERS)}
    assert set(layer) == set(FOLDERS.values())
    wrong = [f"{file} imports {module} ({folder}/)" for file, module, folder in folder_imports()
             if layer[folder] > layer[Path(file).parts[0]]]
    assert wrong == []


def test_the_folder_rule_sees_every_folder_arrow():
    """The arrows the layering allows are really there (a rule that sees no import cannot fail)."""
    arrows = {(Path(file).parts[0], folder) for file, _module, folder in folder_imports()}
    assert {("ingestion", "citycloud"), ("expectations", "ingestion"), ("dashboards", "citycloud"),
            ("pipeline", "ingestion"), ("pipeline", "expectations"), ("pipeline", "dashboards")} <= arrows


def test_the_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "config_like.py"
    bad.write_text("def f():\n    from citycloud.ingestion import discover\n", encoding="utf-8")
    assert {part_of(m) for m in imports(bad)} - {None} == {"ingestion"}
    assert FLOOR_OF["ingestion"] > FLOOR_OF["config"]


def test_ground_floor_imports_nothing_of_the_project():
    assert {m for m in imports(ROOT / "citycloud" / "config.py") if part_of(m)} == set()
    assert {part_of(m) for m in imports(ROOT / "citycloud" / "db.py") if part_of(m)} == {"config"}


def test_dags_import_only_the_airflow_glue():
    for path in (ROOT / "dags").glob("*.py"):
        assert {part_of(m) for m in imports(path) if part_of(m)} <= {"orchestration", "config"}, path.name


def test_one_namespace_no_bare_folder_imports():
    files = [p for p in ROOT.rglob("*.py") if not {".venv", ".git", "node_modules"} & set(p.parts)]
    bare = [f"{p.relative_to(ROOT)}: {m}" for p in files for m in imports(p)
            if m.split(".")[0] in MAPPED]
    assert bare == []


def test_pyproject_installs_every_package_folder_under_the_namespace():
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapped = {k: v for k, v in setuptools["package-dir"].items()}
    assert mapped == {k: v for k, v in FOLDERS.items() if k != "citycloud"}
    folders = set()
    for package, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            folders.add(".".join((package, *init.parent.relative_to(ROOT / folder).parts)))
    assert sorted(setuptools["packages"]) == sorted(folders)
    for package, patterns in setuptools["package-data"].items():
        base = ROOT / FOLDERS.get(package, package.replace(".", "/"))
        for pattern in patterns:
            assert list(base.glob(pattern)), f"{package}: {pattern} matches no file"


def test_the_install_alone_maps_the_folders():
    """No import finder of the project's own: setuptools' package-dir mapping (pip install) is the
    one mechanism. Fails when the checkout under test is not the installed one (a second git
    worktree on PYTHONPATH imports the installed checkout's folders): install it (`make setup`)."""
    init = (ROOT / "citycloud" / "__init__.py").read_text(encoding="utf-8")
    assert "meta_path" not in init and "MetaPathFinder" not in init
    for package, folder in FOLDERS.items():
        assert Path(importlib.util.find_spec(package).origin) == ROOT / folder / "__init__.py", package

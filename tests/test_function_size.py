"""No function longer than MAX_LINES in the project's code (issue #30).

A long function is split into named steps, so that each can be read, and tested, on its own. The
length counts a function's lines from its `def` (decorators excluded) to its last line, less the
lines of the functions and classes defined inside it: each of those is a function (or holds
functions) checked on its own, so an app factory whose routes are nested handlers is measured by
its own code and each handler by its own."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("citycloud", "dashboards", "ingestion", "expectations")
MAX_LINES = 95


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _nested_defs(node: ast.AST) -> list[ast.AST]:
    """The functions and classes defined directly inside `node` (not those inside them)."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _DEFS):
            found.append(child)
        else:
            found += _nested_defs(child)
    return found


def _own_length(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    def span(node: ast.AST) -> int:  # a nested definition's lines, its decorators included
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        return node.end_lineno - first + 1
    return func.end_lineno - func.lineno + 1 - sum(span(n) for n in _nested_defs(func))


def _long_functions(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = _own_length(node)
            if length > MAX_LINES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {length} lines")
    return found


def _code_files() -> list[Path]:
    return sorted(p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_no_function_is_longer_than_the_limit():
    assert _code_files(), "no code files found: the folders moved?"
    too_long = [f for path in _code_files() for f in _long_functions(path)]
    assert not too_long, f"functions over {MAX_LINES} lines (split them into named steps):\n" + "\n".join(too_long)


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n", encoding="utf-8")
    (tmp_path / "short.py").write_text("def short():\n    return 1\n", encoding="utf-8")
    assert _long_functions(tmp_path / "long.py", tmp_path) == [f"long.py:1 long: {MAX_LINES + 1} lines"]
    assert _long_functions(tmp_path / "short.py", tmp_path) == []


def test_a_nested_function_counts_on_its_own(tmp_path):
    half = "\n".join(f"        y{i} = {i}" for i in range(MAX_LINES // 2 + 2))
    (tmp_path / "outer.py").write_text(
        f"def outer():\n    @decorated\n    def first():\n{half}\n    def second():\n{half}\n    return first\n",
        encoding="utf-8")
    assert _long_functions(tmp_path / "outer.py", tmp_path) == []
    long_inner = "\n".join(f"        y{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "inner.py").write_text(f"def outer():\n    def inner():\n{long_inner}\n", encoding="utf-8")
    assert _long_functions(tmp_path / "inner.py", tmp_path) == [f"inner.py:2 inner: {MAX_LINES + 1} lines"]

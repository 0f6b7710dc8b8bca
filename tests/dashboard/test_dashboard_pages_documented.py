"""README.md and docs/dashboard.md name the pages the dashboard's navigation has (dashboards/app.py)."""
from __future__ import annotations

import ast

from dashboard_support import ROOT

from citycloud.access.scope import PAGES


def app_pages() -> dict[str, tuple]:
    """app.py's PAGES (name -> file, title, icon, URL path), read without running Streamlit."""
    tree = ast.parse((ROOT / "dashboards" / "app.py").read_text(encoding="utf-8"))
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGES"]
    return ast.literal_eval(value)


def test_readme_and_dashboard_doc_name_every_page():
    pages = app_pages()
    assert set(pages) == set(PAGES)  # access.md's page names (citycloud/access/scope.py), each with a title
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    doc = (ROOT / "docs" / "dashboard.md").read_text(encoding="utf-8")
    for name, (_, title, _, url_path) in pages.items():
        assert title in readme, f"README.md does not name the page {title}"
        assert f"| {title} | `/{url_path or ''}` |" in doc, f"docs/dashboard.md's page table lacks {title}"

"""citycloud: KPI marts and settlement statements for city citizen-cloud portals."""

__version__ = "0.1.0"


# --- the namespace's folders in a source checkout (written by the namespace change) ---
import importlib.abc as _abc
import importlib.machinery as _machinery
import pathlib as _pathlib
import sys as _sys

# pyproject.toml maps these onto the top-level folders; an installed citycloud resolves them by
# itself, a checkout on PYTHONPATH (docker-compose.yml's Airflow) through this finder.
MAPPED_FOLDERS = {"citycloud.ingestion": "ingestion", "citycloud.expectations": "expectations",
                  "citycloud.dashboards": "dashboards"}


class _CheckoutFolders(_abc.MetaPathFinder):
    root = _pathlib.Path(__file__).resolve().parents[1]

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib's signature
        if fullname in MAPPED_FOLDERS:
            return _machinery.PathFinder.find_spec(fullname, [str(self.root)])
        return None


if (_CheckoutFolders.root / "ingestion" / "__init__.py").is_file() and not any(
        isinstance(f, _CheckoutFolders) for f in _sys.meta_path):
    # First, ahead of an editable install's finder: a second checkout (a git worktree) on
    # PYTHONPATH must import its own folders, not those of the checkout that was pip-installed.
    _sys.meta_path.insert(0, _CheckoutFolders())

"""Where a verb may write its output files, and how: the one guard and the one atomic write that
every writer uses (`query --csv`, `settle --out`, `scorecard --out`, `user-ops --out`, and the
verbs to come).

- The guard (`output_file`, `output_folder`, `file_in`) refuses, before anything is written, an
  output onto the warehouse, its published snapshot, its lock, its .wal or temp files, anything
  inside the (untrusted) landing area or the spill folder, a folder, a device, and any existing
  file that does not look like an output of that kind (a `.csv` of text, an `.xlsx` zip, ...).
  Paths are compared after resolving symlinks and `..`, so no spelling gets round it.
- `atomic_write` / `FileSet` write to a temporary name in the same folder and rename it into
  place, so a full disk or a kill never leaves a 0-byte or half file, and the previous file stays
  until the new one is complete. A failure is one CitycloudError naming the path (exit 2).
- `csv_cell` and `text_only` keep delivered text inert in spreadsheets (OWASP CSV injection).
"""
from __future__ import annotations

import errno
import filecmp
import io
import os
import re
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from citycloud.config import CitycloudError, Settings, published_path

_CITY_FOLDER = re.compile(r"[0-9]{6}")
_UNTRUSTED = " (untrusted input: outputs never go there)"
TMP_MARK = ".citycloud-tmp-"  # temp files and staging folders: .<name>.citycloud-tmp-<pid>
# What an existing file must look like to be replaced as an output of that kind: its first bytes.
# Outputs of other kinds are text (a database, a zip or an image has NUL bytes early on).
_LOOKS_LIKE = {
    ".xlsx": lambda head: head.startswith(b"PK\x03\x04"),
    ".pdf": lambda head: head.startswith(b"%PDF"),
}


def _text(head: bytes) -> bool:
    return b"\0" not in head


def _refused(option: str, path: Path | str, why: str) -> CitycloudError:
    return CitycloudError(f"{option} {path}: {why}; nothing was written: choose another path")


def _real(path: Path | str) -> Path:
    """The path with ~, relative parts and symlinks (of the parts that exist) resolved."""
    return Path(path).expanduser().resolve()


def _protected(settings: Settings) -> tuple[dict[Path, str], dict[Path, str]]:
    """(files, folders) no output may be or be inside, resolved, each with what it is."""
    warehouse = _real(settings.warehouse)
    snapshot = _real(published_path(settings.warehouse))
    files = {warehouse: "the warehouse", snapshot: "the warehouse's published snapshot"}
    for base, what in ((warehouse, "the warehouse's"), (snapshot, "the published snapshot's")):
        files[base.with_name(base.name + ".wal")] = f"{what} write-ahead log"
        files[base.with_name(base.name + ".writer.lock")] = f"{what} writer lock"
    folders = {_real(settings.landing): "the landing area", _real(settings.spill_dir): "the warehouse's spill folder"}
    return files, folders


def _check_protected(option: str, path: Path | str, settings: Settings) -> Path:
    real = _real(path)
    files, folders = _protected(settings)
    if real in files:
        raise _refused(option, path, f"is {files[real]}")
    for base in (_real(settings.warehouse), _real(published_path(settings.warehouse))):
        if real.parent == base.parent and real.name.startswith(base.name + "."):
            raise _refused(option, path, f"belongs to the warehouse {settings.warehouse}")
    for folder, what in folders.items():
        if real == folder or folder in real.parents:
            raise _refused(option, path, f"is inside {what} {folder}{_UNTRUSTED if what == 'the landing area' else ''}")
    landing = _landing_above(real)
    if landing is not None:
        raise _refused(option, path, f"is inside the landing area {landing}{_UNTRUSTED}")
    return real


def _landing_above(real: Path) -> Path | None:
    """A landing area `real` is in, by its layout <root>/<6-digit city>/<source>/dt=YYYY-MM-DD/
    (the verbs that write outputs are not told which landing area `run` reads)."""
    for folder in (real, *real.parents):
        if folder.name.startswith("dt="):
            return folder.parent.parent.parent
        try:
            cities = [e for e in os.scandir(folder) if _CITY_FOLDER.fullmatch(e.name) and e.is_dir()]
        except OSError:  # not a folder (yet), or not readable
            continue
        if any(next(Path(city.path).glob("*/dt=*"), None) for city in cities):
            return folder
    return None


def _check_parents(option: str, path: Path | str, real: Path) -> None:
    """The nearest existing folder above `real` must be a folder (not a file) we may write."""
    for parent in real.parents:
        if parent.exists():
            if not parent.is_dir():
                raise _refused(option, path, f"{parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise _refused(option, path, f"the folder {parent} is not writable")
            return


def _check_replaceable(option: str, path: Path | str, real: Path, suffix: str) -> None:
    """An existing `real` may be replaced only if it is a regular file that looks like an output
    of its kind, a `suffix` file (an empty one too: what a full disk left before writes were atomic)."""
    if not real.exists():
        return
    if real.is_dir():
        raise _refused(option, path, "is a folder, not a file")
    if not real.is_file():
        raise _refused(option, path, "is not a regular file (a device, pipe or socket)")
    with open(real, "rb") as f:
        head = f.read(8192)
    if real.suffix.lower() != suffix or (head and not _LOOKS_LIKE.get(suffix, _text)(head)):
        raise _refused(option, path, f"exists and is not a {suffix} file this command wrote (only such a file is "
                                     "replaced); remove it yourself if it is not needed")


def output_file(option: str, path: Path | str, settings: Settings, suffix: str = ".csv") -> Path:
    """Check a file output named on the command line (e.g. `query --csv`), written as `suffix`
    (any new name goes; an existing file is replaced only if it is such a file); its resolved path."""
    real = _check_protected(option, path, settings)
    _check_replaceable(option, path, real, suffix)
    _check_parents(option, path, real)
    return real


def output_folder(option: str, folder: Path | str, settings: Settings) -> Path:
    """Check a folder outputs go into (e.g. `--out`); its resolved path."""
    real = _check_protected(option, folder, settings)
    if real.exists() and not real.is_dir():
        raise _refused(option, folder, "is a file, not a folder")
    _check_parents(option, folder, real / "x")
    return real


def file_in(option: str, folder: Path, name: str, settings: Settings) -> Path:
    """Check one output file of a checked folder (a name the verb chose)."""
    path = folder / name
    real = _check_protected(option, path, settings)
    _check_replaceable(option, path, real, Path(name).suffix.lower())
    return real


# ---- writing ----------------------------------------------------------------------------------

def write_error(path: Path, exc: OSError) -> CitycloudError:
    if exc.errno == errno.ENOSPC:
        return CitycloudError(f"no space left on {path}: free some space there and run again; "
                              "files already there were left as they were")
    return CitycloudError(f"cannot write {path}: {exc.strerror or exc}: choose a folder you can write to; "
                          "files already there were left as they were")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def remove_leftovers(folder: Path) -> None:
    """Temp files and staging folders of writers that died (their pid runs no more)."""
    if not folder.is_dir():
        return
    for entry in folder.glob(f".*{TMP_MARK}*"):
        pid = entry.name.rsplit(TMP_MARK, 1)[1]
        if pid.isdecimal() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Write `data` to a temp file beside `path`, flush it to disk and rename it into place."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path.parent)
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None
    return path


def _same_file(a: Path, b: Path) -> bool:
    return b.is_file() and a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)


class FileSet:
    """A set of files rendered into a staging folder beside their folder, and moved into place
    only when every one is complete (`commit`); until then the previous files stay as they were.
    Use it as a context manager: leaving it without `commit` removes the staging folder."""

    def __init__(self, folder: Path, option: str, settings: Settings):
        self.folder = output_folder(option, folder, settings)
        self.option, self.settings = option, settings
        self.staging = folder / f".staging{TMP_MARK}{os.getpid()}"
        self.names: list[str] = []

    def __enter__(self) -> FileSet:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            remove_leftovers(self.folder)
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir()
        except OSError as exc:
            raise write_error(self.folder, exc) from None
        return self

    def path(self, name: str) -> Path:
        """Where to render `name` now (in the staging folder), once the guard let its place pass."""
        if name not in self.names:
            file_in(self.option, self.folder, name, self.settings)
            self.names.append(name)
        return self.staging / name

    def commit(self) -> list[Path]:
        """Rename every staged file into place (same folder: each rename is atomic); a file whose
        bytes are already in place is left as it was (a rerun on the same inputs changes nothing)."""
        try:
            for name in self.names:
                if not _same_file(self.staging / name, self.folder / name):
                    os.replace(self.staging / name, self.folder / name)
        except OSError as exc:
            raise write_error(self.folder / name, exc) from None
        return [self.folder / name for name in self.names]

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def workbook_bytes(wb, when: datetime, creator: str) -> bytes:
    """An openpyxl workbook's bytes, a function of its content and `when` alone (a rerun on the
    same inputs gives the same bytes, so `FileSet.commit` leaves the file as it was).

    openpyxl stamps the save time into docProps/core.xml (modified) and into every zip entry;
    both are replaced by `when`. Office document times are UTC ('Z'), so an aware `when` is
    converted first. Every text cell is stored as text (`text_only`)."""
    utc = when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when
    wb.properties.creator = creator
    wb.properties.created = utc
    wb.properties.modified = utc
    text_only(wb.worksheets)  # every text shown as typed, never evaluated
    saved = io.BytesIO()
    wb.save(saved)
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "docProps/core.xml":
                data = _MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", data)
            entry = zipfile.ZipInfo(info.filename, date_time=utc.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            dst.writestr(entry, data)
    return out.getvalue()


# ---- spreadsheet injection ----------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def csv_cell(value: Any) -> Any:
    """OWASP's rule for a CSV cell: text starting with = + - @ tab or CR gets a leading ' so a
    spreadsheet shows it instead of evaluating it. Numbers (also as text, e.g. "-12.50") stay."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: csv_cell(v) for k, v in row.items()}


def text_only(sheets: Iterable) -> None:
    """Every text cell of these worksheets stored as text: openpyxl makes any string starting
    with "=" a formula; the project writes none, so each is delivered text shown as typed."""
    for ws in sheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f" or (isinstance(cell.value, str) and cell.value.startswith(_FORMULA_START)):
                    cell.data_type = "s"
                    cell.quotePrefix = True

"""Find delivery folders in the landing area and tell which are complete and new or changed.

The landing area is written by other organisations' systems: it is untrusted. Nothing here
follows a link out of the landing root or opens anything but a regular file:
- every entry is looked at with lstat; a symbolic link is followed only when its target
  resolves inside the landing root (then the target is what is read), never otherwise;
- FIFOs, sockets and devices are refused (reading a FIFO would hang the run);
- whatever does not fit the layout (a badly named folder, a file where a folder belongs)
  is reported as a landing problem, never read.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from citycloud.config import BUSINESS_TZ_NAME, SOURCES

CITY_RE = re.compile(r"^\d{6}$")
DT_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
MARKER = "_SUCCESS"


@dataclass(frozen=True)
class LandingProblem:
    """Something in the landing area that is not a delivery: reported, never read."""
    path: str    # relative to the landing root
    kind: str    # 'bad_name' | 'refused_link' | 'special_file' | 'empty_delivery' | 'stray_file' | 'future_delivery'
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Delivery:
    city_code: str
    source: str
    dt: date
    path: Path
    files: list[Path] = field(default_factory=list)   # as named in the landing (for the ledger)
    complete: bool = True
    # Files of the folder refused before reading (links out of the landing, special files).
    refused: list[tuple[Path, str]] = field(default_factory=list)
    # Where a file named through a link inside the landing really is (what is read).
    targets: dict[Path, Path] = field(default_factory=dict)

    def read_path(self, f: Path) -> Path:
        return self.targets.get(f, f)

    @property
    def key(self) -> tuple[str, str, date]:
        return (self.city_code, self.source, self.dt)

    @property
    def label(self) -> str:
        return f"{self.city_code}/{self.source}/dt={self.dt}"

    def signature(self) -> str:
        """Cheap identity of the folder's content (names, sizes, mtimes): unchanged → skip."""
        h = hashlib.sha256()
        for f in self.files:
            st = self.read_path(f).stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        for f, reason in self.refused:
            h.update(f"refused\0{f.name}\0{reason}\n".encode())
        return h.hexdigest()

    def content_hash(self) -> str:
        """sha256 over file names and bytes: what a statement's fingerprint cites."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.name.encode() + b"\0")
            with open_regular(self.read_path(f)) as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
            h.update(b"\n")
        for f, reason in self.refused:
            h.update(f"refused\0{f.name}\0{reason}\n".encode())
        return h.hexdigest()


@dataclass
class Discovery:
    complete: list[Delivery]
    incomplete: list[Delivery]
    problems: list[LandingProblem] = field(default_factory=list)

    @property
    def ignored(self) -> list[str]:
        return [str(p) for p in self.problems]


class RefusedPath(Exception):
    """A path the pipeline will not read; str(exc) is the reason."""


def open_regular(path: Path):
    """Open a file for reading only if it is a regular file reached without a symbolic link.

    `path` is already resolved and checked to lie inside the landing root; O_NOFOLLOW and the
    fstat after opening close the gap between that check and the read (a swapped-in link or FIFO).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RefusedPath("not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class _Refused:
    """Why an entry is not read: recorded by the caller under the name the landing shows."""
    kind: str
    reason: str


class _Walker:
    def __init__(self, landing: Path):
        self.root = landing.resolve()
        self.problems: list[LandingProblem] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def problem(self, path: Path, kind: str, reason: str) -> None:
        self.problems.append(LandingProblem(self.rel(path), kind, reason))

    def entry(self, path: Path) -> tuple[Path, str] | _Refused:
        """(path to read, 'dir' | 'file') for a usable entry, else why it is refused."""
        st = path.lstat()
        target = path
        if stat.S_ISLNK(st.st_mode):
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                return _Refused("refused_link", "symbolic link to nothing (dangling or a loop): refused")
            if not target.is_relative_to(self.root):
                return _Refused("refused_link", "symbolic link pointing outside the landing area: refused, nothing read")
            st = target.stat()
        if stat.S_ISDIR(st.st_mode):
            return target, "dir"
        if stat.S_ISREG(st.st_mode):
            return target, "file"
        return _Refused("special_file", f"{_kind(st.st_mode)}, not a regular file: refused, nothing read")

    def folder(self, path: Path, shown: Path, level: str, fits) -> Path | None:
        """The folder to descend into for a layout level, or None with the problem recorded."""
        usable = self.entry(path)
        if isinstance(usable, _Refused):
            self.problem(shown, usable.kind, usable.reason)
            return None
        target, kind = usable
        if kind != "dir":
            self.problem(shown, "stray_file", _STRAY[level])
            return None
        if not fits(path.name):
            self.problem(shown, "bad_name", _bad_name(level, path.name))
            return None
        return target

    def children(self, folder: Path) -> list[Path]:
        return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


_STRAY = {"city": "a file at the top of the landing area: not read",
          "source": "a file where a source folder belongs: not read",
          "dt": "a file where a dt= folder belongs: not read"}


def _bad_name(level: str, name: str) -> str:
    if level == "city":
        return f"city folder {name!r} is not a 6-digit city code: not read"
    if level == "source":
        hint = f" (did you mean {name.lower()!r}?)" if name.lower() in SOURCES else ""
        return f"source folder {name!r} is not one of {', '.join(SOURCES)}{hint}: not read"
    return f"delivery folder {name!r} is not dt=YYYY-MM-DD with a real date: not read"


def discover(landing: Path, start: date | None = None, end: date | None = None,
             today: date | None = None) -> Discovery:
    """The deliveries of the landing area (between `start` and `end`); with `today`, a folder dated
    after it is a landing problem, not a delivery: nobody exports a day that has not come (one
    such folder would stretch every day series to it)."""
    walker = _Walker(Path(landing))
    complete: list[Delivery] = []
    incomplete: list[Delivery] = []
    for city_entry in walker.children(walker.root):
        shown_city = walker.root / city_entry.name
        city_dir = walker.folder(city_entry, shown_city, "city", CITY_RE.match)
        if city_dir is None:
            continue
        for source_entry in walker.children(city_dir):
            shown = shown_city / source_entry.name
            source_dir = walker.folder(source_entry, shown, "source", SOURCES.__contains__)
            if source_dir is None:
                continue
            for dt_entry in walker.children(source_dir):
                shown_dt = shown / dt_entry.name
                dt_dir = walker.folder(dt_entry, shown_dt, "dt", lambda name: _parse_dt(name) is not None)
                if dt_dir is None:
                    continue
                dt = _parse_dt(dt_entry.name)
                if today and dt > today:
                    walker.problem(shown_dt, "future_delivery",
                                   f"delivery folder dated {dt}, after today ({today}, {BUSINESS_TZ_NAME}): not read")
                    continue
                if (start and dt < start) or (end and dt > end):
                    continue
                d = _delivery(walker, city_entry.name, source_entry.name, dt, dt_dir, shown_dt)
                (complete if d.complete else incomplete).append(d)
    return Discovery(complete, incomplete, walker.problems)


def _parse_dt(name: str) -> date | None:
    m = DT_RE.match(name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def _delivery(walker: _Walker, city: str, source: str, dt: date, folder: Path, shown: Path) -> Delivery:
    files: list[Path] = []
    targets: dict[Path, Path] = {}
    refused: list[tuple[Path, str]] = []
    marker = False
    for entry in walker.children(folder):
        usable = walker.entry(entry)
        if isinstance(usable, _Refused):
            # A refused file inside a delivery is set aside with the delivery (audit.rejected_files).
            refused.append((shown / entry.name, usable.reason))
            continue
        target, kind = usable
        if entry.name == MARKER:
            marker = kind == "file"
            continue
        if kind == "dir":
            refused.append((shown / entry.name, "a folder inside a delivery folder: not read"))
            continue
        files.append(shown / entry.name)
        if target != files[-1]:
            targets[files[-1]] = target
    return Delivery(city, source, dt, shown, files, marker, refused, targets)

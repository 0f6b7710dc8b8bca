"""Find delivery folders in the landing area and tell which are complete and new or changed."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from citycloud.config import SOURCES

CITY_RE = re.compile(r"^\d{6}$")
DT_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
MARKER = "_SUCCESS"


@dataclass
class Delivery:
    city_code: str
    source: str
    dt: date
    path: Path
    files: list[Path] = field(default_factory=list)
    complete: bool = True

    @property
    def key(self) -> tuple[str, str, date]:
        return (self.city_code, self.source, self.dt)

    def signature(self) -> str:
        """Cheap identity of the folder's content (names, sizes, mtimes): unchanged → skip."""
        h = hashlib.sha256()
        for f in self.files:
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def content_hash(self) -> str:
        """sha256 over file names and bytes: what a statement's fingerprint cites."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.name.encode() + b"\0")
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
            h.update(b"\n")
        return h.hexdigest()


@dataclass
class Discovery:
    complete: list[Delivery]
    incomplete: list[Delivery]
    ignored: list[str]  # paths that do not fit the layout, reported, never read


def discover(landing: Path, start: date | None = None, end: date | None = None) -> Discovery:
    complete: list[Delivery] = []
    incomplete: list[Delivery] = []
    ignored: list[str] = []
    for city_dir in sorted(p for p in landing.iterdir() if p.is_dir()):
        if not CITY_RE.match(city_dir.name):
            ignored.append(str(city_dir))
            continue
        for source_dir in sorted(p for p in city_dir.iterdir() if p.is_dir()):
            if source_dir.name not in SOURCES:
                ignored.append(str(source_dir))
                continue
            for dt_dir in sorted(p for p in source_dir.iterdir() if p.is_dir()):
                m = DT_RE.match(dt_dir.name)
                if not m:
                    ignored.append(str(dt_dir))
                    continue
                try:
                    dt = date.fromisoformat(m.group(1))
                except ValueError:
                    ignored.append(str(dt_dir))
                    continue
                if (start and dt < start) or (end and dt > end):
                    continue
                files = sorted(
                    f for f in dt_dir.iterdir()
                    if f.is_file() and f.name != MARKER and not f.name.startswith(".")
                )
                d = Delivery(city_dir.name, source_dir.name, dt, dt_dir, files, (dt_dir / MARKER).exists())
                (complete if d.complete else incomplete).append(d)
    return Discovery(complete, incomplete, ignored)

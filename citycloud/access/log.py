"""The access log: one JSON object per line for every login, logout, page view, export, API
request and refusal (spec: access.md, "The access log").

Each line is written by one `os.write` on a descriptor opened with O_APPEND: the kernel appends
it whole, so concurrent writers (dashboard sessions, API workers) never interleave and a killed
process leaves no half line. Nothing here accepts a token, a cookie or a secret: the callers pass
the identity claim, the role, the page or path and the city codes only.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Iterable

ACTIONS = ("login", "logout", "view", "export", "request", "denied")
SURFACES = ("dashboard", "api")
DETAIL_LIMIT = 300
FILE_NAME = "access_log.jsonl"


def default_log_path(warehouse: Path | str) -> Path:
    """`access_log.jsonl` beside the warehouse file."""
    return Path(warehouse).expanduser().resolve().parent / FILE_NAME


class AccessLog:
    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser().resolve()

    def record(self, *, surface: str, action: str, target: str, subject: str | None = None,
               role: str | None = None, cities: Iterable[str] = (), detail: str = "") -> dict:
        if action not in ACTIONS or surface not in SURFACES:
            raise ValueError(f"access log: unknown action {action!r} or surface {surface!r}")
        entry = {
            "ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "subject": subject,
            "role": role,
            "surface": surface,
            "action": action,
            "target": target,
            "cities": sorted({str(c) for c in cities}),
            "detail": str(detail or "")[:DETAIL_LIMIT],
        }
        data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, data)  # one write: appended whole
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(f"access log {self.path}: short write ({written} of {len(data)} bytes)")
        return entry

    def read(self) -> list[dict]:
        """Every complete line (for the admin's page)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

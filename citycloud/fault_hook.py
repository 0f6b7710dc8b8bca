"""A test hook for the fault-injection suite (tests/faults/): pause a writer at a named phase.

Only when CITYCLOUD_FAULT_PAUSE_AT names the phase: the process writes a marker file
(CITYCLOUD_FAULT_MARKER, a JSON object with its pid and the phase's details) and sleeps until
the test deletes the marker (then it goes on: e.g. after the test filled the disk) or kills it
at exactly that point. Without the variable every call is a no-op.
"""
from __future__ import annotations

import json
import os
import threading
import time

PAUSE_VARIABLE = "CITYCLOUD_FAULT_PAUSE_AT"
MARKER_VARIABLE = "CITYCLOUD_FAULT_MARKER"
_paused: set[str] = set()  # each phase pauses once per process (also when threads reach it at once)
_guard = threading.Lock()


def armed(phase: str) -> bool:
    return os.environ.get(PAUSE_VARIABLE) == phase and phase not in _paused


def pause_at(phase: str, **details: object) -> None:
    """Pause here if the test asked for `phase`, until it deletes the marker (or kills us)."""
    with _guard:
        if not armed(phase):
            return
        _paused.add(phase)
    marker = os.environ.get(MARKER_VARIABLE)
    if not marker:
        while True:
            time.sleep(3600)
    tmp = f"{marker}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"phase": phase, "pid": os.getpid(), **details}, f)
    os.replace(tmp, marker)  # the test never reads a half-written marker
    while os.path.exists(marker):
        time.sleep(0.05)

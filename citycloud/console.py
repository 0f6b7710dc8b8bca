"""What a command shows while it works: stage lines and progress bars on the terminal, every
line in a log file.

The pipeline reports progress as plain messages (`progress(message)`), some of them one per
step: a delivery ingested ("[12/107] 430100/ratings/dt=…"), a dbt node ("dbt 7 of 125 …"), a
generated day ("… (3/60) written"), a re-keyed delivery. Those steps become a progress bar on
a terminal and one count line when a stage ends; the other messages are printed as they come.
With `verbose`, every message is printed. The log file gets every message, always, with the
date and time, so the details are there after the fact without flooding the terminal.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# (stage, pattern with groups done/total): the per-step messages of each long stage.
_STEPS = (
    ("ingest", re.compile(r"^\[(\d+)/(\d+)\] ")),
    ("dbt", re.compile(r"^dbt (\d+) of (\d+) ")),
    ("generate", re.compile(r"^(\d{6}) .*\((\d+)/(\d+)\) written$")),
    ("re-key", re.compile(r"^re-keyed (\d+)/(\d+) deliveries$")),
)
_DBT_STATUS = re.compile(r"\[(\w+)[^\[\]]*\]$")   # "... [PASS in 0.03s]", "... [INSERT 5 in 0.13s]"
_DBT_TROUBLE = {"WARN", "ERROR", "FAIL"}


def _step(message: str) -> tuple[str, int, int] | None:
    """(stage, done, total) when the message is one step of a long stage."""
    for stage, pattern in _STEPS:
        if m := pattern.search(message):
            groups = m.groups()
            if stage == "generate":  # one bar per city: "310000 上海"
                return f"generate {message.split(':', 1)[0]}", int(groups[1]), int(groups[2])
            return stage, int(groups[0]), int(groups[1])
    return None


@dataclass
class _Stage:
    name: str
    total: int
    done: int = 0
    statuses: Counter = field(default_factory=Counter)
    task: int | None = None


class Reporter:
    """A `progress` callable for the pipeline; `close()` ends the bars and the log."""

    def __init__(self, log_path: Path | None, verbose: bool = False, command: str = "citycloud",
                 console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)
        self.verbose = verbose
        self.log_path = log_path
        self._log = None
        if log_path is not None:
            try:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = open(log_path, "a", encoding="utf-8")
                self._log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S %z')} {command}\n")
            except OSError as exc:  # a log we cannot write must not stop the work
                self.console.print(f"  NOTE no log file ({log_path}: {exc.strerror})", markup=False)
                self.log_path = None
        self._bars = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=self.console, transient=True)
        self._live = self.console.is_terminal and not verbose
        self._stage: _Stage | None = None

    # -- the progress callable ------------------------------------------------------------
    def __call__(self, message: str) -> None:
        self.log(message)
        step = _step(message)
        if self.verbose:
            self._print(message)
            return
        if step is None:
            self._end_stage()
            self._print(message)
            return
        stage, done, total = step
        if self._stage is None or self._stage.name != stage:
            self._end_stage()
            self._stage = _Stage(stage, total)
            if self._live:
                self._bars.start()
                self._stage.task = self._bars.add_task(stage, total=total)
        s = self._stage
        s.done = max(s.done, done)
        if stage == "dbt" and (status := _DBT_STATUS.search(message)):
            word = "OK" if status.group(1) == "INSERT" else status.group(1)
            s.statuses[word] += 1
            if word in _DBT_TROUBLE:
                self._print(message)  # a dbt warning or error is never only in the log
        if s.task is not None:
            self._bars.update(s.task, completed=s.done)

    def log(self, message: str) -> None:
        """Into the log file only. A log that cannot be written (a full disk) is given up with a
        note, never turned into the command's failure: the work itself reports its own errors."""
        if self._log is None:
            return
        try:
            self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
            self._log.flush()
        except OSError as exc:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None
            self.console.print(f"  NOTE log file {self.log_path} given up: {exc.strerror}", markup=False)
            self.log_path = None

    def detail(self, message: str) -> None:
        """A line shown only with --verbose (always logged)."""
        self.log(message)
        if self.verbose:
            self._print(message)

    def say(self, message: str) -> None:
        """A line always shown (and logged), without the time stamp's indentation rules."""
        self._end_stage()
        self.log(message)
        self.console.print(message, markup=False)

    def close(self) -> None:
        self._end_stage()
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None

    # -- internals ------------------------------------------------------------------------
    def _print(self, message: str) -> None:
        self.console.print(f"  {time.strftime('%H:%M:%S')} {message}", markup=False)

    def _end_stage(self) -> None:
        s, self._stage = self._stage, None
        if s is None:
            return
        if s.task is not None:
            self._bars.stop()
            self._bars.remove_task(s.task)
        if s.name == "ingest":
            return  # the ingest summary line follows at once
        counts = "".join(f", {n} {status}" for status, n in sorted(s.statuses.items()))
        self._print(f"{s.name}: {s.done} of {s.total} steps{counts}")


def log_file(folder: Path, command: str) -> Path:
    """Where a command's full log goes: <folder>/logs/<command>.log, appended run after run."""
    return Path(folder) / "logs" / f"{command}.log"

"""What a quality run returns: one `CheckResult` per expectation result, and the `QualityReport`."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

# The page operators open: self-contained (inline CSS, no scripts), so it reads the same
# offline, unlike GX's own index.html, whose styling and tables come from CDNs.
QUALITY_PAGE = "citycloud-quality.html"

BLOCKING = "blocking"
WARNING = "warning"
SEVERITIES = (BLOCKING, WARNING)


@dataclass
class CheckResult:
    """One expectation's verdict on one checked unit (a delivery, a city's day, a city, a table)."""

    suite: str
    expectation: str
    severity: str                  # 'blocking' | 'warning' (what a failure does)
    success: bool
    city_code: str | None = None
    day: date | None = None
    observed_value: str | None = None
    details: str = ""
    reason: str = ""               # why the check exists (from the suite file)
    suite_version: int | None = None
    waived: str | None = None      # waiver note when a blocking failure was waived (then severity is 'warning')

    @property
    def check(self) -> str:
        return f"{self.suite}.{self.expectation}"

    def where(self) -> str:
        parts = []
        if self.city_code:
            parts.append(f"city {self.city_code}")
        if self.day:
            parts.append(f"day {self.day.isoformat()}")
        return ", ".join(parts) if parts else "all cities"

    def __str__(self) -> str:
        verdict = "passed" if self.success else "FAILED"
        text = f"[{self.severity}] {self.check} {verdict} for {self.where()}"
        if self.details:
            text += f": {self.details}"
        return text


@dataclass
class QualityReport:
    run_id: str
    results: list[CheckResult] = field(default_factory=list)
    docs_index: Path | None = None
    seconds: float = 0.0
    suites: dict[str, int] = field(default_factory=dict)   # suite name → version checked
    since_batch: int = -1
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step: '<suite>.frame', '<suite>.gx', ...

    @property
    def blocking_failures(self) -> list[CheckResult]:
        """Failures that stop the run from publishing (each names the check, the city and the day)."""
        return [r for r in self.results if not r.success and r.severity == BLOCKING]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failures that are recorded and shown; the run goes on."""
        return [r for r in self.results if not r.success and r.severity == WARNING]

    @property
    def passed(self) -> bool:
        return not self.blocking_failures

    @property
    def page(self) -> Path | None:
        """The quality page to point people at (beside GX's Data Docs index)."""
        return self.docs_index.parent / QUALITY_PAGE if self.docs_index else None

    def warnings_by_check(self) -> list[tuple[str, int, CheckResult]]:
        """(check, number of warnings, first warning) per check, the most frequent first."""
        counts = Counter(r.check for r in self.warnings)
        first = {}
        for r in self.warnings:
            first.setdefault(r.check, r)
        return [(check, n, first[check]) for check, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def summary_line(self) -> str:
        checked = len(self.results)
        state = "no blocking failures" if self.passed else f"{len(self.blocking_failures)} BLOCKING failures"
        docs = f"; quality page {self.page}" if self.page else ""
        return (f"checks: {len(self.suites)} suites, {checked:,} results, {state}, "
                f"{len(self.warnings)} warnings, {self.seconds:.1f}s{docs}")

    def failure_lines(self, limit: int = 20) -> list[str]:
        """Blocking failures first, then warnings, one line each (for the CLI and logs)."""
        lines = [str(r) for r in self.blocking_failures + self.warnings]
        if len(lines) > limit:
            rest = len(lines) - limit
            lines = lines[:limit] + [f"... and {rest} more (see audit.quality_results run_id={self.run_id!r})"]
        return lines

"""HTML -> A4 PDF with Debian's headless Chromium (fonts-noto-cjk renders the Chinese text).

Chromium dies with the citycloud process that started it, even on SIGKILL: it is started
through util-linux's `setpriv --pdeathsig KILL` (Linux asks the kernel to kill it when its
parent dies), so no browser goes on writing PDFs after its scorecard is gone."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from citycloud import fault_hook
from citycloud.config import CitycloudError

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise CitycloudError("no headless Chromium found to print the PDF reports: run scripts/install_chromium.sh "
                         "(Debian's chromium and fonts-noto-cjk)")


def _dies_with_parent() -> list[str]:
    """The prefix that makes the command die with this process (Linux; util-linux is essential)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


def print_pdf(html: Path, pdf: Path, timeout: int = 120) -> Path:
    """Print `html` to `pdf` (page size from the page's CSS @page, A4 in our templates)."""
    pdf.unlink(missing_ok=True)
    # A profile of its own: two prints at once must not share (and lock) one profile directory.
    with tempfile.TemporaryDirectory(prefix="citycloud-chromium-") as profile:
        cmd = [*_dies_with_parent(), chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-pdf-header-footer", f"--user-data-dir={profile}",
               f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        fault_hook.pause_at("scorecard-print", chromium=proc.pid, pdf=str(pdf))
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise CitycloudError(f"chromium took over {timeout}s to print {html.name}: no report and no score "
                                 "was changed; make the scheme smaller (fewer schemes or indicators)") from None
    if proc.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        raise CitycloudError(f"chromium could not print {html.name} to PDF (exit {proc.returncode}): "
                             f"{' | '.join(tail)}; no report and no score was changed")
    return pdf

"""HTML -> A4 PDF with Debian's headless Chromium (fonts-noto-cjk renders the Chinese text)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from citycloud.config import CitycloudError

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise CitycloudError("no headless Chromium found to print the PDF reports: run scripts/install_chromium.sh "
                         "(Debian's chromium and fonts-noto-cjk)")


def print_pdf(html: Path, pdf: Path, timeout: int = 120) -> Path:
    """Print `html` to `pdf` (page size from the page's CSS @page, A4 in our templates)."""
    pdf.unlink(missing_ok=True)
    # A profile of its own: two prints at once must not share (and lock) one profile directory.
    with tempfile.TemporaryDirectory(prefix="citycloud-chromium-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-pdf-header-footer", f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CitycloudError(f"chromium took over {timeout}s to print {html}") from None
    if proc.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CitycloudError(f"chromium could not print {html} to PDF (exit {proc.returncode}): {' | '.join(tail)}")
    return pdf

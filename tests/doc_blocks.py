"""The shell block a doc marks to be run literally (docs/airflow.md, docs/extending.md): the tests
that replay a walkthrough read it from the doc itself, so the doc cannot drift from what works."""
from __future__ import annotations

import re
from pathlib import Path


def documented_block(doc: Path, marker: str) -> str:
    """The first ```bash block after `marker` in `doc`."""
    text = doc.read_text(encoding="utf-8")
    assert marker in text, f"{doc} lost its marked block"
    match = re.search(r"```bash\n(.*?)```", text.split(marker, 1)[1], re.S)
    assert match, "no ```bash block after the marker"
    return match.group(1)

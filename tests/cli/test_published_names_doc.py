"""The dbt docs' front page maps every published mart's build name to the name readers use."""
from __future__ import annotations

import re
from pathlib import Path

from citycloud.config import PUBLISHED_MARTS

OVERVIEW = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "overview.md"


def test_overview_lists_every_published_mart_under_both_names():
    text = OVERVIEW.read_text(encoding="utf-8")
    assert text.startswith("{% docs __overview__ %}") and text.rstrip().endswith("{% enddocs %}")
    rows = re.findall(r"^\| `marts_build\.(\w+)`(?: \(seed\))? \| `marts\.(\w+)` \|$", text, re.M)
    assert sorted(rows) == sorted((name, name) for name in PUBLISHED_MARTS)

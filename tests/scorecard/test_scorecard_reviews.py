"""The 好差评 indicators (reviews.md, scorecard.md): rectification_on_time and callback_rate are
scored like every indicator, from review_monthly's `all` row, on the worked example's tickets."""
from __future__ import annotations

from decimal import Decimal

import pytest

from citycloud.scorecard.service import score_month
from tests.conftest import copy_warehouse, query
from tests.scorecard.conftest import TODAY

pytestmark = pytest.mark.slow

SCHEME = """\
schemes:
  - scheme_id: REVIEWS
    cities: all
    start_month: 2026-01
    end_month: 2026-12
    indicators:
      - {indicator: rectification_on_time, weight: 0.5, target: 0.95}
      - {indicator: callback_rate, weight: 0.5, target: 0.9}
    grades:
      - {min_score: 60, grade: 合格}
      - {min_score: 0, grade: 不合格}
"""


def test_review_indicators_scored_from_review_monthly(tiny_warehouse, tmp_path):
    settings = copy_warehouse(tiny_warehouse, tmp_path)
    (tmp_path / "evaluation.yml").write_text(SCHEME, encoding="utf-8")
    score_month(settings, tmp_path / "evaluation.yml", "2026-02", None, today=TODAY)
    # February: 2 of 8 founded bad reviews on time (0.25), 3 of 8 real-name ones called back (0.375)
    assert query(settings.published, """
        SELECT indicator, dimension, value, score, no_data FROM marts.scorecard_indicators
        WHERE scheme_id = 'REVIEWS' ORDER BY indicator""") == [
        ("callback_rate", "results", 0.375, Decimal("41.7"), False),
        ("rectification_on_time", "results", 0.25, Decimal("26.3"), False)]
    # total = 0.5 × 41.7 + 0.5 × 26.3 = 34.0
    assert query(settings.published, "SELECT total_score, grade, results FROM marts.scorecard_monthly "
                                     "WHERE scheme_id = 'REVIEWS'") == [(Decimal("34.0"), "不合格", Decimal("34.0"))]

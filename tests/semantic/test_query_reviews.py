"""The 好差评 metrics (models/semantic/reviews_metrics.yml): `citycloud query` answers bad_reviews,
on_time_rate and callback_rate by month, equal to review_monthly's `all` row on the worked
example, and refuses a day or week (a month's rate is not a sum of days)."""
from __future__ import annotations

from datetime import date

import pytest

from citycloud import query
from citycloud.config import CitycloudError

pytestmark = pytest.mark.slow

METRICS = ("bad_reviews", "on_time_rate", "callback_rate")


def test_review_metrics_by_month_equal_the_mart(tiny_settings, tiny_registry):
    for name in METRICS:
        m = tiny_registry.metrics[name]
        assert m.label and m.label_en and m.periods == ("month",) and m.payable is False and m.grains == ()
    df = query.query(tiny_settings, query.QueryRequest(metrics=METRICS, grain="month"))
    rows = [(r[0], r[1].date(), *r[2:]) for r in df.itertuples(index=False)]
    # hand-computed (tests/data/tiny/expected/review_monthly.csv): 9 bad reviews, 2 of 8 on time, 3 of 8 called back
    assert rows == [("430100", date(2026, 2, 1), 9, 0.25, 0.375)]


@pytest.mark.parametrize("grain", ["day", "week"])
def test_review_rates_refuse_shorter_grains(tiny_settings, grain):
    with pytest.raises(CitycloudError, match=f"--grain {grain}"):
        query.query(tiny_settings, query.QueryRequest(metrics=("on_time_rate",), grain=grain))

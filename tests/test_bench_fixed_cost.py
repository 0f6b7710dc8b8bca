"""bench/fixed_cost.py: the timers it wraps around a run's pieces, and its report's rows
(issue #28, the fixed cost of a run). Nothing here times anything: the pieces are counted."""
from __future__ import annotations

from bench import fixed_cost


class _Loader:
    @classmethod
    def load(cls, n):
        return n + 1

    def work(self, n):
        return n * 2


def test_wrapped_pieces_count_calls_of_classmethods_and_methods_into_the_current_totals():
    book = {"totals": fixed_cost._new_totals()}
    fixed_cost._wrap(_Loader, "load", "load", book)
    fixed_cost._wrap(_Loader, "work", "work", book)
    assert _Loader.load(1) == 2 and _Loader().work(3) == 6 and _Loader().work(4) == 8
    first, book["totals"] = book["totals"], fixed_cost._new_totals()  # the warm run's own totals
    assert _Loader.load(5) == 6
    assert (first["load"]["calls"], first["work"]["calls"], book["totals"]["load"]["calls"]) == (1, 2, 1)
    assert "work" not in book["totals"]


def test_report_rows_show_the_first_and_the_warm_run():
    piece = {"seconds": 1.5, "cpu_s": 1.25, "calls": 2}
    res = {"finished_at": "2026-12-07T17:00:00+00:00", "machine": {"git": "abc"},
           "run": {"volume": 5000, "history_days": 30, "all_cpu_s": [16.6, 16.8], "process_wall_s": 20.0,
                   "cpu_own_s": 16.6, "peak_rss_bytes": 1024 ** 3, "cpu_others_s": 3.0, "loadavg": [1.0, 1.2],
                   "pieces": {"import Great Expectations": piece, "checks: GX validations": piece},
                   "warm_pieces": {"checks: GX validations": {"seconds": 0.5, "cpu_s": 0.25, "calls": 12}},
                   "dbt_nodes": {"test": {"nodes": 139, "seconds": 2.5}},
                   "warm_dbt_nodes": {"test": {"nodes": 139, "seconds": 2.0}}}}
    text = fixed_cost.markdown(res)
    assert "| import Great Expectations | 2 | 1.50 | 1.25 | – | – |" in text
    assert "| checks: GX validations | 2 | 1.50 | 1.25 | 0.50 | 0.25 |" in text
    assert "| test | 139 | 2.50 | 139 | 2.00 |" in text
    assert "**16.6 CPU s**" in text

"""Funnels and service paths (user_ops.md) on the worked example, run with tests/data/tiny/funnels.yml:
the published marts equal expected/{funnel_conversion,service_paths}.csv and an independent
recomputation in Python (journeys_reference.py) cell for cell; a rerun with nothing new changes no
table; a late event changes the periods it can touch and no earlier one. The marts read are the
session's day-by-day build of the worked example with this funnels.yml (tests/marts/conftest.py),
which tests/marts/test_incremental.py finds equal to a full rebuild."""
from __future__ import annotations

import csv
import shutil

import pytest

from citycloud import pipeline
from citycloud.funnels import load_funnels
from tests.conftest import TINY, make_settings, query, table_fingerprints, write_delivery
from tests.marts import journeys_reference as reference
from tests.marts.conftest import copy_tiny_day_by_day

pytestmark = pytest.mark.slow

FUNNELS = TINY / "funnels.yml"
FUNNEL_COLUMNS = ["step_label", "users", "conversion_from_start", "conversion_from_previous",
                  "median_seconds_from_previous", "window_complete"]


def _funnel_rows(warehouse) -> dict[tuple, dict]:
    rows = query(warehouse, f"SELECT city_code, funnel, grain, period_start, channel, step, {', '.join(FUNNEL_COLUMNS)} "
                            "FROM marts.funnel_conversion")
    return {tuple(r[:6]): dict(zip(FUNNEL_COLUMNS, r[6:])) for r in rows}


def _path_rows(warehouse) -> dict[tuple, tuple]:
    return {tuple(r[:4]): tuple(r[4:]) for r in
            query(warehouse, "SELECT city_code, month, from_service_id, to_service_id, steps, users FROM marts.service_paths")}


def _same(a: dict, b: dict) -> list:
    out = []
    for key in sorted(set(a) | set(b), key=str):
        if key not in a or key not in b:
            out.append((key, "row", key in a, key in b))
            continue
        for column, value in a[key].items():
            other = b[key][column]
            if isinstance(value, float) or isinstance(other, float):
                if (value is None) != (other is None) or (value is not None and abs(value - other) > 1e-9):
                    out.append((key, column, value, other))
            elif value != other:
                out.append((key, column, value, other))
    return out


@pytest.fixture(scope="module")
def built(tiny_day_by_day):
    """tests/marts/conftest.py: the worked example with FUNNELS, built day by day, then a whole
    run (published). Read only: the tests that run the pipeline again work on a copy."""
    return tiny_day_by_day[0]


def _text(value) -> str:
    return "" if value is None else ("true" if value is True else "false" if value is False else str(value))


def test_funnel_conversion_matches_expected_csv(built):
    expected = {tuple(r[k] for k in ("city_code", "funnel", "grain", "period_start", "channel", "step")): r
                for r in csv.DictReader((TINY / "expected" / "funnel_conversion.csv").open())}
    actual = {tuple(_text(v) for v in key): {c: v for c, v in row.items()} for key, row in _funnel_rows(built.published).items()}
    assert set(actual) == set(expected)
    for key, row in actual.items():
        for column, value in row.items():
            want = expected[key][column]
            if isinstance(value, float):
                assert abs(float(want) - value) <= 1e-9, (key, column)
            else:
                assert want == _text(value), (key, column)


def test_service_paths_match_expected_csv(built):
    expected = {(r["city_code"], r["month"], r["from_service_id"], r["to_service_id"]): (int(r["steps"]), int(r["users"]))
                for r in csv.DictReader((TINY / "expected" / "service_paths.csv").open())}
    assert {(c, str(m), f, t): v for (c, m, f, t), v in _path_rows(built.published).items()} == expected


def test_marts_equal_an_independent_recomputation(built):
    assert _same(_funnel_rows(built.published), reference.funnel_conversion(built.warehouse, load_funnels(FUNNELS))) == []
    assert _path_rows(built.published) == reference.service_paths(built.warehouse)


def test_rerun_with_nothing_new_changes_no_table(built, tmp_path):
    settings = copy_tiny_day_by_day(built, tmp_path)
    before = table_fingerprints(settings.warehouse)
    pipeline.run(settings)
    assert table_fingerprints(settings.warehouse) == before


def test_a_late_event_changes_only_the_periods_it_can_touch(built, tmp_path):
    settings = copy_tiny_day_by_day(built, tmp_path)
    before = _funnel_rows(settings.warehouse)
    # a new day (03-04) whose delivery holds a success of 02-20, two weeks late
    line = ('{"event_id": "A-late-1", "user_id": "U430100000057", "service_id": "S43000", '
            '"event_time": "2026-02-20T10:00:00", "channel": "ios", "outcome": "success", "duration_ms": 1000}\n')
    write_delivery(settings.landing, "430100", "service_access", "2026-03-04", {"part-0.jsonl": line})
    pipeline.run(settings)
    after = _funnel_rows(settings.warehouse)
    assert _same(after, reference.funnel_conversion(settings.warehouse, load_funnels(FUNNELS))) == []
    changed = {key[:4] for key in set(before) | set(after) if before.get(key) != after.get(key)}
    assert {k[1] for k in changed} == {"repeat_use"}  # U430100000057's first success moves to 02-20
    # a 7-day funnel: no week before the one of 02-20 - 7 days (02-09) changes
    assert not [k for k in changed if k[1] == "register_to_social_security" and str(k[3]) < "2026-02-09"]


def test_the_docs_example_adds_a_funnel_and_rebuilds_only_it(built, tmp_path):
    """docs/user_ops.md, "How to add a funnel", replayed on a copy of the worked example."""
    import re

    from citycloud.pipeline.cli import main

    text = (TINY.parents[2] / "docs" / "user_ops.md").read_text(encoding="utf-8")
    section = text.split("### How to add a funnel", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    funnels_file = tmp_path / "funnels.yml"
    funnels_file.write_text("\n".join(line.removeprefix("   ") for line in example.splitlines()), encoding="utf-8")
    settings = make_settings(tmp_path, built.landing)
    settings.funnels = funnels_file
    settings.warehouse.parent.mkdir(parents=True)
    shutil.copy(built.warehouse, settings.warehouse)
    before = _funnel_rows(built.warehouse)
    fingerprint = "SELECT DISTINCT definition_fingerprint FROM marts.funnel_conversion WHERE funnel = 'repeat_use'"
    assert pipeline.run(settings).published  # nothing new delivered: the changed funnels alone rebuild
    after = _funnel_rows(settings.warehouse)
    assert {k[1] for k in after} == {"repeat_use", "verified_social_security"}
    assert {k: v for k, v in after.items() if k[1] == "repeat_use"} == {k: v for k, v in before.items() if k[1] == "repeat_use"}
    assert query(settings.warehouse, fingerprint) == query(built.warehouse, fingerprint)
    assert _same(after, reference.funnel_conversion(settings.warehouse, load_funnels(funnels_file))) == []
    # citycloud query answers the step counts by period
    out = tmp_path / "steps.csv"
    assert main(["query", "--warehouse", str(settings.warehouse), "--metrics", "funnel_step_users",
                 "--grain", "month", "--by", "funnel_step", "--csv", str(out)]) == 0
    answered = {(r["period"], r["funnel_step"]): int(r["funnel_step_users"]) for r in csv.DictReader(out.open())}
    assert answered == {(str(k[3]), f"{k[1]}:{k[5]}"): v["users"] for k, v in after.items()
                        if k[2] == "month" and k[4] == "all"}
    assert answered  # the month of February is covered

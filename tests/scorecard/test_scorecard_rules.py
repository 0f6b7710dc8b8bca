"""evaluation.yml and assessments.yml: every rule of scorecard.md refused with scheme/entry, field and rule."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from citycloud.config import CitycloudError
from citycloud.scorecard.rules import (latest_assessments, load_assessments, load_schemes,
                                       unknown_city_problems)
from tests.conftest import TINY

INDICATORS = """\
    indicators:
      - {indicator: availability, weight: 0.6, target: 0.95}
      - {indicator: reliability, weight: 0.3, target: 1.0, day_threshold: 0.9}
      - {indicator: team, weight: 0.1, target: 100}
"""
GRADES = """\
    grades:
      - {min_score: 80, grade: 良好}
      - {min_score: 0, grade: 不合格}
"""


def scheme_file(tmp_path, *, head="    cities: all\n    start_month: 2026-01\n    end_month: 2026-12\n",
                indicators=INDICATORS, grades=GRADES):
    path = tmp_path / "evaluation.yml"
    path.write_text("schemes:\n  - scheme_id: S1\n" + head + indicators + grades, encoding="utf-8")
    return path


def refused(path, loader=load_schemes) -> str:
    with pytest.raises(CitycloudError) as info:
        loader(path)
    return str(info.value)


def test_the_worked_example_and_a_valid_scheme_load_with_exact_decimals(tmp_path):
    (scheme,) = load_schemes(scheme_file(tmp_path))
    assert [(t.indicator, t.weight, t.target, t.day_threshold) for t in scheme.indicators] == [
        ("availability", Decimal("0.6"), Decimal("0.95"), None), ("reliability", Decimal("0.3"), Decimal("1.0"),
                                                                  Decimal("0.9")), ("team", Decimal("0.1"), 100, None)]
    assert (scheme.grade_of(Decimal("80.0")), scheme.grade_of(Decimal("79.9"))) == ("良好", "不合格")
    assert load_schemes(TINY / "evaluation.yml")[0].scheme_id == "EVAL-TINY"


@pytest.mark.parametrize("indicators, message", [
    (INDICATORS.replace("weight: 0.6", "weight: 0.5"),
     "scheme S1: indicators.weight: weights must sum to 1 (within 1e-9), they sum to 0.9"),
    (INDICATORS.replace("weight: 0.6", "weight: 0.6000000001"), None),  # within 1e-9: accepted
    (INDICATORS.replace("weight: 0.6", "weight: 0.600000002"), "they sum to 1.000000002"),
    (INDICATORS.replace("availability", "uptime"), "scheme S1: indicators[1].indicator: unknown indicator 'uptime'"),
    (INDICATORS.replace("target: 0.95", "target: 0"), "scheme S1: indicators[1].target: must be above 0"),
    (INDICATORS.replace("target: 0.95", "target: -1"), "scheme S1: indicators[1].target: must be above 0"),
    (INDICATORS.replace(", day_threshold: 0.9", ""), "scheme S1: indicators[2].day_threshold: is required for reliability"),
    (INDICATORS.replace("target: 100}", "target: 100, day_threshold: 0.5}"),
     "scheme S1: indicators[3].day_threshold: only reliability takes a day_threshold"),
    (INDICATORS.replace("target: 100}", "target: 100, weigth: 1}"), "scheme S1: indicators[3].weigth: unknown field"),
    (INDICATORS.replace("team", "availability"), "scheme S1: indicators[3].indicator: availability is listed twice"),
])
def test_indicator_rules(tmp_path, indicators, message):
    path = scheme_file(tmp_path, indicators=indicators)
    if message is None:
        assert load_schemes(path)
    else:
        text = refused(path)
        assert message in text and "nothing was scored" in text


def test_month_range_backwards_and_no_grade_at_zero(tmp_path):
    text = refused(scheme_file(tmp_path, head="    cities: all\n    start_month: 2026-06\n    end_month: 2026-01\n",
                               grades=GRADES.replace("min_score: 0,", "min_score: 10,")))
    assert "scheme S1: start_month/end_month: the month range runs backwards: start_month 2026-06 is after end_month 2026-01" in text
    assert "scheme S1: grades: needs a grade at min_score 0" in text
    assert "(2 problems)" in text


@pytest.mark.parametrize("head, message", [
    ("    cities: all\n    start_month: 2026-01-01\n    end_month: 2026-12\n",
     "scheme S1: start_month: must be a month written YYYY-MM, e.g. 2026-02 (write the month, not a date)"),
    ("    cities: ['31000']\n    start_month: 2026-01\n    end_month: 2026-12\n",
     "scheme S1: cities[1]: must be a 6-digit city code, got '31000'"),
    ("    start_month: 2026-01\n    end_month: 2026-12\n", "scheme S1: cities: is required"),
    ("    cities: some\n    start_month: 2026-01\n    end_month: 2026-12\n",
     'scheme S1: cities: must be "all" or a non-empty list of 6-digit city codes, got \'some\''),
])
def test_scheme_fields(tmp_path, head, message):
    assert message in refused(scheme_file(tmp_path, head=head))


def test_alias_bomb_is_refused_short_without_expanding(tmp_path):
    lol = "\n".join(f'{c}: &{c} [{", ".join([f"*{p}"] * 9)}]' for p, c in zip("abcdefgh", "bcdefghi"))
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + lol + "\nschemes: [*i]\n"
    path = tmp_path / "evaluation.yml"
    path.write_text(bomb, encoding="utf-8")  # 420 bytes, 9**9 nodes if expanded
    text = refused(path)
    assert text == f"{path}: line 1: YAML anchors and aliases (& and *) are not allowed; write each value out"
    assert len(text) < 300


def test_duplicate_keys_and_yaml_syntax(tmp_path):
    path = tmp_path / "evaluation.yml"
    path.write_text("schemes: []\nschemes: []\n", encoding="utf-8")
    assert "line 2: duplicate key 'schemes'" in refused(path)
    path.write_text("schemes: [\n", encoding="utf-8")
    assert "not valid YAML" in refused(path)
    assert "file not found" in refused(tmp_path / "missing.yml")


def assessments_file(tmp_path, *lines: str):
    path = tmp_path / "assessments.yml"
    path.write_text("assessments:\n" + "".join(f"  - {{{line}}}\n" for line in lines), encoding="utf-8")
    return path


ENTRY = 'city_code: "430100", month: 2026-02, indicator: content, score: 80, evaluator: 刘洋, date: 2026-03-04, evidence: "抽查"'


@pytest.mark.parametrize("entry, message", [
    (ENTRY.replace("score: 80", "score: 100.1"), "assessment #1 (430100 2026-02 content): score: must be at least 0 and at most 100, got 100.1"),
    (ENTRY.replace("score: 80", "score: -1"), "score: must be at least 0"),
    (ENTRY.replace("content", "beauty"), "indicator: 'beauty' is unknown; assessed indicators: ease_of_use, team, content, mechanism"),
    (ENTRY.replace("content", "availability"), "indicator: 'availability' is a measured indicator"),
    (ENTRY.replace("evaluator: 刘洋, ", ""), "assessment #1 (430100 2026-02 content): evaluator: is required"),
    (ENTRY.replace('evidence: "抽查"', 'evidence: " "'), "evidence: is required: a non-empty text"),
    (ENTRY.replace(', evidence: "抽查"', ""), "assessment #1 (430100 2026-02 content): evidence: is required"),
    (ENTRY.replace("2026-03-04", "March 4"), "date: must be a date written YYYY-MM-DD"),
])
def test_assessment_rules(tmp_path, entry, message):
    text = refused(assessments_file(tmp_path, entry), load_assessments)
    assert message in text and "nothing was scored" in text


def test_latest_date_wins_and_a_tie_on_it_is_refused(tmp_path):
    later = ENTRY.replace("score: 80", "score: 86").replace("2026-03-04", "2026-03-10")
    entries = load_assessments(assessments_file(tmp_path, later, ENTRY))  # order in the file does not matter
    assert latest_assessments(entries)[("430100", "2026-02", "content")].score == 86
    tie = later.replace("score: 86", "score: 90")
    text = refused(assessments_file(tmp_path, ENTRY, later, tie), load_assessments)
    assert "assessment (430100 2026-02 content): date: 2 entries share the latest date 2026-03-10" in text
    # a tie on an older date is harmless: the latest entry decides
    assert load_assessments(assessments_file(tmp_path, ENTRY, ENTRY.replace("80", "81"), later))
    assert latest_assessments(load_assessments(TINY / "assessments.yml"))[("430100", "2026-02", "content")].date == date(2026, 3, 10)


def test_unknown_cities_need_the_warehouse(tmp_path):
    (scheme,) = load_schemes(scheme_file(tmp_path, head="    cities: ['430100', '999900']\n    start_month: 2026-01\n    end_month: 2026-12\n"))
    entries = load_assessments(assessments_file(tmp_path, ENTRY.replace("430100", "999901")))
    assert unknown_city_problems([scheme], entries, {"510100", "430100"}) == [
        "scheme S1: cities: unknown city 999900 (not in city_reference, no data in the warehouse; "
        "known: 430100, 510100)",
        "assessment (999901 2026-02 content): city_code: unknown city 999901 (not in city_reference, no data in "
        "the warehouse; known: 430100, 510100)"]


def test_the_demo_scheme_and_assessments_are_valid():
    root = TINY.parents[2]
    schemes = load_schemes(root / "contracts" / "evaluation.yml")
    assert [(s.scheme_id, s.cities) for s in schemes] == [("EVAL-2026", "all"), ("SH-CD-PILOT", ["310000", "510100"])]
    latest = latest_assessments(load_assessments(root / "contracts" / "assessments.yml"))
    assert latest[("510100", "2026-03", "content")].score == 80  # the later of two entries


def test_every_problem_of_a_scheme_is_listed_at_once(tmp_path):
    indicators = INDICATORS.replace("availability", "uptime").replace("weight: 0.6", "weight: 0.7")
    text = refused(scheme_file(tmp_path, head="    cities: all\n    start_month: 2026-06\n    end_month: 2026-01\n",
                               indicators=indicators))
    assert "(3 problems)" in text
    assert "scheme S1: indicators[1].indicator: unknown indicator 'uptime'" in text
    assert "scheme S1: indicators.weight: weights must sum to 1 (within 1e-9), they sum to 1.1" in text
    assert "scheme S1: start_month/end_month: the month range runs backwards" in text

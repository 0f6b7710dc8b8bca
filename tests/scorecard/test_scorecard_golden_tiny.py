"""Golden test: the worked example's February 2026 scorecard (expected/scorecard_*_2026-02.csv),
every indicator, score, grade, dimension score and rank; then the reports, read as a person would."""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
from datetime import date
from decimal import Decimal

import pytest

from citycloud.pipeline import cli
from citycloud.config import CitycloudError
from citycloud.scorecard.service import score_month
from tests.conftest import TINY, query, table_fingerprints
from tests.scorecard.conftest import TODAY

pytestmark = pytest.mark.slow
EXPECTED = TINY / "expected"


@pytest.fixture(scope="module")
def scored(tiny_warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("scorecard_reports")
    report = score_month(tiny_warehouse, TINY / "evaluation.yml", "2026-02", TINY / "assessments.yml",
                         out_dir=out, today=TODAY)
    return tiny_warehouse, report, out


def _same(expected: str, actual) -> bool:
    if expected == "":
        return actual is None
    if expected in ("true", "false"):
        return actual is (expected == "true")
    if actual is None:
        return False
    try:
        return abs(float(expected) - float(actual)) <= 1e-9
    except ValueError:
        return expected == actual


def _compare(rows: list[tuple], expected: list[dict], columns: list[str]) -> list:
    return [(e[columns[0]], e[columns[1]], e[columns[2]] if len(columns) > 2 else "", c, e[c], row[i])
            for e, row in zip(expected, rows) for i, c in enumerate(columns) if not _same(e[c], row[i])]


def test_indicators_match_expected_every_cell(scored):
    settings, _, _ = scored
    expected = list(csv.DictReader((EXPECTED / "scorecard_indicators_2026-02.csv").open(encoding="utf-8")))
    columns = list(expected[0])
    rows = query(settings.published, f"SELECT {', '.join(columns)} FROM marts.scorecard_indicators "
                                     "WHERE month = DATE '2026-02-01' ORDER BY scheme_id, city_code, indicator")
    assert len(rows) == len(expected) == 10
    assert _compare(rows, expected, columns) == []
    # scores keep their one decimal, as the CSV prints them
    assert [str(r[columns.index("score")]) for r in rows] == [e["score"] for e in expected]


def test_monthly_matches_expected_every_cell(scored):
    settings, report, _ = scored
    expected = list(csv.DictReader((EXPECTED / "scorecard_monthly_2026-02.csv").open(encoding="utf-8")))
    columns = list(expected[0])
    rows = query(settings.published, f"SELECT {', '.join(columns)} FROM marts.scorecard_monthly "
                                     "WHERE month = DATE '2026-02-01' ORDER BY scheme_id, city_code")
    assert rows == [("EVAL-TINY", "430100", Decimal("87.5"), "良好", Decimal("86.0"), None,
                     Decimal("88.1"), Decimal("86.3"), 1)]
    assert _compare(rows, expected, columns) == []
    assert (report.results[0].total, report.results[0].grade, report.results[0].rank) == (87.5, "良好", 1)


def test_scoring_the_month_again_leaves_the_same_rows(scored, tmp_path):
    settings, _, _ = scored
    before = table_fingerprints(settings.warehouse, schemas=("marts",))
    score_month(settings, TINY / "evaluation.yml", "2026-02", TINY / "assessments.yml", out_dir=tmp_path, today=TODAY)
    after = table_fingerprints(settings.warehouse, schemas=("marts",))  # scored_at included: nothing rewritten
    assert after == before
    assert query(settings.warehouse, "SELECT count(*) FROM marts.scorecard_indicators")[0][0] == 10


def test_january_is_refused_as_not_covered(scored, tmp_path):
    settings, _, _ = scored
    with pytest.raises(CitycloudError, match=r"430100: 2026-01 is not covered: marts.kpi_daily has 2 of 31 days"):
        score_month(settings, TINY / "evaluation.yml", "2026-01", TINY / "assessments.yml", out_dir=tmp_path, today=TODAY)
    # nothing written for January, February untouched
    assert query(settings.warehouse, "SELECT DISTINCT month FROM marts.scorecard_monthly") == [(date(2026, 2, 1),)]


def test_reports_print_with_chinese_text_and_are_not_blank(scored, tmp_path):
    _, report, out = scored
    names = sorted(p.name for p in (out / "2026-02").iterdir())
    assert names == ["430100_长沙_运营评价报告.html", "430100_长沙_运营评价报告.pdf",
                     "城市对比_comparison.html", "城市对比_comparison.pdf"]
    if not shutil.which("pdftoppm"):
        pytest.fail("pdftoppm missing: run scripts/install_chromium.sh (poppler-utils)")
    for pdf, must_read in (("430100_长沙_运营评价报告.pdf", ["长沙（430100）运营评价报告", "87.5", "良好", "运营团队", "无数据"]),
                           ("城市对比_comparison.pdf", ["城市运营评价对比", "长沙", "87.5"])):
        text = subprocess.run(["pdftotext", "-layout", str(out / "2026-02" / pdf), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert [w for w in must_read if w not in text] == []
        info = subprocess.run(["pdfinfo", str(out / "2026-02" / pdf)], capture_output=True, text=True, check=True).stdout
        assert "595.276 x 841.89 pts (A4)" in info or "(A4)" in info
        prefix = tmp_path / pdf.split("_")[0]
        subprocess.run(["pdftoppm", "-r", "40", "-gray", "-f", "1", "-l", "1", "-png", str(out / "2026-02" / pdf),
                        str(prefix)], check=True)
        png = next(tmp_path.glob(prefix.name + "*.png"))
        assert _ink(png) > 0.02, f"{png} looks blank"


def _pages(pdf) -> list[list[str]]:
    """The non-empty text lines of every page, as pdftotext reads them."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [[ln.strip() for ln in page.splitlines() if ln.strip()] for page in text.split("\f") if page.strip()]


def test_city_report_reads_as_finished(scored):
    """Weights as the dashboard shows them (15%), no_data as a label, no heading alone at a page's foot."""
    _, _, out = scored
    pages = _pages(out / "2026-02" / "430100_长沙_运营评价报告.pdf")
    text = "\n".join(ln for page in pages for ln in page)
    assert "no_data" not in text and "无数据 No data" in text
    weights = [w for ln in text.splitlines() if (w := re.findall(r"\b\d+(?:\.\d+)?%", ln))]
    assert "15%" in {w for ws in weights for w in ws} and "0.15" not in text
    headings = ("四个维度得分", "指标明细", "失分原因", "评估依据")
    assert [page[-1] for page in pages if page[-1].startswith(headings)] == []


def test_scoring_again_leaves_the_reports_byte_for_byte(scored):
    """A rerun on the same inputs (make demo twice) neither reprints nor rewrites a report."""
    settings, _, out = scored
    folder = out / "2026-02"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    score_month(settings, TINY / "evaluation.yml", "2026-02", TINY / "assessments.yml", out_dir=out, today=TODAY)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == before


def _ink(png) -> float:
    """Share of pixels that are not near-white on the page image."""
    from PIL import Image

    histogram = Image.open(png).convert("L").histogram()  # 256 grey levels
    return sum(histogram[:200]) / sum(histogram)


@pytest.mark.parametrize("bad, message", [
    ("weight: 0.15, target: 40}", "scheme EVAL-TINY: indicators.weight: weights must sum to 1"),
    ("{indicator: team,             weight: 0.05, target: 100}",
     "scheme EVAL-TINY: indicators[10].target: must be above 0"),
])
def test_cli_refuses_a_broken_scheme_writes_nothing_and_exits_non_zero(scored, tmp_path, capsys, bad, message):
    settings, _, _ = scored
    text = (TINY / "evaluation.yml").read_text(encoding="utf-8")
    broken = (text.replace(bad, "weight: 0.16, target: 40}", 1) if bad.startswith("weight")
              else text.replace(bad, "{indicator: team,             weight: 0.05, target: 0}"))
    assert broken != text
    scheme = tmp_path / "evaluation.yml"
    scheme.write_text(broken, encoding="utf-8")
    before = table_fingerprints(settings.warehouse, schemas=("marts",))
    snapshot = settings.published.stat().st_mtime_ns
    code = cli.main(["scorecard", "--warehouse", str(settings.warehouse), "--scheme", str(scheme), "--month", "2026-02",
                     "--assessments", str(TINY / "assessments.yml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert table_fingerprints(settings.warehouse, schemas=("marts",)) == before
    assert settings.published.stat().st_mtime_ns == snapshot
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_tie_in_assessments_and_writes_nothing(scored, tmp_path, capsys):
    settings, _, _ = scored
    text = (TINY / "assessments.yml").read_text(encoding="utf-8")
    tied = tmp_path / "assessments.yml"
    tied.write_text(text + '  - {city_code: "430100", month: 2026-02, indicator: content, score: 70, evaluator: 王敏, '
                           'date: 2026-03-10, evidence: "另一份复核"}\n', encoding="utf-8")
    before = table_fingerprints(settings.warehouse, schemas=("marts",))
    code = cli.main(["scorecard", "--warehouse", str(settings.warehouse), "--scheme", str(TINY / "evaluation.yml"),
                     "--assessments", str(tied), "--month", "2026-02", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "assessment (430100 2026-02 content): date: 2 entries share the latest date 2026-03-10" in err
    assert table_fingerprints(settings.warehouse, schemas=("marts",)) == before
    assert not (tmp_path / "out").exists()

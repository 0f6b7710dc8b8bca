"""`citycloud reviews`: the monthly 好差评 report of a city, run as a person runs it (the CLI in a
subprocess) on hand-made review marts (review_marts.py, counted by hand there), read back as a
reader would: the workbook's cells with openpyxl, the PDF's text with pdftotext, its pages as
images with pdftoppm."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))

import review_marts  # noqa: E402

CITYCLOUD = Path(sys.executable).with_name("citycloud")
STEM = "430100_长沙_好差评月报_2026-02"
HEADINGS = ("各渠道评价等级分布", "差评标签", "各部门差评与整改", "逾期未整改差评")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CITYCLOUD), "reviews", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviews-report")
    warehouse = review_marts.build_minimal(folder / "wh.duckdb")
    out = folder / "report"
    done = run("--warehouse", str(warehouse), "--city", "430100", "--month", "2026-02", "--out", str(out), cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return {"folder": folder, "warehouse": warehouse, "out": out, "stdout": done.stdout}


def _pages(pdf: Path) -> list[list[str]]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [[ln.strip() for ln in page.splitlines() if ln.strip()] for page in text.split("\f") if page.strip()]


def test_the_files_and_the_summary_line(made):
    assert sorted(p.name for p in made["out"].iterdir()) == [f"{STEM}.html", f"{STEM}.pdf", f"{STEM}.xlsx"]
    assert made["stdout"].startswith("reviews 430100 2026-02: 8 bad reviews, on-time rate 28.6%, call-back rate "
                                     "33.3%, 3 overdue (not settled yet); XLSX and PDF in ")


def test_workbook_cells(made):
    book = load_workbook(made["out"] / f"{STEM}.xlsx")
    assert book.sheetnames == ["概览 Summary", "渠道 Channels", "标签 Tags", "部门 Departments", "逾期 Overdue"]
    summary = book["概览 Summary"]
    assert summary["A1"].value == "好差评月报 Good/bad reviews — 长沙（430100）2026-02"
    headers = [c.value.split("\n")[-1] for c in summary[4]]
    row = dict(zip(headers, (c.value for c in summary[5])))
    assert row["ratings"] == 40 and row["bad_reviews"] == 8 and row["unfounded"] == 1
    assert (row["rectified_on_time"], row["rectified_late"], row["overdue_open"]) == (2, 1, 3)
    assert round(row["on_time_rate"], 4) == 0.2857 and round(row["callback_rate"], 4) == 0.3333
    assert summary.cell(row=5, column=headers.index("on_time_rate") + 1).number_format == "0.0%"
    assert (row["settled"], str(row["as_of_day"])[:10]) == ("否", "2026-03-10")
    assert summary["A4"].value == "评价数\nRatings\nratings"  # Chinese, English, the mart's column
    rows = lambda ws: [[c.value for c in r] for r in ws.iter_rows(min_row=5)]  # noqa: E731
    assert rows(book["渠道 Channels"]) == [
        ["微信小程序", 20, 12, 4, 1, 2, 1, 3], ["支付宝小程序", 12, 5, 3, 2, 1, 1, 2], ["网页", 6, 3, 1, 0, 1, 1, 2],
        ["未知渠道 unknown", 2, 0, 0, 1, 1, 0, 1], ["合计 Total", 40, 20, 8, 4, 5, 3, 8]]
    tags = rows(book["标签 Tags"])
    assert [r[:2] for r in tags] == [["办事效率", 3], ["指南不准", 1], ["服务态度", 1], ["流程繁琐", 1],
                                     ["系统故障", 1], ["未分类 untagged", 1]]
    assert tags[0][2] == 0.375
    departments = rows(book["部门 Departments"])
    assert [r[0] for r in departments] == ["市人社局", "市公安局", "<i>市医保局</i>", "未分派（无工单） unassigned"]
    assert departments[0][1:] == [3, 0, 1, 1, 1, 1 / 3, 2, 1, 0.5, 2]
    assert departments[1][6] == 0 and departments[1][9] is None  # no real-name bad review: no call-back rate
    overdue = [[v.date().isoformat() if hasattr(v, "date") else v for v in r] for r in rows(book["逾期 Overdue"])]
    assert overdue == [["市人社局", "T-0003", "2026-02-09", "2026-03-05", "open", 1],
                       ["市公安局", "T-0005", "2026-02-10", "2026-03-06", "unresolvable", 1],
                       ["未分派（无工单） unassigned", "无工单 no ticket", None, None, None, 1]]


def test_no_personal_data_nor_rating_ids(made):
    """Ticket ids only: no rating event id (EVT-…), in the workbook or the PDF."""
    book = load_workbook(made["out"] / f"{STEM}.xlsx")
    cells = [str(c.value) for ws in book.worksheets for r in ws.iter_rows() for c in r if c.value is not None]
    text = "\n".join(ln for page in _pages(made["out"] / f"{STEM}.pdf") for ln in page)
    assert not [c for c in cells if "EVT-" in c] and "EVT-" not in text


def test_pdf_reads_as_the_figures(made):
    pdf = made["out"] / f"{STEM}.pdf"
    pages = _pages(pdf)
    text = "\n".join(ln for page in pages for ln in page)
    must_read = ["长沙（430100）好差评月报", "2026年02月", "截至 As of 2026-03-10", "未定稿 Not settled",
                 "28.6%", "33.3%", "微信小程序", "未知渠道 unknown", "办事效率", "37.5%", "未分派（无工单） unassigned",
                 "<i>市医保局</i>", "T-0003（2026-03-05）", "T-0005（2026-03-06）", "无工单 no ticket × 1", "50.0%"]
    assert [w for w in must_read if w not in text] == []
    assert "T-0007" not in text  # open but not due yet: not overdue
    # the channel table: 微信小程序 20 ratings, 12 / 4 / 1 / 2 / 1 by grade, 3 bad
    assert re.search(r"微信小程序\s+20\s+12\s+4\s+1\s+2\s+1\s+3", text), text
    assert re.search(r"合计 Total\s+40\s+20\s+8\s+4\s+5\s+3\s+8", text), text
    # a heading never ends a page
    assert [page[-1] for page in pages if page[-1].startswith(HEADINGS)] == []


def test_pdf_pages_render(made, tmp_path):
    if not shutil.which("pdftoppm"):
        pytest.fail("pdftoppm missing: run scripts/install_chromium.sh (poppler-utils)")
    pdf = made["out"] / f"{STEM}.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "(A4)" in info
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    subprocess.run(["pdftoppm", "-r", "40", "-gray", "-png", str(pdf), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page*.png"))
    assert len(images) == pages >= 1
    from PIL import Image

    for png in images:
        histogram = Image.open(png).convert("L").histogram()
        assert sum(histogram[:200]) / sum(histogram) > 0.01, f"{png.name} looks blank"


def test_a_rerun_changes_no_byte_and_prints_nothing(made):
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in made["out"].iterdir()}
    done = run("--warehouse", str(made["warehouse"]), "--city", "430100", "--month", "2026-02", "--out",
               str(made["out"]), "--verbose", cwd=made["folder"])
    assert done.returncode == 0, done.stderr
    assert "PDF kept as it was" in done.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in made["out"].iterdir()} == before


def test_a_month_without_bad_reviews_and_the_default_folder(made):
    done = run("--warehouse", str(made["warehouse"]), "--city", "430100", "--month", "2026-01", cwd=made["folder"])
    assert done.returncode == 0, done.stderr
    folder = made["folder"] / "output" / "reviews" / "2026-01"
    assert sorted(p.suffix for p in folder.iterdir()) == [".html", ".pdf", ".xlsx"]
    text = "\n".join(ln for page in _pages(folder / "430100_长沙_好差评月报_2026-01.pdf") for ln in page)
    assert "已定稿 Settled" in text and "本月无差评 No bad review this month" in text
    assert "无逾期未整改差评 None overdue" in text


@pytest.mark.parametrize("city, month, message", [
    ("999999", "2026-02", "--city 999999: unknown city (known: "),
    ("430100", "2025-11", "city 430100 month 2025-11: no 好差评 figures in marts.review_monthly "
                          "(months with figures: 2026-02, 2026-01)"),
    ("430100", "2026-13", "--month must be YYYY-MM, e.g. 2026-02, got '2026-13'"),
    ("43010", "2026-02", "--city '43010': must be a 6-digit city code"),
])
def test_bad_input_is_one_line_and_writes_nothing(made, tmp_path, city, month, message):
    out = tmp_path / "nothing"
    done = run("--warehouse", str(made["warehouse"]), "--city", city, "--month", month, "--out", str(out),
               cwd=made["folder"])
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unknown_city_lists_the_known_ones(made, tmp_path):
    done = run("--warehouse", str(made["warehouse"]), "--city", "999999", "--month", "2026-02", cwd=made["folder"])
    assert "430100" in done.stderr and "310000" in done.stderr


def test_out_onto_the_warehouse_is_refused(made):
    done = run("--warehouse", str(made["warehouse"]), "--city", "430100", "--month", "2026-02", "--out",
               str(made["warehouse"]), cwd=made["folder"])
    assert done.returncode == 2 and "is the warehouse" in done.stderr and done.stderr.count("\n") == 1


def test_a_long_report_breaks_pages_as_a_reader_expects(made, tmp_path):
    """Haikou: 60 departments, 120 overdue tickets over several pages; every ticket id is there,
    no heading ends a page, no page is blank."""
    done = run("--warehouse", str(made["warehouse"]), "--city", "460100", "--month", "2026-02", "--out",
               str(tmp_path), cwd=made["folder"])
    assert done.returncode == 0, done.stderr
    (pdf,) = tmp_path.glob("*.pdf")
    pages = _pages(pdf)
    assert len(pages) >= 3
    text = "\n".join(ln for page in pages for ln in page)
    assert [t for t in (f"HK-{i:04d}" for i in range(120)) if t not in text] == []
    assert [page[-1] for page in pages if page[-1].startswith(HEADINGS)] == []
    assert [page for page in pages if len(page) < 3] == []  # no page holds only a stray line (a footnote)
    assert "海口市第59局" in text and "EVT-" not in text
    subprocess.run(["pdftoppm", "-r", "30", "-gray", "-png", str(pdf), str(tmp_path / "page")], check=True)
    from PIL import Image

    for png in sorted(tmp_path.glob("page*.png")):
        histogram = Image.open(png).convert("L").histogram()
        assert sum(histogram[:200]) / sum(histogram) > 0.001, f"{png.name} looks blank"  # a last page may hold one row

"""A generated multi-city landing area (late events, re-delivered duplicates, a re-exported
folder, deliveries withdrawn by an empty re-export) built on Spark (local[2]) and on DuckDB,
each in two runs: the same marts, cell for cell. `make test-spark` only (spark_full)."""
from __future__ import annotations

import gzip
import shutil
from datetime import date, timedelta

import pytest

from citycloud import pipeline
from citycloud.generate import generate
from tests.conftest import TEST_KEY, make_settings, query
from tests.spark.helpers import affected_partitions, differences, partition_files, published_marts, run_spark

if shutil.which("java") is None:
    pytest.skip("Java not installed: `make java`", allow_module_level=True)
pytestmark = [pytest.mark.spark, pytest.mark.spark_full, pytest.mark.slow, pytest.mark.timeout(5400)]
START, DAYS = date(2026, 1, 1), 35  # January complete: the monthly marts have rows
FIRST_RUN_END = START + timedelta(days=DAYS - 4)
REEXPORTED_DT = START + timedelta(days=9)
# Ratings of these days (late ones arrive up to 7 days on) are re-sent empty: their partitions empty.
EMPTIED_DTS = [START + timedelta(days=d) for d in range(14, 22)]


def reexport(landing, city: str) -> None:
    """The city sends one earlier service_access folder again, its last 20 rows left out."""
    folder = landing / city / "service_access" / f"dt={REEXPORTED_DT}"
    data = sorted(p for p in folder.iterdir() if not p.name.startswith("_"))[0]
    raw = data.read_bytes()
    text = gzip.decompress(raw) if data.name.endswith(".gz") else raw
    kept = b"".join(text.splitlines(keepends=True)[:-20])
    data.write_bytes(gzip.compress(kept, mtime=0) if data.name.endswith(".gz") else kept)


def withdraw_ratings(landing, city: str) -> None:
    """The city re-sends some earlier ratings folders with no rows in them."""
    for dt in EMPTIED_DTS:
        for data in (landing / city / "ratings" / f"dt={dt}").iterdir():
            if not data.name.startswith("_"):
                data.write_bytes(gzip.compress(b"", mtime=0) if data.name.endswith(".gz") else b"")


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spark_generated")
    generate(tmp / "generated", cities=3, start=START, days=DAYS, users=300, seed=5)
    city = sorted(p.name for p in (tmp / "generated").iterdir() if p.is_dir())[0]
    built = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYCLOUD_PII_KEY", TEST_KEY)
        for engine in ("duckdb", "spark"):
            shutil.copytree(tmp / "generated", tmp / engine / "landing")
            settings = make_settings(tmp / engine, tmp / engine / "landing")
            settings.engine = engine
            run = run_spark if engine == "spark" else (lambda s, **kw: pipeline.run(s, **kw).published)
            assert run(settings, end=FIRST_RUN_END)
            if engine == "spark":
                before = {table: partition_files(settings, "staging", table)
                          for table in ("stg_landing__service_access", "stg_landing__ratings")}
            reexport(settings.landing, city)
            withdraw_ratings(settings.landing, city)
            assert run(settings)
            built[engine] = settings
    return built, city, before


def test_second_run_had_late_events_and_a_reexport(both_engines):
    built, city, _ = both_engines
    removed = query(built["spark"].warehouse, "SELECT count(*) FROM audit.delivery_changes "
                    "WHERE batch_id = 2 AND change = 'removed' AND city_code = ? AND dt = ?", [city, REEXPORTED_DT])
    assert removed[0][0] > 0
    late = query(built["spark"].warehouse, "SELECT count(*) FROM audit.delivery_changes "
                 "WHERE batch_id = 2 AND change = 'added' AND event_day < ?", [FIRST_RUN_END])
    assert late[0][0] > 0


def test_spark_and_duckdb_marts_equal_cell_for_cell(both_engines):
    built, _, _ = both_engines
    duck = published_marts(built["duckdb"])
    assert duck["kpi_monthly"][1] and duck["retention_monthly"][1] and duck["user_lifecycle"][1]
    assert differences(duck, published_marts(built["spark"])) == []


def test_late_events_and_the_reexport_rewrite_only_the_partitions_they_touch(both_engines):
    built, _, before = both_engines
    touched = affected_partitions(built["spark"], batch_id=2)
    before = before["stg_landing__service_access"]
    after = partition_files(built["spark"], "staging", "stg_landing__service_access")
    untouched = set(before) - touched
    assert untouched and touched & set(before), "the second run must touch some old partitions and not others"
    assert {p: after[p] for p in untouched} == {p: before[p] for p in untouched}
    assert all(after.get(p) != before.get(p) for p in touched)


def test_a_day_whose_rows_were_all_withdrawn_loses_its_partition(both_engines):
    built, city, before = both_engines
    days = query(built["duckdb"].warehouse, "SELECT DISTINCT city_code, event_day FROM staging.stg_landing__ratings")
    after = partition_files(built["spark"], "staging", "stg_landing__ratings")
    assert set(after) == {f"city_code={c}/event_day={d}" for c, d in days}
    emptied = set(before["stg_landing__ratings"]) - set(after)
    assert emptied and all(p.startswith(f"city_code={city}/") for p in emptied)

"""citycloud generate: layout, determinism, dirt (present when asked, absent when not), volumes.

The landing area is read back here with a small, independent reader of landing.md."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from citycloud.config import CitycloudError
from citycloud.generate import CITIES, generate, id_number_ok, phone_ok

START = dt.date(2026, 1, 1)
DAYS = 20
SH = dt.timezone(dt.timedelta(hours=8))
FLOOR = dt.datetime(2015, 1, 1, tzinfo=SH)
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?")
CHANNELS = {"ios", "android", "alipay_mini", "wechat_mini", "web"}
REQUIRED = {
    "registrations": ("event_id", "event_type", "user_id", "event_time"),
    "service_access": ("event_id", "service_id", "event_time", "outcome"),
    "ratings": ("event_id", "service_id", "score", "event_time"),
    "service_catalog": ("service_id", "online_date"),
    "review_tickets": ("ticket_id", "rating_event_id", "department", "opened_at", "status", "updated_at",
                       "called_back"),
}
TICKET_TIMES = ("opened_at", "updated_at", "rectified_at", "replied_at")
REG_COLUMNS = ["event_id", "event_type", "user_id", "event_time", "channel", "phone", "id_number", "auth_level",
               "district_code"]


# ----------------------------------------------------------------------------- a reader of landing.md
def parse_ts(value, epoch_ok: bool):
    """(form, aware datetime) or raise ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError("not a timestamp")
    if isinstance(value, int):
        if not epoch_ok:
            raise ValueError("epoch not allowed")
        return "epoch_ms", dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    if not isinstance(value, str) or not TS_RE.fullmatch(value):
        raise ValueError("unparseable")
    t = dt.datetime.fromisoformat(value)
    form = "Z" if value.endswith("Z") else "offset" if t.tzinfo else ("naive_T" if "T" in value else "naive_space")
    return form, t if t.tzinfo else t.replace(tzinfo=SH)


def check_row(source: str, row: dict, dt_day: dt.date) -> tuple[str | None, str | None]:
    """(reject reason or None, timestamp form)."""
    for key in REQUIRED[source]:
        if row.get(key) in (None, ""):
            return "missing_field", None
    if source == "review_tickets":
        return check_ticket(row, dt_day), None
    if source == "service_catalog":
        try:
            dt.date.fromisoformat(row["online_date"])
        except ValueError:
            return "bad_date", None
        return None, None
    try:
        form, ts = parse_ts(row["event_time"], source == "service_access")
    except ValueError:
        return "bad_timestamp", None
    if ts >= dt.datetime.combine(dt_day + dt.timedelta(days=1), dt.time(), SH):
        return "after_delivery_day", form
    if ts < FLOOR:
        return "before_2015", form
    if source == "registrations":
        if row["event_type"] not in ("register", "verify", "cancel"):
            return "unknown_event_type", form
        if row.get("auth_level") not in (None, "", "0", "1", "2", "3"):
            return "bad_auth_level", form
    if source == "service_access" and row["outcome"] not in ("success", "failure", "timeout"):
        return "unknown_outcome", form
    if source == "ratings" and (not isinstance(row["score"], int) or not 1 <= row["score"] <= 5):
        return "bad_score", form
    return None, form


def check_ticket(row: dict, dt_day: dt.date) -> str | None:
    """reviews.md: no epoch numbers, called_back a JSON boolean, rectified_at when rectified."""
    for key in TICKET_TIMES:
        if row.get(key) is not None:
            try:
                _, ts = parse_ts(row[key], False)
            except ValueError:
                return "bad_timestamp"
            if ts >= dt.datetime.combine(dt_day + dt.timedelta(days=1), dt.time(), SH) or ts < FLOOR:
                return "bad_timestamp"  # never generated: the reader only needs to notice
    if not isinstance(row["called_back"], bool):
        return "bad_called_back"
    if row["status"] not in ("open", "rectified", "unresolvable", "appeal_upheld"):
        return "bad_status"
    if row["status"] == "rectified" and not row.get("rectified_at"):
        return "missing_rectified_at"
    return None


class Area:
    """Everything in a landing area, read as the contract says."""

    def __init__(self, root: Path, complete_only: bool = False):
        self.root = root
        self.folders = {}                      # (city, source, dt) -> complete?
        self.file_errors = {}                  # relative path -> reason
        self.rejects = Counter()               # (source, reason)
        self.rows = defaultdict(list)          # (city, source) -> [(dt, file, row, form)]
        self.headers = defaultdict(list)       # (city, source) -> [header of each CSV file]
        for folder in sorted(root.glob("*/*/dt=*")):
            city, source, part = folder.relative_to(root).parts
            day = dt.date.fromisoformat(part[3:])
            self.folders[(city, source, day)] = (folder / "_SUCCESS").exists()
            if complete_only and not self.folders[(city, source, day)]:
                continue
            for f in sorted(p for p in folder.iterdir() if p.name != "_SUCCESS"):
                self._read(city, source, day, f)

    def _read(self, city, source, day, f: Path):
        rel = str(f.relative_to(self.root))
        data = f.read_bytes()
        if f.name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (EOFError, OSError, zlib.error) as exc:
                self.file_errors[rel] = f"gzip: {exc}"
                return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.file_errors[rel] = "not utf-8"
            return
        if ".csv" in f.name:
            reader = csv.DictReader(io.StringIO(text))
            header = reader.fieldnames or []
            if not set(REQUIRED[source]) <= set(header):
                self.file_errors[rel] = "missing header"
                return
            self.headers[(city, source)].append(header)
            items = [{k: (v if v != "" else None) for k, v in r.items()} for r in reader]
        else:
            items = []
            for line in text.splitlines():
                try:
                    items.append(json.loads(line))
                except ValueError:
                    self.rejects[(source, "malformed_json")] += 1
        for row in items:
            reason, form = check_row(source, row, day)
            if reason:
                self.rejects[(source, reason)] += 1
            else:
                self.rows[(city, source)].append((day, rel, row, form))

    def events(self, city, source):
        return [r for _d, _f, r, _ in self.rows[(city, source)]]


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    summary = generate(out, cities=2, start=START, days=DAYS, users=400, seed=7)
    return summary, Area(out)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    summary = generate(out, cities=2, start=START, days=DAYS, users=400, seed=7, dirt=False)
    return summary, Area(out)


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs", [dict(cities=0), dict(cities=6), dict(days=0), dict(users=0), dict(seed=-1),
                                    dict(accesses_per_day=-5), dict(start="2026-01-01")])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(CitycloudError):
        generate(tmp_path / "x", **kwargs)


def test_refuses_to_mix_with_existing_area_unless_overwrite(tmp_path):
    first = generate(tmp_path, cities=1, days=1, users=20, seed=1)
    (tmp_path / "310000" / "stale.txt").write_text("old")
    with pytest.raises(CitycloudError, match="overwrite"):
        generate(tmp_path, cities=1, days=1, users=20, seed=1)
    again = generate(tmp_path, cities=1, days=1, users=20, seed=1, overwrite=True)
    assert not (tmp_path / "310000" / "stale.txt").exists()
    assert again["rows"] == first["rows"]


def test_cities_constant():
    assert list(CITIES) == ["310000", "510100", "430100", "411700", "460100"]
    assert CITIES["310000"] == "上海" and CITIES["460100"] == "海口"


# ----------------------------------------------------------------------------- layout and determinism
def test_layout_and_success_markers(dirty, clean):
    for (summary, area), dirt in ((dirty, True), (clean, False)):
        assert summary["cities"] == ["310000", "510100"]
        assert {p.name for p in area.root.iterdir()} == {"310000", "510100"}
        end = START + dt.timedelta(days=DAYS - 1)
        for (city, source, day), complete in area.folders.items():
            assert source in REQUIRED and START <= day <= end
        for city in summary["cities"]:
            for source in ("registrations", "service_access", "ratings", "review_tickets"):
                days = sorted(d for c, s, d in area.folders if (c, s) == (city, source))
                assert days == [START + dt.timedelta(days=i) for i in range(DAYS)]
            catalog = sorted(d for c, s, d in area.folders if (c, s) == (city, "service_catalog"))
            assert catalog[0] == START and 2 <= len(catalog) < DAYS  # not delivered every day
        incomplete = [k for k, ok in area.folders.items() if not ok]
        if dirt:
            assert len(incomplete) == 1 and incomplete[0][2] == end  # the last day is still being written
            assert summary["incomplete"] == [f"{incomplete[0][0]}/{incomplete[0][1]}/dt={end}"]
        else:
            assert incomplete == [] and summary["incomplete"] == []
        sa = [f for f in area.root.glob("*/service_access/dt=*/*") if f.name != "_SUCCESS"]
        assert any(f.name.endswith(".jsonl") for f in sa) and any(f.name.endswith(".jsonl.gz") for f in sa)
        for f in area.root.rglob("*.gz"):
            head = f.read_bytes()[:10]
            assert head[4:8] == b"\0\0\0\0" and not head[3] & 0x08  # mtime 0, no file name


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kwargs = dict(cities=2, days=3, users=60, accesses_per_day=500)
    said = []
    generate(tmp_path / "a", seed=3, progress=said.append, **kwargs)
    generate(tmp_path / "b", seed=3, **kwargs)
    assert any("dt=2026-01-03 (3/3)" in m for m in said) and said[-1].startswith("generated ")
    generate(tmp_path / "c", seed=4, **kwargs)
    a, b, c = (tree_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c and set(a) & set(c)


# ----------------------------------------------------------------------------- dirt
def test_every_bad_row_reason_is_present_when_dirty(dirty):
    _, area = dirty
    expected = {
        "registrations": {"missing_field", "bad_timestamp", "unknown_event_type", "after_delivery_day",
                          "before_2015", "bad_auth_level"},
        "service_access": {"missing_field", "bad_timestamp", "unknown_outcome", "after_delivery_day",
                           "before_2015", "malformed_json"},
        "ratings": {"missing_field", "bad_timestamp", "bad_score", "after_delivery_day", "before_2015",
                    "malformed_json"},
        "service_catalog": {"missing_field", "bad_date"},
        "review_tickets": {"missing_field", "bad_timestamp", "bad_called_back", "missing_rectified_at",
                           "malformed_json"},
    }
    for source, reasons in expected.items():
        assert {r for s, r in area.rejects if s == source} == reasons, source


def test_unreadable_files_when_dirty(dirty):
    _, area = dirty
    reasons = sorted(area.file_errors.values())
    assert len(reasons) == 3, area.file_errors
    assert any(r.startswith("gzip") for r in reasons)
    assert "not utf-8" in reasons and "missing header" in reasons
    gz = next(p for p, r in area.file_errors.items() if r.startswith("gzip"))
    assert "/service_access/" in gz
    legacy = next(p for p, r in area.file_errors.items() if r == "not utf-8")
    text = (area.root / legacy).read_bytes().decode("gb18030")  # a legacy export, readable as GB18030
    assert "event_id" in text.splitlines()[0]


def test_summary_tells_what_a_reader_sets_aside(dirty):
    summary, area = dirty
    ingestible = Area(area.root, complete_only=True)
    counted = defaultdict(dict)
    for (source, reason), n in ingestible.rejects.items():
        counted[source][reason] = n
    assert summary["bad_rows"] == dict(counted)
    assert set(summary["unreadable"]) == set(area.file_errors)


def test_schema_drift_and_flagging_dirt(dirty):
    _, area = dirty
    headers = [h for (c, s), hs in area.headers.items() if s == "registrations" for h in hs]
    assert any(set(h) - set(REG_COLUMNS) for h in headers)                     # extra columns
    assert any(set(h) == set(REG_COLUMNS) and h != REG_COLUMNS for h in headers)  # other order
    assert any("handling_mode" in h for (c, s), hs in area.headers.items() if s == "service_catalog" for h in hs)
    for city in ("310000", "510100"):
        regs = area.events(city, "registrations")
        assert any(r["phone"] and not phone_ok(r["phone"]) for r in regs)
        assert any(r["id_number"] and not id_number_ok(r["id_number"]) for r in regs)
        for source in ("registrations", "service_access"):
            assert any(r.get("channel") and r["channel"] not in CHANNELS for r in area.events(city, source))
        for source in ("service_access", "ratings"):
            assert unknown_services(area, city, source) and unknown_users(area, city, source), (city, source)


def unknown_services(area, city, source):
    catalog = {r["service_id"] for r in area.events(city, "service_catalog")}
    return {r["service_id"] for r in area.events(city, source)} - catalog


def unknown_users(area, city, source):
    users = {r["user_id"] for r in area.events(city, "registrations")}
    return {r["user_id"] for r in area.events(city, source) if r.get("user_id")} - users


def test_clean_has_no_dirt(clean):
    _, area = clean
    assert not area.rejects and not area.file_errors
    assert all(area.folders.values())
    for (city, source), hs in area.headers.items():
        cols = REG_COLUMNS if source == "registrations" else hs[0]
        assert all(h == cols for h in hs)
    assert not list(area.root.rglob("*.csv")) or all(not p.read_bytes().startswith(b"\xef\xbb\xbf")
                                                     for p in area.root.rglob("*.csv"))
    for city in ("310000", "510100"):
        regs = area.events(city, "registrations")
        assert all(phone_ok(r["phone"]) for r in regs if r["phone"])
        assert all(id_number_ok(r["id_number"]) for r in regs if r["id_number"])
        assert sum(1 for r in regs if r["id_number"]) > 50
        for source in ("registrations", "service_access"):
            assert all(r["channel"] in CHANNELS for r in area.events(city, source))
        for source in ("service_access", "ratings"):
            assert not unknown_services(area, city, source) and not unknown_users(area, city, source)


# ----------------------------------------------------------------------------- event semantics
@pytest.mark.parametrize("which", ["dirty", "clean"])
def test_duplicates_keep_id_time_and_content(which, request):
    _, area = request.getfixturevalue(which)
    for (city, source), rows in area.rows.items():
        if source in ("service_catalog", "review_tickets"):  # snapshots; versions (tests/reviews)
            continue
        seen, within, across = {}, 0, 0
        for day, rel, row, _ in rows:
            key = row["event_id"]
            if key in seen:
                first_day, first_rel, first = seen[key]
                if source == "registrations":  # extra columns may differ between files
                    first, row = ({k: r.get(k) for k in REG_COLUMNS} for r in (first, row))
                assert row == first, (city, source, key)
                within += first_rel == rel
                across += first_day != day
            else:
                seen[key] = (day, rel, row)
        assert within and across, (city, source)


@pytest.mark.parametrize("which", ["dirty", "clean"])
def test_late_events(which, request):
    _, area = request.getfixturevalue(which)
    for (city, source), rows in area.rows.items():
        if source in ("service_catalog", "review_tickets"):
            continue
        lateness = Counter()
        for day, rel, row, _ in rows:
            if "initial_load" in rel:
                continue
            event_day = parse_ts(row["event_time"], True)[1].astimezone(SH).date()
            lateness[(day - event_day).days] += 1
        assert min(lateness) >= 0
        if sum(lateness.values()) > 100:
            assert lateness[0] > 5 * sum(v for k, v in lateness.items() if k > 0)  # mostly on time
        assert any(1 <= k <= 7 for k in lateness), (city, source, lateness)
        assert any(k >= 14 for k in lateness), (city, source, lateness)  # now and then weeks late


def test_registration_history(dirty):
    _, area = dirty
    for city in ("310000", "510100"):
        rows = area.rows[(city, "registrations")]
        initial = [r for d, rel, r, _ in rows if "initial_load" in rel]
        assert initial and all(d == START for d, rel, _, _ in rows if "initial_load" in rel)
        years = {parse_ts(r["event_time"], False)[1].year for r in initial}
        assert min(years) <= 2020 and len(years) >= 5  # years back, since the platform opened
        types = Counter(r["event_type"] for r in initial)
        assert types["register"] > types["verify"] > types["cancel"] > 0
        assert {r["auth_level"] for r in initial if r["event_type"] == "verify"} <= {"1", "2", "3"}
        by_user = defaultdict(list)
        for _, _, r, _ in rows:
            by_user[r["user_id"]].append((r["event_time"], r["event_type"]))
        same_instant = [u for u, ev in by_user.items()
                        if {(parse_ts(t, False)[1], "cancel") for t, e in ev if e == "cancel"}
                        & {(parse_ts(t, False)[1], "cancel") for t, e in ev if e == "register"}]
        assert same_instant, city
        assert any(sum(e == "register" for _, e in ev) >= 2 for ev in by_user.values())  # re-registered
        assert all(re.fullmatch(rf"U{city}\d{{6,}}", u) for u in by_user)


def test_access_shape(dirty):
    _, area = dirty
    rows = area.rows[("310000", "service_access")]
    forms = Counter(form for *_, form in rows)
    assert set(forms) == {"offset", "Z", "naive_T", "naive_space", "epoch_ms"}
    events = [r for _, _, r, _ in rows]
    assert 0.05 < sum(r["user_id"] is None for r in events) / len(events) < 0.25     # anonymous
    outcomes = Counter(r["outcome"] for r in events)
    assert outcomes["success"] > 0.8 * len(events) and outcomes["failure"] and outcomes["timeout"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", r["client_ip"]) for r in events)
    per_service = sorted(Counter(r["service_id"] for r in events).values(), reverse=True)
    top = per_service[: max(1, len(per_service) // 10)]
    assert sum(top) > 0.4 * sum(per_service)  # long tail
    ids = {}
    for r in events:
        assert ids.setdefault(r["event_id"], r) == r  # one id, one event
    scores = Counter(r["score"] for r in area.events("310000", "ratings"))
    assert scores[5] + scores[4] > 2 * (scores[1] + scores[2])  # skewed positive
    comments = [r["comment"] for r in area.events("310000", "ratings") if r["comment"]]
    assert comments and any(re.search(r"1[3-9]\d{9}", c) for c in comments)
    catalog = area.events("310000", "service_catalog")
    assert any(r["offline_date"] for r in catalog)
    assert any(r["service_name"] == "社保卡办理" and r["department"] == "市人社局" and r["category"] == "社保"
               for r in catalog)


def test_volumes(tmp_path, dirty):
    summary = generate(tmp_path, cities=1, days=2, users=50, accesses_per_day=20_000, seed=5)
    area = Area(tmp_path)
    for day in (START, START + dt.timedelta(days=1)):
        n = sum(1 for d, *_ in area.rows[("310000", "service_access")] if d == day)
        assert 20_000 <= n <= 20_400
    assert summary["rows"]["service_access"] >= 40_000
    parts = {f.name for f in tmp_path.glob("310000/service_access/dt=2026-01-01/*")}
    assert len(parts - {"_SUCCESS"}) >= 2
    # Default volume follows the user base, Shanghai biggest.
    s, area = dirty
    sh, cd = (len(area.events(c, "service_access")) for c in ("310000", "510100"))
    assert 0.2 * 400 * DAYS < sh < 0.8 * 400 * DAYS and cd < sh

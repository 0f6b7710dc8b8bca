"""Fixtures for the access tests: the provider, the secrets, the 5-city warehouse (with a
scorecard of all five), access.yml, the dashboard served with --access."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import access_support as support  # noqa: E402
import dashboard_fivecities as fivecities  # noqa: E402
from dashboard_browser import Browser, chromium_path  # noqa: E402
from dashboard_support import Dashboard  # noqa: E402

from citycloud.config import published_path  # noqa: E402
from citycloud.scorecard.store import COLUMNS  # noqa: E402

FEB = dt.date(2026, 2, 1)
# city, total, grade, rank: a ranking of all five (Changsha 3rd of 5, Chengdu 2nd)
SCORES = [("310000", 91.0, "优秀", 1), ("510100", 85.5, "良好", 2), ("430100", 80.0, "良好", 3),
          ("411700", 70.0, "合格", 4), ("460100", 60.0, "合格", 5)]


@pytest.fixture(scope="session")
def provider(tmp_path_factory):
    p = support.Provider(tmp_path_factory.mktemp("provider") / "provider.log")
    yield p
    p.stop()


@pytest.fixture(scope="session")
def secret_env():
    return support.secret_env()


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    """Every folder the access tests write to (the secrets test searches them all)."""
    return []


@pytest.fixture(scope="session")
def five(tmp_path_factory, written):
    folder = tmp_path_factory.mktemp("access-five")
    written.append(folder)
    facts = fivecities.build(folder / "wh.duckdb")
    con = duckdb.connect(str(published_path(facts["warehouse"] if "warehouse" in facts else folder / "wh.duckdb")))
    try:
        for table, columns in COLUMNS.items():
            con.execute(f"CREATE TABLE marts.{table} ({columns})")
        con.executemany("INSERT INTO marts.scorecard_monthly VALUES (?, ?, 'EVAL-ALL', ?, ?, ?, NULL, ?, ?, ?, now())",
                        [(c, FEB, t, g, t, t, t, r) for c, t, g, r in SCORES])
        con.executemany("INSERT INTO marts.scorecard_indicators VALUES "
                        "(?, ?, 'EVAL-ALL', 'availability', 'capability', 0.9, 0.95, 1.0, ?, false, NULL, NULL, NULL, now())",
                        [(c, FEB, t) for c, t, _, _ in SCORES])
    finally:
        con.close()
    return {**facts, "warehouse": folder / "wh.duckdb", "folder": folder}


@pytest.fixture(scope="session")
def access_path(tmp_path_factory, provider, written):
    folder = tmp_path_factory.mktemp("access-config")
    written.append(folder)
    return support.write_access(folder / "access.yml", provider)


@pytest.fixture(scope="session")
def served(five, access_path, secret_env, tmp_path_factory, written):
    """The dashboard with login (--access), its access log in its own folder."""
    folder = tmp_path_factory.mktemp("access-dashboard")
    written.append(folder)
    log = folder / "access_log.jsonl"
    d = Dashboard(five["warehouse"], folder / "streamlit.log",
                  extra=["--access", str(access_path), "--access-log", str(log)], env=secret_env)
    d.access_log = log
    yield d
    d.stop()


@pytest.fixture
def person():
    """A fresh headless Chromium per person (its own cookies)."""
    if not chromium_path():
        pytest.fail("chromium is not installed: run `make browser` (or scripts/install_chromium.sh)")
    browsers = []

    def make() -> Browser:
        b = Browser(width=1440, height=1000)
        browsers.append(b)
        return b
    yield make
    for b in browsers:
        b.close()


@pytest.fixture(scope="session")
def generated(generated_built, written):
    """The session's real 3-city warehouse (310000, 430100, 510100; tests/conftest.py, built
    through the whole pipeline from a generated landing area): the semantic layer (`citycloud
    query`) answers from its snapshot. The api only reads it; its folder is searched for secrets
    with the others the access tests write to."""
    written.append(generated_built.warehouse.parent.parent)
    return generated_built.warehouse


@pytest.fixture(scope="session")
def api(generated, provider, secret_env, tmp_path_factory, written):
    """`citycloud api` on a free loopback port; JWTs must be issued for the audience `citycloud`."""
    import os
    import subprocess
    import time

    import httpx

    from dashboard_support import CITYCLOUD, free_port

    folder = tmp_path_factory.mktemp("access-api")
    written.append(folder)
    access = support.write_access(folder / "access.yml", provider, audience=support.CLIENT_ID)
    port = free_port()
    log = folder / "access_log.jsonl"
    out = open(folder / "api.log", "wb")
    proc = subprocess.Popen([str(CITYCLOUD), "api", "--warehouse", str(generated), "--access", str(access),
                             "--port", str(port), "--access-log", str(log)],
                            env=dict(os.environ, **secret_env), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (folder / "api.log").read_text()[-2000:]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield {"url": url, "log": log, "access": access, "proc": proc, "warehouse": generated}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.close()


@pytest.fixture(scope="session")
def issued():
    """Every token the provider issued in the tests (the secrets test searches for them)."""
    return []


@pytest.fixture(scope="session")
def tokens_of(provider, issued):
    def get(subject: str) -> dict:
        t = provider.tokens(subject)
        issued.extend(v for k, v in t.items() if k in ("access_token", "id_token", "refresh_token"))
        return t
    return get

"""No secret or token anywhere the project writes: the access logs, the servers' logs, the
warehouse folders, the project tree; Streamlit's generated secrets file is gone once the
dashboard stopped. (Named to run last: it searches what the other access tests wrote.)"""
from __future__ import annotations

import glob
import tempfile
import time
from pathlib import Path

import httpx
import pytest

import access_support as support

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STARTED = time.time()


def files_under(folder: Path, since: float = 0):
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and ".git" not in path.parts and ".venv" not in path.parts:
            try:
                if path.stat().st_mtime >= since:
                    yield path
            except OSError:
                continue


def test_no_secret_or_token_is_written(served, api, tokens_of, issued, secret_env, written, person):
    b = person()
    support.login(b, served.url, support.ADMIN, ["今日概览 Today"])
    for token in (tokens_of(support.OPERATOR)["access_token"], tokens_of(support.MANAGER)["id_token"]):
        assert httpx.get(f"{api['url']}/v1/cities", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    httpx.get(f"{api['url']}/v1/metrics", params={"metrics": "dau", "grain": "day", "city": "310000"},
              headers={"Authorization": f"Bearer {issued[0]}"})
    served.stop()  # the generated secrets.toml goes with the server
    cookie = secret_env["CITYCLOUD_COOKIE_SECRET"]
    leftovers = [p for p in glob.glob(str(Path(tempfile.gettempdir()) / "citycloud-auth-*" / "*"))
                 if cookie in Path(p).read_text(errors="replace")]
    assert leftovers == []
    needles = [*secret_env.values(), *issued]
    assert len(needles) >= 5
    searched = 0
    for folder in written:
        for path in files_under(folder):
            data = path.read_bytes()
            searched += 1
            found = [n[:8] + "…" for n in needles if n.encode() in data]
            assert not found, f"{path} holds {found}"
    for path in files_under(ROOT, since=STARTED - 3600):
        data = path.read_bytes()
        assert not [n for n in needles if n.encode() in data], path
    assert searched > 5
    assert api["log"].exists() and served.access_log.exists()

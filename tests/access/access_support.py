"""Helpers for the access tests: a real OpenID Connect provider on loopback (`oidc-provider-mock`),
real tokens from it (the authorization-code flow, as a browser would run it), a login in
headless Chromium, and the 5-city test warehouse of the dashboard tests."""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "dashboard"))

from dashboard_support import free_port  # noqa: E402

PROVIDER = Path(sys.executable).with_name("oidc-provider-mock")
CLIENT_ID = "citycloud"
CALLBACK = "http://127.0.0.1:1/callback"  # the code is read from the redirect, nothing listens there

OPERATOR = "ops.changsha@example.org"
SUPERVISOR = "gov.changsha@example.org"
MANAGER = "finance@example.org"
ADMIN = "office@example.org"
UNKNOWN = "stranger@example.org"


class Provider:
    """`oidc-provider-mock` on a free loopback port (it accepts any client id and secret; its
    login form takes a subject, whose `email` claim is the subject)."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([str(PROVIDER), "--port", str(self.port), "--host", "127.0.0.1"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider-mock exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.metadata_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("oidc-provider-mock did not start in 30 s")

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def tokens(self, subject: str) -> dict:
        """Log `subject` in by the authorization-code flow; the token response (access_token:
        opaque, id_token: a JWT signed with the provider's key)."""
        params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": CALLBACK,
                  "scope": "openid profile email", "state": secrets.token_hex(8), "nonce": secrets.token_hex(8)}
        with httpx.Client(base_url=self.url, timeout=10) as http:
            resp = http.post("/oauth2/authorize", params=params, data={"sub": subject})
            assert resp.status_code in (302, 303), resp.text[:500]
            code = parse_qs(urlparse(resp.headers["location"]).query)["code"][0]
            resp = http.post("/oauth2/token", data={"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": CALLBACK},
                             auth=(CLIENT_ID, "any-secret"))
            assert resp.status_code == 200, resp.text[:500]
            return resp.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def access_yml(provider: Provider, users: list[tuple[str, str, object]], audience: str | None = None) -> str:
    lines = ["oidc:", f"  server_metadata_url: {provider.metadata_url}", f"  client_id: {CLIENT_ID}",
             "  client_secret_env: CITYCLOUD_OIDC_CLIENT_SECRET"]
    if audience:
        lines.append(f"  api_audience: {audience}")
    lines.append("users:")
    for uid, role, cities in users:
        listed = "all" if cities == "all" else "[" + ", ".join(f'"{c}"' for c in cities) + "]"
        lines += [f"  - id: {uid}", f"    role: {role}", f"    cities: {listed}"]
    return "\n".join(lines) + "\n"


PEOPLE = [(OPERATOR, "operator", ["430100"]), (SUPERVISOR, "supervisor", ["430100"]),
          (MANAGER, "contract_manager", ["430100", "510100"]), (ADMIN, "admin", "all")]


def write_access(path: Path, provider: Provider, people=PEOPLE, audience: str | None = None) -> Path:
    """Write access.yml as a replacement (new inode), as an editor saving the file would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(access_yml(provider, people, audience), encoding="utf-8")
    os.replace(tmp, path)
    return path


def secret_env() -> dict:
    """Fresh secrets for one test session (the grep test searches every written file for them)."""
    return {"CITYCLOUD_OIDC_CLIENT_SECRET": "client-" + secrets.token_hex(16),
            "CITYCLOUD_COOKIE_SECRET": secrets.token_hex(32)}


def login(browser, url: str, subject: str, expect: list[str], timeout: float = 60) -> str:
    """Log `subject` in through the real redirect: the dashboard's button, the provider's form."""
    page = browser.page
    browser.open(url, ["登录 Log in"], timeout=timeout)
    page.get_by_role("button", name="登录 Log in").click()
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"), timeout=timeout * 1000)
    page.fill("input[name=sub]", subject)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(re.escape(url) + r".*"), timeout=timeout * 1000)
    return browser.wait_for(expect, timeout=timeout)

"""Starting the dashboard: the `streamlit run` command line, and `serve`, which becomes it.

`serve` replaces the calling process with Streamlit (os.execve of the same interpreter), so
the pid a user sees for `citycloud dashboard` is the server itself: `kill PID` or Ctrl-C stop
the server and free its port, with no child left behind holding it.

With `access` (access.yml, spec access.md) people log in at the organisation's OpenID Connect
provider through Streamlit's `st.login`. Streamlit reads its [auth] settings from a secrets
file: `serve` writes one from access.yml and the environment (the client secret from the
variable access.yml names, the cookie secret from CITYCLOUD_COOKIE_SECRET) into a private
temporary folder (0700, the file 0600), never into the project, runs Streamlit in this process
(same pid) and deletes the folder when the server stops. Without `access` the dashboard runs in
local mode, on loopback only.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from citycloud.config import CitycloudError, published_path

COOKIE_SECRET_ENV = "CITYCLOUD_COOKIE_SECRET"
COOKIE_SECRET_MIN_BYTES = 32

APP = Path(__file__).resolve().parent / "app.py"


def command(
    warehouse: Path | str,
    port: int = 8501,
    headless: bool = True,
    address: str = "127.0.0.1",
    contracts: Path | str | None = None,
    access: Path | str | None = None,
    access_log: Path | str | None = None,
    secrets: Path | str | None = None,
) -> list[str]:
    """The `streamlit run` command line that serves the dashboard."""
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(int(port)),
        "--server.headless", "true" if headless else "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]
    # This machine only unless asked: the pages show city data.
    cmd += ["--server.address", address or "127.0.0.1"]
    if secrets:
        cmd += ["--secrets.files", str(secrets)]
    cmd += ["--", "--warehouse", str(Path(warehouse).expanduser().resolve())]
    if contracts:
        cmd += ["--contracts", str(Path(contracts).expanduser().resolve())]
    if access:
        cmd += ["--access", str(Path(access).expanduser().resolve())]
    if access_log:
        cmd += ["--access-log", str(Path(access_log).expanduser().resolve())]
    return cmd


def is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_access(access: Path | str | None, address: str, port: int) -> dict | None:
    """The [auth] settings Streamlit needs (None in local mode), or one line saying what is wrong:
    a non-loopback address without access.yml, an invalid access.yml, a missing secret."""
    if access is None:
        if not is_loopback(address):
            raise CitycloudError(f"--address {address} without --access: the dashboard shows every city to "
                                 "anyone who can reach it; give --access access.yml (login) or serve on 127.0.0.1")
        return None
    from citycloud.access import load_access

    config = load_access(access)
    oidc = config.oidc
    client_secret = os.environ.get(oidc.client_secret_env)
    if not client_secret:
        raise CitycloudError(f"--access {access}: environment variable {oidc.client_secret_env} (the OIDC client "
                             "secret, oidc.client_secret_env) is not set")
    cookie = os.environ.get(COOKIE_SECRET_ENV, "")
    if len(cookie.encode("utf-8")) < COOKIE_SECRET_MIN_BYTES:
        raise CitycloudError(f"--access {access}: environment variable {COOKIE_SECRET_ENV} must hold a random value "
                             f"of at least {COOKIE_SECRET_MIN_BYTES} bytes (it signs the login cookie), e.g. "
                             "`openssl rand -hex 32`")
    host = f"[{address}]" if ":" in address else address
    return {
        "redirect_uri": oidc.redirect_uri or f"http://{host}:{int(port)}/oauth2callback",
        "cookie_secret": cookie,
        "client_id": oidc.client_id,
        "client_secret": client_secret,
        "server_metadata_url": oidc.server_metadata_url,
    }


def write_secrets(folder: Path, auth: dict) -> Path:
    """Streamlit's secrets.toml with the [auth] section, readable by this user only."""
    lines = ["[auth]"] + [f"{k} = {json.dumps(v)}" for k, v in auth.items()]
    lines += ["", "[auth.client_kwargs]", 'scope = "openid profile email"']
    path = folder / "secrets.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def check_warehouse(warehouse: Path | str) -> Path:
    """The warehouse path, refused (one line) when neither it nor its published snapshot exists."""
    warehouse = Path(warehouse).expanduser()
    if not warehouse.exists() and not published_path(warehouse).exists():
        raise CitycloudError(f"warehouse {warehouse} does not exist (nor its published snapshot): "
                             "run `citycloud run` first, or check the path")
    return warehouse


def serve(
    warehouse: Path | str,
    port: int = 8501,
    headless: bool = True,
    address: str = "127.0.0.1",
    contracts: Path | str | None = None,
    access: Path | str | None = None,
    access_log: Path | str | None = None,
) -> NoReturn:
    """Become the Streamlit server for `warehouse` (its `.published.duckdb` snapshot) on `port`.

    Never returns: the process is replaced (same pid), so signals reach the server directly.
    `address` is the interface to listen on (default 127.0.0.1, this machine only; "0.0.0.0"
    opens it to the network); `contracts` is the contracts.yml whose targets the Settlement
    page shows (default: CITYCLOUD_CONTRACTS or the project's contracts/contracts.yml);
    `access` the access.yml that turns login on (`access_log`: where views are recorded).
    """
    auth = check_access(access, address or "127.0.0.1", port)
    env = dict(os.environ)
    env["CITYCLOUD_WAREHOUSE"] = str(Path(warehouse).expanduser().resolve())
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    sys.stdout.flush()
    sys.stderr.flush()
    if auth is None:
        cmd = command(warehouse, port, headless, address, contracts, access_log=access_log)
        os.execve(cmd[0], cmd, env)
    folder = Path(tempfile.mkdtemp(prefix="citycloud-auth-"))  # 0700, outside the project
    try:
        secrets = write_secrets(folder, auth)
        cmd = command(warehouse, port, headless, address, contracts, access, access_log, secrets)
        os.environ.update(env)
        from streamlit.web import cli as streamlit_cli

        # in this process (same pid), so the secrets folder is removed when the server stops
        streamlit_cli.main(args=cmd[3:], prog_name="streamlit", standalone_mode=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(0)

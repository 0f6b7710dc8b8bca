"""access.yml: every refusal rule of access.md in one line naming the file, the entry and the rule;
the scope of each person; re-reading on change; the launcher's refusals (exit 2, one line)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from citycloud.access import AccessFile, load_access
from citycloud.access.scope import Scope
from citycloud.config import CitycloudError

CITYCLOUD = Path(sys.executable).with_name("citycloud")
OIDC = """oidc:
  server_metadata_url: http://127.0.0.1:9400/.well-known/openid-configuration
  client_id: citycloud
"""
GOOD = OIDC + """users:
  - id: Ops.Changsha@Example.org
    role: operator
    cities: ["430100"]
  - id: finance@example.org
    role: contract_manager
    cities: ["430100", "510100"]
  - id: office@example.org
    role: admin
    cities: all
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "access.yml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(CitycloudError) as exc:
        load_access(path)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"access file {path}: ")
    return message.removeprefix(f"access file {path}: ")


def test_scopes_of_the_people(tmp_path):
    config = load_access(write(tmp_path, GOOD))
    assert config.oidc.identity_claim == "email" and config.oidc.client_secret_env == "CITYCLOUD_OIDC_CLIENT_SECRET"
    ops = config.scope_for("  ops.changsha@example.ORG ")  # case-insensitive, spaces trimmed
    assert ops == Scope("Ops.Changsha@Example.org", "operator", ("430100",))
    assert ops.pages == {"today", "trends", "services", "users", "alerts", "reviews"}
    assert not ops.allows("310000") and ops.allows("430100") and not ops.entitled_to(["430100", "510100"])
    admin = config.scope_for("office@example.org")
    assert admin.every_city and admin.cities == ("310000", "411700", "430100", "460100", "510100")
    assert "access_log" in admin.pages
    assert config.scope_for("finance@example.org").pages == {"today", "trends", "settlement", "scorecard"}
    assert config.scope_for("nobody@example.org") is None and config.scope_for(None) is None


@pytest.mark.parametrize("users, rule", [
    ("""  - id: a@example.org\n    role: operator\n    cities: ["430100"]\n  - id: " A@example.org"\n    role: admin\n    cities: all\n""",
     'users[2] ( A@example.org): id listed twice (also users[1])'),
    ("""  - id: a@example.org\n    role: boss\n    cities: ["430100"]\n""",
     "users[1] (a@example.org): unknown role 'boss' (one of operator, contract_manager, supervisor, admin)"),
    ("""  - id: a@example.org\n    role: operator\n    cities: ["999999"]\n""",
     "users[1] (a@example.org): city 999999 is not in city_reference (dbt_project/seeds/city_reference.csv)"),
    ("""  - id: a@example.org\n    role: operator\n    cities: []\n""",
     "users[1] (a@example.org): empty city list (name its cities, or all)"),
    ("""  - id: a@example.org\n    role: operator\n    cities: [430100]\n""",
     'users[1] (a@example.org).cities: cities must be a list of quoted city codes (["430100"]) or the word all'),
    ("""  - id: a@example.org\n    role: operator\n""", "users[1] (a@example.org).cities: required key missing"),
])
def test_refused_entries(tmp_path, users, rule):
    assert refusal(tmp_path, OIDC + "users:\n" + users) == rule


def test_a_secret_in_the_file_is_refused(tmp_path):
    text = OIDC + "  client_secret: s3cr3t-value\nusers: []\n"
    message = refusal(tmp_path, text)
    assert message.startswith("oidc.client_secret: a secret is never written into this file")
    assert "s3cr3t-value" not in message
    message = refusal(tmp_path, OIDC.replace("client_id: citycloud", "client_id: citycloud\n  client_secret_env: abc-123-secret")
                      + "users: []\n")
    assert message.startswith("oidc.client_secret_env: must name an environment variable")
    assert "abc-123-secret" not in message


def test_anchors_and_aliases_are_refused(tmp_path):
    text = OIDC + """users:
  - id: a@example.org
    role: operator
    cities: &c ["430100"]
  - id: b@example.org
    role: operator
    cities: *c
"""
    assert refusal(tmp_path, text) == "line 7: YAML anchors and aliases (& and *) are not allowed; write each value out"


def test_the_file_is_read_again_when_it_changes(tmp_path):
    path = write(tmp_path, GOOD)
    af = AccessFile(path)
    assert af.scope_for("finance@example.org").cities == ("430100", "510100")
    tmp = tmp_path / "new.yml"
    tmp.write_text(GOOD.replace('cities: ["430100", "510100"]', 'cities: ["510100"]'), encoding="utf-8")
    os.replace(tmp, path)
    assert af.scope_for("finance@example.org").cities == ("510100",)
    path.write_text(GOOD.replace("role: admin", "role: boss"), encoding="utf-8")  # broken: nobody
    assert af.scope_for("finance@example.org") is None and "unknown role 'boss'" in af.error
    path.write_text(GOOD.replace("  - id: finance@example.org\n    role: contract_manager\n", "  - id: x@example.org\n"
                                 "    role: contract_manager\n"), encoding="utf-8")
    assert af.scope_for("finance@example.org") is None and af.scope_for("x@example.org").role == "contract_manager"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYCLOUD_") or k == "CITYCLOUD_HOME"}
    return subprocess.run([str(CITYCLOUD), *args], capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})})


def test_network_address_without_access_is_refused(tmp_path):
    wh = tmp_path / "wh.duckdb"
    wh.write_bytes(b"")
    run = run_cli("dashboard", "--warehouse", str(wh), "--address", "0.0.0.0")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "citycloud dashboard: error: --address 0.0.0.0 without --access: the dashboard shows every city to anyone "
        "who can reach it; give --access access.yml (login) or serve on 127.0.0.1"]


def test_missing_secrets_are_refused_in_one_line(tmp_path):
    wh = tmp_path / "wh.duckdb"
    wh.write_bytes(b"")
    access = write(tmp_path, GOOD)
    run = run_cli("dashboard", "--warehouse", str(wh), "--access", str(access))
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "environment variable CITYCLOUD_OIDC_CLIENT_SECRET" in run.stderr
    run = run_cli("dashboard", "--warehouse", str(wh), "--access", str(access),
                  env={"CITYCLOUD_OIDC_CLIENT_SECRET": "x", "CITYCLOUD_COOKIE_SECRET": "short"})
    assert run.returncode == 2 and "CITYCLOUD_COOKIE_SECRET must hold a random value of at least 32 bytes" in run.stderr
    assert "short" not in run.stderr.replace("CITYCLOUD_COOKIE_SECRET", "")
    bad = write(tmp_path, GOOD.replace("role: admin", "role: boss"))
    run = run_cli("api", "--warehouse", str(wh), "--access", str(bad))
    assert run.returncode == 2
    assert run.stderr.strip() == (f"citycloud api: error: access file {bad}: users[3] (office@example.org): "
                                  "unknown role 'boss' (one of operator, contract_manager, supervisor, admin)")


def test_the_shipped_example_and_compose_services():
    import yaml

    root = Path(__file__).resolve().parents[2]
    example = load_access(root / "contracts" / "access.example.yml")
    assert [u.role for u in example.users] == ["operator", "supervisor", "contract_manager", "admin"]
    services = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    for name, verb in (("citycloud-dashboard", "dashboard"), ("citycloud-api", "api")):
        command = services[name]["command"]
        assert command[0] == verb and command[command.index("--access") + 1] == "/data/access/access.yml"
        assert {"CITYCLOUD_OIDC_CLIENT_SECRET", "CITYCLOUD_COOKIE_SECRET"} <= set(services[name]["environment"])

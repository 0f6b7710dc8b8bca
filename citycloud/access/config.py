"""`access.yml`: the identity provider and who may see which city (spec: access.md).

Read with the project's YAML loader (anchors, aliases and duplicate keys refused) and validated
with pydantic; every refusal is one line naming the file, the entry and the rule. The cities
are checked against the `city_reference` seed, the one home of city facts.

`AccessFile` re-reads the file when it changes (its inode, mtime or size), checked on every
page load and API request: removing a person takes effect at their next one, no restart. A
file that turns invalid while serving locks everyone out (logged) until it is fixed, rather
than keep serving an outdated list.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from citycloud.access.cities import city_names
from citycloud.access.scope import ROLES, Scope
from citycloud.config import CitycloudError
from citycloud.yaml_files import read_yaml

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
DEFAULT_CLIENT_SECRET_ENV = "CITYCLOUD_OIDC_CLIENT_SECRET"
COOKIE_SECRET_ENV = "CITYCLOUD_COOKIE_SECRET"


class Oidc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server_metadata_url: str
    client_id: str
    client_secret_env: str = DEFAULT_CLIENT_SECRET_ENV
    identity_claim: str = "email"
    redirect_uri: str | None = None
    api_audience: str | None = None  # when set, a JWT access token must name it in `aud`

    @field_validator("server_metadata_url", "redirect_uri")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("client_secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("must name an environment variable (e.g. CITYCLOUD_OIDC_CLIENT_SECRET), "
                             "never hold the secret itself")
        return value


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    role: str
    cities: list[str] | Literal["all"]


class AccessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    oidc: Oidc
    users: list[User]

    def scope_for(self, subject: str | None) -> Scope | None:
        """The scope of the person whose identity claim is `subject` (case-insensitive, spaces
        trimmed), or None: not in the file."""
        if not subject:
            return None
        wanted = normalise(subject)
        for user in self.users:
            if normalise(user.id) == wanted:
                if user.cities == "all":
                    return Scope(subject=user.id, role=user.role, cities=tuple(sorted(city_names())),
                                 every_city=True)
                return Scope(subject=user.id, role=user.role, cities=tuple(sorted(set(user.cities))))
        return None


def normalise(identity: str) -> str:
    return str(identity).strip().casefold()


def _entry(users: list, index: int) -> str:
    user = users[index] if 0 <= index < len(users) else None
    name = user.get("id") if isinstance(user, dict) else None
    return f"users[{index + 1}]" + (f" ({name})" if name else "")


def _secret_keys(data: dict) -> list[str]:
    """Keys that would hold a secret itself (client_secret, cookie_secret, ...): refused."""
    found = []
    for section, value in data.items():
        if isinstance(value, dict):
            found += [f"{section}.{k}" for k in value if "secret" in str(k).lower() and not str(k).endswith("_env")]
        if "secret" in str(section).lower():
            found.append(str(section))
    return found


def parse_access(data: object, source: str) -> AccessConfig:
    """Validate the data of an access.yml; CitycloudError "<source>: <entry>: <rule>" when refused."""
    if not isinstance(data, dict):
        raise CitycloudError(f"{source}: must be a mapping with 'oidc:' and 'users:'")
    secrets = _secret_keys(data)
    if secrets:
        raise CitycloudError(f"{source}: {secrets[0]}: a secret is never written into this file; name the "
                             f"environment variable that holds it (oidc.client_secret_env, {COOKIE_SECRET_ENV})")
    users = data.get("users") if isinstance(data.get("users"), list) else []
    try:
        config = AccessConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        if loc[:1] == ["users"] and len(loc) > 1 and isinstance(loc[1], int):
            where = _entry(users, loc[1]) + "".join(f".{p}" for p in loc[2:3])
        else:
            where = ".".join(str(p) for p in loc) or "top level"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required key missing"
        elif loc[2:3] == ["cities"]:
            message = 'cities must be a list of quoted city codes (["430100"]) or the word all'
        elif err["type"] == "extra_forbidden":
            message = "unknown key"
        raise CitycloudError(f"{source}: {where}: {message}") from None
    known = city_names()
    seen: dict[str, int] = {}
    for i, user in enumerate(config.users):
        where = _entry(users, i)
        key = normalise(user.id)
        if not key:
            raise CitycloudError(f"{source}: {where}: id is empty")
        if key in seen:
            raise CitycloudError(f"{source}: {where}: id listed twice (also users[{seen[key] + 1}])")
        seen[key] = i
        if user.role not in ROLES:
            raise CitycloudError(f"{source}: {where}: unknown role {user.role!r} (one of {', '.join(ROLES)})")
        if user.cities != "all":
            if not user.cities:
                raise CitycloudError(f"{source}: {where}: empty city list (name its cities, or all)")
            unknown = [c for c in user.cities if str(c) not in known]
            if unknown:
                raise CitycloudError(f"{source}: {where}: city {unknown[0]} is not in city_reference "
                                     "(dbt_project/seeds/city_reference.csv)")
    return config


def load_access(path: Path | str) -> AccessConfig:
    path = Path(path)
    return parse_access(read_yaml(path, "access file"), f"access file {path}")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class AccessFile:
    """An access.yml that is read again whenever it changed (checked at every `current()`)."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser().resolve()
        self._lock = threading.Lock()
        self._stamp = _stamp(self.path)
        self._config: AccessConfig | None = load_access(self.path)  # refused at start: raises
        self.error: str | None = None

    def current(self) -> AccessConfig | None:
        """The file's configuration as it stands now; None (everyone refused) while it is
        missing or invalid, with the reason in `error`."""
        stamp = _stamp(self.path)
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._config, self.error = load_access(self.path), None
                except CitycloudError as exc:
                    self._config, self.error = None, str(exc)
            return self._config

    def scope_for(self, subject: str | None) -> Scope | None:
        config = self.current()
        return None if config is None else config.scope_for(subject)

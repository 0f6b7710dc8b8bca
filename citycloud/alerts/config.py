"""alerts.yml (docs/alerts.md): the channels and who gets what. Read with the project's YAML
loader; every problem is one line naming the file and where. Secrets are never in the file: it
names the environment variables that hold them, read when a message is sent."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citycloud.config import CitycloudError
from citycloud.yaml_files import parse_yaml, read_text

KINDS = ("anomaly", "delivery")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def secret_from_env(name: str | None, what: str) -> str:
    value = os.environ.get(name or "", "")
    if not value:
        raise CitycloudError(f"{what}: environment variable {name} is not set")
    return value


class _UrlChannel(_Strict):
    url: str | None = None
    url_env: str | None = None  # robot URLs carry their key: keep them out of the file

    @model_validator(mode="after")
    def _one_url(self):
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self

    def address(self, name: str) -> str:
        return self.url or secret_from_env(self.url_env, f"channel {name}")


class Webhook(_UrlChannel):
    type: Literal["webhook"]


class Wecom(_UrlChannel):
    type: Literal["wecom"]


class Dingtalk(_UrlChannel):
    type: Literal["dingtalk"]
    secret_env: str | None = None  # the robot's signing secret (加签), when it has one


class Email(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(25, gt=0, lt=65536)
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: str | None = None
    starttls: bool = True


Channel = Annotated[Union[Webhook, Wecom, Dingtalk, Email], Field(discriminator="type")]


class Route(_Strict):
    cities: Literal["all"] | list[str]
    kinds: list[Literal["anomaly", "delivery"]] = Field(default_factory=lambda: list(KINDS))
    channels: list[str] = Field(min_length=1)

    def matches(self, kind: str, city_code: str) -> bool:
        return kind in self.kinds and (self.cities == "all" or city_code in self.cities)


class AlertsConfig(_Strict):
    channels: dict[str, Channel] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_channels(self):
        for i, route in enumerate(self.routes, 1):
            for name in route.channels:
                if name not in self.channels:
                    raise ValueError(f"routes: route {i} names channel {name!r}, which channels does not define")
        return self

    def channels_for(self, kind: str, city_code: str) -> list[str]:
        """Every channel a route sends this alert to, each once, in the file's order."""
        wanted = {c for r in self.routes if r.matches(kind, city_code) for c in r.channels}
        return [name for name in self.channels if name in wanted]


def load(path: Path | str) -> AlertsConfig:
    source = str(path)
    data = parse_yaml(read_text(path, "alerts file"), source)
    if not isinstance(data, dict):
        raise CitycloudError(f"{source}: expected a mapping with channels and routes")
    try:
        return AlertsConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union")))
        message = err["msg"].removeprefix("Value error, ")
        raise CitycloudError(f"{source}: {where + ': ' if where else ''}{message}") from None

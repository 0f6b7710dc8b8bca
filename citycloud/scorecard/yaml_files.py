"""Reading reviewers' YAML: numbers as Decimal from their text, no duplicate keys, no aliases.

Anchors and aliases (&a / *a) are refused before anything is built: a few hundred bytes of
nested aliases expand to billions of nodes (an "alias bomb"), and a scheme has no use for them.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from citycloud.config import CitycloudError


class _Refused(yaml.YAMLError):
    def __init__(self, message: str, mark) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused("YAML anchors and aliases (& and *) are not allowed; write each value out", event.start_mark)
        return super().compose_node(parent, index)


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return yaml.SafeLoader.construct_yaml_float(loader, node)  # .inf/.nan: validation refuses them


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise _Refused(f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def read_yaml(path: Path | str, top_key: str) -> list:
    """The list under `top_key` of a YAML file, or CitycloudError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CitycloudError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CitycloudError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise CitycloudError(f"{path}: line {exc.mark.line + 1}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CitycloudError(f"{path}: {where}not valid YAML: {problem}") from None
    if not isinstance(data, dict) or top_key not in data:
        raise CitycloudError(f"{path}: must be a mapping with a list under '{top_key}:'")
    extra = sorted(str(k) for k in data if k != top_key)
    if extra:
        raise CitycloudError(f"{path}: unknown top-level key(s) {', '.join(extra)} (only '{top_key}')")
    if not isinstance(data[top_key], list):
        raise CitycloudError(f"{path}: '{top_key}' must be a list")
    return data[top_key]

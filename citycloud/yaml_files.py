"""The one way citycloud reads people's YAML (contracts, evaluation schemes, assessments).

- Numbers are `Decimal` from their YAML text: `52000.10` never passes through a binary float.
- Duplicate keys are refused (the second silently winning would change money).
- Anchors and aliases (& and *) are refused before anything is built: a few hundred bytes of
  nested aliases expand to billions of nodes (an "alias bomb"), and these files have no use for them.
- Every error is one line naming the file and the line, never PyYAML's `<unicode string>`.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from citycloud.config import CitycloudError


class _Refused(yaml.YAMLError):
    def __init__(self, message: str, mark) -> None:  # noqa: ANN001 - a PyYAML Mark
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


def parse_yaml(text: str, source: str) -> Any:
    """The data of one YAML document, or CitycloudError "<source>: line N: <problem>"."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise CitycloudError(f"{source}: line {exc.mark.line + 1}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CitycloudError(f"{source}: {where}not valid YAML: {problem}") from None


def read_text(path: Path | str, what: str = "", missing_hint: str = "") -> str:
    """A UTF-8 file's text; a missing or unreadable file is one line naming it (`what` says which
    file it is, `missing_hint` how to point at the right one)."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CitycloudError(f"{name}: file not found{missing_hint}") from None
    except UnicodeDecodeError:
        raise CitycloudError(f"{name}: not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise CitycloudError(f"{name}: cannot read ({exc.__class__.__name__}: {exc})") from None


def read_yaml(path: Path | str, what: str = "") -> Any:
    """The data of a YAML file (see read_text and parse_yaml for the errors)."""
    text = read_text(path, what)
    return parse_yaml(text, f"{what} {path}" if what else str(path))


def read_list(path: Path | str, top_key: str) -> list:
    """The list under `top_key`, the only top-level key of a YAML file."""
    data = read_yaml(path)
    if not isinstance(data, dict) or top_key not in data:
        raise CitycloudError(f"{path}: must be a mapping with a list under '{top_key}:'")
    extra = sorted(str(k) for k in data if k != top_key)
    if extra:
        raise CitycloudError(f"{path}: unknown top-level key(s) {', '.join(extra)} (only '{top_key}')")
    if not isinstance(data[top_key], list):
        raise CitycloudError(f"{path}: '{top_key}' must be a list")
    return data[top_key]

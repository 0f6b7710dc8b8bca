"""The one YAML loader: exact decimals, duplicate keys and anchors refused, one line naming the file."""
from __future__ import annotations

from decimal import Decimal

import pytest

from citycloud.config import CitycloudError
from citycloud.yaml_files import parse_yaml, read_list, read_yaml


def refused(call, *args) -> str:
    with pytest.raises(CitycloudError) as exc:
        call(*args)
    text = str(exc.value)
    assert "\n" not in text and "<unicode string>" not in text
    return text


def test_numbers_are_decimal_from_their_text(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("fee: 52000.10\nweight: 0.1\nn: 3\nbig: 1_000.5\n", encoding="utf-8")
    assert read_yaml(path) == {"fee": Decimal("52000.10"), "weight": Decimal("0.1"), "n": 3, "big": Decimal("1000.5")}


def test_anchor_alone_is_refused_at_its_line(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("a: 1\nb: &x 2\n", encoding="utf-8")
    assert refused(read_yaml, path) == (
        f"{path}: line 2: YAML anchors and aliases (& and *) are not allowed; write each value out")


def test_duplicate_key_and_bad_syntax_name_file_and_line(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("a:\n  b: 1\n  b: 2\n", encoding="utf-8")
    assert refused(read_yaml, path, "contracts file") == f"contracts file {path}: line 3: duplicate key 'b'"
    assert refused(parse_yaml, "x: [\n", "scheme.yml") == (
        "scheme.yml: line 2: not valid YAML: expected the node content, but found '<stream end>'")


def test_unreadable_files(tmp_path):
    assert refused(read_yaml, tmp_path / "none.yml") == f"{tmp_path / 'none.yml'}: file not found"
    latin = tmp_path / "latin.yml"
    latin.write_bytes("a: café\n".encode("latin-1"))
    assert refused(read_yaml, latin) == f"{latin}: not UTF-8 text: save it as UTF-8"


def test_read_list_wants_one_top_level_list(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text("schemes: [1]\nother: 2\n", encoding="utf-8")
    assert refused(read_list, path, "schemes") == f"{path}: unknown top-level key(s) other (only 'schemes')"
    path.write_text("schemes: 3\n", encoding="utf-8")
    assert refused(read_list, path, "schemes") == f"{path}: 'schemes' must be a list"
    path.write_text("schemes: [1, 2]\n", encoding="utf-8")
    assert read_list(path, "schemes") == [1, 2]

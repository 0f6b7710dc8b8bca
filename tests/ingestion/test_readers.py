import gzip

import pytest

from citycloud.ingestion.readers import UnreadableFile, numbered_lines, read_lines


def test_lines_are_numbered_from_one_skipping_blank_lines_and_crlf():
    table = numbered_lines(b"a\r\nbb\n\n  \nccc")
    # each line keeps its terminator (zero-copy); the SQL rules trim it
    assert table.to_pylist() == [{"line": 1, "text": "a\r\n"}, {"line": 2, "text": "bb\n"}, {"line": 5, "text": "ccc"}]


def test_bom_is_dropped_and_gzip_is_read_by_magic(tmp_path):
    f = tmp_path / "x.csv"  # gzip content without .gz name still reads
    f.write_bytes(gzip.compress("\ufeffa,b\n1,2\n".encode()))
    assert [r["text"] for r in read_lines(f).to_pylist()] == ["a,b\n", "1,2\n"]


@pytest.mark.parametrize("name, data, reason", [
    ("t.jsonl.gz", gzip.compress(b'{"a": 1}\n' * 100)[:-20], "gzip stream cannot be decompressed"),
    ("t.csv", "事件".encode("gbk") + b"\n", "not valid UTF-8"),
    ("t.csv.gz", b"plain text", "named .gz but is not gzip-compressed"),
])
def test_unreadable_files_say_why(tmp_path, name, data, reason):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(UnreadableFile, match=reason):
        read_lines(f)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 64])
def test_newlines_found_block_by_block_are_those_of_the_whole_buffer(block):
    import numpy as np

    from citycloud.ingestion.readers import _line_ends

    data = b"ab\n\ncd\nef\n" + b"x" * 7 + b"\n\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    assert _line_ends(buf, block).tolist() == [3, 4, 7, 10, 18, 19]
    assert _line_ends(np.frombuffer(b"", dtype=np.uint8), block).tolist() == []
    assert _line_ends(np.frombuffer(b"no newline", dtype=np.uint8), block).tolist() == []

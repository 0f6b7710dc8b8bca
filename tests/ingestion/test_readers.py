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


TEXT = "\ufeffa,b\r\n\n  \n\t\r\n事件,1\n" + "x" * 40 + "\n\n\nlast 行"


@pytest.mark.parametrize("block, rows", [(1, 1), (2, 1), (3, 2), (5, 1000), (7, 3), (64, 1), (1 << 21, 1_000_000)])
@pytest.mark.parametrize("gz", [False, True])
def test_streamed_chunks_number_lines_as_the_whole_file_does(tmp_path, monkeypatch, block, rows, gz):
    """Block and chunk boundaries never move a line number (rejects and the dedup's tie-break cite them)."""
    from citycloud.ingestion import readers

    monkeypatch.setattr(readers, "BLOCK_BYTES", block)
    monkeypatch.setattr(readers, "CHUNK_ROWS", rows)
    f = tmp_path / ("t.csv.gz" if gz else "t.csv")
    f.write_bytes(gzip.compress(TEXT.encode()) if gz else TEXT.encode())
    chunks = list(readers.line_chunks(f))
    assert all(c.num_rows for c in chunks)
    assert [r for c in chunks for r in c.to_pylist()] == [
        {"line": 1, "text": "a,b\r\n"}, {"line": 5, "text": "事件,1\n"}, {"line": 6, "text": "x" * 40 + "\n"},
        {"line": 9, "text": "last 行"}]


def test_a_blank_file_is_one_empty_chunk(tmp_path):
    from citycloud.ingestion.readers import line_chunks

    f = tmp_path / "t.csv"
    f.write_bytes(b"\n \r\n\n")
    assert [c.num_rows for c in line_chunks(f)] == [0]


def test_a_file_decompressing_past_its_limit_stops_there(tmp_path):
    from citycloud.ingestion.readers import SizeLimit, line_chunks

    f = tmp_path / "bomb.jsonl.gz"
    f.write_bytes(gzip.compress(b"\n" * (8 << 20)))
    limit = SizeLimit(ratio=200, floor_bytes=1 << 20)
    assert limit.of(f.stat().st_size) < 8 << 20
    with pytest.raises(UnreadableFile, match=f"decompresses to more than {limit.of(f.stat().st_size):,} bytes"):
        list(line_chunks(f, limit))
    assert [c.num_rows for c in line_chunks(f, SizeLimit(ratio=200, floor_bytes=8 << 20))] == [0]

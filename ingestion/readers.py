"""Read one delivered file as numbered lines (Arrow tables), streamed, without a Python loop per line.

The file is decompressed as it is read (gzip by magic bytes, whatever its name; ISA-L's igzip
when installed, several times faster than zlib), a block of BLOCK_BYTES at a time, so memory
does not grow with the decompressed size: a 2 MB gzip of 2 GiB of newlines once took 96 bytes of
memory per decompressed byte (docs/reliability.md). The newline positions of each block become
the offsets of an Arrow string array over the very same buffer: no copy of the text. Each line
keeps its line terminator; the SQL rules trim it. Lines are numbered from 1 over the whole file,
blank lines included (they carry no row). A file that cannot be read as a whole (truncated gzip,
not UTF-8, decompressing past its limit) raises `UnreadableFile` with the reason, possibly after
some of its chunks were handed out: the caller sets the whole file aside.
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citycloud.ingestion.discover import RefusedPath, open_regular


try:  # optional accelerator, same format and errors as gzip (plus its own for a corrupt block)
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _IsalError
except ImportError:  # pragma: no cover
    _gzip = gzip
    _IsalError = zlib.error

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ERRORS = (EOFError, OSError, zlib.error, ValueError, _IsalError)
# Decompressed bytes numbered at a time. Bounds the arrays of one step: a block of nothing but
# newlines is 1M lines, ~60 MB of offsets and line numbers while they are found and dropped.
BLOCK_BYTES = 1 << 20
# A chunk handed to validation holds about this many lines, or this many bytes of text, at most
# (one more block's worth): bounds the temp table (and memory) for 10M-line files.
CHUNK_ROWS = 1_000_000
CHUNK_BYTES = 1 << 28
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.strip() removes


EMPTY = pa.table({"line": pa.array([], pa.int64()), "text": pa.array([], pa.large_string())})


class UnreadableFile(Exception):
    """The whole file is set aside; str(exc) is the reason recorded in audit.rejected_files."""


@dataclass(frozen=True)
class SizeLimit:
    """How much a file may decompress to: `ratio` times its size on disk, at least `floor_bytes`
    (config.Settings.max_decompression_ratio, min_decompressed_limit_mb)."""
    ratio: float
    floor_bytes: int

    def of(self, size: int) -> int:
        return max(int(self.ratio * size), self.floor_bytes)

    def exceeded(self, size: int) -> str:
        return (f"decompresses to more than {self.of(size):,} bytes, its limit ({self.ratio:g}× its {size:,} bytes "
                f"on disk, at least {self.floor_bytes / 2**20:g} MiB: CITYCLOUD_MAX_DECOMPRESSION_RATIO, "
                "CITYCLOUD_MIN_DECOMPRESSED_LIMIT_MB): set aside whole, not read further")


def open_delivered(path: Path):
    try:
        return open_regular(path)
    except (RefusedPath, OSError) as exc:
        # Swapped for a link or a special file after discovery, or gone: nothing read, nothing kept.
        raise UnreadableFile(f"refused: {getattr(exc, 'strerror', None) or exc}") from None


def _decompressed_blocks(path: Path, limit: SizeLimit | None, block: int) -> Iterator[bytes]:
    """The file's text (BOM dropped) in blocks of at most `block` bytes; UnreadableFile as soon as
    more than its `limit` comes out of it."""
    with open_delivered(path) as fh:
        yield from decompressed(fh, path.name, limit, block)


def is_gzipped(fh) -> bool:
    """Whether an open file is gzip-compressed (by its magic bytes, whatever its name)."""
    gzipped = fh.read(2) == GZIP_MAGIC
    fh.seek(0)
    return gzipped


def decompressed(fh, name: str, limit: SizeLimit | None, block: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The text of an open file (`name` as delivered), as `_decompressed_blocks` gives it."""
    size = os.fstat(fh.fileno()).st_size  # of what is read (not a link swapped in since)
    max_bytes = limit.of(size) if limit else None
    gzipped = is_gzipped(fh)
    if not gzipped and name.endswith(".gz"):
        raise UnreadableFile("named .gz but is not gzip-compressed")
    stream = _gzip.GzipFile(fileobj=fh, mode="rb") if gzipped else fh
    total, head = 0, b""
    while True:
        try:
            data = stream.read(block)
        except GZIP_ERRORS as exc:
            if not gzipped:  # the disk, not the content
                raise UnreadableFile(f"refused: {getattr(exc, 'strerror', None) or exc}") from None
            raise UnreadableFile(f"gzip stream cannot be decompressed (truncated or corrupt): {exc}") from None
        total += len(data)
        if max_bytes is not None and total > max_bytes:
            raise UnreadableFile(limit.exceeded(size))
        end = not data
        if head is not None:  # the first bytes: a byte-order mark goes (a read may be short)
            head += data
            if len(head) < len(BOM) and not end:
                continue
            data, head = (head[len(BOM):] if head.startswith(BOM) else head), None
        if data:
            yield data
        if end:
            return


def whole_lines(blocks: Iterator[bytes]) -> Iterator[memoryview]:
    """Buffers of whole lines (each ends with a newline, but the file's last line may not)."""
    parts: list[bytes] = []
    for data in blocks:
        cut = data.rfind(b"\n") + 1
        if not cut:  # inside one long line: joined once its end comes, never copied block by block
            parts.append(data)
            continue
        if parts:
            parts.append(data)
            buf = b"".join(parts)
            cut += len(buf) - len(data)
        else:
            buf = data
        parts = [buf[cut:]] if cut < len(buf) else []
        yield memoryview(buf)[:cut]
    if parts:
        yield memoryview(b"".join(parts))


def _line_ends(buf: np.ndarray, block: int = 1 << 26) -> np.ndarray:
    """Offsets just past each newline, searched 64 MiB at a time (a buffer can be one long line
    of any size): a comparison over the whole buffer would allocate a one-byte mask per byte."""
    parts = [np.flatnonzero(buf[start:start + block] == 10) + (start + 1) for start in range(0, len(buf), block)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def _numbered(data, first_line: int = 1) -> tuple[pa.Table, int]:
    """Arrow table (line BIGINT, text VARCHAR with its terminator) of the non-blank lines of
    `data` numbered from `first_line`, and the number of lines, blank ones included."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) and _WHITESPACE[buf[0]] and _WHITESPACE[buf].all():
        # Nothing but blank lines (a bomb of newlines): counted, not numbered one by one.
        newlines = int(np.count_nonzero(buf == 10))
        return EMPTY, newlines + int(buf[-1] != 10)
    ends = _line_ends(buf)
    if len(buf) and (not len(ends) or ends[-1] != len(buf)):
        ends = np.append(ends, len(buf))  # last line without a newline
    n = len(ends)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = ends
    del ends
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        raise UnreadableFile("not valid UTF-8 text") from None
    # Blank lines carry no row. Only short lines can be blank: look at their few bytes.
    lengths = np.diff(offsets)
    short = np.flatnonzero(lengths <= 4)
    blank = np.ones(len(short), dtype=bool)
    starts, short_lengths = offsets[short], lengths[short]
    del lengths
    for k in range(4):
        within = short_lengths > k
        blank[within] &= _WHITESPACE[buf[starts[within] + k]]
    table = pa.table({"line": pa.array(np.arange(first_line, first_line + n, dtype=np.int64)), "text": text})
    if blank.any():
        keep = np.ones(n, dtype=bool)
        keep[short[blank]] = False
        table = table.filter(pa.array(keep))
    return table, n


def numbered_lines(data: bytes) -> pa.Table:
    """The non-blank lines of `data` (a whole file's text), numbered from 1."""
    return _numbered(data)[0]


def line_chunks(path: Path, limit: SizeLimit | None = None) -> Iterator[pa.Table]:
    """The non-blank numbered lines of a file, chunk by chunk, so validation memory stays bounded.

    The first chunk holds the first non-blank line (a CSV header); a file without any yields one
    empty table. Raises UnreadableFile, possibly after some chunks, when the file cannot be read
    whole or decompresses to more than its `limit`.
    """
    rows, chunk_bytes, block = CHUNK_ROWS, CHUNK_BYTES, BLOCK_BYTES  # read when called: tests make them small
    pieces: list[pa.Table] = []
    held_rows = held_bytes = 0
    next_line, yielded = 1, False
    for data in whole_lines(_decompressed_blocks(path, limit, block)):
        piece, n = _numbered(data, next_line)
        next_line += n
        if piece.num_rows:
            pieces.append(piece)
            held_rows += piece.num_rows
            held_bytes += len(data)
        if held_rows >= rows or held_bytes >= chunk_bytes:
            yield pa.concat_tables(pieces)
            pieces, held_rows, held_bytes, yielded = [], 0, 0, True
    if pieces or not yielded:
        yield pa.concat_tables(pieces) if pieces else EMPTY


def read_lines(path: Path, limit: SizeLimit | None = None) -> pa.Table:
    """A whole file's numbered lines in one table (small files, tests)."""
    return pa.concat_tables(list(line_chunks(path, limit)))


def picked_lines(path: Path, wanted: list[int], limit: SizeLimit | None = None) -> pa.Table:
    """The numbered lines `wanted` (sorted line numbers of non-blank lines) of a file, as
    `line_chunks` gives them, without numbering every line: only the blocks that hold one are
    split (the bulk path's rejected lines, ingestion/fast.py). UnreadableFile as `line_chunks`
    for a file that cannot be read whole, or for a picked line that is not UTF-8."""
    pieces, at, next_line = [], 0, 1
    for data in whole_lines(_decompressed_blocks(path, limit, BLOCK_BYTES)):
        n = data.nbytes and (bytes(data[-1:]) != b"\n") + _count_newlines(data)
        if at < len(wanted) and wanted[at] < next_line + n:
            piece, _ = _numbered(data, next_line)
            keep = pc.is_in(piece.column("line"), value_set=pa.array(wanted[at:], pa.int64()))
            pieces.append(piece.filter(keep))
            at += pieces[-1].num_rows
        next_line += n
    return pa.concat_tables(pieces) if pieces else EMPTY


def _count_newlines(data: memoryview) -> int:
    return data.obj.count(b"\n", 0, data.nbytes) if isinstance(data.obj, bytes) and data.nbytes else \
        bytes(data).count(b"\n")

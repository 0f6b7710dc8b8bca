"""Read one delivered file into numbered lines (an Arrow table), without a Python loop per line.

The file is decompressed (gzip by magic bytes, whatever its name), split on b'\\n' with
numpy, and wrapped as an Arrow string array over the same buffer, so a 10M-line file costs
one pass. A file that cannot be read as a whole (truncated gzip, not UTF-8, empty CSV)
raises `UnreadableFile` with the reason; the caller sets the file aside.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

BOM = b"\xef\xbb\xbf"


class UnreadableFile(Exception):
    """The whole file is set aside; str(exc) is the reason recorded in audit.rejected_files."""


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise UnreadableFile(f"gzip stream cannot be decompressed (truncated or corrupt): {exc}") from None
    elif path.name.endswith(".gz"):
        raise UnreadableFile("named .gz but is not gzip-compressed")
    if data.startswith(BOM):
        data = data[len(BOM):]
    return data


def numbered_lines(data: bytes) -> pa.Table:
    """Arrow table (line BIGINT 1-based, text VARCHAR) of the non-blank lines of `data`."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    # Drop a trailing '\r' (CRLF files).
    stop = ends.copy()
    has_cr = (stop > starts) & (buf[np.maximum(stop - 1, 0)] == 13)
    stop[has_cr] -= 1
    line_no = np.arange(1, len(ends) + 1, dtype=np.int64)
    keep = stop > starts
    if keep.any():
        # Blank lines (only spaces/tabs) carry no row; a cheap check on short lines only.
        short = keep & (stop - starts < 4)
        for i in np.flatnonzero(short):
            if not data[starts[i]:stop[i]].strip():
                keep[i] = False
    starts, stop, line_no = starts[keep], stop[keep], line_no[keep]
    # Arrow large_string over a compacted buffer: gather the kept byte ranges.
    lengths = (stop - starts).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if len(lengths) == len(ends) and not has_cr.any():
        # Fast path: every line kept and no CR → the data minus newlines, gathered by mask.
        mask = buf != 10
        payload = buf[mask]
    else:
        idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        payload = buf[idx]
    text = pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(offsets.tobytes()), pa.py_buffer(payload.tobytes())
    )
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        raise UnreadableFile("not valid UTF-8 text") from None
    return pa.table({"line": pa.array(line_no), "text": text})


def read_lines(path: Path) -> pa.Table:
    return numbered_lines(read_bytes(path))

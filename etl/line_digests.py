r"""A CSV's rows recognised by the bytes of their lines, before any parsing (issue 11).

A resubmitted survey is mostly the lines loaded before. Each data line of a plain CSV gets a
63-bit digest of its bytes (without the line break) seeded by the load's context
(:func:`etl.trees._row_context`: headers, mapping, CRS, territory, reference data) and by how
the file is read (delimiter, encoding, limits). The load stores it as the tree's
``load_digest`` in place of the digest of the row's parsed cells (``etl.digests``), so on the
next load of the same lines every known line is counted unchanged without being parsed: only
the new and changed lines are given to Arrow's parser and checked.

A file is read this way only when its lines are its rows: UTF-8, no mapping row rules, no
quoted line break (every line holds an even number of ``"``), no carriage return that is not
before a line feed, no NUL byte, and no line longer than the field limit (so that every row
and field limit holds). Any other file is read as before, its rows digested by their cells.

>>> import numpy as np
>>> lines = split(b"code,dbh\nA,1\n\nB,2\r\nA,1", prefix=9)
>>> lines.rows.tolist(), lines.line_no.tolist()
([2, 3, 4], [2, 4, 5])
>>> d = lines.digests(7)
>>> bool(d[0] == d[2]), bool(d[0] == d[1])
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from etl import csv_prefetch, hashing

if TYPE_CHECKING:
    from etl.readers import Table

_LF, _CR, _QUOTE = 10, 13, 34
# Larger files are read as a stream, as before: the whole file is held in memory here, with
# an array of its line ends (the province's 1.13 M-row survey is 105 MB).
MAX_BYTES = csv_prefetch.MAX_BYTES


@dataclass
class Lines:
    """A CSV's data lines: where each is in the file's bytes, its row and line numbers."""

    data: bytes
    prefix: int              # bytes before the first data row (the header, blank lines)
    starts: np.ndarray       # first byte of each data line
    lengths: np.ndarray      # its bytes, without the line break
    rows: np.ndarray         # its row number as the loader counts them (blank lines skipped)
    line_no: np.ndarray      # its line in the file, from 1
    hashes: np.ndarray | None = None   # the unseeded hash of each (etl.hashing), if known

    def digests(self, seed: int) -> np.ndarray:
        """The digest of each line (int64 ≥ 0, as stored), seeded by ``seed``."""
        h = (hashing.span_hash(np.frombuffer(self.data, np.uint8), self.starts, self.lengths)
             if self.hashes is None else self.hashes.copy())
        h = hashing.mix(h ^ np.uint64(seed))
        return (h >> np.uint64(1)).view(np.int64)

    def only(self, keep: np.ndarray) -> bytes:
        """The file again with only the data lines ``keep`` marks (each ended by a line feed)."""
        view = memoryview(self.data)
        parts: list[bytes | memoryview] = [view[:self.prefix]]
        for start, length in zip(self.starts[keep].tolist(), self.lengths[keep].tolist(),
                                 strict=True):
            parts += [view[start:start + length], b"\n"]
        return b"".join(parts)


def seed(table: Table, context: int) -> int:
    """The lines' seed: the rows' context and how the file is read."""
    from etl import digests

    return digests.context_digest("csv lines", context, table.delimiter, table.encoding,
                                  table.limits.field_bytes, table.limits.row_bytes)


def read(table: Table) -> Lines | None:
    """The file's data lines, or None when its lines are not its rows (see the module)."""
    if (table.kind != "csv" or table.derivation is not None
            or table.encoding not in ("utf-8", "utf-8-sig") or table.size > MAX_BYTES):
        return None
    # Read and split on a thread while the loader started, when it was (etl.csv_prefetch).
    found = csv_prefetch.lines(table.path)
    if found is None:
        lines = split(table.path.read_bytes(), table.data_offset)
    else:
        data, at = found
        lines = None if at is None else data_lines(data, table.data_offset, *at)
    if lines is None or int(lines.lengths.max(initial=0)) > table.limits.field_bytes:
        return None
    return lines


def split(data: bytes, prefix: int) -> Lines | None:
    """The data lines of ``data`` after its first ``prefix`` bytes; None if not one row each."""
    found = spans(data)
    return None if found is None else data_lines(data, prefix, *found)


def spans(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Where every line of ``data`` starts, and its bytes without the line break.

    None when the lines are not one row each (see the module).
    """
    if b"\x00" in data:
        return None
    buf = np.frombuffer(data, np.uint8)
    feeds = np.flatnonzero(buf == _LF)
    returns = np.flatnonzero(buf == _CR) if b"\r" in data else np.zeros(0, np.int64)
    # Arrow ends a row at a lone carriage return too; this split knows only line feeds.
    if len(returns) and (returns[-1] + 1 >= len(buf) or (buf[returns + 1] != _LF).any()):
        return None
    starts = np.concatenate([[0], feeds + 1]).astype(np.int64)
    ends = np.concatenate([feeds, [len(buf)]]).astype(np.int64)     # at the line feed
    quotes = np.flatnonzero(buf == _QUOTE) if b'"' in data else np.zeros(0, np.int64)
    if len(quotes):
        per_line = np.bincount(np.searchsorted(feeds, quotes), minlength=len(starts))
        if (per_line & 1).any():
            return None       # a quoted line break: a row over several lines
    crlf = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == _CR)
    return starts, ends - starts - crlf


def data_lines(data: bytes, prefix: int, starts: np.ndarray, lengths: np.ndarray,
               hashes: np.ndarray | None = None) -> Lines:
    """The data lines among every line of ``data`` (:func:`spans`): after ``prefix``, not empty.

    ``hashes``: :func:`etl.hashing.span_hash` of every line, if known.
    """
    data_line = (starts >= prefix) & (lengths > 0)
    line_no = np.flatnonzero(data_line) + 1
    return Lines(data, prefix, starts[data_line], lengths[data_line],
                 np.arange(2, 2 + len(line_no), dtype=np.int64), line_no.astype(np.int64),
                 None if hashes is None else hashes[data_line])

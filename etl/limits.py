"""What one field, one row and one batch of an input may hold, and the pass that enforces it.

A survey file is read a batch at a time, so memory follows the batch, not the file: as long as
each row ends somewhere. A file whose "row" never ends (a disk image, a file of zero bytes, a
quote left open) or with one enormous cell would otherwise be held whole, several times over,
by the CSV parsers. :func:`record_blocks` reads a CSV's bytes in blocks cut at row ends, and
refuses, naming the file, row and field, a NUL byte, a row or a field over its limit, and a
byte the file's encoding cannot decode. Every CSV reader reads through it: the scan at open
(``etl.readers.open_table``), or, for the tree loader, which skips that scan, the readers
themselves (``etl.readers.CheckedStream`` for Arrow, ``checked_bytes`` for COPY, and the chunks
of the checked path).

Rows are counted as the checked path counts them: the header is row 1, blank lines are skipped,
and a quoted cell may span lines.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from etl.errors import InputError

READ_BYTES = 4 << 20        # one read of the file
CHUNK_ROWS = 50_000         # rows per batch of the checked path's readers, at most
XLSX_STRINGS_BATCHES = 16   # a workbook's shared strings may take this many batches' bytes
LEGACY = {"cp1258": "Windows-1258", "tcvn3": "TCVN3", "vni": "VNI"}


@dataclass(frozen=True)
class Limits:
    """Bounds on one input's field, row and batch, in bytes (``SMARTTREES_LOAD_…``)."""

    field_bytes: int = 1 << 20
    row_bytes: int = 4 << 20
    batch_bytes: int = 8 << 20

    @classmethod
    def from_settings(cls) -> Limits:
        """The limits the settings give."""
        from smarttrees.settings import get_settings

        s = get_settings()
        return cls(s.load_max_field_bytes, s.load_max_row_bytes, s.load_batch_bytes)

    @property
    def shared_strings_bytes(self) -> int:
        """The most a workbook's shared text table may unpack to (it is read whole)."""
        return XLSX_STRINGS_BATCHES * self.batch_bytes

    @property
    def block_bytes(self) -> int:
        """Arrow's read unit: a batch, and at least twice the longest row (no row straddles)."""
        return max(self.batch_bytes, 2 * self.row_bytes)


def size(n: int) -> str:
    """Bytes for a person: ``1 MiB``, ``4,000 bytes``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n:,} bytes"


@dataclass
class _Cursor:
    """Where the reader stands: the rows before the current block, the header included."""

    rows: int
    longest: int = 0            # longest row seen, in bytes


class CsvBlocks:
    """A CSV's data rows in byte blocks cut at row ends, each checked against the limits.

    Parameters
    ----------
    path:
        The file.
    headers:
        Its header (for naming fields in messages).
    encoding:
        Its text encoding; every block must decode.
    delimiter:
        Its field delimiter.
    start:
        Byte offset of the first data row (just after the header line).
    limits:
        The bounds.

    """

    def __init__(self, path: Path, headers: list[str], encoding: str, delimiter: str,
                 start: int, limits: Limits) -> None:
        self.path = path
        self.headers = headers
        self.encoding = encoding
        self.delimiter = ord(delimiter)
        self.start = start
        self.limits = limits
        self.longest = 0

    def __iter__(self) -> Iterator[bytes]:
        """Blocks of whole rows, about ``limits.batch_bytes`` each (one long row may exceed)."""
        cursor = _Cursor(rows=1)
        pending = b""
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            for buffer, last in self._reads(handle):
                buffer = pending + buffer if pending else buffer
                cut = len(buffer) if last else self._cut(buffer)
                if cut == 0:
                    self._refuse_unended(buffer, cursor)
                    pending = buffer
                    continue
                block, pending = buffer[:cut], buffer[cut:]
                self._check(block, cursor)
                if not last:
                    self._refuse_unended(pending, cursor)
                yield block
        self.longest = cursor.longest

    def scan(self) -> None:
        """Read the whole file once, checking it."""
        for _ in self:
            pass

    # -- reading ---------------------------------------------------------------------------

    def _reads(self, handle: BinaryIO) -> Iterator[tuple[bytes, bool]]:
        """The file in reads of about a batch; ``last`` marks the final one."""
        unit = max(READ_BYTES, self.limits.batch_bytes)
        data = handle.read(unit)
        while data:
            following = handle.read(unit)
            yield data, not following
            data = following

    def _cut(self, buffer: bytes) -> int:
        """Offset just past the last row end (a newline outside quotes); 0 when none."""
        end = buffer.rfind(b"\n")
        if end < 0:
            return 0
        if b'"' not in buffer:
            return end + 1
        arr = np.frombuffer(buffer, np.uint8)
        newlines = np.flatnonzero(arr == 10)
        quotes = np.flatnonzero(arr == 34)
        outside = newlines[(np.searchsorted(quotes, newlines) & 1) == 0]
        return int(outside[-1]) + 1 if len(outside) else 0

    # -- checks ----------------------------------------------------------------------------

    def _check(self, block: bytes, cursor: _Cursor) -> None:
        """Refuse a NUL byte, an undecodable byte, a row or a field over its limit."""
        arr = np.frombuffer(block, np.uint8)
        ends = self._row_ends(arr, len(block))
        nul = block.find(b"\0")
        if nul >= 0:
            self._refuse_at(block, arr, ends, nul, cursor,
                            "a NUL byte (0x00): binary data, or a UTF-16 file? Save it as a "
                            "UTF-8 CSV")
        try:
            block.decode(self.encoding)
        except UnicodeDecodeError as exc:
            self._refuse_at(block, arr, ends, exc.start, cursor, self._not_decoded(block, exc))
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts
        if len(lengths):
            cursor.longest = max(cursor.longest, int(lengths.max()))
        for i in np.flatnonzero(lengths > self.limits.field_bytes):
            self._check_fields(block, int(starts[i]), int(ends[i]),
                               cursor.rows + self._rows_before(arr, ends, int(starts[i])) + 1)
        over = np.flatnonzero(lengths > self.limits.row_bytes)
        if len(over):
            row = cursor.rows + self._rows_before(arr, ends, int(starts[over[0]])) + 1
            raise InputError(self.path, self._too_long_row(), row=row)
        cursor.rows += self._rows_before(arr, ends, len(block) + 1)

    def _row_ends(self, arr: np.ndarray, n: int) -> np.ndarray:
        """Offsets of the block's row ends (newlines outside quotes; the block's end last)."""
        newlines = np.flatnonzero(arr == 10)
        quotes = np.flatnonzero(arr == 34)
        if len(quotes):
            newlines = newlines[(np.searchsorted(quotes, newlines) & 1) == 0]
        if not len(newlines) or newlines[-1] != n - 1:
            newlines = np.append(newlines, n)   # the file's last row, without a newline
        return newlines

    @staticmethod
    def _rows_before(arr: np.ndarray, ends: np.ndarray, offset: int) -> int:
        """Rows (blank lines not counted) ending before ``offset`` in the block."""
        ends = ends[ends < offset]
        starts = np.concatenate(([0], ends[:-1] + 1))
        length = ends - starts
        single = length == 1
        blank = length == 0
        blank[single] = arr[ends[single] - 1] == 13          # a lone carriage return
        return int(np.count_nonzero(~blank))

    def _field_at(self, block: bytes, start: int, offset: int) -> str | None:
        """The header of the field holding ``offset`` in the row starting at ``start``."""
        row = np.frombuffer(block, np.uint8, count=offset - start, offset=start)
        delimiters = np.flatnonzero(row == self.delimiter)
        quotes = np.flatnonzero(row == 34)
        if len(quotes):
            delimiters = delimiters[(np.searchsorted(quotes, delimiters) & 1) == 0]
        index = len(delimiters)
        return self.headers[index] if index < len(self.headers) else f"column {index + 1}"

    def _check_fields(self, block: bytes, start: int, end: int, row: int) -> None:
        """Refuse the first field of one row longer than the field limit."""
        arr = np.frombuffer(block, np.uint8, count=end - start, offset=start)
        seps = np.flatnonzero(arr == self.delimiter)
        quotes = np.flatnonzero(arr == 34)
        if len(quotes):
            seps = seps[(np.searchsorted(quotes, seps) & 1) == 0]
        bounds = np.concatenate(([-1], seps, [len(arr)]))
        widths = np.diff(bounds) - 1
        over = np.flatnonzero(widths > self.limits.field_bytes)
        if len(over):
            index = int(over[0])
            name = self.headers[index] if index < len(self.headers) else f"column {index + 1}"
            raise InputError(self.path, self._too_long_field(), row=row, field=name)

    def _refuse_at(self, block: bytes, arr: np.ndarray, ends: np.ndarray, offset: int,
                   cursor: _Cursor, problem: str) -> None:
        before = ends[ends < offset]
        start = int(before[-1]) + 1 if len(before) else 0
        row = cursor.rows + self._rows_before(arr, ends, offset) + 1
        raise InputError(self.path, problem, row=row, field=self._field_at(block, start, offset))

    def _refuse_unended(self, buffer: bytes, cursor: _Cursor) -> None:
        """A row still without its end: refuse it once it is over a limit."""
        if len(buffer) <= self.limits.field_bytes:
            return
        row = cursor.rows + 1
        nul = buffer.find(b"\0", 0, self.limits.row_bytes + 1)
        if nul >= 0:
            raise InputError(self.path, "a NUL byte (0x00): binary data, or a UTF-16 file? "
                             "Save it as a UTF-8 CSV", row=row,
                             field=self._field_at(buffer, 0, nul))
        self._check_fields(buffer, 0, len(buffer), row)
        if len(buffer) > self.limits.row_bytes:
            raise InputError(self.path, self._too_long_row(), row=row)

    def _too_long_row(self) -> str:
        return (f"the row is longer than {size(self.limits.row_bytes)} "
                "(SMARTTREES_LOAD_MAX_ROW_BYTES): a quote left open, or not a CSV?")

    def _too_long_field(self) -> str:
        return (f"the cell is longer than {size(self.limits.field_bytes)} "
                "(SMARTTREES_LOAD_MAX_FIELD_BYTES)")

    def _not_decoded(self, block: bytes, exc: UnicodeDecodeError) -> str:
        bad = block[exc.start]
        if codecs.lookup(self.encoding).name not in ("utf-8", "utf-8-sig"):
            return (f"byte 0x{bad:02x} is not valid {self.encoding}: wrong encoding? "
                    "try --encoding tcvn3, vni or cp1258")
        line_start = block.rfind(b"\n", 0, exc.start) + 1
        line_end = block.find(b"\n", exc.start)
        line = block[line_start:line_end if line_end >= 0 else len(block)]
        from etl.encodings import guess_legacy

        guess = guess_legacy(line)
        looks = f" (looks like {LEGACY.get(guess, guess)})" if guess else ""
        return f"not UTF-8{looks}: byte 0x{bad:02x}; save the file as UTF-8 or fix this row"

"""PostgreSQL binary COPY rows built by numpy, column by column.

A binary COPY stream is a signature, then per row a field count and per field its byte length
(-1: NULL) and bytes, then a trailer. Rows are built here from typed numpy columns with no
Python object per value, which is what keeps a million-row load in seconds.

Rows whose fields all have the same byte lengths (the same *pattern*: which fields are NULL,
how long each text is) are records of one fixed-width numpy dtype. So rows are grouped by
pattern (a stable sort on a small integer key), each group becomes one record array filled
field by field with plain slice assignments, and the groups are laid out one after another.
With ``keep_order=True`` (the default) each row is then copied, whole, to its place in input
order: one ``memcpy``-sized copy per row through a byte-strided view of the output. Callers
that send explicit ids and have no index that prefers appends may pass ``keep_order=False``
and skip that copy; the rows then arrive grouped by pattern within blocks of 50,000.

On 1.13 million survey-like tree rows this takes 0.24 s in input order and 0.20 s grouped,
against 1.3 s for the former scatter of each field's bytes to per-row offsets; see
``bench/bench_binary_copy.py`` and ``bench/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

Progress = Callable[[str, int, int], None]
Column = tuple[str, np.ndarray]

CHUNK = 150_000  # rows per binary_rows call: about 20 MB of COPY data for a tree row
BLOCK = 50_000  # rows encoded at once: 3x bigger blocks take 1.5x longer (cache, page faults)

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2  # + flags, extension length
COPY_TRAILER = b"\xff\xff"  # a field count of -1
POSTGRES_EPOCH_DAYS = 10_957  # 2000-01-01 counted from 1970-01-01

POINT_EWKB = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)
_NUMBERS = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8"}
KINDS = frozenset({*_NUMBERS, "bool", "date", "text", "jsonb", "geometry"})
JSONB_VERSION = b"\x01"  # jsonb's binary form: this version byte, then the JSON text


@dataclass(frozen=True)
class _Field:
    """One column in wire form: a value per row and each row's byte length (-1: NULL)."""

    values: np.ndarray  # 1-D; big-endian numbers, ``S`` bytes or ``V`` EWKB points
    lengths: np.ndarray | None  # None: every row is ``values.dtype.itemsize`` bytes long
    width: int  # bytes of the longest value (0 when every row is NULL)


def ewkb_points(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """EWKB of SRID 4326 points as records of :data:`POINT_EWKB` (``.tobytes()`` per row)."""
    record = np.empty(len(lon), dtype=POINT_EWKB)
    record["order"] = 1  # little endian
    record["type"] = 0x20000001  # Point, with SRID
    record["srid"] = 4326
    record["x"] = lon
    record["y"] = lat
    return record


def _null_mask(values: np.ndarray) -> np.ndarray:
    """Rows masked in a numpy masked array (a geometry row: either coordinate); else none."""
    if not np.ma.isMaskedArray(values):
        return np.zeros(len(values), dtype=bool)
    mask = np.ma.getmaskarray(values)
    return np.asarray(mask.reshape(len(mask), -1).any(axis=1))


def _with_nulls(values: np.ndarray, null: np.ndarray) -> _Field:
    """A fixed-width column whose ``null`` rows are sent as NULL."""
    size = values.dtype.itemsize
    if not null.any():
        return _Field(values, None, size)
    return _Field(values, np.where(null, -1, size), 0 if null.all() else size)


def _utf8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of a str array (``S`` dtype, zero padded) and each value's byte length.

    ASCII columns (codes) are narrowed from their code points by one cast (numpy's own
    ``astype("S")`` is many times slower); others (Vietnamese words) have few distinct values,
    each encoded once.
    """
    n, width = len(values), max(values.dtype.itemsize // 4, 1)
    points = np.ascontiguousarray(values, dtype=f"<U{width}").view(np.uint32).reshape(n, width)
    if points.max(initial=0) < 128:
        encoded = points.astype(np.uint8).view(f"S{width}").reshape(n)
        return encoded, np.strings.str_len(values).astype(np.int64)
    distinct, inverse = np.unique(values, return_inverse=True)
    words = [v.encode("utf-8") for v in distinct.tolist()]
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    return np.array(words, dtype=np.bytes_)[inverse], lengths[inverse]


def _text(values: np.ndarray) -> _Field:
    """A text column; empty strings (and ``None`` in object arrays) are NULL.

    ``S`` arrays are taken as UTF-8 bytes already (e.g. straight from an Arrow buffer).
    """
    null = _null_mask(values)
    values = np.ma.getdata(values)
    if values.dtype.kind == "S":
        lengths = np.strings.str_len(values).astype(np.int64)
        lengths[null] = 0
        return _Field(values, np.where(lengths == 0, -1, lengths), int(lengths.max(initial=0)))
    if values.dtype.kind != "U":
        if values.dtype == object:
            values = np.where(np.equal(values, np.array(None)), "", values)
        values = values.astype(str)
    encoded, lengths = _utf8(values)
    lengths[null] = 0
    return _Field(encoded, np.where(lengths == 0, -1, lengths), int(lengths.max(initial=0)))


def _field(kind: str, values: np.ndarray) -> _Field:
    """One column in wire form; see :func:`binary_rows` for the kinds and their NULLs."""
    if kind == "text":
        return _text(values)
    if kind == "jsonb":
        text = _text(values)
        lengths = text.lengths if text.lengths is not None else np.full(len(values), text.width)
        return _Field(np.strings.add(JSONB_VERSION, text.values.astype("S")),
                      np.where(lengths < 0, -1, lengths + 1), text.width + 1)
    null = _null_mask(values)
    values = np.ma.getdata(values)
    if kind == "geometry":
        lon, lat = values[:, 0], values[:, 1]
        # Copied as opaque bytes: numpy copies a nested record field by field, much slower.
        points = ewkb_points(lon, lat).view(f"V{POINT_EWKB.itemsize}")
        return _with_nulls(points, null | np.isnan(lon) | np.isnan(lat))
    if kind == "date":
        days = values.astype("datetime64[D]")
        null = null | np.isnat(days)
        numbers = np.where(null, 0, days.astype(np.int64) - POSTGRES_EPOCH_DAYS)
        return _with_nulls(numbers.astype(">i4"), null)
    if kind == "bool":
        return _with_nulls(values.astype(np.uint8), null)
    if kind not in _NUMBERS:
        raise ValueError(f"unknown binary COPY kind {kind!r}; known: {sorted(KINDS)}")
    if kind.startswith("float"):
        null = null | np.isnan(values)
    return _with_nulls(values.astype(_NUMBERS[kind]), null)


def binary_rows(columns: Sequence[Column], *, keep_order: bool = True) -> bytes:
    """Rows of a binary COPY (without signature and trailer), built column by column.

    Parameters
    ----------
    columns
        ``(kind, values)`` per field, in the COPY's column order, all of the same length.
        The kinds, and what is sent as NULL:

        - ``text``: str arrays (``<U``), object arrays of str, or ``S`` arrays of UTF-8 bytes
          (e.g. from an Arrow buffer); ``""`` or ``None`` is NULL.
        - ``jsonb``: JSON texts as ``text`` takes them (``""`` is NULL), sent in jsonb's
          binary form (a version byte, then the text).
        - ``int2``, ``int4``, ``int8``: integers; NULL only where a numpy masked array is
          masked (a negative number is a number: a grid key west of Greenwich).
        - ``float4``, ``float8``: NaN is NULL.
        - ``date``: ``datetime64`` (any unit, cut to days); NaT is NULL.
        - ``bool``: booleans.
        - ``geometry``: an (n, 2) float array of lon/lat, sent as EWKB points in SRID 4326; a
          row with a NaN coordinate is NULL.

        Any column may also be a numpy masked array: masked rows are NULL.
    keep_order
        Emit rows in input order (default). ``False`` emits each block of :data:`BLOCK` rows
        grouped by pattern of byte lengths, which saves one copy of the output (about 20 %).

    Returns
    -------
    bytes
        The rows, to be written between :data:`COPY_SIGNATURE` and :data:`COPY_TRAILER`.

    """
    sizes = {len(values) for _, values in columns}
    if len(sizes) > 1:
        raise ValueError(f"binary COPY columns of different lengths: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    blocks = range(0, n, BLOCK)
    parts = [_encode([(k, v[s : s + BLOCK]) for k, v in columns], keep_order) for s in blocks]
    return b"".join(part.data for part in parts)


def _encode(columns: Sequence[Column], keep_order: bool) -> np.ndarray:
    """Rows of one block of (at most :data:`BLOCK`) rows, as a uint8 array."""
    fields = [_field(kind, np.asanyarray(values)) for kind, values in columns]
    n = len(fields[0].values)
    pattern, count = _pattern_numbers(fields, n)
    if _scatter(fields, n, count):
        return _scattered_records(fields, n)
    groups = _Groups.of(fields, n, (pattern, count))
    records = _grouped_records(fields, groups)
    if not keep_order or groups.count == 1:  # one group: the sort kept the input order
        return records
    return _in_input_order(fields, groups, records)


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by pattern of byte lengths, in a stable order."""

    order: np.ndarray  # row numbers, group after group, each group in input order
    bounds: list[int]  # group g is order[bounds[g]:bounds[g + 1]]

    @property
    def count(self) -> int:
        """Number of groups."""
        return len(self.bounds) - 1

    @classmethod
    def of(cls, fields: Sequence[_Field], n: int,
           patterns: tuple[np.ndarray, int] | None = None) -> _Groups:
        """Group the rows of ``fields`` by which fields are NULL and how long each one is.

        ``patterns``: :func:`_pattern_numbers` of the fields, when already known.
        """
        pattern, count = patterns if patterns is not None else _pattern_numbers(fields, n)
        if count == 1:
            return cls(np.arange(n), [0, n])
        # A stable sort of integers of at most 16 bits is a radix sort: linear in n.
        small = pattern.astype(np.uint16) if count <= 1 << 16 else pattern
        order = np.argsort(small, kind="stable")
        sizes = np.bincount(pattern, minlength=count)
        return cls(order, [0, *np.cumsum(sizes).tolist()])

    def rows(self, group: int) -> np.ndarray:
        """Row numbers of one group."""
        return self.order[self.bounds[group] : self.bounds[group + 1]]


def _pattern_numbers(fields: Sequence[_Field], n: int) -> tuple[np.ndarray, int]:
    """Each row's pattern of lengths numbered 0, 1, ... (in no meaningful order), and how many."""
    key = np.zeros(n, dtype=np.int64)
    span = 1  # key < span
    for f in fields:
        if f.lengths is None:
            continue
        radix = f.width + 2  # lengths run from -1 to the width
        if span * radix > 1 << 62:  # renumber the patterns so far before the key overflows
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
            span = n
        key = key * radix + (f.lengths + 1)
        span *= radix
    if span <= 4 * n + (1 << 16):  # few possible keys: number them by a table, not a sort
        seen = np.zeros(span, dtype=bool)
        seen[key] = True
        number = np.cumsum(seen) - 1
        return number[key], int(number[-1]) + 1
    distinct, pattern = np.unique(key, return_inverse=True)
    return pattern, len(distinct)


def _record_dtype(fields: Sequence[_Field], lengths: Sequence[int]) -> np.dtype:
    """The packed record of rows whose fields have these byte lengths (-1: NULL).

    A field count, then per field its length and, unless NULL, its value. Text values become
    ``S{length}``: assigning the zero-padded column to it cuts exactly the padding off.
    """
    parts: list[tuple[str, Any]] = [("count", ">i2")]
    for i, (f, length) in enumerate(zip(fields, lengths, strict=True)):
        parts.append((f"n{i}", ">i4"))
        if length > 0 and f.values.dtype.kind == "S":
            parts.append((f"v{i}", f"S{length}"))
        elif length > 0:
            parts.append((f"v{i}", f.values.dtype))
    return np.dtype(parts)


def _grouped_records(fields: Sequence[_Field], groups: _Groups) -> np.ndarray:
    """All rows as bytes, group after group; each group one record array.

    The count and the length prefixes are the same on every row of a group: they are written
    as one template row broadcast over the group. Values are written field by field from
    columns sorted into group order once, so every write is a plain slice assignment.
    """
    patterns = [
        [_length(f, row) for f in fields] for row in groups.order[groups.bounds[:-1]].tolist()
    ]
    dtypes = [_record_dtype(fields, lengths) for lengths in patterns]
    sizes = np.diff(groups.bounds)
    ends = np.cumsum([d.itemsize * int(m) for d, m in zip(dtypes, sizes, strict=True)])
    buffer = np.empty(int(ends[-1]), dtype=np.uint8)
    sort = groups.count > 1
    values = [f.values[groups.order] if sort and f.width else f.values for f in fields]
    for g, (lengths, dtype) in enumerate(zip(patterns, dtypes, strict=True)):
        start, stop = groups.bounds[g], groups.bounds[g + 1]
        raw = buffer[ends[g] - dtype.itemsize * (stop - start) : ends[g]]
        raw.reshape(-1, dtype.itemsize)[:] = _template(lengths, dtype)
        record = raw.view(dtype)
        for i, length in enumerate(lengths):
            if length > 0:
                record[f"v{i}"] = values[i][start:stop]
    return buffer


# A block's rows are scattered field by field (:func:`_scattered_records`) rather than built as
# one record array per pattern of lengths when its patterns cost more: each pattern costs a
# dtype and a template (about 0.1 ms), the scatter about 4 ns per byte of every field padded to
# its widest value. A resubmitted survey's 11,300 new lines staged with their cells as text
# (eleven columns, 1,800 patterns): 0.55 s grouped, 0.09 s scattered; 50,000 rows of one long
# text of 3,000 lengths: 0.32 s grouped, 0.66 s scattered.
SCATTER_BYTES_PER_PATTERN = 25_000
# and only while its positions stay small (int64 per byte of the widest field: 32 MB).
SCATTER_MAX_CELLS = 4_000_000


def _scatter(fields: Sequence[_Field], n: int, patterns: int) -> bool:
    """True when scattering the fields of ``n`` rows is the cheaper way (see above)."""
    widths = [f.values.dtype.itemsize for f in fields]
    return (patterns * SCATTER_BYTES_PER_PATTERN > n * sum(widths)
            and n * max(widths, default=0) <= SCATTER_MAX_CELLS)


def _scattered_records(fields: Sequence[_Field], n: int) -> np.ndarray:
    """All rows as bytes in input order, each field put at its offset in every row at once.

    The same bytes as :func:`_grouped_records` followed by :func:`_in_input_order`.
    """
    lengths = [np.full(n, f.values.dtype.itemsize, np.int64) if f.lengths is None
               else f.lengths.astype(np.int64) for f in fields]
    sizes = [np.maximum(length, 0) for length in lengths]
    row_bytes = 2 + 4 * len(fields) + np.sum(sizes, axis=0, dtype=np.int64)
    ends = np.cumsum(row_bytes)
    out = np.empty(int(ends[-1]) if n else 0, dtype=np.uint8)
    at = ends - row_bytes
    _put(out, at, np.full(n, len(fields), dtype=">i2").view(np.uint8).reshape(n, 2))
    at = at + 2
    for f, length, size in zip(fields, lengths, sizes, strict=True):
        _put(out, at, length.astype(">i4").view(np.uint8).reshape(n, 4))
        at = at + 4
        width = f.values.dtype.itemsize
        if width and n:
            raw = np.ascontiguousarray(f.values).view(np.uint8).reshape(n, width)
            _put(out, at, raw, None if f.lengths is None else size)
        at = at + size
    return out


def _put(out: np.ndarray, at: np.ndarray, raw: np.ndarray, size: np.ndarray | None = None
         ) -> None:
    """Row ``i`` of ``raw`` (its first ``size[i]`` bytes; all if None) to ``out`` at ``at[i]``."""
    positions = at[:, None] + np.arange(raw.shape[1])
    if size is None:
        out[positions] = raw
    else:
        taken = np.arange(raw.shape[1]) < size[:, None]
        out[positions[taken]] = raw[taken]


def _length(f: _Field, row: int) -> int:
    """Byte length of one row's value (-1: NULL)."""
    return f.values.dtype.itemsize if f.lengths is None else int(f.lengths[row])


def _template(lengths: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """One row of ``dtype`` as bytes: its field count and length prefixes set, values zero."""
    row = np.zeros(1, dtype=dtype)
    row["count"] = len(lengths)
    for i, length in enumerate(lengths):
        row[f"n{i}"] = length
    return row.view(np.uint8)


def _in_input_order(fields: Sequence[_Field], groups: _Groups, records: np.ndarray) -> np.ndarray:
    """The grouped rows moved back to input order.

    Each group's rows are copied whole, through a view of the output whose items are as long
    as the group's records but start one byte apart: item ``k`` is the record starting at
    byte ``k``. So one fancy assignment per group places every row at its offset.
    """
    length = np.full(groups.order.shape, 2 + 4 * len(fields), dtype=np.int64)
    for f in fields:
        length += f.values.dtype.itemsize if f.lengths is None else np.maximum(f.lengths, 0)
    starts = np.cumsum(length) - length
    out = np.empty_like(records)
    done = 0
    for g in range(groups.count):
        rows = groups.rows(g)
        size = int(length[rows[0]])
        slots = np.ndarray((len(out) - size + 1,), dtype=f"V{size}", buffer=out, strides=(1,))
        slots[starts[rows]] = records[done : done + size * len(rows)].view(f"V{size}")
        done += size * len(rows)
    return out


@contextmanager
def open_copy(cur: psycopg.Cursor[Any], table: sql.Composable, columns: Sequence[str], *,
              freeze: bool = False, queued: bool = False) -> Iterator[psycopg.Copy]:
    """A binary ``COPY table (columns) FROM STDIN``, its signature and trailer written.

    Write :func:`binary_rows` output to it. ``freeze`` writes the rows frozen: only for a
    table created or truncated in this transaction. ``queued`` sends from a thread (psycopg's
    queued writer), so the server stores one chunk while the caller builds the next.
    """
    options = sql.SQL("FORMAT binary, FREEZE" if freeze else "FORMAT binary")
    statement = sql.SQL("COPY {} ({}) FROM STDIN ({})").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns)), options)
    writer = QueuedLibpqWriter(cur) if queued else None
    with cur.copy(statement, writer=writer) as copy:
        copy.write(COPY_SIGNATURE)
        yield copy
        copy.write(COPY_TRAILER)


def copy_binary(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: dict[str, Column],
    progress: Progress | None = None,
    *,
    freeze: bool = False,
    keep_order: bool = True,
) -> int:
    """COPY typed numpy columns (name → (kind, array)) into ``table`` in binary form.

    Rows are encoded by :func:`binary_rows` (which lists the kinds and their NULLs) in chunks
    of :data:`CHUNK`. ``freeze`` writes the rows frozen: only for a table created or truncated
    in this transaction. ``keep_order=False`` lets rows of a chunk arrive in any order.
    """
    schema, _, name = table.rpartition(".")
    target = sql.Identifier(schema or "smarttrees", name)
    total = len(next(iter(columns.values()))[1])
    with open_copy(cur, target, list(columns), freeze=freeze) as copy:
        for start in range(0, total, CHUNK):
            chunk = [(kind, values[start : start + CHUNK]) for kind, values in columns.values()]
            copy.write(binary_rows(chunk, keep_order=keep_order))
            if progress:
                progress(name, min(start + CHUNK, total), total)
    return total

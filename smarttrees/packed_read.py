r"""Reading a large point layer packed: each chunk of rows as one row of long values.

A whole-province read through the ADBC driver spends most of its client time parsing the binary
COPY stream, and the cost is per field (15 fields of 1.13 M rows: 1.3 s of CPU), not per byte.
Here PostgreSQL packs each chunk of :data:`CHUNK` keys into one row, which the client cuts with
numpy and Arrow without a step per value:

- a number, date or time column: ``array_send(array_agg(coalesce(c, 0)))``, PostgreSQL's
  binary array (a 20-byte header, then a 4-byte length and the big-endian value for each row),
  read by numpy as a strided view; the rows where it is NULL are sent as their keys
  (``array_agg(key) FILTER (WHERE c IS NULL)``), which costs only where values are missing;
- a text column: ``string_agg(coalesce(c, E'\x1e'), E'\x1f')``, split by Arrow, the marker
  ``\x1e`` being NULL; ``count(c)`` checks that no value held a marker of its own;
- the point: its EWKB joined (``string_agg(geom::bytea, '')``, 25 bytes each), decoded by numpy
  into ``shapely.points``.

Every aggregate of one query sees the rows in the same order, so the columns stay aligned.
Numbers go as binary arrays because their text (``float4out``) costs the server more than the
whole row-wise read, and ``float8send`` into ``string_agg`` not much less (``bench/README.md``,
"packed").

:func:`packing` returns None for columns it cannot carry (a type it does not know, a geometry
other than a point), and :func:`unpack` raises :class:`Unpackable` for a chunk it cannot cut
exactly (a non-2D point, a text holding a marker, a missing or repeated key); the caller then
reads the layer row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from smarttrees import catalog
from smarttrees.arrow_frames import EWKB_POINT_HEAD, EWKB_POINT_SIZE, points_of
from smarttrees.layer_sql import WKB, Where, select
from smarttrees.parallel_read import Query, in_range, key_ranges

CHUNK = 65_536  # keys per packed query

# PostgreSQL types sent as binary arrays: the big-endian numpy type of a value, the value a
# NULL is sent as, and what to add to turn PostgreSQL's epoch (2000-01-01) into Arrow's (1970).
FIXED = {
    "int2": (">i2", "0", 0), "int4": (">i4", "0", 0), "int8": (">i8", "0", 0),
    "float4": (">f4", "0", 0), "float8": (">f8", "0", 0),
    "date": (">i4", "'2000-01-01'", 10_957),  # days
    "timestamptz": (">i8", "'2000-01-01'", 946_684_800_000_000),  # microseconds
    "timestamp": (">i8", "'2000-01-01'", 946_684_800_000_000),
}
ARRAY_HEADER = 20  # a one-dimensional array: ndim, flags, element type, length, lower bound
NULL_MARK, SEPARATOR = "\x1e", "\x1f"  # record and unit separators: a NULL text, between texts


class Unpackable(Exception):
    """A chunk the packed form cannot give exactly: read the layer row by row instead."""


@dataclass(frozen=True)
class Packing:
    """How the columns of one row-wise SELECT (its Arrow ``schema``) travel packed."""

    schema: pa.Schema
    key: str
    kinds: tuple[str, ...]  # per column: a FIXED type, "text" or "point"

    @property
    def columns(self) -> pa.Schema:
        """The schema of the unpacked rows (the point column left out)."""
        return pa.schema([pa.field(f.name, f.type) for f in self.schema if f.name != WKB])


def packing(schema: pa.Schema, key: str) -> Packing | None:
    """How the columns of ``schema`` (a row-wise SELECT's) travel packed, or None."""
    kinds = []
    for field in schema:
        pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
        if field.name == WKB and pg_type == "geometry":
            kinds.append("point")
        elif pg_type in FIXED and field.name != WKB:
            kinds.append(pg_type)
        elif pg_type == "text" and pa.types.is_string(field.type):
            kinds.append("text")
        else:  # numeric (the driver's own decimal text), arrays, polygons' WKB: row by row
            return None
    if key not in schema.names or kinds[schema.names.index(key)] not in ("int4", "int8"):
        return None
    return Packing(schema, key, tuple(kinds))


def packed_sql(pack: Packing, rowwise: sql.Composable) -> sql.Composable:
    """One chunk of ``rowwise`` (a SELECT of ``pack.schema``'s columns) as one packed row.

    Its columns: the row count, then per column of the schema its packed values and (numbers:
    the keys of its NULLs; texts: its count of values).
    """
    key = sql.Identifier(pack.key)
    out: list[sql.Composable] = [sql.SQL("count(*)")]
    for field, kind in zip(pack.schema, pack.kinds, strict=True):
        column = sql.SQL("r.{}").format(sql.Identifier(field.name))
        if kind == "point":  # a NULL would be skipped by string_agg: sent as an empty point
            out.append(sql.SQL(
                "string_agg(coalesce({c}, 'SRID=4326;POINT EMPTY'::geometry)::bytea, ''::bytea)"
            ).format(c=column))
        elif kind == "text":
            out.append(sql.SQL("string_agg(coalesce({c}, {mark}), {sep})").format(
                c=column, mark=sql.Literal(NULL_MARK), sep=sql.Literal(SEPARATOR)))
            out.append(sql.SQL("count({c})").format(c=column))
        else:
            out.append(sql.SQL("array_send(array_agg(coalesce({c}, {zero}::{t})))").format(
                c=column, zero=sql.SQL(FIXED[kind][1]), t=sql.SQL(kind)))
            out.append(sql.SQL("array_send(array_agg(r.{k}) FILTER (WHERE {c} IS NULL))").format(
                k=key, c=column))
    return sql.SQL("SELECT {} FROM ({}) AS r").format(sql.SQL(", ").join(out), rowwise)


def read_packed(
    layer: catalog.Layer,
    fields: Sequence[catalog.Field],
    where: Where,
    pack: Packing,
    bounds: tuple[int, int],
    connections: Sequence[Any],
    run: Query,
) -> tuple[pa.Table, np.ndarray | None]:
    """The rows of ``layer`` matching ``where``, packed by chunks of :data:`CHUNK` keys.

    The key range ``bounds`` (inclusive) is split in one part per connection, each read chunk
    by chunk by a thread of its own (the driver, numpy and shapely release the GIL). The
    connections should be on one snapshot (:func:`smarttrees.parallel_read.one_snapshot`).

    Raises
    ------
    Unpackable
        Where the rows cannot travel packed exactly.

    """
    ranges = key_ranges(*bounds, len(connections))

    def part(index: int) -> list[tuple[pa.Table, np.ndarray | None]]:
        start, stop = ranges[index]
        chunks = []
        for low in range(start, stop, CHUNK):
            high = min(low + CHUNK, stop)
            last = index == len(ranges) - 1 and high == stop  # also takes a NULL key
            rowwise, params = select(layer, fields, in_range(layer, where, low, high, last), (),
                                     None, relation=layer.relation_in_range(low, high))
            packed = run(connections[index], packed_sql(pack, rowwise), params)
            chunks.extend(unpack(pack, packed))
        return chunks

    with ThreadPoolExecutor(len(ranges), thread_name_prefix="smarttrees-packed") as pool:
        results = [chunk for chunks in pool.map(part, range(len(ranges))) for chunk in chunks]
    tables = [t for t, _ in results]
    table = pa.concat_tables(tables) if tables else pack.columns.empty_table()
    if "point" not in pack.kinds:
        return table, None
    shapes = [g for _, g in results if g is not None]
    return table, np.concatenate(shapes) if shapes else np.empty(0, dtype=object)


def unpack(pack: Packing, packed: pa.Table) -> list[tuple[pa.Table, np.ndarray | None]]:
    """The rows and points of each packed chunk (a row of :func:`packed_sql`) with rows."""
    out = []
    for batch in packed.to_batches():
        for row in range(batch.num_rows):
            values = [batch.column(i).slice(row, 1) for i in range(batch.num_columns)]
            count = values[0][0].as_py()
            if count:
                out.append(_chunk(pack, count, values[1:]))
    return out


def _chunk(pack: Packing, count: int, values: list[pa.Array]
           ) -> tuple[pa.Table, np.ndarray | None]:
    """One chunk's ``count`` rows from its packed values (in :func:`packed_sql`'s order)."""
    columns: dict[str, Any] = {}  # numpy values (numbers) or Arrow arrays (texts)
    nulls: dict[str, np.ndarray] = {}  # the keys of each number column's NULLs
    key_kind = pack.kinds[pack.schema.names.index(pack.key)]
    points = None
    position = 0
    for field, kind in zip(pack.schema, pack.kinds, strict=True):
        if kind == "point":
            points = _points(values[position], count)
            position += 1
        elif kind == "text":
            columns[field.name] = _texts(values[position], values[position + 1], count)
            position += 2
        else:
            columns[field.name] = _array(values[position], kind, count)
            nulls[field.name] = _array(values[position + 1], key_kind, None)
            position += 2
    keys = columns[pack.key]
    if any(len(n) for n in nulls.values()) and len(np.unique(keys)) != count:
        raise Unpackable("repeated keys: the rows with NULLs cannot be told apart")
    arrays = {}
    for field in pack.columns:
        values_of = columns[field.name]
        if field.name in nulls:
            missing = np.isin(keys, nulls[field.name]) if len(nulls[field.name]) else None
            arrays[field.name] = _fixed_arrow(values_of, field.type, pack.kinds[
                pack.schema.names.index(field.name)], missing)
        else:
            arrays[field.name] = values_of
    return pa.table(arrays, schema=pack.columns), points


def _array(value: pa.Array, kind: str, count: int | None) -> np.ndarray:
    """The values of PostgreSQL's binary array ``value`` (none if NULL), native byte order."""
    dtype, _, _ = FIXED[kind]
    raw = _value_bytes(value)
    if raw.size == 0:
        if count:
            raise Unpackable("a column sent no values")
        return np.empty(0, dtype=np.dtype(dtype).newbyteorder("="))
    n = int(np.frombuffer(raw, dtype=">i4", count=4)[3])  # the header's length of dimension 1
    element = np.dtype([("length", ">i4"), ("value", dtype)])
    if (count is not None and n != count) or raw.size != ARRAY_HEADER + n * element.itemsize:
        raise Unpackable(f"an array of {raw.size} bytes for {n} values")
    view = np.frombuffer(raw, dtype=element, count=n, offset=ARRAY_HEADER)["value"]
    return view.astype(view.dtype.newbyteorder("="))


def _fixed_arrow(values: np.ndarray, kind: pa.DataType, pg_type: str,
                 missing: np.ndarray | None) -> pa.Array:
    """A fixed-width column as the Arrow type of the row-wise read, NULL where ``missing``."""
    shift = FIXED[pg_type][2]
    if shift:
        values = values.astype(np.int64 if values.itemsize == 8 else np.int32) + shift
    validity = None
    if missing is not None and missing.any():
        validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(values)])


def _texts(joined: pa.Array, present: pa.Array, count: int) -> pa.Array:
    """A text column from its joined values (NULL marked), checked against its count."""
    if not joined.null_count:
        pieces = pc.split_pattern(joined, SEPARATOR).flatten()
    else:
        pieces = pa.array([], pa.string())
    if len(pieces) != count:  # a value held the separator
        raise Unpackable(f"{len(pieces)} texts for {count} rows")
    marked = pc.equal(pieces, NULL_MARK)
    marks = pc.sum(marked).as_py() or 0
    if marks != count - present[0].as_py():  # a value was the marker itself
        raise Unpackable("a text equal to the NULL marker")
    if count == present[0].as_py():
        return pieces
    return pc.if_else(marked, pa.scalar(None, pa.string()), pieces)


def _points(wkb: pa.Array, count: int) -> np.ndarray:
    """The chunk's ``count`` points from their joined EWKB (25 bytes each)."""
    raw = np.frombuffer(_value_bytes(wkb), dtype=np.uint8)
    if raw.size != count * EWKB_POINT_SIZE:
        raise Unpackable(f"{raw.size} bytes of points for {count} rows")
    rows = raw.reshape(count, EWKB_POINT_SIZE)
    if not (rows[:, :5] == EWKB_POINT_HEAD).all():  # a big-endian, 3D or SRID-less point
        raise Unpackable("points other than little-endian 2D EWKB")
    return points_of(np.ascontiguousarray(rows[:, 9:]).view("<f8"))


def _value_bytes(one: pa.Array) -> pa.Buffer:
    """The bytes of the only value of a binary array (none if it is NULL)."""
    if isinstance(one.type, pa.ExtensionType):
        one = one.storage
    if one.null_count:
        return pa.py_buffer(b"")
    offsets = np.frombuffer(one.buffers()[1], dtype=np.int32, count=2, offset=one.offset * 4)
    return one.buffers()[2].slice(int(offsets[0]), int(offsets[1] - offsets[0]))

"""Write a generated province into PostGIS: COPY per table, all in one transaction.

Geometries travel as EWKB (built with numpy for points, shapely for polygons). The big tables'
secondary indexes are dropped before their COPY and rebuilt after it, inside the same
transaction: building an index once is much cheaper than maintaining it row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

Progress = Callable[[str, int, int], None]
CHUNK = 50_000

_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")])


def point_ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Hex EWKB of SRID 4326 points, built in one pass (no shapely objects)."""
    record = np.empty(len(lon), dtype=_POINT)
    record["order"] = 1  # little endian
    record["type"] = 0x20000001  # Point, with SRID
    record["srid"] = 4326
    record["x"] = lon
    record["y"] = lat
    hexed = record.tobytes().hex().encode("ascii")
    return np.frombuffer(hexed, dtype=f"S{2 * _POINT.itemsize}").astype(str)


def polygons_ewkb_hex(geoms: np.ndarray) -> list[str]:
    """Hex EWKB of polygons as SRID 4326 MultiPolygons."""
    multi = np.array(
        [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms],
        dtype=object,
    )
    return list(shapely.to_wkb(shapely.set_srid(multi, 4326), hex=True, include_srid=True))


def column_values(values: Any) -> list[Any]:
    """A column as a list of Python values; NaN and empty strings become NULL."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            return [None if v != v else v for v in values.tolist()]
        if values.dtype.kind in "UT":
            return [v or None for v in values.tolist()]
        return values.tolist()
    return list(values)


def copy_columns(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: dict[str, Any],
    progress: Progress | None = None,
) -> int:
    """COPY the given columns (name → array or list, equal lengths) into ``table``."""
    schema, _, name = table.rpartition(".")
    target = sql.Identifier(schema or "smarttrees", name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    lists = [column_values(v) for v in columns.values()]
    total = len(lists[0]) if lists else 0
    with cur.copy(statement) as copy:
        for start in range(0, total, CHUNK):
            for row in zip(*(c[start : start + CHUNK] for c in lists), strict=True):
                copy.write_row(row)
            if progress:
                progress(name, min(start + CHUNK, total), total)
    return total


# PostgreSQL's binary COPY: a signature, flags and header-extension length, then per row a
# field count and per field its length (-1: NULL) and bytes; a field count of -1 ends the data.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
COPY_TRAILER = b"\xff\xff"
POSTGRES_EPOCH_DAYS = 10_957  # 2000-01-01 counted from 1970-01-01
_FIXED = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8"}


def _utf8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of a string array as an (n, width) matrix, and each value's byte length.

    ASCII columns (codes) are converted by a cast of their code points; others (Vietnamese
    words) have few distinct values, each encoded once.
    """
    n, width = len(values), max(values.dtype.itemsize // 4, 1)
    points = np.ascontiguousarray(values.astype(f"<U{width}")).view(np.uint32).reshape(n, width)
    if n == 0 or points.max() < 128:
        return points.astype(np.uint8), (points > 0).sum(axis=1)
    distinct, inverse = np.unique(values, return_inverse=True)
    encoded = [v.encode("utf-8") for v in distinct.tolist()]
    size = max(len(e) for e in encoded) or 1
    table = np.zeros((len(encoded), size), dtype=np.uint8)
    for i, e in enumerate(encoded):
        table[i, : len(e)] = np.frombuffer(e, dtype=np.uint8)
    lengths = np.array([len(e) for e in encoded])
    return table[inverse], lengths[inverse]


def _field_bytes(kind: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One column in binary COPY form: (n, width) bytes (length prefix + data) and row widths.

    ``kind`` is ``text``, ``int2/4/8``, ``float4/8``, ``date``, ``bool`` or ``geometry``
    (points as lon/lat pairs, sent as EWKB). Empty text and negative ``int8`` become NULL.
    """
    n = len(values)
    if kind == "text":
        body, lengths = _utf8(np.asarray(values).astype(str))
        null = lengths == 0
    elif kind == "geometry":
        record = np.empty(n, dtype=_POINT)
        record["order"], record["type"], record["srid"] = 1, 0x20000001, 4326
        record["x"], record["y"] = values[:, 0], values[:, 1]
        body = record.view(np.uint8).reshape(n, _POINT.itemsize)
        lengths, null = np.full(n, _POINT.itemsize), np.zeros(n, dtype=bool)
    else:
        if kind == "date":
            numbers = values.astype("datetime64[D]").astype(np.int64) - POSTGRES_EPOCH_DAYS
            fixed = numbers.astype(">i4")
        elif kind == "bool":
            fixed = values.astype(np.uint8)
        else:
            fixed = values.astype(_FIXED[kind])
        null = values < 0 if kind == "int8" else np.zeros(n, dtype=bool)
        body = np.ascontiguousarray(fixed).view(np.uint8).reshape(n, fixed.dtype.itemsize)
        lengths = np.full(n, fixed.dtype.itemsize)
    lengths = np.where(null, 0, lengths)
    prefix = np.where(null, -1, lengths).astype(">i4").view(np.uint8).reshape(n, 4)
    return np.hstack([prefix, body]), lengths + 4


def binary_rows(columns: list[tuple[str, np.ndarray]]) -> bytes:
    """Rows of a binary COPY (without signature and trailer), built column by column."""
    fields = [_field_bytes(kind, values) for kind, values in columns]
    row_length = np.full(len(columns[0][1]), 2, dtype=np.int64)
    for _, lengths in fields:
        row_length += lengths
    row_start = np.cumsum(row_length) - row_length
    buffer = np.zeros(int(row_length.sum()), dtype=np.uint8)
    count = np.array([len(columns)], dtype=">i2").view(np.uint8)
    buffer[row_start[:, None] + np.arange(2)] = count
    offset = row_start + 2
    for body, lengths in fields:
        span = np.arange(body.shape[1])
        mask = span[None, :] < lengths[:, None]
        buffer[(offset[:, None] + span)[mask]] = body[mask]
        offset = offset + lengths
    return buffer.tobytes()


def copy_binary(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: dict[str, tuple[str, np.ndarray]],
    progress: Progress | None = None,
    *,
    freeze: bool = False,
) -> int:
    """COPY typed numpy columns (name → (kind, array)) into ``table`` in binary form.

    Rows are encoded by numpy in chunks: no Python object is made per value, which is what
    keeps a million-row load in seconds. See :func:`_field_bytes` for the kinds. ``freeze``
    writes the rows frozen: only for a table created or truncated in this transaction.
    """
    schema, _, name = table.rpartition(".")
    options = sql.SQL("FORMAT binary, FREEZE" if freeze else "FORMAT binary")
    statement = sql.SQL("COPY {} ({}) FROM STDIN ({})").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns)), options
    )
    total = len(next(iter(columns.values()))[1])
    with cur.copy(statement) as copy:
        copy.write(COPY_SIGNATURE)
        for start in range(0, total, CHUNK):
            chunk = [(kind, values[start : start + CHUNK]) for kind, values in columns.values()]
            copy.write(binary_rows(chunk))
            if progress:
                progress(name, min(start + CHUNK, total), total)
        copy.write(COPY_TRAILER)
    return total


@contextmanager
def step(progress: Progress | None, name: str) -> Iterator[None]:
    """Report a step without a row count as 0 of 1, then 1 of 1 when done."""
    if progress:
        progress(name, 0, 1)
    yield
    if progress:
        progress(name, 1, 1)


@contextmanager
def bulk_load(
    cur: psycopg.Cursor[Any], table: str, progress: Progress | None = None
) -> Iterator[bool]:
    """Drop ``table``'s secondary indexes and foreign keys for a bulk load, restore them after.

    Building an index once is much cheaper than maintaining it row by row, and one foreign-key
    validation (a single join) much cheaper than a check per row. Indexes backing primary-key
    and unique constraints stay: they guard the load itself. Everything happens inside the
    caller's transaction, so a failed load leaves the table as it was.

    An empty table is also truncated: its storage is then new in this transaction, which lets
    PostgreSQL skip the write-ahead log for it (``wal_level = minimal``, as in the managed
    cluster) and lets COPY write frozen rows. Yields whether that happened (COPY FREEZE ok).
    """
    schema, _, name = table.rpartition(".")
    target = sql.Identifier(schema, name)
    fresh = _truncate_if_empty(cur, target)
    indexes = cur.execute(
        """
        SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x
        JOIN pg_class c ON c.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
        """,
        [table],
    ).fetchall()
    foreign_keys = cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    ).fetchall()
    for constraint, _ in foreign_keys:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(constraint))
        )
    for index, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, index)))
    yield fresh
    with step(progress, f"{name} indexes and keys"):
        # The definitions come from the catalogue, exactly as the migrations created them.
        for _, definition in indexes:
            cur.execute(sql.SQL(definition))
        for constraint, definition in foreign_keys:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + definition).format(
                    target, sql.Identifier(constraint)
                )
            )


def ids_by_code(
    cur: psycopg.Cursor[Any], table: str, code_column: str, codes: Sequence[str]
) -> np.ndarray:
    """Database ids of rows identified by their codes, in the order of ``codes``."""
    schema, _, name = table.rpartition(".")
    rows = cur.execute(
        sql.SQL("SELECT {}, id FROM {} WHERE {} = ANY(%s)").format(
            sql.Identifier(code_column), sql.Identifier(schema, name), sql.Identifier(code_column)
        ),
        [list(codes)],
    ).fetchall()
    found = dict(rows)
    return np.array([found[c] for c in codes], dtype=np.int64)


def _truncate_if_empty(cur: psycopg.Cursor[Any], target: sql.Identifier) -> bool:
    """TRUNCATE the table if it holds no row; False when it has rows or cannot be truncated."""
    if cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(target)).fetchone() != (False,):
        return False
    try:
        with cur.connection.transaction():  # a savepoint: a refusal must not end the load
            cur.execute(sql.SQL("TRUNCATE {}").format(target))
    except psycopg.errors.FeatureNotSupported:  # another table's foreign key points at it
        return False
    return True


def refresh_materialised_views(cur: psycopg.Cursor[Any], schema: str = "smarttrees") -> None:
    """Recompute the schema's materialised views (e.g. tile grids) after a bulk load."""
    names = cur.execute(
        "SELECT matviewname FROM pg_matviews WHERE schemaname = %s ORDER BY 1", [schema]
    ).fetchall()
    for (name,) in names:
        cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(schema, name)))

"""Trees streamed out of PostGIS in chunks of projected coordinates, so memory stays bounded.

The rows leave PostgreSQL as a binary ``COPY``: every column is a non-null ``float8``, so each
row is a fixed-width record that numpy reads without a Python loop; chunks are reprojected with
pyproj (the same VN-2000 transformation the loaders use).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from pyproj import CRS, Transformer

HEADER = b"PGCOPY\n\xff\r\n\x00"
HEADER_SIZE = len(HEADER) + 8  # flags (int32) + header extension length (int32, zero here)
CHUNK_ROWS = 262_144


@dataclass(frozen=True)
class PointChunk:
    """Projected coordinates of some trees, and one value per tree (e.g. a crown area)."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray | None


def _record_dtype(columns: int) -> np.dtype:
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i in range(columns):
        fields += [(f"len{i}", ">i4"), (f"c{i}", ">f8")]
    return np.dtype(fields)


def _records(conn: psycopg.Connection, query: sql.Composable, columns: int) -> Iterator[np.ndarray]:
    """Fixed-width records of a binary COPY of ``query`` (``columns`` non-null float8 each)."""
    dtype = _record_dtype(columns)
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    blocks: list[bytes] = []
    size = 0
    skip = HEADER_SIZE  # the header is dropped from the first bytes
    chunk_bytes = CHUNK_ROWS * dtype.itemsize
    with conn.cursor().copy(statement) as copy:
        for block in copy:
            blocks.append(bytes(block))
            size += len(block)
            if size - skip >= chunk_bytes:
                data = b"".join(blocks)[skip:]
                skip = 0
                whole = len(data) // dtype.itemsize * dtype.itemsize
                yield np.frombuffer(data, dtype=dtype, count=whole // dtype.itemsize)
                blocks, size = [data[whole:]], len(data) - whole
    # What remains: whole records, then the two-byte trailer (-1).
    data = b"".join(blocks)[skip:]
    count = (len(data) - 2) // dtype.itemsize
    if count > 0:
        yield np.frombuffer(data, dtype=dtype, count=count)


def tree_chunks(
    conn: psycopg.Connection,
    crs: CRS,
    where: sql.Composable,
    value: sql.Composable | None = None,
) -> Iterator[PointChunk]:
    """The trees matching ``where`` (on ``t``, joined to species ``s``), projected to ``crs``.

    Parameters
    ----------
    conn:
        An open connection.
    crs:
        The CRS the coordinates are returned in.
    where:
        A boolean SQL expression on ``smarttrees.trees t``.
    value:
        A non-null ``float8`` SQL expression per tree, returned as ``values`` (None: no values).

    """
    columns: list[sql.Composable] = [
        sql.SQL("ST_X(t.geom)::float8"),
        sql.SQL("ST_Y(t.geom)::float8"),
    ]
    if value is not None:
        columns.append(sql.SQL("({})::float8").format(value))
    query = sql.SQL("SELECT {} FROM smarttrees.trees t WHERE {}").format(
        sql.SQL(", ").join(columns), where
    )
    transformer = Transformer.from_crs(4326, crs, always_xy=True)
    for records in _records(conn, query, len(columns)):
        x, y = transformer.transform(records["c0"].astype(float), records["c1"].astype(float))
        values = records["c2"].astype(float) if value is not None else None
        yield PointChunk(np.asarray(x), np.asarray(y), values)

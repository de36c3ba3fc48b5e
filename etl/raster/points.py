"""Trees streamed out of PostGIS in chunks of projected coordinates, so memory stays bounded.

Each chunk is one row: PostgreSQL packs the chunk's columns into ``bytea`` strings of
big-endian ``float8`` (``float8send``, joined by ``string_agg``; the aggregates of one pass see
the rows in the same order, so the columns stay aligned) that numpy reads as arrays without a
Python loop — a COPY or a cursor would hand Python one message per tree. Chunks follow
the primary key (keyset: ``id > last ORDER BY id LIMIT n``), so each is an index range scan, and
are reprojected with pyproj (the same VN-2000 transformation the loaders use).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from pyproj import CRS, Transformer

CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class PointChunk:
    """Projected coordinates of some trees, and one value per tree (e.g. a crown area)."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray | None


def _chunk_query(where: sql.Composable, value: sql.Composable | None) -> sql.Composed:
    columns: list[sql.Composable] = [
        sql.SQL("ST_X(t.geom)::float8"),
        sql.SQL("ST_Y(t.geom)::float8"),
    ]
    if value is not None:
        columns.append(sql.SQL("({})::float8").format(value))
    packed = sql.SQL(", ").join(
        sql.SQL("string_agg(float8send(c.{}), ''::bytea)").format(
            sql.Identifier(f"v{i}")
        )
        for i in range(len(columns))
    )
    picked = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(col, sql.Identifier(f"v{i}")) for i, col in enumerate(columns)
    )
    return sql.SQL(
        "SELECT max(c.id), count(*), {packed} FROM ("
        "SELECT t.id, {picked} FROM smarttrees.trees t "
        "WHERE t.id > %(last)s AND ({where}) ORDER BY t.id LIMIT %(n)s) c"
    ).format(packed=packed, picked=picked, where=where)


def tree_chunks(
    conn: psycopg.Connection,
    crs: CRS,
    where: sql.Composable,
    value: sql.Composable | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[PointChunk]:
    """The trees matching ``where`` (on ``smarttrees.trees t``), projected to ``crs``.

    Parameters
    ----------
    conn:
        An open connection.
    crs:
        The CRS the coordinates are returned in.
    where:
        A boolean SQL expression on ``smarttrees.trees t``.
    value:
        A non-null numeric SQL expression per tree, returned as ``values`` (None: no values).
    chunk_rows:
        Trees per chunk.

    """
    query = _chunk_query(where, value)
    transformer = Transformer.from_crs(4326, crs, always_xy=True)
    last = -(2**63)
    cursor = conn.cursor()  # binary results: the bytea arrive as they are, not hex-encoded
    while True:
        row = cursor.execute(query, {"last": last, "n": chunk_rows}, binary=True).fetchone()
        if row is None or not row[1]:
            return
        last = int(row[0])
        lon, lat = (np.frombuffer(row[i], dtype=">f8").astype(float) for i in (2, 3))
        x, y = transformer.transform(lon, lat)
        values = np.frombuffer(row[4], dtype=">f8").astype(float) if value is not None else None
        yield PointChunk(np.asarray(x), np.asarray(y), values)

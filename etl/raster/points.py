"""Trees streamed out of PostGIS in chunks of projected coordinates, so memory stays bounded.

Each chunk is one row: PostgreSQL packs the chunk's points into one ``bytea`` of little-endian
WKB points (``ST_AsBinary``, joined by ``string_agg``; 21 bytes a point) and any value into
another of big-endian ``float8`` (``float8send``; the aggregates of one pass see the rows in the
same order, so the two stay aligned), which numpy reads as arrays without a Python loop — a
COPY or a cursor would hand Python one message per tree. Chunks are ranges of the primary key
(``id >= a AND id < b``: no sort, and a row updated during the run keeps its id, so it is read
once). Each chunk is reprojected with pyproj (the same VN-2000 transformation the loaders use) in
a worker thread while the next one is fetched: PROJ and libpq both release the GIL.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from pyproj import CRS, Transformer

CHUNK_ROWS = 200_000
TRANSFORM_THREADS = 2  # the chunk being projected, while the next one is fetched
IN_FLIGHT = 2  # chunks fetched ahead of the consumer: memory stays a few chunks
# a little-endian 2-D WKB point (trees.geom is geometry(Point, 4326)): order, type, x, y
WKB_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])


@dataclass(frozen=True)
class PointChunk:
    """Projected coordinates of some trees, and one value per tree (e.g. a crown area)."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray | None


def _chunk_query(where: sql.Composable, value: sql.Composable | None) -> sql.Composed:
    columns: list[sql.Composable] = [
        sql.SQL("string_agg(ST_AsBinary(t.geom, 'NDR'), ''::bytea)")
    ]
    if value is not None:
        columns.append(sql.SQL("string_agg(float8send(({})::float8), ''::bytea)").format(value))
    return sql.SQL(
        "SELECT count(*), {columns} FROM smarttrees.trees t "
        "WHERE t.id >= %(low)s AND t.id < %(high)s AND t.geom IS NOT NULL AND ({where})"
    ).format(columns=sql.SQL(", ").join(columns), where=where)


def estimated_trees(conn: psycopg.Connection, where: sql.Composable) -> int:
    """The planner's estimate of the trees matching ``where`` (for progress; no table scan)."""
    plan = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM smarttrees.trees t WHERE {}").format(where)
    ).fetchone()
    return int(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0


def _id_ranges(conn: psycopg.Connection, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """Ranges ``[low, high)`` of tree ids holding about ``chunk_rows`` trees each."""
    row = conn.execute(
        "SELECT min(id), max(id), (SELECT reltuples FROM pg_class "
        "WHERE oid = 'smarttrees.trees'::regclass) FROM smarttrees.trees"
    ).fetchone()
    if row is None or row[0] is None:
        return
    low, high, estimate = int(row[0]), int(row[1]), max(float(row[2] or 0), 1.0)
    span = high - low + 1
    width = max(chunk_rows, math.ceil(span * chunk_rows / estimate))  # ids may have gaps
    for start in range(low, high + 1, width):
        yield start, start + width


def tree_chunks(
    conn: psycopg.Connection,
    crs: CRS,
    where: sql.Composable,
    value: sql.Composable | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[PointChunk]:
    """The trees matching ``where`` (on ``smarttrees.trees t``), projected to ``crs``.

    Trees without a position are left out.

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
        Trees per chunk, about.

    """
    query = _chunk_query(where, value)
    local = threading.local()

    def project(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(local, "transformer"):  # a Transformer is not shared between threads
            local.transformer = Transformer.from_crs(4326, crs, always_xy=True)
        x, y = local.transformer.transform(lon, lat)
        return np.asarray(x), np.asarray(y)

    cursor = conn.cursor()  # binary results: the bytea arrive as they are, not hex-encoded
    pending: deque[tuple[list[Future[tuple[np.ndarray, np.ndarray]]], np.ndarray | None]]
    pending = deque()
    with ThreadPoolExecutor(TRANSFORM_THREADS, thread_name_prefix="project") as pool:

        def finished() -> PointChunk:
            halves, values = pending.popleft()
            parts = [half.result() for half in halves]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            return PointChunk(x, y, values)

        for low, high in _id_ranges(conn, chunk_rows):
            row = cursor.execute(query, {"low": low, "high": high}, binary=True).fetchone()
            if row is None or not row[0]:
                continue
            points = np.frombuffer(row[1], dtype=WKB_POINT)  # the column is geometry(Point)
            values = np.frombuffer(row[2], dtype=">f8").astype(float) if value is not None else None
            halves = [
                pool.submit(project, part["x"].copy(), part["y"].copy())
                for part in np.array_split(points, TRANSFORM_THREADS)
            ]
            pending.append((halves, values))
            if len(pending) > IN_FLIGHT:
                yield finished()
        while pending:
            yield finished()

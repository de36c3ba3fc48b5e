"""Write a generated province into PostGIS: COPY per table, all in one transaction.

Geometries travel as EWKB (built with numpy for points, shapely for polygons). The big tables
go by binary COPY (:mod:`etl.binary_copy`), the others as text. The big tables' secondary
indexes are dropped before their COPY and rebuilt after it, inside the same transaction:
building an index once is much cheaper than maintaining it row by row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

from etl import bulk
from etl.binary_copy import POINT_EWKB, Progress, ewkb_points

CHUNK = 50_000


def point_ewkb_hex(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Hex EWKB of SRID 4326 points, built in one pass (no shapely objects)."""
    hexed = ewkb_points(lon, lat).tobytes().hex().encode("ascii")
    return np.frombuffer(hexed, dtype=f"S{2 * POINT_EWKB.itemsize}").astype(str)


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
    """Set ``table``'s secondary indexes and foreign keys aside for a bulk load (``etl.bulk``).

    Unique and primary indexes stay: they guard the load itself. Everything happens inside the
    caller's transaction, so a failed load leaves the table as it was.

    An empty table is also truncated: its storage is then new in this transaction, which lets
    PostgreSQL skip the write-ahead log for it (``wal_level = minimal``, as in the managed
    cluster) and lets COPY write frozen rows. Yields whether that happened (COPY FREEZE ok).
    """
    schema, _, name = table.rpartition(".")
    fresh = _truncate_if_empty(cur, sql.Identifier(schema, name))
    restore = bulk.set_aside(cur, [table])
    yield fresh
    with step(progress, f"{name} indexes and keys"):
        bulk.rebuild(cur, restore)


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

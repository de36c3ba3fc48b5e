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


@contextmanager
def indexes_rebuilt(cur: psycopg.Cursor[Any], table: str) -> Iterator[None]:
    """Drop ``table``'s plain secondary indexes for a bulk load and rebuild them afterwards.

    Indexes backing constraints (primary key, unique) stay: they guard the load itself.
    """
    schema, _, name = table.rpartition(".")
    rows = cur.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        JOIN pg_class c ON c.relname = i.indexname
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
        WHERE i.schemaname = %s AND i.tablename = %s
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
        """,
        [schema, name],
    ).fetchall()
    for index_name, _ in rows:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, index_name)))
    yield
    for _, definition in rows:
        # The definitions come from the catalogue, exactly as the migrations created them.
        cur.execute(sql.SQL(definition))


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


def nullable_ids(ids: np.ndarray, index: np.ndarray) -> list[int | None]:
    """``ids[index]``, with NULL where the index is negative."""
    picked = ids[np.maximum(index, 0)] if len(ids) else np.zeros(len(index), dtype=np.int64)
    return [None if i < 0 else v for i, v in zip(index.tolist(), picked.tolist(), strict=True)]

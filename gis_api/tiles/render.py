"""Tiles rendered in PostGIS: the SQL of ``gis_api/sql/tiles_*.sql``, bound and run.

Tiles are built with ``ST_AsMVT`` over ``ST_TileEnvelope``; rows are picked with the GIST index
on the stored EPSG:4326 geometry (the tile envelope is transformed once, never every row).
Trees come as individual points from ``settings.tile_min_zoom_points`` up; below that zoom, or
where a tile would carry more than ``settings.tile_max_features`` trees, the tile carries grid
counts by category instead (layer ``trees_grid``), so a tile over the whole province stays small.

Low-zoom grid tiles add up the level-17 cells of the materialised view ``smarttrees.tree_grid``
(migration 0006) while it is current (its recorded version equals the trees' version).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from gis_api.tiles.grid import TileAddress, tile_origin
from gis_api.tiles.layers import TileCollection
from gis_api.tiles.params import TREE_FILTERS, TreeFilters
from smarttrees.settings import Settings

EXTENT = 4096  # MVT tile extent in tile units
BUFFER = 32  # units kept beyond the tile edge (4 px of a 512 px tile): edge circles drawn whole
GRID_CELLS = 32  # cells per tile side for aggregated trees below the point zoom
GRID_SHIFT = 5  # log2(GRID_CELLS)
GRID_LEVEL = 17  # zoom level of the cells precomputed in smarttrees.tree_grid (0006)
DENSE_GRID_CELLS = 64  # finer grid where a point-zoom tile holds more than the feature cap


@cache
def _sql_text(name: str) -> str:
    return resources.files("gis_api").joinpath(f"sql/{name}.sql").read_text(encoding="utf-8")


def _query(name: str, filters: sql.Composable | None = None) -> sql.Composed:
    return sql.SQL(_sql_text(name)).format(filters=filters or sql.SQL(""))


def _tree_filter_sql(filters: TreeFilters) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL conditions (each starting with AND) and their parameters for the tree filters.

    Each filter of the catalogue compares its field (a column of ``smarttrees.trees``).
    """
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for definition in TREE_FILTERS:
        value = getattr(filters, definition.param)
        if value is not None:
            parts.append(
                sql.SQL("AND t.{} = {}").format(
                    sql.Identifier(definition.field), sql.Placeholder(definition.param)
                )
            )
            params[definition.param] = value
    return sql.SQL(" ").join(parts), params


async def _fetch_optional(
    conn: AsyncConnection, query: sql.Composed, params: dict[str, Any]
) -> bytes | None:
    # Not prepared: a generic plan would lose the row estimate the constant envelope gives.
    # Binary: the tile comes as its bytes, not as hex text twice its size to decode.
    cur = await conn.execute(query, params, prepare=False, binary=True)
    row = await cur.fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


async def _fetch_bytes(conn: AsyncConnection, query: sql.Composed, params: dict[str, Any]) -> bytes:
    return await _fetch_optional(conn, query, params) or b""


async def _serial(conn: AsyncConnection) -> None:
    """No parallel workers for the rest of this transaction.

    A points, polygons or precomputed-grid tile query takes milliseconds: starting a parallel
    worker (~30 ms) costs more than it saves, yet PostGIS's declared function costs lead the
    planner to one. Grid counts over the trees themselves (hundreds of thousands of rows) keep
    their parallel plan.
    """
    await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")


async def render_trees(
    conn: AsyncConnection,
    tile: TileAddress,
    filters: TreeFilters,
    settings: Settings,
    grid_table: bool = False,
) -> bytes:
    """The trees tile: points from the point zoom up, unless too many; grid counts otherwise.

    Parameters
    ----------
    conn
        A connection to the database, in a transaction (for ``SET LOCAL``).
    tile
        The tile to make.
    filters
        Category, species and commune filters (``None`` fields: no filter).
    settings
        Point zoom and feature cap come from here.
    grid_table
        True when ``smarttrees.tree_grid`` is up to date: grid counts of low zooms are then
        added up from it rather than from the trees, and a point-zoom tile it counts over the
        feature cap goes straight to grid counts.

    """
    # Pipeline mode: a SET LOCAL goes out with the query after it, not on a round trip of its own.
    async with conn.pipeline():
        return await _render_trees(conn, tile, filters, settings, grid_table)


async def _render_trees(
    conn: AsyncConnection,
    tile: TileAddress,
    filters: TreeFilters,
    settings: Settings,
    grid_table: bool,
) -> bytes:
    if grid_table and _grid_table_serves(tile, filters, settings):
        return await _render_grid_from_table(conn, tile, filters)
    where, fparams = _tree_filter_sql(filters)
    base = {"z": tile.z, "x": tile.x, "y": tile.y, **fparams}
    cells = GRID_CELLS
    if tile.z >= settings.tile_min_zoom_points:
        await _serial(conn)
        cap = settings.tile_max_features
        if not (grid_table and await _over_cap_by_grid(conn, tile, filters, cap)):
            params = base | {"margin": BUFFER / EXTENT, "buffer": BUFFER, "limit": cap}
            points = await _fetch_optional(conn, _query("tiles_trees_points", where), params)
            if points is not None:
                return points
        cells = DENSE_GRID_CELLS  # more trees than the cap: counts on a finer grid
    x0, y0, size = tile_origin(tile)
    params = base | {"cells": cells, "x0": x0, "y0": y0, "size": size / cells}
    return await _fetch_bytes(conn, _query("tiles_trees_grid", where), params)


def _grid_table_serves(tile: TileAddress, filters: TreeFilters, settings: Settings) -> bool:
    """Whether tree_grid's level-17 cells can make this tile (a grid tile, coarse enough)."""
    coarse = tile.z < settings.tile_min_zoom_points and tile.z + GRID_SHIFT <= GRID_LEVEL
    return coarse and filters.species is None and filters.commune is None


def _cell_span(tile: TileAddress) -> dict[str, int]:
    """The level-17 cells a tile covers: i in [i0, i1), j in [j0, j1)."""
    span = 1 << (GRID_LEVEL - tile.z)
    return {
        "i0": tile.x * span,
        "i1": (tile.x + 1) * span,
        "j0": tile.y * span,
        "j1": (tile.y + 1) * span,
    }


async def _over_cap_by_grid(
    conn: AsyncConnection, tile: TileAddress, filters: TreeFilters, cap: int
) -> bool:
    """Whether tree_grid counts more than ``cap`` trees in the tile (False: not known).

    Only for what the grid can count (a category filter at most, tiles of level 17 or
    coarser). Saves the densest tiles the picking of ``cap + 1`` trees that would be thrown
    away; the answer is the one the points query would come to, so the tile is the same.
    """
    if tile.z > GRID_LEVEL or filters.species is not None or filters.commune is not None:
        return False
    params: dict[str, Any] = _cell_span(tile)
    where: sql.Composable = sql.SQL("")
    if filters.category is not None:
        where = sql.SQL("AND g.category = %(category)s")
        params["category"] = filters.category
    cur = await conn.execute(_query("tiles_trees_count_table", where), params)
    row = await cur.fetchone()
    return row is not None and int(row[0]) > cap


async def _render_grid_from_table(
    conn: AsyncConnection, tile: TileAddress, filters: TreeFilters
) -> bytes:
    params: dict[str, Any] = {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        **_cell_span(tile),
        "shift": GRID_LEVEL - tile.z - GRID_SHIFT,
    }
    await _serial(conn)
    where: sql.Composable = sql.SQL("")
    if filters.category is not None:
        where = sql.SQL("AND g.category = %(category)s")
        params["category"] = filters.category
    return await _fetch_bytes(conn, _query("tiles_trees_grid_table", where), params)


async def render_features(
    conn: AsyncConnection, collection: TileCollection, tile: TileAddress, settings: Settings
) -> bytes:
    """A tile of a collection's own SQL (stands, communes, IOC layers), capped at the limit."""
    assert collection.sql is not None, f"{collection.id} tiles are not rendered from features"
    params = {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "margin": BUFFER / EXTENT,
        "buffer": BUFFER,
        "limit": settings.tile_max_features,
    }
    async with conn.pipeline():  # the SET LOCAL goes out with the query
        await _serial(conn)
        return await _fetch_bytes(conn, _query(collection.sql), params)


async def trees_version(conn: AsyncConnection) -> int:
    """The newest tree_history id: any insert, update or delete of a tree advances it."""
    cur = await conn.execute(_sql_text("tiles_trees_version"))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def data_version(conn: AsyncConnection, name: str) -> tuple[Any, ...]:
    """The row of a version query (``gis_api/sql/{name}.sql``): part of a tile's cache key."""
    cur = await conn.execute(_sql_text(name))
    row = await cur.fetchone()
    return tuple(row) if row else ()


async def tree_versions(conn: AsyncConnection) -> tuple[int, int | None]:
    """The trees' data version and tree_grid's (:func:`trees_version`, :func:`grid_version`)."""
    cur = await conn.execute(_sql_text("tiles_trees_versions"))
    row = await cur.fetchone()
    assert row is not None  # an aggregate's row
    return int(row[0]), None if row[1] is None else int(row[1])


async def grid_version(conn: AsyncConnection) -> int | None:
    """The tree data version smarttrees.tree_grid was computed at."""
    cur = await conn.execute(_sql_text("tiles_grid_version"))
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def refresh_tree_grid(conn: AsyncConnection) -> None:
    """Recompute smarttrees.tree_grid and its version together; readers are not blocked."""
    async with conn.transaction():
        # One snapshot for both views, so the version names exactly the trees counted.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # Maintenance, not a client's query: exempt from the pool's statement timeout.
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY smarttrees.tree_grid")
        await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY smarttrees.tree_grid_version")


async def collection_bounds(
    conn: AsyncConnection, collection: TileCollection
) -> list[float] | None:
    """Lon/lat bounds of the collection's own table (estimated where it says so)."""
    exact = sql.SQL(_sql_text("tiles_extent")).format(table=sql.Identifier(collection.table))
    row = None
    if collection.estimated_extent:
        try:
            async with conn.transaction():  # a failure rolls back to here, the pool stays clean
                cur = await conn.execute(
                    _sql_text("tiles_extent_estimated"), {"table": collection.table}
                )
                row = await cur.fetchone()
        except psycopg.Error:  # ST_EstimatedExtent raises without table statistics: count exactly
            row = None
    if row is None:
        cur = await conn.execute(exact)
        row = await cur.fetchone()
    if not row or row[0] is None:
        return None
    return [round(float(v), 6) for v in row]

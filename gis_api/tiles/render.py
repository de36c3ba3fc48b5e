"""Tiles rendered in PostGIS: the SQL of ``gis_api/sql/tiles_*.sql``, bound and run.

Tiles are built with ``ST_AsMVT`` over ``ST_TileEnvelope``, except the individual trees of a
point zoom: PostgreSQL sends their tile-space positions and properties as packed columns and
:mod:`gis_api.tiles.mvt` encodes them (ST_AsMVT's encoding of their properties was most of
such a tile's time). Rows are picked with the GIST index
on the stored EPSG:4326 geometry (the tile envelope is transformed once, never every row).
Trees come as individual points from ``settings.tile_min_zoom_points`` up; below that zoom, or
where a tile would carry more than ``settings.tile_max_features`` trees, the tile carries grid
counts by category instead (layer ``trees_grid``), so a tile over the whole province stays small.

Low-zoom grid tiles add up the level-17 cells of the materialised view ``smarttrees.tree_grid``
(migration 0006) while it is current (its recorded version equals the trees' version). A
point-zoom tile over the cap then reads its 64 x 64 cells from ``smarttrees.tree_grid_fine``
(zoom-20 cells, migration 0034, refreshed with tree_grid) rather than grouping its trees.
A zoom-15 tile of points without filters reads its trees already picked, placed and packed
from ``smarttrees.tree_point_tiles`` (migration 0035, refreshed with tree_grid) while tree_grid
is current; the same columns reach the same encoder, so the bytes are those of the live render.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import AsyncClientCursor, AsyncConnection, sql

from gis_api.tiles.grid import TileAddress, tile_origin
from gis_api.tiles.layers import TileCollection
from gis_api.tiles.params import TREE_FILTERS, TreeFilters
from gis_api.tiles.tree_points import trees_layer
from smarttrees.settings import Settings

EXTENT = 4096  # MVT tile extent in tile units
BUFFER = 32  # units kept beyond the tile edge (4 px of a 512 px tile): edge circles drawn whole
GRID_CELLS = 32  # cells per tile side for aggregated trees below the point zoom
GRID_SHIFT = 5  # log2(GRID_CELLS)
GRID_LEVEL = 17  # zoom level of the cells precomputed in smarttrees.tree_grid (0006)
DENSE_GRID_CELLS = 64  # finer grid where a point-zoom tile holds more than the feature cap
DENSE_GRID_SHIFT = 6  # log2(DENSE_GRID_CELLS)
FINE_LEVEL = 20  # zoom level of the cells precomputed in smarttrees.tree_grid_fine (0034)
POINT_TILE_ZOOM = 15  # zoom of the tiles whose points smarttrees.tree_point_tiles holds (0035)
# Up to this many trees, a point tile is encoded by ST_AsMVT; past it, by gis_api.tiles.mvt.
# Measured (bench/bench_tile_profile.py): numpy's encoding costs a fixed ~0.5 ms per tile,
# then far less per tree than ST_AsMVT's ~4 µs.
FEW_POINTS = 300


@cache
def _sql_text(name: str) -> str:
    """The text of ``gis_api/sql/{name}.sql``, without its comments (they are for readers).

    Shorter than 4 KB, a statement's parsing for its parameters is cached by psycopg.
    """
    text = resources.files("gis_api").joinpath(f"sql/{name}.sql").read_text(encoding="utf-8")
    return "".join(f"{line}\n" for line in map(_without_comment, text.splitlines()) if line)


def _without_comment(line: str) -> str:
    """A line of SQL without its ``--`` comment (one outside quotes), trailing blanks removed."""
    quoted = False
    for i, char in enumerate(line):
        if char == "'":
            quoted = not quoted
        elif not quoted and line.startswith("--", i):
            return line[:i].rstrip()
    return line.rstrip()


def _query(name: str, filters: sql.Composable | None = None) -> sql.Composed:
    return sql.SQL(_sql_text(name)).format(filters=filters or sql.SQL(""))


def _tree_filters(filters: TreeFilters) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The tree filters set (their parameter names, in the catalogue's order) and values."""
    params = {
        d.param: getattr(filters, d.param)
        for d in TREE_FILTERS
        if getattr(filters, d.param) is not None
    }
    return tuple(params), params


def _conditions(active: tuple[str, ...], alias: str) -> sql.Composable:
    """SQL conditions (each starting with AND) on the filters named in ``active``.

    Each filter of the catalogue compares its field (a column of ``smarttrees.trees``, and of
    ``smarttrees.tree_grid`` for the category); the value is a placeholder named after it.
    """
    return sql.SQL(" ").join(
        sql.SQL("AND {} = {}").format(sql.Identifier(alias, d.field), sql.Placeholder(d.param))
        for d in TREE_FILTERS
        if d.param in active
    )


@cache
def _statement(name: str, active: tuple[str, ...] = (), alias: str = "t") -> str:
    """The text of a tile statement with conditions on the ``active`` filters; made once."""
    return _query(name, _conditions(active, alias)).as_string(None)


@cache
def _point_zoom_statement(active: tuple[str, ...], counted: bool, fine: int | None = None) -> str:
    """The trees tile of the point zoom: its points as columns, or grid counts when too many.

    Grid counts when the points picked are more than the cap, or (``counted``) when
    tree_grid already counts more trees in the tile than that; PostgreSQL computes the grid
    only when the points are not sent (a scalar subquery runs when its value is first needed).
    The grid is counted over the trees, or (``fine``: the levels of zoom-20 cells gathered in
    one grid cell, :func:`_fine_shift`) read from ``smarttrees.tree_grid_fine``.
    """
    crowded: sql.Composable = sql.SQL("false")
    if counted:
        count = _statement("tiles_trees_count_table", active, "g")
        crowded = sql.SQL("({}) > %(limit)s").format(sql.SQL(count))
    if fine is None:
        grid = _statement("tiles_trees_grid", active)
    else:  # no filters (_fine_shift)
        grid = _statement("tiles_trees_grid_fine_cells" if fine == 0 else "tiles_trees_grid_fine")
    return sql.SQL(_sql_text("tiles_trees_points")).format(
        crowded=crowded,
        filters=_conditions(active, "t"),
        grid=sql.SQL(grid),
    ).as_string(None)


# No parallel workers for the tile statement after it. A points, polygons or precomputed-grid
# tile query takes milliseconds: starting a parallel worker (~30 ms) costs more than it saves,
# yet PostGIS's declared function costs can lead the planner to one. Grid counts over the
# trees themselves below the point zoom (hundreds of thousands of rows) keep their parallel
# plan. Sent in the same simple query as the statement, SET LOCAL lasts as long as it: the
# statements of one query string run as one transaction (an implicit block), or inside the
# caller's transaction (the archive's snapshot).
_SERIAL = "SET LOCAL max_parallel_workers_per_gather = 0;\n"


async def _run_tile(
    conn: AsyncConnection, statement: str, params: dict[str, Any], serial: bool
) -> bytes:
    """The tile one statement makes (b"" for none), sent to PostgreSQL in one round trip.

    The parameters are bound by psycopg on the client (:class:`psycopg.AsyncClientCursor`):
    the planner sees the tile's envelope as constants, whose row estimate a generic plan of a
    prepared statement would lose, and ``SET LOCAL`` travels in the same message. Each round
    trip costs the server about 0.3 ms of Python: a tile used to take six.
    """
    cur = AsyncClientCursor(conn)
    await cur.execute(_SERIAL + statement if serial else statement, params)
    if serial:
        cur.nextset()  # past the SET's result
    row = await cur.fetchone()
    return b"" if row is None or row[0] is None else bytes(row[0])


async def _run_row(
    conn: AsyncConnection, statement: str, params: dict[str, Any]
) -> tuple[Any, ...]:
    """The one row a serial tile statement returns, in one round trip (as :func:`_run_tile`)."""
    cur = AsyncClientCursor(conn)
    await cur.execute(_SERIAL + statement, params)
    cur.nextset()  # past the SET's result
    row = await cur.fetchone()
    assert row is not None  # an aggregate's row
    return tuple(row)


async def render_trees(
    conn: AsyncConnection,
    tile: TileAddress,
    filters: TreeFilters,
    settings: Settings,
    grid_table: bool = False,
) -> bytes:
    """The trees tile: points from the point zoom up, unless too many; grid counts otherwise.

    One statement makes the tile: at the point zoom it picks the points and, when there are
    more than the cap (or ``tree_grid`` counts more), counts them on a finer grid instead;
    PostgreSQL computes the grid only when the points are not sent (a scalar subquery runs
    when its value is first needed).

    Parameters
    ----------
    conn
        A connection to the database (autocommit, or in the caller's transaction).
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
    if grid_table and _grid_table_serves(tile, filters, settings):
        return await _render_grid_from_table(conn, tile, filters)
    active, values = _tree_filters(filters)
    params = {"z": tile.z, "x": tile.x, "y": tile.y, **values}
    x0, y0, size = tile_origin(tile)
    if tile.z < settings.tile_min_zoom_points:
        params |= {"cells": GRID_CELLS, "x0": x0, "y0": y0, "size": size / GRID_CELLS}
        return await _run_tile(conn, _statement("tiles_trees_grid", active), params, False)
    if grid_table and _point_tile_serves(tile, filters) and await _has_view(conn, POINT_TILES):
        stored = await _stored_points(conn, tile, settings)
        if stored is not None:
            return trees_layer(stored)
    counted = grid_table and _grid_counts(tile, filters)
    fine = _fine_shift(tile, filters) if counted else None
    if fine is not None and not await _has_view(conn, FINE_GRID):
        fine = None
    params |= {
        "margin": BUFFER / EXTENT, "buffer": BUFFER, "limit": settings.tile_max_features,
        "cells": DENSE_GRID_CELLS, "x0": x0, "y0": y0, "size": size / DENSE_GRID_CELLS,
        "west": x0, "north": y0 + size, "scale": EXTENT / size,
    }
    if counted:
        params |= _cell_span(tile)
    if fine is not None:
        params |= _fine_keys(tile) | {"fine_shift": fine}
    params["small"] = FEW_POINTS
    row = await _run_row(conn, _point_zoom_statement(active, counted, fine), params)
    if row[0] is not None:  # over the cap: grid counts, encoded by ST_AsMVT
        return bytes(row[0])
    if row[1] is not None:  # a few trees, encoded by ST_AsMVT
        return bytes(row[1])
    return trees_layer(row[2:])


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


def _fine_shift(tile: TileAddress, filters: TreeFilters) -> int | None:
    """Levels of zoom-20 cells per dense grid cell, if tree_grid_fine can make this tile.

    Its cells are pivoted by category, with the mean position of all their trees: a tile
    without filters only, and one whose dense grid is no finer than zoom 20 (zoom 14 or less).
    """
    shift = FINE_LEVEL - tile.z - DENSE_GRID_SHIFT
    unfiltered = filters.category is None and filters.species is None and filters.commune is None
    return shift if shift >= 0 and unfiltered else None


FINE_GRID = "smarttrees.tree_grid_fine"  # migration 0034
POINT_TILES = "smarttrees.tree_point_tiles"  # migration 0035

# Whether each database (host, port, name) has each view, asked once per process: a server on
# a database not yet upgraded renders those tiles from the trees.
_VIEWS: dict[tuple[str, int, str, str], bool] = {}


async def _view_in(conn: AsyncConnection, name: str) -> bool:
    """Whether the database has the relation ``name`` (schema-qualified)."""
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    row = await cur.fetchone()
    return bool(row and row[0])


async def _has_view(conn: AsyncConnection, name: str) -> bool:
    """:func:`_view_in`, asked once per database and process."""
    info = conn.info
    where = (info.host, info.port, info.dbname, name)
    if where not in _VIEWS:
        _VIEWS[where] = await _view_in(conn, name)
    return _VIEWS[where]


def _point_tile_serves(tile: TileAddress, filters: TreeFilters) -> bool:
    """Whether smarttrees.tree_point_tiles can hold this tile (zoom 15, no filters)."""
    unfiltered = filters.category is None and filters.species is None and filters.commune is None
    return tile.z == POINT_TILE_ZOOM and unfiltered


async def _stored_points(
    conn: AsyncConnection, tile: TileAddress, settings: Settings
) -> tuple[Any, ...] | None:
    """The tile's point columns from smarttrees.tree_point_tiles; None where it has no row.

    Those of :func:`trees_layer`, as ``tiles_trees_points.sql`` sends them: the view holds
    tiles of more than FEW_POINTS trees, and one over the feature cap is not read from it.
    Fetched in binary (the extended protocol, unprepared: PgBouncer's transaction mode keeps
    no statement): a tile's ~170 KB of packed columns as hex text cost PostgreSQL and psycopg
    twice the CPU (bench_tile_profile.py).
    """
    params = {"x": tile.x, "y": tile.y, "limit": settings.tile_max_features, "small": FEW_POINTS}
    cur = conn.cursor(binary=True)
    await cur.execute(_sql_text("tiles_trees_point_tile"), params, prepare=False)
    row = await cur.fetchone()
    return None if row is None else tuple(row)


def morton(x: int, y: int) -> int:
    """The Morton code of column x and row y (their bits interleaved, x's first), as 0034's key."""
    code = 0
    for bit in range(max(x.bit_length(), y.bit_length())):
        code |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return code


def _fine_keys(tile: TileAddress) -> dict[str, int]:
    """The keys of smarttrees.tree_grid_fine's cells in a tile: [k0, k1)."""
    cells = 4 ** (FINE_LEVEL - tile.z)
    first = morton(tile.x, tile.y) * cells
    return {"k0": first, "k1": first + cells}


def _grid_counts(tile: TileAddress, filters: TreeFilters) -> bool:
    """Whether tree_grid can count the trees of a tile (a category filter at most, z <= 17)."""
    return tile.z <= GRID_LEVEL and filters.species is None and filters.commune is None


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
    active, values = _tree_filters(filters)  # the category at most (_grid_table_serves)
    params |= values
    statement = _statement("tiles_trees_grid_table", active, "g")
    return await _run_tile(conn, statement, params, serial=True)


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
    return await _run_tile(conn, _statement(collection.sql), params, serial=True)


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
        if await _view_in(conn, FINE_GRID):
            # Its sums in the order the trees are stored, as the grid over the trees adds
            # them: one seq scan from the table's start, grouped with a hash (0034 says why).
            await conn.execute("SET LOCAL synchronize_seqscans = off")
            await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            await conn.execute("SET LOCAL work_mem = '256MB'")
            await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY smarttrees.tree_grid_fine")
        if await _view_in(conn, POINT_TILES):  # after tree_grid_fine: its tiles come from there
            await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY smarttrees.tree_point_tiles")
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

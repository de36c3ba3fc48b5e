"""OGC API – Tiles: Mapbox vector tiles of trees, stands and communes on WebMercatorQuad.

Tiles are built in PostGIS with ``ST_AsMVT`` over ``ST_TileEnvelope``; rows are picked with the
GIST index on the stored EPSG:4326 geometry (the tile envelope is transformed once, never every
row). Trees come as individual points from ``settings.tile_min_zoom_points`` up; below that zoom,
or where a tile would carry more than ``settings.tile_max_features`` trees, the tile carries
grid counts by category instead (layer ``trees_grid``), so a tile over the whole province stays
small.

Rendered tiles are kept in an in-process LRU cache (per app, ``settings.tile_cache_mb``), keyed
by the tile, its filters and the trees' data version (the newest ``tree_history`` id, which
every change to a tree advances), so an edited tree never shows stale; stands and communes
entries expire after a few minutes.

Low-zoom grid tiles add up the level-17 cells of the materialised view ``smarttrees.tree_grid``
(migration 0006) while it is current (its recorded version equals the trees' version); when the
trees have changed since, tiles are computed from the trees and the view is refreshed in the
background (one refresh at a time, readers never blocked).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

import orjson
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api.errors import InvalidParameter, NotFound
from smarttrees.domain import Category
from smarttrees.settings import Settings

log = logging.getLogger(__name__)

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
MAX_ZOOM = 24  # WebMercatorQuad defines tile matrices 0..24
EXTENT = 4096  # MVT tile extent in tile units
BUFFER = 32  # units kept beyond the tile edge (4 px of a 512 px tile): edge circles drawn whole
GRID_CELLS = 32  # cells per tile side for aggregated trees below the point zoom
GRID_SHIFT = 5  # log2(GRID_CELLS)
GRID_LEVEL = 17  # zoom level of the cells precomputed in smarttrees.tree_grid (0006)
DENSE_GRID_CELLS = 64  # finer grid where a point-zoom tile holds more than the feature cap
CACHE_SECONDS = 300  # entries not keyed by a data version expire after this
BROWSER_MAX_AGE = 60  # Cache-Control max-age sent to clients
_HALF_WORLD = 20037508.342789244
_COMMUNE_CODE = re.compile(r"^[0-9]{1,10}$")


class TileAddress(NamedTuple):
    """One tile of WebMercatorQuad: tile matrix (zoom), row (y) and column (x)."""

    z: int
    y: int
    x: int


class TreeFilters(NamedTuple):
    """Filters a trees tile may be asked for (``None``: no filter on that attribute)."""

    category: str | None = None
    species: int | None = None
    commune: str | None = None


@dataclass(frozen=True)
class TileCollection:
    """A collection served as vector tiles."""

    id: str
    title: str
    layers: tuple[dict[str, Any], ...]  # TileJSON vector_layers entries
    versioned: bool = False  # True: cache keyed by the tree data version


def _fields(**kinds: str) -> dict[str, str]:
    return dict(kinds)


def tile_collections(settings: Settings) -> dict[str, TileCollection]:
    """The collections served as tiles, with the layers each tile carries."""
    points = settings.tile_min_zoom_points
    return {
        "trees": TileCollection(
            "trees",
            "Trees",
            (
                {
                    "id": "trees",
                    "description": "individual trees",
                    "minzoom": points,
                    "maxzoom": MAX_ZOOM,
                    "geometry_type": "point",
                    "fields": _fields(
                        id="Number",
                        tree_code="String",
                        category="String",
                        species="String",
                        condition="String",
                        dbh="Number",
                    ),
                },
                {
                    "id": "trees_grid",
                    "description": (
                        "trees counted per grid cell by category: below the point zoom, "
                        f"and where a tile would hold more than {settings.tile_max_features} trees"
                    ),
                    "minzoom": 0,
                    "maxzoom": MAX_ZOOM,
                    "geometry_type": "point",
                    "fields": _fields(
                        count="Number", urban="Number", scattered="Number", plantation="Number"
                    ),
                },
            ),
            versioned=True,
        ),
        "stands": TileCollection(
            "stands",
            "Plantation stands",
            (
                {
                    "id": "stands",
                    "minzoom": 0,
                    "maxzoom": MAX_ZOOM,
                    "geometry_type": "polygon",
                    "fields": _fields(
                        id="Number",
                        stand_code="String",
                        species="String",
                        planting_year="Number",
                        area_ha="Number",
                        forest_function="String",
                        commune_code="String",
                    ),
                },
            ),
        ),
        "communes": TileCollection(
            "communes",
            "Communes (current)",
            (
                {
                    "id": "communes",
                    "minzoom": 0,
                    "maxzoom": MAX_ZOOM,
                    "geometry_type": "polygon",
                    "fields": _fields(
                        id="Number", code="String", name="String", unit_type="String"
                    ),
                },
            ),
        ),
    }


# --- parsing the request -------------------------------------------------------------------


def parse_tile_address(z: str, y: str, x: str) -> TileAddress:
    """Check a tile address from the URL; raise a 400 for non-integers, a 404 outside the set."""
    values = {}
    for name, text in (("tileMatrix", z), ("tileRow", y), ("tileCol", x)):
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise InvalidParameter(f"{name} must be a non-negative integer, got {text!r}")
        values[name] = int(text)
    zoom, row, col = values["tileMatrix"], values["tileRow"], values["tileCol"]
    if zoom > MAX_ZOOM:
        raise NotFound(f"tile matrix {zoom} is not in {TMS_ID} (0 to {MAX_ZOOM})")
    size = 1 << zoom
    if row >= size or col >= size:
        raise NotFound(
            f"tile {zoom}/{row}/{col} is outside tile matrix {zoom}: "
            f"tileRow and tileCol run from 0 to {size - 1}"
        )
    return TileAddress(zoom, row, col)


def parse_tree_filters(params: Mapping[str, str]) -> TreeFilters:
    """Read ``category``, ``species`` (species id) and ``commune`` (commune code) from a query."""
    category = params.get("category") or None
    if category is not None and category not in {c.value for c in Category}:
        allowed = ", ".join(c.value for c in Category)
        raise InvalidParameter(f"category must be one of {allowed}, got {category!r}")
    species_text = params.get("species") or None
    species = None
    if species_text is not None:
        if not re.fullmatch(r"[0-9]{1,9}", species_text):
            raise InvalidParameter(f"species must be a species id (integer), got {species_text!r}")
        species = int(species_text)
    commune = params.get("commune") or None
    if commune is not None and not _COMMUNE_CODE.fullmatch(commune):
        raise InvalidParameter(f"commune must be a commune code (digits), got {commune!r}")
    return TreeFilters(category, species, commune)


# --- SQL ------------------------------------------------------------------------------------


@cache
def _sql_text(name: str) -> str:
    return resources.files("gis_api").joinpath(f"sql/{name}.sql").read_text(encoding="utf-8")


def _tree_filter_sql(filters: TreeFilters) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL conditions (each starting with AND) and their parameters for the tree filters."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if filters.category is not None:
        parts.append(sql.SQL("AND t.category = %(category)s"))
        params["category"] = filters.category
    if filters.species is not None:
        parts.append(sql.SQL("AND t.species_id = %(species)s"))
        params["species"] = filters.species
    if filters.commune is not None:
        parts.append(sql.SQL("AND t.commune_code = %(commune)s"))
        params["commune"] = filters.commune
    return sql.SQL(" ").join(parts), params


def _query(name: str, filters: sql.Composable | None = None) -> sql.Composed:
    return sql.SQL(_sql_text(name)).format(filters=filters or sql.SQL(""))


async def _fetch_bytes(conn: AsyncConnection, query: sql.Composed, params: dict[str, Any]) -> bytes:
    # Not prepared: a generic plan would lose the row estimate the constant envelope gives.
    cur = await conn.execute(query, params, prepare=False)
    row = await cur.fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


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
        A connection (autocommit) to the database.
    tile
        The tile to make.
    filters
        Category, species and commune filters (``None`` fields: no filter).
    settings
        Point zoom and feature cap come from here.
    grid_table
        True when ``smarttrees.tree_grid`` is up to date: grid counts of low zooms are then
        added up from it rather than from the trees.

    """
    if grid_table and _grid_table_serves(tile, filters, settings):
        return await _render_grid_from_table(conn, tile, filters)
    where, fparams = _tree_filter_sql(filters)
    base = {"z": tile.z, "x": tile.x, "y": tile.y, **fparams}
    cells = GRID_CELLS
    if tile.z >= settings.tile_min_zoom_points:
        await _serial(conn)
        cap = settings.tile_max_features
        params = base | {"margin": BUFFER / EXTENT, "buffer": BUFFER, "limit": cap}
        points = await _fetch_optional(conn, _query("tiles_trees_points", where), params)
        if points is not None:
            return points
        cells = DENSE_GRID_CELLS  # more trees than the cap: counts on a finer grid
    x0, y0, size = _tile_origin(tile)
    params = base | {"cells": cells, "x0": x0, "y0": y0, "size": size / cells}
    return await _fetch_bytes(conn, _query("tiles_trees_grid", where), params)


def _grid_table_serves(tile: TileAddress, filters: TreeFilters, settings: Settings) -> bool:
    """Whether tree_grid's level-17 cells can make this tile (a grid tile, coarse enough)."""
    coarse = tile.z < settings.tile_min_zoom_points and tile.z + GRID_SHIFT <= GRID_LEVEL
    return coarse and filters.species is None and filters.commune is None


async def _render_grid_from_table(
    conn: AsyncConnection, tile: TileAddress, filters: TreeFilters
) -> bytes:
    span = 1 << (GRID_LEVEL - tile.z)
    params: dict[str, Any] = {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "i0": tile.x * span,
        "i1": (tile.x + 1) * span,
        "j0": tile.y * span,
        "j1": (tile.y + 1) * span,
        "shift": GRID_LEVEL - tile.z - GRID_SHIFT,
    }
    await _serial(conn)
    where: sql.Composable = sql.SQL("")
    if filters.category is not None:
        where = sql.SQL("AND g.category = %(category)s")
        params["category"] = filters.category
    return await _fetch_bytes(conn, _query("tiles_trees_grid_table", where), params)


async def grid_version(conn: AsyncConnection) -> int | None:
    """The tree data version smarttrees.tree_grid was computed at."""
    cur = await conn.execute("SELECT version FROM smarttrees.tree_grid_version")
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


def _tile_origin(tile: TileAddress) -> tuple[float, float, float]:
    """West and south edges of a tile in EPSG:3857 metres, and its width."""
    size = 2 * _HALF_WORLD / 2**tile.z
    return -_HALF_WORLD + tile.x * size, _HALF_WORLD - (tile.y + 1) * size, size


async def _fetch_optional(
    conn: AsyncConnection, query: sql.Composed, params: dict[str, Any]
) -> bytes | None:
    cur = await conn.execute(query, params, prepare=False)
    row = await cur.fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


async def render_polygons(
    conn: AsyncConnection, collection: str, tile: TileAddress, settings: Settings
) -> bytes:
    """A stands or communes tile, capped at ``settings.tile_max_features`` features."""
    params = {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "margin": BUFFER / EXTENT,
        "buffer": BUFFER,
        "limit": settings.tile_max_features,
    }
    await _serial(conn)
    return await _fetch_bytes(conn, _query(f"tiles_{collection}"), params)


async def _serial(conn: AsyncConnection) -> None:
    """No parallel workers for the rest of this transaction.

    A points, polygons or precomputed-grid tile query takes milliseconds: starting a parallel
    worker (~30 ms) costs more than it saves, yet PostGIS's declared function costs lead the
    planner to one. Grid counts over the trees themselves (hundreds of thousands of rows) keep
    their parallel plan.
    """
    await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")


async def trees_version(conn: AsyncConnection) -> int:
    """The newest tree_history id: any insert, update or delete of a tree advances it."""
    cur = await conn.execute("SELECT coalesce(max(id), 0) FROM smarttrees.tree_history")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


# --- cache ----------------------------------------------------------------------------------


class TileCache:
    """A byte-bounded LRU of rendered tiles; entries expire after ``ttl`` seconds."""

    def __init__(self, max_bytes: int, ttl: float = CACHE_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, bytes, str]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[Any, ...]) -> tuple[bytes, str] | None:
        """The cached tile and its ETag, or None (missing or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, body, etag = entry
        if time.monotonic() - stored > self.ttl:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return body, etag

    def put(self, key: tuple[Any, ...], body: bytes, etag: str) -> None:
        """Keep a tile, evicting the least recently used ones beyond the byte budget."""
        if self.max_bytes == 0 or len(body) > self.max_bytes // 4:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic(), body, etag)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[Any, ...]) -> None:
        _, body, _ = self._entries.pop(key)
        self._bytes -= len(body)


def etag_of(body: bytes) -> str:
    """A strong ETag from the tile bytes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


# --- documents ------------------------------------------------------------------------------


def base_url(request: Request, settings: Settings) -> str:
    """The URL clients reach the server at (public_url if set, else this request's host)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def tile_matrix_set() -> dict[str, Any]:
    """The OGC Two Dimensional Tile Matrix Set 2.0 definition of WebMercatorQuad."""
    matrices = []
    for zoom in range(MAX_ZOOM + 1):
        cell = 2 * _HALF_WORLD / 256 / 2**zoom
        matrices.append(
            {
                "id": str(zoom),
                "scaleDenominator": cell / 0.00028,
                "cellSize": cell,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-_HALF_WORLD, _HALF_WORLD],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2**zoom,
                "matrixHeight": 2**zoom,
            }
        )
    return {
        "id": TMS_ID,
        "title": "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": CRS_3857,
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": matrices,
    }


def tileset_document(
    collection: TileCollection, base: str, bounds: list[float] | None, query: str
) -> dict[str, Any]:
    """OGC API – Tiles tileset metadata, with TileJSON 3 keys so web maps can use it directly."""
    tiles_url = f"{base}/collections/{collection.id}/tiles/{TMS_ID}"
    template = tiles_url + "/{tileMatrix}/{tileRow}/{tileCol}" + (f"?{query}" if query else "")
    xyz = tiles_url + "/{z}/{y}/{x}" + (f"?{query}" if query else "")
    doc: dict[str, Any] = {
        "title": f"{collection.title} vector tiles",
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "links": [
            {"rel": "self", "type": "application/json", "href": tiles_url},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
                "href": f"{base}/tileMatrixSets/{TMS_ID}",
            },
            {
                "rel": "item",
                "type": MVT_MEDIA_TYPE,
                "href": template,
                "templated": True,
            },
            {
                "rel": "collection",
                "type": "application/json",
                "href": f"{base}/collections/{collection.id}",
            },
        ],
        "layers": [
            {
                "id": layer["id"],
                "dataType": "vector",
                "geometryDimension": 0 if layer["geometry_type"] == "point" else 2,
                "minTileMatrix": str(layer["minzoom"]),
                "maxTileMatrix": str(layer["maxzoom"]),
                "propertiesSchema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "number" if kind == "Number" else "string"}
                        for name, kind in layer["fields"].items()
                    },
                },
            }
            for layer in collection.layers
        ],
        # TileJSON 3.0.0
        "tilejson": "3.0.0",
        "tiles": [xyz],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "vector_layers": [
            {k: v for k, v in layer.items() if k != "geometry_type"} for layer in collection.layers
        ],
    }
    if bounds:
        doc["bounds"] = bounds
        doc["boundingBox"] = {
            "lowerLeft": bounds[:2],
            "upperRight": bounds[2:],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        }
    return doc


_BOUNDS_SQL = {
    "trees": "SELECT ST_EstimatedExtent('smarttrees', 'trees', 'geom')::box2d",
    "stands": "SELECT ST_Extent(geom) FROM smarttrees.stands",
    "communes": "SELECT ST_Extent(geom) FROM smarttrees.communes",
}


async def collection_bounds(conn: AsyncConnection, collection: str) -> list[float] | None:
    """Lon/lat bounds of a collection (estimated for trees: exact would scan a million rows)."""
    query = _BOUNDS_SQL[collection]
    try:
        cur = await conn.execute(
            f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM ({query}) e(b)"
        )
        row = await cur.fetchone()
    except Exception:  # ST_EstimatedExtent raises without table statistics: fall back to exact
        cur = await conn.execute(
            "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)"
            " FROM (SELECT ST_Extent(geom) FROM smarttrees.trees) e(b)"
        )
        row = await cur.fetchone()
    if not row or row[0] is None:
        return None
    return [round(float(v), 6) for v in row]


def json_response(doc: Any, status: int = 200, max_age: int = BROWSER_MAX_AGE) -> Response:
    """A JSON document with a short public cache lifetime."""
    return Response(
        orjson.dumps(doc),
        status,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


# --- endpoints ------------------------------------------------------------------------------


class TileEndpoints:
    """The tile routes of one app, sharing its tile cache."""

    def __init__(self) -> None:
        self._cache: TileCache | None = None  # made on first use: the settings size it
        self._refreshing: asyncio.Task[None] | None = None

    def cache(self, settings: Settings) -> TileCache:
        """The app's tile cache (``settings.tile_cache_mb``; 0 keeps nothing)."""
        if self._cache is None:
            self._cache = TileCache(settings.tile_cache_mb * 1024 * 1024)
        return self._cache

    @staticmethod
    def _collection(request: Request) -> TileCollection:
        settings: Settings = request.app.state.settings
        collections = tile_collections(settings)
        cid = request.path_params["collection_id"]
        if cid not in collections:
            served = ", ".join(collections)
            raise NotFound(
                f"collection {cid!r} has no vector tiles (tiles are served for {served})"
            )
        return collections[cid]

    @staticmethod
    def _check_tms(request: Request) -> None:
        tms = request.path_params["tms"]
        if tms != TMS_ID:
            raise NotFound(f"tile matrix set {tms!r} is not served; use {TMS_ID}")

    async def tilesets(self, request: Request) -> Response:
        """The tilesets of a collection (one: WebMercatorQuad vector tiles)."""
        collection = self._collection(request)
        base = base_url(request, request.app.state.settings)
        url = f"{base}/collections/{collection.id}/tiles"
        return json_response(
            {
                "links": [{"rel": "self", "type": "application/json", "href": url}],
                "tilesets": [
                    {
                        "title": f"{collection.title} vector tiles",
                        "dataType": "vector",
                        "crs": CRS_3857,
                        "tileMatrixSetURI": TMS_URI,
                        "links": [
                            {
                                "rel": "self",
                                "type": "application/json",
                                "href": f"{url}/{TMS_ID}",
                            },
                            {
                                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                                "type": "application/json",
                                "href": f"{base}/tileMatrixSets/{TMS_ID}",
                            },
                        ],
                    }
                ],
            }
        )

    async def tileset(self, request: Request) -> Response:
        """Tileset metadata (OGC API – Tiles, with TileJSON keys)."""
        collection = self._collection(request)
        self._check_tms(request)
        if collection.id == "trees":
            parse_tree_filters(request.query_params)  # reject bad filters before templating them
        settings: Settings = request.app.state.settings
        async with request.app.state.pool.connection() as conn:
            bounds = await collection_bounds(conn, collection.id)
        query = str(request.query_params) if collection.id == "trees" else ""
        return json_response(
            tileset_document(collection, base_url(request, settings), bounds, query)
        )

    async def tile(self, request: Request) -> Response:
        """One vector tile (tileMatrix/tileRow/tileCol)."""
        collection = self._collection(request)
        self._check_tms(request)
        p = request.path_params
        tile = parse_tile_address(p["z"], p["y"], p["x"])
        filters = (
            parse_tree_filters(request.query_params) if collection.id == "trees" else TreeFilters()
        )
        settings: Settings = request.app.state.settings
        key: tuple[Any, ...] = (collection.id, tile, filters)
        async with request.app.state.pool.connection() as conn:
            if collection.versioned:
                key += (await trees_version(conn),)
            cached = self.cache(settings).get(key)
            if cached is None:
                async with conn.transaction():  # for the SET LOCAL of _serial
                    if collection.id == "trees":
                        current = await grid_version(conn) == key[-1]
                        body = await render_trees(conn, tile, filters, settings, current)
                        if not current:
                            self._refresh_grid(request.app.state.pool)
                    else:
                        body = await render_polygons(conn, collection.id, tile, settings)
                cached = (body, etag_of(body))
                self.cache(settings).put(key, *cached)
        body, etag = cached
        headers = {"Cache-Control": f"public, max-age={BROWSER_MAX_AGE}", "ETag": etag}
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(body, 200, media_type=MVT_MEDIA_TYPE, headers=headers)

    def _refresh_grid(self, pool: AsyncConnectionPool) -> None:
        """Start recomputing tree_grid in the background, unless that is already under way."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(_refresh_in_background(pool))


async def _refresh_in_background(pool: AsyncConnectionPool) -> None:
    started = time.monotonic()
    try:
        async with pool.connection() as conn:
            await refresh_tree_grid(conn)
    except Exception:  # the tiles stay right without it (computed from the trees), only slower
        log.exception("refreshing smarttrees.tree_grid failed")
    else:
        log.info("smarttrees.tree_grid refreshed in %.1f s", time.monotonic() - started)


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


async def tile_matrix_sets(request: Request) -> Response:
    """The tile matrix sets served: WebMercatorQuad."""
    base = base_url(request, request.app.state.settings)
    return json_response(
        {
            "tileMatrixSets": [
                {
                    "id": TMS_ID,
                    "title": "Google Maps Compatible for the World",
                    "uri": TMS_URI,
                    "links": [
                        {
                            "rel": "self",
                            "type": "application/json",
                            "href": f"{base}/tileMatrixSets/{TMS_ID}",
                        }
                    ],
                }
            ]
        },
        max_age=3600,
    )


async def tile_matrix_set_endpoint(request: Request) -> Response:
    """The WebMercatorQuad definition."""
    if request.path_params["tms"] != TMS_ID:
        raise NotFound(
            f"tile matrix set {request.path_params['tms']!r} is not served; use {TMS_ID}"
        )
    return json_response(tile_matrix_set(), max_age=3600)


def routes() -> list[BaseRoute]:
    """The OGC API – Tiles routes; mounted before pygeoapi so they answer first."""
    endpoints = TileEndpoints()
    prefix = "/collections/{collection_id}/tiles"
    return [
        Route("/tileMatrixSets", tile_matrix_sets, methods=["GET"], name="tile_matrix_sets"),
        Route(
            "/tileMatrixSets/{tms}",
            tile_matrix_set_endpoint,
            methods=["GET"],
            name="tile_matrix_set",
        ),
        Route(prefix, endpoints.tilesets, methods=["GET"], name="tilesets"),
        Route(prefix + "/{tms}", endpoints.tileset, methods=["GET"], name="tileset"),
        Route(prefix + "/{tms}/{z}/{y}/{x}", endpoints.tile, methods=["GET"], name="tile"),
    ]

"""Registered rasters served: PNG tiles on WebMercatorQuad, a list with legends, coverages.

- ``/collections/{name}/tiles/WebMercatorQuad/{z}/{y}/{x}.png``: a 256 × 256 PNG of the
  raster's Web Mercator copy (:mod:`etl.raster.mercator`): at the zooms of its levels a window
  of whole cells of the level (:func:`copy_tile`), at others drawn by rio-tiler; stretched
  over the registered range with the registered colormap (or the band's own colour table),
  nodata transparent. A raster registered before the copies existed (``mercator_path`` NULL)
  is warped from its file on every tile, as before, until it is added again. The last
  rendered tiles are kept in memory (:data:`CACHE_BYTES`), keyed by the row's id, which a
  ``raster add --replace`` changes;
- ``/api/rasters``: the registered rasters with their tile URL, range, units and colour stops,
  what a web map needs for a layer, its legend and its opacity slider;
- ``/collections/{name}/coverage``: OGC API – Coverages through pygeoapi's rasterio provider;
  :func:`coverage_resources` adds each registered raster to pygeoapi's configuration, so the
  rasters are listed in ``/collections``.

Tiles are read in worker threads (GDAL releases the GIL), each keeping its own open readers
(:class:`_Readers`); rio-tiler is imported with this module, since a first import racing in
several threads fails. A stretched tile is encoded as an 8-bit palette PNG (:func:`stretched_png`).
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import math
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import orjson
from cachetools import LRUCache, TTLCache
from PIL import Image
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from rasterio.windows import Window
from rio_tiler.colormap import cmap
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api.errors import NotFound, Unavailable
from gis_api.links import base_url
from gis_api.tiles import TMS_ID, parse_tile_address

log = logging.getLogger(__name__)

TILE_SIZE = 256
WEB_MERCATOR_WIDTH = 2 * math.pi * 6378137  # metres across the WebMercatorQuad grid
MAX_AGE = 3600
FILE_COLORMAP = "file"
LEGEND_STOPS = 6
PNG_ZLEVEL = 1
TRANSPARENT = 255  # the palette entry of nodata in a stretched tile; 0…254 are the levels
READERS_PER_THREAD = 8  # open rasters kept by each worker thread
CACHE_BYTES = 64 * 2**20  # rendered PNGs kept per server process (most are 1–30 kB)
_COLUMNS = (
    "id, name, title, path, band, crs, dtype, nodata, value_min, value_max, colormap, units, "
    "bbox, mercator_path"
)
ROW_SECONDS = 2.0  # a tile request reuses the raster's row read this long ago
_rows: TTLCache[str, dict[str, Any] | None] = TTLCache(256, ROW_SECONDS)  # event loop only
_cache: LRUCache[tuple[int, int, int, int], bytes] = LRUCache(CACHE_BYTES, getsizeof=len)
_cache_lock = threading.Lock()  # render_tile runs in worker threads


async def registered(pool: AsyncConnectionPool, name: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``smarttrees.rasters`` (all, or the one called ``name``)."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        if name is None:
            await cur.execute(f"SELECT {_COLUMNS} FROM smarttrees.rasters ORDER BY name")
        else:
            await cur.execute(
                f"SELECT {_COLUMNS} FROM smarttrees.rasters WHERE name = %s", (name,)
            )
        return await cur.fetchall()


def render_tile(raster: dict[str, Any], z: int, y: int, x: int) -> bytes | None:
    """The PNG of one tile (from the cache, or drawn), or None when it does not touch the raster."""
    key = (raster["id"], z, y, x)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    content = draw_tile(raster, z, y, x)
    if content is not None:
        with _cache_lock:
            _cache[key] = content
    return content


class _Readers:
    """Open rio-tiler readers, a few per worker thread, keyed by the file as it is now.

    Opening a reader (the dataset, its bounds and zooms) took as long as drawing a tile, and an
    open dataset keeps GDAL's cache of decompressed blocks for the next tiles. A rasterio
    dataset is not shared between threads, so each thread has its own readers. The key holds the
    file's inode, size and modification time: a replaced or rewritten file opens afresh.
    """

    def __init__(self, per_thread: int) -> None:
        self.per_thread = per_thread
        self.local = threading.local()

    def get(self, path: str) -> Reader:
        stat = os.stat(path)
        key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        readers: OrderedDict[tuple[Any, ...], Reader] | None = getattr(self.local, "readers", None)
        if readers is None:
            readers = self.local.readers = OrderedDict()
        reader = readers.get(key)
        if reader is not None:
            readers.move_to_end(key)
            return reader
        reader = Reader(path)
        readers[key] = reader
        if len(readers) > self.per_thread:
            readers.popitem(last=False)[1].close()
        return reader


_readers = _Readers(READERS_PER_THREAD)


class _CopyLevels:
    """The zoom levels of a Web Mercator copy, opened once per worker thread.

    A copy written by :mod:`etl.raster.mercator` lies on the WebMercatorQuad grid: its full
    resolution is a zoom's (the copy's native zoom), its origin a tile corner of that zoom, and
    each overview halves the resolution, so the overviews are the zooms below. A tile at one of
    those zooms is then a window of whole cells of one level: read as it is, nothing resampled.
    rio-tiler reaches the same cells through a generic path (CRS checks, a warped or resampled
    read) that costs four times the CPU of the read itself.
    """

    def __init__(self, per_thread: int) -> None:
        self.per_thread = per_thread
        self.local = threading.local()

    def get(self, path: str) -> dict[int, Any] | None:
        """Datasets by zoom (None when the file is not on the tile grid)."""
        stat = os.stat(path)
        key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        opened: OrderedDict[tuple[Any, ...], dict[int, Any] | None] | None = getattr(
            self.local, "opened", None
        )
        if opened is None:
            opened = self.local.opened = OrderedDict()
        if key in opened:
            opened.move_to_end(key)
            return opened[key]
        levels = _open_levels(path)
        opened[key] = levels
        if len(opened) > self.per_thread:
            for dataset in (opened.popitem(last=False)[1] or {}).values():
                dataset.close()
        return levels


def _open_levels(path: str) -> dict[int, Any] | None:
    """The copy's datasets by zoom, if it lies on the WebMercatorQuad grid; else None."""
    import rasterio

    base = rasterio.open(path)
    transform = base.transform
    zoom = round(math.log2(WEB_MERCATOR_WIDTH / (TILE_SIZE * transform.a)))
    cell = WEB_MERCATOR_WIDTH / (TILE_SIZE * 2**zoom)
    column = (transform.c + WEB_MERCATOR_WIDTH / 2) / (TILE_SIZE * cell)
    row = (WEB_MERCATOR_WIDTH / 2 - transform.f) / (TILE_SIZE * cell)
    on_grid = (
        base.crs is not None and base.crs.to_epsg() == 3857 and base.count == 1
        and transform.b == transform.d == 0 and -transform.e == transform.a
        and math.isclose(transform.a, cell, rel_tol=1e-9)
        and abs(column - round(column)) < 1e-6 and abs(row - round(row)) < 1e-6
    )
    if not on_grid:
        base.close()
        return None
    levels = {zoom: base}
    for level, factor in enumerate(base.overviews(1)):
        if factor != 2 ** (level + 1) or base.width % factor or base.height % factor:
            break  # an overview that is not the next zoom: served by rio-tiler
        levels[zoom - level - 1] = rasterio.open(path, overview_level=level)
    return levels


_copy_levels = _CopyLevels(READERS_PER_THREAD)


def copy_tile(path: str, z: int, y: int, x: int) -> np.ma.MaskedArray | None:
    """Band 1 of tile ``z/y/x`` read from a Web Mercator copy; cells beyond the copy masked.

    None when ``z`` is not one of the copy's levels (or the file is not on the tile grid):
    rio-tiler draws those tiles.
    """
    levels = _copy_levels.get(path)
    if levels is None or z not in levels:
        return None
    dataset = levels[z]
    cell = WEB_MERCATOR_WIDTH / (TILE_SIZE * 2**z)
    # the tile's top-left cell in the level (whole cells: see _CopyLevels)
    col = x * TILE_SIZE - round((dataset.transform.c + WEB_MERCATOR_WIDTH / 2) / cell)
    row = y * TILE_SIZE - round((WEB_MERCATOR_WIDTH / 2 - dataset.transform.f) / cell)
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + TILE_SIZE, dataset.width), min(row + TILE_SIZE, dataset.height)
    if c1 <= c0 or r1 <= r0:
        return np.ma.masked_all((TILE_SIZE, TILE_SIZE), dtype=dataset.dtypes[0])
    part = dataset.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
    if part.shape == (TILE_SIZE, TILE_SIZE):
        return part
    band = np.ma.masked_array(np.zeros((TILE_SIZE, TILE_SIZE), dtype=part.dtype), mask=True)
    band[r0 - row:r1 - row, c0 - col:c1 - col] = part
    return band


def draw_tile(raster: dict[str, Any], z: int, y: int, x: int) -> bytes | None:
    """Draw the PNG of one tile, or None when the tile does not touch the raster."""
    copy = raster["mercator_path"]
    if copy and os.path.isfile(copy):
        path, band = copy, 1  # the copy holds the served band only
    else:  # registered before the copies, or the copy was deleted: warp the file itself
        path, band = raster["path"], raster["band"]
    # Any: the instance's tile_exists is replaced below, which rio-tiler's types do not allow
    reader: Any = _readers.get(path)
    # rio-tiler's own check reprojects the tile to the raster's CRS, and setting up the
    # VN-2000 transformation costs tens of milliseconds a tile: the stored lon/lat box is
    # enough to tell a tile off the raster.
    west, south, east, north = raster["bbox"]

    def touches(tile_x: int, tile_y: int, tile_z: int) -> bool:
        b = reader.tms.bounds(tile_x, tile_y, tile_z)
        return b.left < east and west < b.right and b.bottom < north and south < b.top

    reader.tile_exists = touches
    if not touches(x, y, z):
        return None
    array = copy_tile(path, z, y, x) if path == copy else None
    if array is not None:
        image = ImageData(array[np.newaxis])
    else:
        try:
            image = reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=band)
        except TileOutsideBounds:
            return None
    low, high = raster["value_min"], raster["value_max"]
    if raster["colormap"] == FILE_COLORMAP:
        colormap = reader.dataset.colormap(band)
    elif low is not None and high is not None:
        return stretched_png(image.array[0], low, high, raster["colormap"])
    else:
        colormap = cmap.get(raster["colormap"])
    # zlib level 1: encoding is most of a tile's time read from the copy (17 → 9 ms on a
    # noisy 256 × 256 tile), for PNGs ~5 % larger
    content: bytes = image.render(img_format="PNG", colormap=colormap, ZLEVEL=PNG_ZLEVEL)
    return content


@functools.lru_cache(maxsize=32)
def _palette(colormap: str) -> tuple[bytes, bytes]:
    """RGB palette and alpha of a stretched tile: 255 levels of ``colormap``, then transparent."""
    table: dict[int, tuple[int, ...]] = cmap.get(colormap)  # type: ignore[assignment]
    levels = [table[round(i * 255 / (TRANSPARENT - 1))] for i in range(TRANSPARENT)]
    rgb = b"".join(bytes(c[:3]) for c in levels) + b"\x00\x00\x00"
    alpha = bytes(c[3] if len(c) > 3 else 255 for c in levels) + b"\x00"
    return rgb, alpha


def stretched_png(band: np.ma.MaskedArray, low: float, high: float, colormap: str) -> bytes:
    """One band stretched over ``low``…``high`` in ``colormap``, as an 8-bit palette PNG.

    A palette PNG of the band's levels is a quarter of the RGBA bytes to compress, and Pillow
    encodes it in about a millisecond: half a tile's time went to rio-tiler's colormap and GDAL's
    RGBA PNG. Masked, nodata and non-finite cells take the last, transparent, palette entry.
    """
    values = np.asarray(band.data, dtype=np.float32)
    hidden = np.ma.getmaskarray(band) | ~np.isfinite(values)
    scale = (TRANSPARENT - 1) / (high - low) if high > low else 0.0
    levels = np.clip((values - np.float32(low)) * np.float32(scale), 0, TRANSPARENT - 1)
    index = np.rint(np.nan_to_num(levels)).astype(np.uint8)
    index[hidden] = TRANSPARENT
    rgb, alpha = _palette(colormap)
    image = Image.fromarray(index, mode="P")
    image.putpalette(rgb)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_ZLEVEL, transparency=alpha)
    return out.getvalue()


async def _raster_row(pool: AsyncConnectionPool, name: str) -> dict[str, Any] | None:
    """The row of raster ``name`` (None: not registered), read at most every :data:`ROW_SECONDS`.

    A map asks for a dozen tiles at once, and a query per tile repeats the same read for each
    (a pool checkout and a round trip on the event loop). A raster added, replaced or removed
    shows within the delay.
    """
    if name in _rows:
        return _rows[name]
    rows = await registered(pool, name)
    row = rows[0] if rows else None
    _rows[name] = row
    return row


async def tile(request: Request) -> Response:
    """One PNG tile of a registered raster."""
    name = request.path_params["name"]
    if request.path_params["tms"] != TMS_ID:
        raise NotFound(f"tile matrix set {request.path_params['tms']!r}: only {TMS_ID} is served")
    address = parse_tile_address(
        request.path_params["z"], request.path_params["y"], request.path_params["x"]
    )
    raster = await _raster_row(request.app.state.pool, name)
    if raster is None:
        raise NotFound(f"no raster {name!r} is registered")
    try:
        content = await asyncio.to_thread(render_tile, raster, address.z, address.y, address.x)
    except OSError as exc:  # rasterio's errors are OSErrors: the file moved or broke
        log.warning("raster %s cannot be read: %s", name, type(exc).__name__)
        raise Unavailable(f"the file of raster {name!r} cannot be read") from None
    if content is None:
        raise NotFound(f"tile {address.z}/{address.y}/{address.x} is outside raster {name!r}")
    return Response(content, media_type="image/png",
                    headers={"Cache-Control": f"public, max-age={MAX_AGE}"})


def legend_stops(colormap: str, low: float | None, high: float | None) -> list[dict[str, Any]]:
    """A few (value, colour) pairs along the stretch, for a legend."""
    if colormap == FILE_COLORMAP or low is None or high is None:
        return []
    table: dict[int, tuple[int, ...]] = cmap.get(colormap)  # type: ignore[assignment]
    stops = []
    for i in range(LEGEND_STOPS):
        frac = i / (LEGEND_STOPS - 1)
        r, g, b = table[min(255, round(frac * 255))][:3]
        stops.append({"value": low + frac * (high - low), "color": f"#{r:02x}{g:02x}{b:02x}"})
    return stops


async def raster_list(request: Request) -> Response:
    """The registered rasters, with tile URLs and legends."""
    base = base_url(request, request.app.state.settings)
    body = []
    for row in await registered(request.app.state.pool):
        body.append({
            "name": row["name"],
            "title": row["title"],
            "units": row["units"],
            "crs": row["crs"],
            "bbox": row["bbox"],
            "range": [row["value_min"], row["value_max"]],
            "colormap": row["colormap"],
            "legend": legend_stops(row["colormap"], row["value_min"], row["value_max"]),
            "tiles": f"{base}/collections/{row['name']}/tiles/{TMS_ID}/{{z}}/{{y}}/{{x}}.png",
            "coverage": f"{base}/collections/{row['name']}/coverage",
        })
    return Response(orjson.dumps({"rasters": body}), media_type="application/json")


async def coverage(request: Request) -> Response:
    """OGC API – Coverages: the coverage of a registered raster (pygeoapi's rasterio provider).

    The request is not held to pygeoapi's list of feature formats: ``f=GTiff`` is a coverage
    format (pygeoapi's own apps skip that check here too).
    """
    import pygeoapi.api.coverages as coverages
    from pygeoapi.api import APIRequest

    api = request.app.state.pygeoapi.api
    name = request.path_params["name"]
    resource = api.config["resources"].get(name) or {}
    if not any(p.get("type") == "coverage" for p in resource.get("providers", ())):
        # pygeoapi answers a collection without a coverage with a 400; like a missing tileset,
        # a missing coverage is a 404 (unknown collections included).
        raise NotFound(f"no coverage {name!r}: only registered rasters have one (/api/rasters)")
    api_request = await APIRequest.from_starlette(request, api.locales)
    headers, status, content = await asyncio.to_thread(
        coverages.get_collection_coverage, api, api_request, name
    )
    if isinstance(content, dict):
        content = orjson.dumps(content)
    response = Response(content, status)
    response.headers.update(headers)
    return response


async def coverage_resources(pool: AsyncConnectionPool) -> dict[str, dict[str, Any]]:
    """Pygeoapi resources of the registered rasters whose file is there (the others are logged)."""
    resources: dict[str, dict[str, Any]] = {}
    for row in await registered(pool):
        if not os.path.isfile(row["path"]):
            log.warning("raster %s: its file is missing, not published", row["name"])
            continue
        resources[row["name"]] = {
            "type": "collection",
            "title": row["title"],
            "description": f"Raster {row['title']} ({row['crs']}, band {row['band']})",
            "keywords": ["raster", "coverage"],
            "extents": {"spatial": {
                "bbox": list(row["bbox"]),
                "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
            }},
            "providers": [{
                "type": "coverage",
                "name": "rasterio",
                "data": row["path"],
                "options": {"DATA_ENCODING": "COG"},
                "format": {"name": "GTiff", "mimetype": "application/tiff"},
            }],
        }
    return resources


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.0 descriptions of the raster routes."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/smarttreesException"}}}

    def errors(*statuses: int) -> dict[str, Any]:
        return {str(s): {"description": "error", "content": error} for s in statuses}

    name = {"name": "rasterName", "in": "path", "required": True,
            "description": "name of a raster registered with `smarttrees raster add`",
            "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}}
    integer = {"type": "integer", "minimum": 0, "maximum": 2**24 - 1}  # rows, columns at z24
    tile_params = [
        name,
        {"name": "tileMatrixSetId", "in": "path", "required": True,
         "schema": {"type": "string", "enum": [TMS_ID]}},
        {"name": "tileMatrix", "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 0, "maximum": 24}},
        {"name": "tileRow", "in": "path", "required": True, "schema": integer},
        {"name": "tileCol", "in": "path", "required": True, "schema": integer},
    ]
    return {
        "/collections/{rasterName}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}.png": {
            "get": {
                "operationId": "getRasterTile",
                "summary": "A PNG tile of a registered raster (nodata transparent)",
                "tags": ["rasters"],
                "parameters": tile_params,
                "responses": {
                    "200": {"description": "OK", "content": {
                        "image/png": {"schema": {"type": "string", "format": "binary"}}}},
                    **errors(400, 404, 503),
                },
            }
        },
        "/collections/{rasterName}/coverage": {"get": {
            "operationId": "getRasterCoverage",
            "summary": "OGC API – Coverages: a registered raster (CoverageJSON, or f=GTiff)",
            "tags": ["rasters"],
            "parameters": [name, {"name": "f", "in": "query", "required": False,
                                  "schema": {"type": "string", "enum": ["json", "GTiff"]}}],
            "responses": {"200": {"description": "OK", "content": {
                "application/prs.coverage+json": {"schema": {"type": "object"}},
                "application/tiff": {"schema": {"type": "string", "format": "binary"}}}},
                **errors(400, 404)},
        }},
        "/api/rasters": {"get": {
            "operationId": "getRasters",
            "summary": "The registered rasters: tile URL, value range, units, legend colours",
            "tags": ["rasters"],
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": {"type": "object"}}}}},
        }},
    }


def routes() -> list[BaseRoute]:
    """Raster tiles, the raster list and coverages; mounted before the vector tile routes."""
    return [
        Route("/collections/{name}/tiles/{tms}/{z}/{y}/{x}.png", tile, methods=["GET"],
              name="raster_tile"),
        Route("/collections/{name}/coverage", coverage, methods=["GET"], name="raster_coverage"),
        Route("/api/rasters", raster_list, methods=["GET"], name="raster_list"),
    ]

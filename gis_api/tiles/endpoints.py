"""The HTTP side of the tiles: tile matrix sets, tilesets, tileset metadata and the tiles.

A tile is looked up in the app's cache under its collection, address, filters and (versioned
collections) the trees' data version; a miss renders it in PostGIS. When the trees changed since
``smarttrees.tree_grid`` was computed, tiles are made from the trees and the view is refreshed
in the background (one refresh at a time, readers never blocked). Responses carry an ETag and
answer ``If-None-Match`` with a 304.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cache
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api.errors import NotFound
from gis_api.links import base_url
from gis_api.replicas import read_pool, reading
from gis_api.tiles import documents, render
from gis_api.tiles.archive_file import ARCHIVE_PATH, archive_file
from gis_api.tiles.cache import TileCache, etag_of, etags
from gis_api.tiles.layers import MVT_MEDIA_TYPE, TMS_ID, TileCollection, tile_collections
from gis_api.tiles.params import TreeFilters, parse_tile_address, parse_tree_filters
from smarttrees.settings import Settings

log = logging.getLogger(__name__)

BROWSER_MAX_AGE = 60  # Cache-Control max-age sent to clients
TMS_MAX_AGE = 3600  # the tile matrix set documents never change while the server runs


def json_response(doc: Any, status: int = 200, max_age: int = BROWSER_MAX_AGE) -> Response:
    """A JSON document with a short public cache lifetime."""
    return Response(
        orjson.dumps(doc),
        status,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


def _check_tms(tms: str) -> None:
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms!r} is not served; use {TMS_ID}")


@cache
def _tile_matrix_set_json() -> dict[str, Any]:
    return documents.tile_matrix_set().model_dump(mode="json", exclude_none=True)


class TileEndpoints:
    """The tile routes of one app, sharing its tile cache."""

    def __init__(self) -> None:
        self._cache: TileCache | None = None  # made on first use: the settings size it
        self._collections: dict[str, TileCollection] | None = None  # likewise
        self._refreshing: asyncio.Task[None] | None = None

    def cache(self, settings: Settings) -> TileCache:
        """The app's tile cache (``settings.tile_cache_mb``; 0 keeps nothing)."""
        if self._cache is None:
            self._cache = TileCache(settings.tile_cache_mb * 1024 * 1024)
        return self._cache

    def _collection(self, request: Request) -> TileCollection:
        if self._collections is None:  # built once: it reads the catalogue for every field
            self._collections = tile_collections(request.app.state.settings)
        collections = self._collections
        cid = request.path_params["collection_id"]
        if cid not in collections:
            served = ", ".join(collections)
            raise NotFound(
                f"collection {cid!r} has no vector tiles (tiles are served for {served})"
            )
        return collections[cid]

    @staticmethod
    def _filters(request: Request, collection: TileCollection) -> TreeFilters:
        if collection.filtered:
            return parse_tree_filters(request.query_params)
        return TreeFilters()

    async def tilesets(self, request: Request) -> Response:
        """The tilesets of a collection (one: WebMercatorQuad vector tiles)."""
        collection = self._collection(request)
        base = base_url(request, request.app.state.settings)
        return json_response(documents.dump(documents.tilesets_document(base, collection)))

    async def tileset(self, request: Request) -> Response:
        """Tileset metadata (OGC API – Tiles, with TileJSON keys)."""
        collection = self._collection(request)
        _check_tms(request.path_params["tms"])
        self._filters(request, collection)  # reject bad filters before templating them
        query = str(request.query_params) if collection.filtered else ""
        async with read_pool(request).connection() as conn:
            bounds = await render.collection_bounds(conn, collection)
        base = base_url(request, request.app.state.settings)
        doc = documents.tileset_document(collection, base, bounds, query)
        return json_response(documents.dump(doc))

    async def tile(self, request: Request) -> Response:
        """One vector tile (tileMatrix/tileRow/tileCol)."""
        collection = self._collection(request)
        _check_tms(request.path_params["tms"])
        p = request.path_params
        tile = parse_tile_address(p["z"], p["y"], p["x"])
        filters = self._filters(request, collection)
        settings: Settings = request.app.state.settings
        key: tuple[Any, ...] = (collection.id, tile, filters)
        async with read_pool(request).connection() as conn:
            current = False  # whether tree_grid counts the trees of this version
            if collection.versioned:
                version, grid = await render.tree_versions(conn)
                current = grid == version
                key += (version,)
            elif collection.version_sql is not None:
                key += (await render.data_version(conn, collection.version_sql),)
            cached = self.cache(settings).get(key)
            if cached is None:
                # One statement, in one round trip (render._run_tile); no transaction to open.
                if collection.versioned:
                    body = await render.render_trees(conn, tile, filters, settings, current)
                else:
                    body = await render.render_features(conn, collection, tile, settings)
                if collection.versioned and not current:
                    # on the primary: a replica cannot refresh a view
                    self._refresh_grid(request.app.state.pool)
                cached = (body, etag_of(body))
                self.cache(settings).put(key, *cached)
        body, etag = cached
        headers = {"Cache-Control": f"public, max-age={BROWSER_MAX_AGE}", "ETag": etag}
        if etag in etags(request.headers.get("if-none-match", "")):
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
            await render.refresh_tree_grid(conn)
    except Exception:  # the tiles stay right without it (computed from the trees), only slower
        log.exception("refreshing smarttrees.tree_grid failed")
    else:
        log.info("smarttrees.tree_grid refreshed in %.1f s", time.monotonic() - started)


async def tile_matrix_sets(request: Request) -> Response:
    """The tile matrix sets served: WebMercatorQuad."""
    base = base_url(request, request.app.state.settings)
    doc = documents.tile_matrix_sets_document(base)
    return json_response(documents.dump(doc), max_age=TMS_MAX_AGE)


async def tile_matrix_set_endpoint(request: Request) -> Response:
    """The WebMercatorQuad definition."""
    _check_tms(request.path_params["tms"])
    return json_response(_tile_matrix_set_json(), max_age=TMS_MAX_AGE)


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
        Route(prefix + "/{tms}", reading(endpoints.tileset), methods=["GET"], name="tileset"),
        Route(prefix + "/{tms}/{z}/{y}/{x}", reading(endpoints.tile), methods=["GET"],
              name="tile"),
        Route(ARCHIVE_PATH, archive_file, methods=["GET", "HEAD"], name="tiles_archive"),
    ]

"""OGC API Features: pygeoapi for the documents it renders, our own routes for the hot paths.

pygeoapi is configured from our settings and the collections registry (never a hand-edited
YAML file) when the app starts, with its OpenAPI document generated from that configuration.
It serves the landing page, conformance, collections, queryables, schemas, HTML and the
OpenAPI document. Items as GeoJSON, one item, and the transactions are ours
(:mod:`gis_api.items`): they are registered before pygeoapi's routes and read from the pool.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gis_api import collections, logs, openapi_features, openapi_paths, provinces
from gis_api.crs import CRS84, URIS
from gis_api.errors import InvalidParameter
from gis_api.features import relation
from gis_api.links import base_url
from smarttrees.settings import Settings

log = logging.getLogger(__name__)

# What pygeoapi does not list itself: CQL2 filtering (Part 3) is ours.
EXTRA_CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
)
# OGC API – Tiles classes that gis_api.tiles implements: /collections/{id}/tiles lists a
# collection's tilesets (tilesets-list, geodata-tilesets), each with its metadata (tileset) and
# MVT tiles (core, mvt); /tileMatrixSets serves WebMercatorQuad as a TMS 2.0 JSON document.
TILES_CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
)
TILESETS_VECTOR_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
TILING_SCHEMES_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
UNSERVED_RELS = frozenset({
    TILING_SCHEMES_REL,
    "http://www.opengis.net/def/rel/ogc/1.0/processes",
    "http://www.opengis.net/def/rel/ogc/1.0/job-list",
})
WORLD = [-180.0, -90.0, 180.0, 90.0]
PROVIDER = "gis_api.provider.SmartTreesProvider"
RENDERINGS = ("json", "html", "jsonld")  # the values of f that pygeoapi renders
TEMPLATES = Path(__file__).parent / "templates"
VENDOR = Path(__file__).parent / "static" / "vendor"


def pygeoapi_config(
    settings: Settings, database_url: str, extents: dict[str, list[float]]
) -> dict[str, Any]:
    """The pygeoapi configuration for our settings and every registry collection."""
    resources = {
        c.id: _resource(c, settings, database_url, extents) for c in collections.COLLECTIONS
    }
    return {
        "server": {
            "bind": {"host": settings.host, "port": settings.port},
            "url": settings.server_url,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "cors": True,
            "pretty_print": False,
            "limits": {
                "default_items": settings.default_page_size,
                "max_items": settings.max_page_size,
                "on_exceed": "error",
            },
            "map": {
                "url": settings.basemap_url or "",
                "attribution": "",
            },
            # Our copies of the templates that loaded Leaflet/Bootstrap from CDNs (the rest are
            # pygeoapi's own); their assets are served from /static/vendor.
            "templates": {"path": str(TEMPLATES), "static": str(_pygeoapi_static())},
        },
        "logging": {"level": "CRITICAL"},  # pygeoapi logs every 4xx as an ERROR
        "metadata": {
            "identification": {
                "title": "SmartTrees",
                "description": "Trees, plantations, nurseries, timber and IOC layers",
                "keywords": ["trees", "forestry", "OGC API"],
                "keywords_type": "theme",
                "terms_of_service": "",
                "url": settings.server_url,
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "SmartTrees", "url": settings.server_url},
            "contact": {"name": "Forestry department", "position": "", "email": ""},
        },
        "resources": resources,
    }


def _resource(
    c: collections.Collection, settings: Settings, url: str, extents: dict[str, list[float]]
) -> dict[str, Any]:
    return {
        "type": "collection",
        "title": c.title,
        "description": c.description,
        "keywords": list(c.keywords) or [c.id],
        "extents": {"spatial": {"bbox": extents.get(c.id, WORLD), "crs": CRS84.uri}},
        "providers": [
            {
                "type": "feature",
                "name": PROVIDER,
                "data": url,
                "table": c.id,
                "id_field": c.id_column,
                "geom_field": c.geometry_column,
                "crs": list(URIS),
                "storage_crs": CRS84.uri,
                "editable": c.writable,
                "max_limit": settings.max_page_size,
            }
        ],
    }


async def collection_extents(pool: AsyncConnectionPool) -> dict[str, list[float]]:
    """The bounding box of each collection with geometry (the world when empty)."""
    extents: dict[str, list[float]] = {}
    async with pool.connection() as conn:
        for c in collections.COLLECTIONS:
            if not c.geometry_column:
                continue
            statement = sql.SQL(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                "FROM (SELECT ST_Extent({}) AS e FROM {}) AS x"
            ).format(sql.Identifier("t", c.geometry_column), collections_relation(c))
            row = await (await conn.execute(statement)).fetchone()
            if row and row[0] is not None:
                extents[c.id] = [float(v) for v in row]
    return extents


def collections_relation(c: collections.Collection) -> sql.Composable:
    """The FROM item of a collection (see :func:`gis_api.features.relation`)."""
    return relation(c)


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of every route the app serves.

    Written from the registry (:mod:`gis_api.openapi_features`) and the other route families
    (:mod:`gis_api.openapi_paths`), not generated by pygeoapi: its document describes pygeoapi's
    routes (OPTIONS, jobs, processes, any CRS URI), which are not the ones served here.
    """
    doc = openapi_features.features_document(settings)
    openapi_paths.add_paths(doc, settings)
    _say_no_nul(doc)
    return doc


# Any character but NUL: gis_api.guards answers a NUL in the path or a query parameter with 400.
NO_NUL = "^[^\\u0000]*$"


def _say_no_nul(doc: dict[str, Any]) -> None:
    """Give each free-text path and query parameter the pattern the request guards enforce."""
    for path in doc["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if (parameter.get("in") in ("path", "query") and schema.get("type") == "string"
                        and "enum" not in schema and "pattern" not in schema):
                    parameter["schema"] = {**schema, "pattern": NO_NUL}


class Pygeoapi:
    """A pygeoapi ``API`` built from our configuration, and a way to call it from Starlette."""

    def __init__(self, config: dict[str, Any], openapi: dict[str, Any]) -> None:
        from pygeoapi.api import API

        self.api = API(config, openapi)

    async def call(self, request: Request, function: Any, *args: Any) -> Response:
        """Run a pygeoapi API function in a worker thread and wrap its answer."""
        from pygeoapi.api import APIRequest

        f = request.query_params.get("f")
        if f not in (None, "", *RENDERINGS):  # pygeoapi strips f, so "\x1c" would be JSON
            raise InvalidParameter(f"f: {f!r} is not offered; use one of {', '.join(RENDERINGS)}")
        api_request = await APIRequest.from_starlette(request, self.api.locales)
        with logs.pygeoapi_records() as records:  # a 4xx is logged as one line (gis_api.logs)
            if not api_request.is_valid():
                headers, status, content = self.api.get_format_exception(api_request)
            else:
                headers, status, content = await asyncio.to_thread(
                    function, self.api, api_request, *args
                )
        logs.report(request.method, request.url.path, int(status), records)
        return _response(headers, status, _rebased(content, request))


def _rebased(content: Any, request: Request) -> Any:
    """The answer of pygeoapi with its links moved to the base URL of every other document.

    pygeoapi writes links from the one URL it was configured with (``settings.server_url``);
    without a public URL that is the address the server binds, which a client reaching it by
    another name (``localhost``, the machine's name) cannot follow. Every configured-URL prefix
    becomes :func:`gis_api.links.base_url`, as in our own documents.
    """
    settings = request.app.state.settings
    configured, base = settings.server_url, base_url(request, settings)
    if configured == base:
        return content
    if isinstance(content, dict):
        content = orjson.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    return content.replace(configured.encode(), base.encode())


def _response(headers: dict[str, str], status: int, content: Any) -> Response:
    if isinstance(content, dict):
        content = orjson.dumps(content)
    if headers.get("Content-Type", "").startswith("text/html"):
        response: Response = HTMLResponse(content, status)
    else:
        response = Response(content, status)
    response.headers.update(headers)
    return response


async def start(app: Any, settings: Settings, database_url: str) -> None:
    """Build pygeoapi for this app (after the pool opened): extents come from the database."""
    extents = await collection_extents(app.state.pool)
    config = pygeoapi_config(settings, database_url, extents)
    from gis_api.raster_tiles import coverage_resources  # registered rasters (issue 15)

    config["resources"].update(await coverage_resources(app.state.pool))
    openapi = openapi_document(settings)
    app.state.pygeoapi = await asyncio.to_thread(Pygeoapi, config, openapi)


def _bridge(request: Request) -> Pygeoapi:
    bridge: Pygeoapi = request.app.state.pygeoapi
    return bridge


async def landing(request: Request) -> Response:
    """Landing page (pygeoapi), linking to the tile matrix sets of OGC API – Tiles too."""
    import pygeoapi.api as core

    response = await _bridge(request).call(request, core.landing_page)
    base = base_url(request, request.app.state.settings)

    def amend(body: dict[str, Any]) -> None:
        # pygeoapi links to its own /TileMatrixSets, which it does not serve here: ours instead;
        # and to /processes and /jobs, which are not served at all.
        body["links"] = [
            link for link in body.get("links", []) if link.get("rel") not in UNSERVED_RELS
        ]
        body["links"].append({
            "rel": TILING_SCHEMES_REL,
            "type": "application/json",
            "title": "Tile matrix sets (tiling schemes) of the vector tiles",
            "href": f"{base}/tileMatrixSets",
        })

    return _amend_json(response, amend)


async def openapi(request: Request) -> Response:
    """OpenAPI 3.0 document (pygeoapi, from our configuration)."""
    import pygeoapi.api as core

    return await _bridge(request).call(request, core.openapi_)


async def conformance(request: Request) -> Response:
    """Conformance classes: pygeoapi's, our CQL2 filtering and OGC API – Tiles."""
    import pygeoapi.api as core

    response = await _bridge(request).call(request, core.conformance)

    def amend(body: dict[str, Any]) -> None:
        extra = set(EXTRA_CONFORMANCE) | set(TILES_CONFORMANCE)
        body["conformsTo"] = sorted(set(body["conformsTo"]) | extra)

    return _amend_json(response, amend)


def _amend_json(response: Response, amend: Any, media_type: str = "application/json") -> Response:
    """Apply ``amend`` to the body of a successful JSON answer (HTML and errors pass through)."""
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
        media_type
    ):
        return response
    body = orjson.loads(response.body)
    amend(body)
    amended = Response(orjson.dumps(body), 200, media_type=media_type)
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "content-type"):
            amended.headers[name] = value
    return amended


def _tiled_collections(request: Request) -> set[str]:
    from gis_api import tiles

    return set(tiles.tile_collections(request.app.state.settings))


def _add_links(collection: dict[str, Any], request: Request) -> None:
    """Link a collection document to its feature schema and, if tiled, its vector tilesets."""
    base = base_url(request, request.app.state.settings)
    if collections.get(str(collection.get("id"))) is None:
        return  # a coverage (raster) collection: no features, no tilesets of ours
    # GDAL's OAPIF driver (QGIS) types its fields from a "describedBy" JSON Schema of one
    # feature; without it, it guesses from the first page, where a null integer is a string.
    collection.setdefault("links", []).append({
        "rel": "describedBy",
        "type": openapi_features.JSON_SCHEMA,
        "title": "JSON Schema of one GeoJSON feature",
        "href": f"{base}/collections/{collection.get('id')}/feature-schema",
    })
    if collection.get("id") not in _tiled_collections(request):
        return
    collection.setdefault("links", []).append({
        "rel": TILESETS_VECTOR_REL,
        "type": "application/json",
        "title": "Vector tilesets (Mapbox vector tiles, WebMercatorQuad)",
        "href": f"{base}/collections/{collection['id']}/tiles",
    })


async def collections_list(request: Request) -> Response:
    """All collections (pygeoapi), those with vector tiles linked to their tilesets."""
    import pygeoapi.api as core

    response = await _bridge(request).call(request, core.describe_collections)

    def amend(body: dict[str, Any]) -> None:
        for c in body.get("collections", []):
            _add_links(c, request)

    return _amend_json(response, amend)


async def collection(request: Request) -> Response:
    """One collection (pygeoapi), linked to its vector tilesets if it has any."""
    import pygeoapi.api as core

    response = await _bridge(request).call(
        request, core.describe_collections, request.path_params["collection_id"]
    )
    return _amend_json(response, lambda body: _add_links(body, request))


async def queryables(request: Request) -> Response:
    """Queryables of a collection (pygeoapi, from the registry)."""
    import pygeoapi.api.itemtypes as itemtypes

    response = await _bridge(request).call(
        request, itemtypes.get_collection_queryables, request.path_params["collection_id"]
    )
    collection = collections.get(request.path_params["collection_id"])
    if collection is None or not provinces.offered(collection):
        return response

    def add_province(body: dict[str, Any]) -> None:
        # Not a property of the features (their schema leaves it out): the province of their
        # commune, a filter that reads only that province's partition (gis_api.provinces).
        body.setdefault("properties", {})[provinces.PROVINCE] = {
            "title": provinces.PROVINCE, "type": "string",
            "description": "province code of the feature's commune (=, <> and IN)"}

    return _amend_json(response, add_province, "application/schema+json")


async def schema(request: Request) -> Response:
    """Schema of a collection (pygeoapi, from the registry)."""
    import pygeoapi.api as core

    return await _bridge(request).call(
        request, core.get_collection_schema, request.path_params["collection_id"]
    )


async def feature_schema(request: Request) -> Response:
    """JSON Schema of one GeoJSON feature of a collection (its ``describedBy`` link)."""
    from gis_api.items import collection_or_404

    c = collection_or_404(request)
    base = base_url(request, request.app.state.settings)
    # Plain "type" strings with OpenAPI's "nullable" beside them, not type lists: GDAL (3.6,
    # as QGIS 3.22 on Debian ships it) reads "type" as one string and takes anything else for
    # a string field. Schema validators ignore "nullable"; every property may be null.
    schema = {"$id": f"{base}/collections/{c.id}/feature-schema", "title": c.title,
              **openapi_features.feature_schema(c)}
    return Response(orjson.dumps(schema), 200, media_type=openapi_features.JSON_SCHEMA)


def _pygeoapi_static() -> Path:
    import pygeoapi

    return Path(pygeoapi.__file__).parent / "static"


async def _to_tile_matrix_sets(request: Request) -> Response:
    return RedirectResponse(base_url(request, request.app.state.settings) + "/tileMatrixSets", 308)


def routes(settings: Settings) -> list[BaseRoute]:
    """The routes of pygeoapi's documents (landing page, collections, queryables, schema)."""
    return [
        Route("/", landing, methods=["GET"], name="landing"),
        Route("/openapi", openapi, methods=["GET"], name="openapi"),
        Route("/conformance", conformance, methods=["GET"], name="conformance"),
        Route("/collections", collections_list, methods=["GET"], name="collections"),
        Route("/collections/{collection_id}", collection, methods=["GET"], name="collection"),
        Route("/collections/{collection_id}/queryables", queryables, methods=["GET"]),
        Route("/collections/{collection_id}/schema", schema, methods=["GET"]),
        Route("/collections/{collection_id}/feature-schema", feature_schema, methods=["GET"]),
        # Web assets vendored from npm for pygeoapi's pages (no CDN), then pygeoapi's own.
        # pygeoapi's landing page (HTML) links to its /TileMatrixSets: the same as ours.
        Route("/TileMatrixSets", _to_tile_matrix_sets, methods=["GET"]),
        Mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor_static"),
        Mount("/static", StaticFiles(directory=_pygeoapi_static()), name="pygeoapi_static"),
    ]

"""The hot paths of OGC API Features: items and one item as GeoJSON, straight from PostGIS.

Reads only: parameters are parsed by :mod:`gis_api.items_params`, the SQL comes from
:mod:`gis_api.features`. HTML (``f=html`` or a browser's Accept header) and other formats go to
pygeoapi, downloads (``f=gpkg|fgb|csv``) to :mod:`gis_api.downloads`; the writes (POST, PUT,
PATCH, DELETE) have their own routes in :mod:`gis_api.transactions`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api import cql2, downloads, features, provinces
from gis_api.crs import content_crs_header, transforming
from gis_api.errors import NotFound
from gis_api.items_params import (
    ItemsQuery,
    collection_or_404,
    parse_id,
    parse_item,
    parse_items,
    single_values,
)
from gis_api.replicas import read_pool, reading

GEOJSON = "application/geo+json"
ITEMS_PATH = "/collections/{collection_id}/items"
ITEM_PATH = ITEMS_PATH + "/{item_id}"
_JSON_FORMATS = (None, "", "json", "geojson")


def wants_pygeoapi(request: Request) -> bool:
    """True for HTML and the formats pygeoapi renders (everything but GeoJSON)."""
    f = request.query_params.get("f")
    if f not in _JSON_FORMATS:
        return True
    if f is None:
        accept = request.headers.get("accept", "")
        return "text/html" in accept and "json" not in accept
    return False


def _link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def _page_links(
    request: Request, params: dict[str, str], last_id: Any, has_more: bool
) -> list[dict[str, str]]:
    base = str(request.url.replace(query=""))
    collection_url = base.rsplit("/items", 1)[0]
    self_q = urlencode({**params, "f": "json"})
    links = [
        _link(f"{base}?{self_q}", "self", GEOJSON, "this page"),
        _link(f"{base}?{urlencode({**params, 'f': 'html'})}", "alternate", "text/html", "as HTML"),
        _link(collection_url, "collection", "application/json", "the collection"),
    ]
    if has_more:
        nxt = {k: v for k, v in params.items() if k != "offset"}
        nxt.update({"after": str(last_id), "f": "json"})
        links.append(_link(f"{base}?{urlencode(nxt)}", "next", GEOJSON, "next page"))
    return links


class RawTextLoader(Loader):
    """Text in binary format kept as its UTF-8 bytes: a page's features go out as they came."""

    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:  # noqa: D102 - psycopg's Loader interface
        return bytes(data)


# Planner estimates of unfiltered collections, kept a minute: (time, rows) per collection id.
_UNFILTERED: dict[str, tuple[float, float]] = {}


async def _estimate(conn: Any, query: ItemsQuery) -> float:
    unfiltered = query.is_unfiltered
    cached = _UNFILTERED.get(query.collection.id)
    if unfiltered and cached and time.monotonic() - cached[0] < 60:
        return cached[1]
    statement, params = features.estimate_sql(query)
    plan = (await (await conn.execute(statement, params)).fetchone())[0]
    estimate = float(plan[0]["Plan"]["Plan Rows"])
    if unfiltered:
        _UNFILTERED[query.collection.id] = (time.monotonic(), estimate)
    return estimate


ROW_COUNT_SQL = "SELECT n FROM smarttrees.row_counts WHERE table_name = %s"


async def _number_matched(conn: Any, query: ItemsQuery, returned: int, more: bool,
                          cap: int) -> int | None:
    if query.first_page and not more:
        return returned  # the whole result is on this page: exact at no cost
    counted = query.collection.counted_table
    if query.is_unfiltered and counted:  # kept by triggers (migration 0008): exact, no scan
        row = await (await conn.execute(ROW_COUNT_SQL, [counted])).fetchone()
        if row is not None:
            return int(row[0])
    if await _estimate(conn, query) > cap:
        return None
    statement, params = features.count_sql(query, cap)
    count = int((await (await conn.execute(statement, params)).fetchone())[0])
    return count if count <= cap else None


async def _province_communes(request: Request) -> provinces.Provinces:
    """Each province's communes, kept a few seconds by the app (:mod:`gis_api.provinces`)."""
    state = request.app.state
    if getattr(state, "provinces", None) is None:
        state.provinces = provinces.ProvinceCache()
    cache: provinces.ProvinceCache = state.provinces
    if (known := cache.fresh()) is not None:
        return known
    async with read_pool(request).connection() as conn:
        return await cache.read(conn)


async def items(request: Request) -> Response:
    """A page of features as GeoJSON (HTML and other formats: pygeoapi; downloads)."""
    collection = collection_or_404(request)
    settings = request.app.state.settings
    params = single_values(request.query_params.multi_items())
    # Validated here for every format, so HTML and GeoJSON refuse the same requests alike.
    query = parse_items(
        collection, params, settings.default_page_size, settings.max_page_size,
        cql2.Limits(settings.filter_max_terms, settings.filter_max_depth),
        await _province_communes(request) if provinces.mentioned(params) else None,
    )
    if fmt := downloads.wanted(request):
        with features.evaluating(query):
            return await downloads.download(request, query, fmt)
    if wants_pygeoapi(request):
        return await _pygeoapi_items(request, collection.id)
    statement, args = features.page_text_sql(query)
    async with read_pool(request).connection() as conn:
        with transforming("bbox"), features.evaluating(query):
            cur = conn.cursor()
            cur.adapters.register_loader("text", RawTextLoader)
            await cur.execute(statement, args, binary=True)
            joined, read, last_id, extra_length = await cur.fetchone()  # type: ignore[misc]
            if isinstance(last_id, bytes):  # a text key, read raw like every text column here
                last_id = last_id.decode()
            page = features.page_features(joined, read, extra_length, query.limit)
            more = read > query.limit
            returned = min(read, query.limit)
            matched = await _number_matched(
                conn, query, returned, more, settings.exact_count_max
            )
    links = _page_links(request, params, last_id, more)
    head: dict[str, Any] = {"numberReturned": returned}
    if matched is not None:
        head["numberMatched"] = matched
    head["timeStamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head["links"] = links
    # The features are finished JSON text from PostGIS, already joined: never re-parsed.
    body = b"".join((
        b'{"type":"FeatureCollection","features":[',
        page,
        b"],",
        orjson.dumps(head)[1:],
    ))
    return Response(body, 200, media_type=GEOJSON, headers=content_crs_header(query.crs))


async def item(request: Request) -> Response:
    """One feature as GeoJSON (HTML: pygeoapi)."""
    collection = collection_or_404(request)
    raw_id = request.path_params["item_id"]
    crs = parse_item(single_values(request.query_params.multi_items()))
    key = parse_id(collection, raw_id)
    row = None
    if key is not None:
        async with read_pool(request).connection() as conn:
            cur = await conn.execute(features.item_sql(collection, crs), [key])
            row = await cur.fetchone()
    if row is None:  # checked here for HTML too: pygeoapi answers a missing item with a 400
        raise NotFound(f"no item {raw_id!r} in {collection.id}")
    if wants_pygeoapi(request):
        return await _pygeoapi_item(request, collection.id, raw_id)
    base = str(request.url.replace(query=""))
    links = [
        _link(f"{base}?f=json", "self", GEOJSON, "this feature"),
        _link(f"{base}?f=html", "alternate", "text/html", "as HTML"),
        _link(base.rsplit("/items/", 1)[0], "collection", "application/json", "the collection"),
    ]
    body = row[0].encode()[:-1] + b',"links":' + orjson.dumps(links) + b"}"
    return Response(body, 200, media_type=GEOJSON, headers=content_crs_header(crs))


# pygeoapi knows the filter languages by their pre-CQL2 names.
_PYGEOAPI_FILTER_LANG = {"cql2-text": "cql-text", "cql2-json": "cql-json"}


def _for_pygeoapi(request: Request) -> Request:
    """The request as pygeoapi understands it (already validated by :func:`items`).

    pygeoapi names the filter languages by their pre-CQL2 names, refuses a ``bbox-crs``
    without a ``bbox`` and empty values (``offset=``), which the GeoJSON answer takes as absent.
    """
    query = request.query_params
    params = [
        (k, _PYGEOAPI_FILTER_LANG.get(v.lower(), v) if k == "filter-lang" else v)
        for k, v in query.multi_items()
        if v != "" and not (k == "bbox-crs" and not query.get("bbox"))
    ]
    scope = dict(request.scope, query_string=urlencode(params).encode())
    return Request(scope, request.receive)


async def _pygeoapi_items(request: Request, cid: str) -> Response:
    import pygeoapi.api.itemtypes as itemtypes

    return await request.app.state.pygeoapi.call(
        _for_pygeoapi(request), itemtypes.get_collection_items, cid
    )


async def _pygeoapi_item(request: Request, cid: str, item_id: str) -> Response:
    import pygeoapi.api.itemtypes as itemtypes

    return await request.app.state.pygeoapi.call(
        request, itemtypes.get_collection_item, cid, item_id
    )


def routes() -> list[BaseRoute]:
    """The items read routes, to register before pygeoapi's (writes: gis_api.transactions)."""
    return [
        Route(ITEMS_PATH, reading(items), methods=["GET"], name="items"),
        Route(ITEM_PATH, reading(item), methods=["GET"], name="item"),
    ]

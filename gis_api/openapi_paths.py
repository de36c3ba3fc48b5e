"""OpenAPI 3.0 descriptions of the routes pygeoapi does not know: tiles, web map, health, scans.

pygeoapi generates the document for the OGC API – Features routes from its configuration;
:func:`add_paths` completes it with every other route the app serves, so that clients (and the
schemathesis fuzz test) see the whole API. Parameters carry the bounds the handlers check, so
generated requests mostly exercise real answers rather than 400s.
"""

from __future__ import annotations

from typing import Any

from gis_api.tiles import MAX_ZOOM, MVT_MEDIA_TYPE, TMS_ID
from smarttrees.domain import Category
from smarttrees.settings import Settings

BEARER = "bearerAuth"
EXCEPTION = {"$ref": "#/components/schemas/smarttreesException"}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
_ERROR_TEXT = {
    400: "invalid parameter or body",
    401: "no token, or an unknown, revoked or expired one",
    403: "the token's role may not do this",
    404: "not found",
    409: "conflicts with what is recorded",
    413: "body too large",
    415: "unsupported media type",
    422: "body not usable",
    503: "the database cannot be reached",
}


def _ok(media: dict[str, dict[str, Any]], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": media}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": _ERROR_TEXT[s],
            "content": {"application/json": {"schema": EXCEPTION}},
        }
        for s in statuses
    }


def _param(where: str, name: str, description: str, schema: dict[str, Any],
           required: bool = False) -> dict[str, Any]:
    parameter = {"name": name, "in": where, "required": required or where == "path",
                 "description": description, "schema": schema}
    if where == "query" and not required:  # "commune=" is answered as if it were absent
        parameter["allowEmptyValue"] = True
    return parameter


def _get(operation_id: str, summary: str, tags: list[str], responses: dict[str, Any],
         parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": tags,
                          "responses": responses}
    if parameters:
        op["parameters"] = parameters
    return {"get": op}


def _secured(operation: dict[str, Any]) -> dict[str, Any]:
    operation["security"] = [{BEARER: []}]
    return operation


# --- tiles ----------------------------------------------------------------------------------

TMS_PARAM = _param("path", "tileMatrixSetId", "tile matrix set (only WebMercatorQuad is served)",
                   {"type": "string", "enum": [TMS_ID]})


def _tile_parameters() -> list[dict[str, Any]]:
    last = 2**MAX_ZOOM - 1
    return [
        TMS_PARAM,
        _param("path", "tileMatrix", f"zoom level (tile matrix id), 0 to {MAX_ZOOM}",
               {"type": "integer", "minimum": 0, "maximum": MAX_ZOOM}),
        _param("path", "tileRow", "row from the top, 0 to 2^tileMatrix - 1 (404 outside)",
               {"type": "integer", "minimum": 0, "maximum": last}),
        _param("path", "tileCol", "column from the left, 0 to 2^tileMatrix - 1 (404 outside)",
               {"type": "integer", "minimum": 0, "maximum": last}),
    ]


def _tree_filters() -> list[dict[str, Any]]:
    return [
        _param("query", "category", "only trees of this category",
               {"type": "string", "enum": [c.value for c in Category]}),
        _param("query", "species", "only trees of this species (species id)",
               {"type": "integer", "minimum": 0, "maximum": 999_999_999}),
        _param("query", "commune", "only trees of this commune (commune code, digits)",
               {"type": "string", "pattern": "^[0-9]{1,10}$"}),
    ]


def tile_paths(collection_ids: list[str]) -> dict[str, Any]:
    """Tile matrix sets, and per tiled collection its tilesets, tileset metadata and tiles."""
    paths: dict[str, Any] = {
        "/tileMatrixSets": _get(
            "getTileMatrixSetsList", "The tile matrix sets served", ["tiles"],
            {"200": _ok({"application/json": {"schema": ANY_OBJECT}})}),
        "/TileMatrixSets": _get(
            "redirectTileMatrixSets", "pygeoapi's spelling: redirects to /tileMatrixSets",
            ["tiles"], {"308": {"description": "see /tileMatrixSets"}}),
        "/tileMatrixSets/{tileMatrixSetId}": _get(
            "getTileMatrixSet", "A tile matrix set definition (OGC TMS 2.0 JSON)", ["tiles"],
            {"200": _ok({"application/json": {"schema": ANY_OBJECT}}), **_errors(404)},
            [TMS_PARAM]),
    }
    for cid in collection_ids:
        name = cid.capitalize()
        filters = _tree_filters() if cid == "trees" else []
        base = f"/collections/{cid}/tiles"
        paths[base] = _get(
            f"get{name}TileSetsList", f"Vector tilesets of {cid}", [cid],
            {"200": _ok({"application/json": {"schema": ANY_OBJECT}})})
        paths[base + "/{tileMatrixSetId}"] = _get(
            f"get{name}TileSet", f"Tileset metadata of {cid} (with TileJSON 3 keys)", [cid],
            {"200": _ok({"application/json": {"schema": ANY_OBJECT}}), **_errors(400, 404)},
            [TMS_PARAM, *filters])
        paths[base + "/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"] = _get(
            f"get{name}Tile", f"A Mapbox vector tile of {cid}", [cid],
            {
                "200": _ok({MVT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                           "the tile (empty where there is nothing)"),
                "304": {"description": "not modified (If-None-Match)"},
                **_errors(400, 404),
            },
            [*_tile_parameters(), *filters])
    paths["/tiles/archive.pmtiles"] = _get(
        "getTilesArchive",
        "The vector tiles of trees, stands and communes as one PMTiles archive (range requests)",
        ["tiles"],
        {
            "200": _ok({"application/vnd.pmtiles": {"schema": {"type": "string",
                                                               "format": "binary"}}}),
            "206": {"description": "the byte range asked for (Range header)"},
            "416": {"description": "the range lies beyond the end of the archive"},
            **_errors(404),
        },
    )
    return paths


# --- web map and health ---------------------------------------------------------------------


# A code holds a character Python's strip() keeps, and no NUL (the request guards' 400).
TREE_CODE = r"^[^\u0000]*[^\s\u0000\u001c-\u001f\u0085][^\u0000]*$"


def app_paths() -> dict[str, Any]:
    """Health, readiness and the web map's page and JSON endpoints."""
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "/healthz": _get("getHealth", "Liveness: the process answers", ["health"],
                         {"200": _ok({"application/json": {"schema": status}})}),
        "/readyz": _get("getReadiness", "Readiness: the database answers", ["health"],
                        {"200": _ok({"application/json": {"schema": status}}), **_errors(503)}),
        "/map": _get("getWebMap", "The web map page", ["web map"],
                     {"200": _ok({"text/html": {"schema": {"type": "string"}}})}),
        "/map/options.json": _get(
            "getWebMapOptions", "Filter choices (species, categories, conditions, communes)",
            ["web map"], {"200": _ok({"application/json": {"schema": ANY_OBJECT}})}),
        "/map/search.json": _get(
            "searchTreeByCode", "A tree by its code", ["web map"],
            {"200": _ok({"application/json": {"schema": ANY_OBJECT}}), **_errors(400, 404)},
            [_param("query", "code", "tree code, e.g. TN-000001",
                    {"type": "string", "pattern": TREE_CODE, "maxLength": 64}, required=True)]),
        "/api/trees/{treeId}/history": _get(
            "getTreeHistory", "A tree's change history (without actor names)", ["web map"],
            {"200": _ok({"application/json": {"schema": ANY_OBJECT}}), **_errors(400, 404)},
            [_param("path", "treeId", "tree id",
                    {"type": "integer", "minimum": 1, "maximum": 10**18 - 1})]),
    }


# --- scan API -------------------------------------------------------------------------------


def _oas30(node: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema as OpenAPI 3.0: nullable, enum, items, bounds."""
    if isinstance(node, list):
        return [_oas30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in ("title", "default")}
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and {"type": "null"} in any_of and len(any_of) == 2:
        other = next(s for s in any_of if s != {"type": "null"})
        node = {**{k: v for k, v in node.items() if k != "anyOf"}, **other, "nullable": True}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[limit], node[bound] = node[bound], True  # 3.0: a flag on minimum/maximum
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "prefixItems" in node:  # a fixed-length tuple of one type, e.g. coordinates
        node["items"] = node.pop("prefixItems")[0]
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node = {"$ref": "#/components/schemas/scan" + ref.rsplit("/", 1)[-1]}
    return {k: _oas30(v) for k, v in node.items()}


def scan_schemas() -> dict[str, Any]:
    """Component schemas of a scan event (from its pydantic model) and of a batch.

    Written out in full, without internal references: schemathesis cannot generate bodies from
    a ``oneOf`` whose branches refer to the same schema.
    """
    from barcodes.events import MAX_BATCH, ScanEvent

    model = ScanEvent.model_json_schema()
    definitions = {name: _oas30(s) for name, s in model.pop("$defs", {}).items()}
    event = _inline(_oas30(model), definitions)
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}
    return {
        "scanEvent": event,
        "scanEvents": {"oneOf": [
            event, batch,
            {"type": "object", "required": ["events"], "properties": {"events": batch},
             "additionalProperties": False},
        ]},
    }


def model_schema(model: type[Any]) -> dict[str, Any]:
    """A pydantic model's JSON Schema as OpenAPI 3.0, written out without references."""
    schema = model.model_json_schema()
    definitions = {name: _oas30(s) for name, s in schema.pop("$defs", {}).items()}
    inlined: dict[str, Any] = _inline(_oas30(schema), definitions)
    return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(n, definitions) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/scan"):
        target = definitions[ref.removeprefix("#/components/schemas/scan")]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **extra}, definitions)
    return {k: _inline(v, definitions) for k, v in node.items()}


def scan_paths() -> dict[str, Any]:
    """The scan, trace, label and decode routes: every one needs a bearer token."""
    code = _param("path", "code", "tag code with its check character, e.g. SL-00000042-4",
                  {"type": "string", "minLength": 1, "maxLength": 100})
    json_object = {"application/json": {"schema": ANY_OBJECT}}
    symbology = _param("query", "symbology",
                       "barcode symbology; auto: GS1-128 when a GS1 company prefix is set",
                       {"type": "string", "enum": ["auto", "code128", "gs1"], "default": "auto"})
    paths: dict[str, Any] = {
        "/api/scans": {"post": _secured({
            "operationId": "postScans",
            "summary": "Record one scan event or a batch (offline sync), all or nothing",
            "tags": ["scans"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/scanEvents"}}}},
            "responses": {"200": _ok(json_object, "the recorded events (replays answered as "
                                                  "before)"),
                          **_errors(400, 401, 403, 409, 413, 422)},
        })},
        "/api/scans/decode": {"post": _secured({
            "operationId": "decodeImage",
            "summary": "Decode every barcode and QR code in a photo (the request body)",
            "tags": ["scans"],
            "requestBody": {"required": True, "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("image/jpeg", "image/png", "application/octet-stream")}},
            "responses": {"200": _ok(json_object, "the codes found"),
                          **_errors(401, 403, 413, 415, 422)},
        })},
        "/api/trace/{code}": {"get": _secured({
            "operationId": "getTrace",
            "summary": "Every event of a tagged item in order, or its route as GeoJSON",
            "tags": ["scans"],
            "parameters": [code, _param("query", "f", "json: events; geojson: the route",
                                        {"type": "string", "enum": ["json", "geojson"],
                                         "default": "json"})],
            "responses": {"200": _ok({**json_object,
                                      "application/geo+json": {"schema": ANY_OBJECT}}),
                          **_errors(400, 401, 403, 404, 422)},
        })},
    }
    for suffix, media, name in (("svg", "image/svg+xml", "Svg"), ("png", "image/png", "Png")):
        body = {"type": "string"} if suffix == "svg" else {"type": "string", "format": "binary"}
        paths[f"/api/labels/{{code}}.{suffix}"] = {"get": _secured({
            "operationId": f"getLabel{name}",
            "summary": f"A printable label ({suffix.upper()})",
            "tags": ["scans"],
            "parameters": [code, symbology],
            "responses": {"200": _ok({media: {"schema": body}}),
                          **_errors(400, 401, 403, 404, 422)},
        })}
    return paths


def add_paths(doc: dict[str, Any], settings: Settings) -> None:
    """Add every route pygeoapi does not describe, the bearer scheme and the shared schemas."""
    from gis_api.tiles import tile_collections

    doc["paths"].update(tile_paths(list(tile_collections(settings))))
    doc["paths"].update(app_paths())
    doc["paths"].update(scan_paths())
    from gis_api.ioc import openapi_paths as ioc_paths  # the IOC's routes (issue 13)

    doc["paths"].update(ioc_paths())
    from gis_api.raster_tiles import openapi_paths as raster_paths  # rasters (issue 15)

    doc["paths"].update(raster_paths())
    from gis_api.trace_exports import openapi_paths as trace_paths  # traceability (issue 20)

    doc["paths"].update(trace_paths())
    from gis_api.field import openapi_paths as field_paths  # the field app (issue 16)

    doc["paths"].update(field_paths())
    from gis_api.photos import openapi_paths as photo_paths  # photos (issues 16, 19)

    doc["paths"].update(photo_paths())
    from gis_api.care_openapi import openapi_paths as care_paths  # tree care (issue 19)

    doc["paths"].update(care_paths())
    for name, path in doc["paths"].items():  # OGC API – Features Part 4: writes need a token
        if name.startswith("/collections/"):
            for method in ("post", "put", "patch", "delete"):
                if method in path:
                    _secured(path[method])
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "an API token (`smarttrees tokens create`); roles viewer, editor, field, "
                       "admin",
    }
    schemas = components.setdefault("schemas", {})
    schemas["smarttreesException"] = {
        "type": "object", "required": ["code", "description"],
        "properties": {
            "code": {"type": "string"}, "description": {"type": "string"},
            "rule": {"type": "string",
                     "description": "the domain rule that refused the request, if one did"},
        },
    }
    schemas.update(scan_schemas())
    tags = doc.setdefault("tags", [])
    known = {t.get("name") for t in tags}
    for name, description in (("tiles", "OGC API – Tiles"), ("health", "Liveness and readiness"),
                              ("web map", "The web map page and its JSON"),
                              ("scans", "Barcode scans, traces and labels (token needed)")):
        if name not in known:
            tags.append({"name": name, "description": description})

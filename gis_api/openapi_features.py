"""OpenAPI 3.0 description of OGC API – Features as this server answers it, from the registry.

pygeoapi renders the landing page, conformance, collections, queryables, schemas and HTML, but
the document it generates describes pygeoapi's own routes (OPTIONS, jobs, processes, any CRS
URI, ``application/json`` items), not ours. So the Features part of our document is written
here, from :mod:`gis_api.collections`: each path, parameter, media type and status is one the
app really serves, and the schemathesis run in the test suite holds the two to each other.
"""

from __future__ import annotations

from typing import Any

from gis_api import provinces
from gis_api.collections import COLLECTIONS, Collection, Property
from gis_api.crs import URIS
from gis_api.downloads import DOWNLOADS
from smarttrees.export import FORMATS
from smarttrees.settings import Settings

GEOJSON = "application/geo+json"
JSON_SCHEMA = "application/schema+json"
EXCEPTION = {"$ref": "#/components/schemas/smarttreesException"}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
TEXT: dict[str, Any] = {"type": "string"}
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}

# pygeoapi's three renderings of its documents; HTML pages are pygeoapi's templates.
_RENDERINGS = {"json": "application/json", "html": "text/html", "jsonld": "application/ld+json"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": EXCEPTION}}}


def _rendered_error(description: str) -> dict[str, Any]:
    """An error pygeoapi renders in the format asked for (f=html, f=jsonld)."""
    media = {"application/json": {"schema": EXCEPTION}, "text/html": {"schema": TEXT},
             "application/ld+json": {"schema": ANY_OBJECT}}
    return {"description": description, "content": media}


READ_ERRORS = {
    "400": _rendered_error("invalid parameter"),
    "404": _rendered_error("no such collection or item"),
}
ERRORS = {
    "400": _error("invalid parameter or body"),
    "401": _error("no token, or an unknown, revoked or expired one"),
    "403": _error("the token's role may not write"),
    "404": _error("no such collection or item"),
    "409": _error("conflicts with what is stored (a duplicate code)"),
}


def _query(name: str, description: str, schema: dict[str, Any],
           empty: bool = True) -> dict[str, Any]:
    # allowEmptyValue: "f=" or "crs=" is answered as if the parameter were absent.
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, "style": "form", "explode": False, "allowEmptyValue": empty}


def _formats(*names: str) -> dict[str, Any]:
    return _query("f", "output format (the default is JSON)",
                  {"type": "string", "enum": list(names)})


# lang has no enum: any value is answered, in English (the only language served), the way an
# Accept-Language the server does not speak is answered.
LANG = _query("lang", "preferred language; only en-US is served, any other falls back to it",
              {"type": "string"})


def _crs(name: str, description: str) -> dict[str, Any]:
    return _query(name, description, {"type": "string", "enum": list(URIS)})


def _ok(media: dict[str, dict[str, Any]], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": media}


def _renderings(schema: dict[str, Any], json_media: str = "application/json",
                *formats: str) -> dict[str, Any]:
    media = {json_media: {"schema": schema}}
    for f in formats:
        media[_RENDERINGS[f]] = {"schema": TEXT if f == "html" else ANY_OBJECT}
    return _ok(media)


def _get(operation_id: str, summary: str, tags: list[str], parameters: list[dict[str, Any]],
         responses: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "tags": tags,
            "parameters": parameters, "responses": responses}


# --- schemas --------------------------------------------------------------------------------


def property_schema(p: Property) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.0 flavour) of one published property; every one may be null."""
    schema: dict[str, Any] = {"type": p.type, "nullable": True}
    if p.format:
        schema["format"] = p.format
    if p.description:
        schema["description"] = p.description
    return schema


def _id_schema(c: Collection) -> dict[str, Any]:
    if c.id_type == "integer":
        return {"type": "integer"}
    return {"type": "string"}


def feature_schema(c: Collection) -> dict[str, Any]:
    """A GeoJSON Feature of collection ``c`` (what one item and each page member are)."""
    geometry: dict[str, Any] = {"type": "object", "nullable": True}
    return {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": _id_schema(c),
            "geometry": geometry,
            "properties": {
                "type": "object",
                "properties": {p.name: property_schema(p) for p in c.feature_properties},
            },
            "links": {"type": "array", "items": ANY_OBJECT},
        },
    }


def _feature_collection_schema(c: Collection) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": {"$ref": f"#/components/schemas/{c.id}"}},
            "numberReturned": {"type": "integer", "minimum": 0},
            "numberMatched": {"type": "integer", "minimum": 0},
            "timeStamp": {"type": "string", "format": "date-time"},
            "links": {"type": "array", "items": ANY_OBJECT},
        },
    }


def _write_body(c: Collection, whole: bool = True) -> dict[str, Any]:
    """A Feature a client may send: only the writable properties, a geometry of the layer's type.

    ``whole``: a created or replaced feature, which needs its geometry (a PATCH does not).
    """
    return {
        "type": "object",
        **({"required": ["geometry"]} if whole else {}),  # OpenAPI 3.0: no empty "required"
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "geometry": {"type": "object", "required": ["type", "coordinates"], "properties": {
                "type": {"type": "string", "enum": [c.geometry_type or "Point"]},
                "coordinates": {"type": "array", "items": {"type": "number"},
                                "minItems": 2, "maxItems": 3},
            }},
            "properties": {"type": "object", "additionalProperties": False, "properties": {
                p.name: property_schema(p) for p in c.properties
                if p.name in c.writable_properties
            }},
        },
    }


# --- paths ----------------------------------------------------------------------------------


def _downloads(c: Collection) -> tuple[str, ...]:
    """The file formats a page of ``c`` downloads as (FlatGeobuf only with geometries)."""
    return tuple(f for f in DOWNLOADS if f != "fgb" or c.geometry_column)


def _items_parameters(c: Collection, settings: Settings) -> list[dict[str, Any]]:
    names = list(c.property_names)
    parameters = [
        _formats("json", "html", "jsonld", *_downloads(c)), LANG,
        _query("limit", "features per page", {
            "type": "integer", "minimum": 1, "maximum": settings.max_page_size,
            "default": settings.default_page_size}),
        _query("offset", "skip this many matches (prefer the next link)",
               {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0}),
        _query("after", "continue after this id (keyset paging; see the next link)",
               _id_schema(c)),
        _query("properties", "only these properties",
               {"type": "array", "items": {"type": "string", "enum": names}}),
        _query("skipGeometry", "leave geometries out", {"type": "boolean", "default": False}),
        _crs("crs", "CRS of the geometries returned"),
        _query("filter", "CQL2 filter over the queryables (see filter-lang)", TEXT),
        _query("filter-lang", "language of filter", {
            "type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}),
        _crs("filter-crs", "CRS of the geometries in filter"),
    ]
    if c.geometry_column:
        parameters += [
            _query("bbox", "features intersecting this box: lower corner, then upper corner",
                   {"type": "array", "items": {"type": "number"}, "oneOf": [
                       {"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]}),
            _crs("bbox-crs", "CRS of bbox"),
        ]
    if provinces.offered(c):
        parameters.append(_query(
            provinces.PROVINCE, "only features in this province (its communes' province code "
            "in the administrative units); a code no commune has matches nothing", TEXT))
    for p in c.properties:  # property=value, a value the property can hold (else a 400)
        if p.type == "object":  # its members are filtered with CQL2 (attributes.<header>)
            continue
        parameters.append(_query(p.name, f"only features whose {p.name} is this value",
                                 _equality_schema(p), empty=p.type == "string" and not p.format))
    return parameters


def _equality_schema(p: Property) -> dict[str, Any]:
    """What ``<property>=<value>`` accepts for ``p`` (:func:`gis_api.features.parse_items`)."""
    if p.format:
        return {"type": "string", "format": p.format}
    if p.type == "integer":  # up to 18 digits
        return {"type": "integer", "minimum": -(10**18 - 1), "maximum": 10**18 - 1}
    return {"type": p.type}


def _write_responses(*statuses: str) -> dict[str, Any]:
    return {s: ERRORS[s] for s in statuses}


def _secured(operation: dict[str, Any]) -> dict[str, Any]:
    operation["security"] = [{"bearerAuth": []}]
    return operation


def collection_paths(c: Collection, settings: Settings) -> dict[str, Any]:
    """Paths of one collection: its description, queryables, schema, items and one item."""
    name = "".join(part.capitalize() for part in c.id.split("_"))
    base = f"/collections/{c.id}"
    tags = [c.id]
    schema_doc = _ok({JSON_SCHEMA: {"schema": ANY_OBJECT}, "text/html": {"schema": TEXT}})
    feature_id = {"name": "featureId", "in": "path", "required": True,
                  "description": f"id of a feature of {c.id}", "schema": _id_schema(c)}
    item_get = _get(
        f"get{name}Feature", f"One feature of {c.title}", tags,
        [feature_id, _formats("json", "html", "jsonld"), LANG, _crs("crs", "CRS of the geometry")],
        {"200": _ok({GEOJSON: {"schema": {"$ref": f"#/components/schemas/{c.id}"}},
                     "text/html": {"schema": TEXT},
                     "application/ld+json": {"schema": ANY_OBJECT}}),
         **READ_ERRORS},
    )
    items_get = _get(
        f"get{name}Features", f"A page of {c.title}", tags, _items_parameters(c, settings),
        {"200": _ok({GEOJSON: {"schema": {"$ref": f"#/components/schemas/{c.id}Page"}},
                     "text/html": {"schema": TEXT},
                     "application/ld+json": {"schema": ANY_OBJECT},
                     **{FORMATS[f].media_type: {"schema": BINARY} for f in _downloads(c)}}),
         **READ_ERRORS},
    )
    paths: dict[str, Any] = {
        base: {"get": _get(
            f"describe{name}Collection", f"The collection {c.title}", tags,
            [_formats("json", "html", "jsonld"), LANG],
            {"200": _renderings(ANY_OBJECT, "application/json", "html", "jsonld"),
             **READ_ERRORS})},
        f"{base}/queryables": {"get": _get(
            f"get{name}Queryables", f"Properties of {c.title} a filter may use", tags,
            [_formats("json", "html", "jsonld"), LANG],
            {"200": schema_doc, "400": READ_ERRORS["400"]})},
        f"{base}/schema": {"get": _get(
            f"get{name}Schema", f"Schema of the properties of {c.title}", tags,
            [_formats("json", "html", "jsonld"), LANG],
            {"200": schema_doc, "400": READ_ERRORS["400"]})},
        f"{base}/feature-schema": {"get": _get(
            f"get{name}FeatureSchema",
            f"JSON Schema of one GeoJSON feature of {c.title} (the collection's describedBy)",
            tags, [], {"200": _ok({JSON_SCHEMA: {"schema": ANY_OBJECT}})})},
        f"{base}/items": {"get": items_get},
        f"{base}/items/{{featureId}}": {"get": item_get},
    }
    if c.writable:
        _add_writes(paths, c, name, base, feature_id)
    return paths


def _add_writes(paths: dict[str, Any], c: Collection, name: str, base: str,
                feature_id: dict[str, Any]) -> None:
    """OGC API – Features Part 4 on a writable collection: an editor's token needed."""
    content_crs = {"name": "Content-Crs", "in": "header", "required": False,
                   "description": "CRS of the geometry sent (CRS84 when absent)",
                   "schema": {"type": "string", "enum": [f"<{u}>" for u in URIS]}}
    body, patch = ({"required": True, "content": {
        media: {"schema": _write_body(c, whole)} for media in (GEOJSON, "application/json")}}
        for whole in (True, False))
    paths[f"{base}/items"]["post"] = _secured({
        "operationId": f"create{name}Feature", "summary": f"Add a feature to {c.title}",
        "tags": [c.id], "parameters": [content_crs], "requestBody": body,
        "responses": {
            "201": {"description": "created; Location names the new feature",
                    "headers": {"Location": {"schema": {"type": "string"}}}},
            **_write_responses("400", "401", "403", "404", "409"),
        },
    })
    item = paths[f"{base}/items/{{featureId}}"]
    for method, verb, with_body in (("put", "Replace", True), ("patch", "Update", True),
                                    ("delete", "Delete", False)):
        operation: dict[str, Any] = {
            "operationId": f"{method}{name}Feature", "summary": f"{verb} a feature of {c.title}",
            "tags": [c.id], "parameters": [feature_id, *([content_crs] if with_body else [])],
            "responses": {"204": {"description": "done"},
                          **_write_responses("400", "401", "403", "404", "409")},
        }
        if with_body:
            operation["requestBody"] = patch if method == "patch" else body
        item[method] = _secured(operation)


def common_paths() -> dict[str, Any]:
    """The landing page, the OpenAPI document, conformance and the list of collections."""
    fmts = [_formats("json", "html", "jsonld"), LANG]
    return {
        "/": {"get": _get("getLandingPage", "Landing page", ["server"], fmts,
                          {"200": _renderings(ANY_OBJECT, "application/json", "html", "jsonld"),
                           "400": READ_ERRORS["400"]})},
        "/openapi": {"get": _get(
            "getOpenapi", "This document (f=html: a viewer; f=jsonld: JSON too)", ["server"],
            [_formats("json", "html", "jsonld"), LANG],
            {"200": _ok({"application/vnd.oai.openapi+json;version=3.0": {"schema": ANY_OBJECT},
                         "text/html": {"schema": TEXT}}), "400": READ_ERRORS["400"]})},
        "/conformance": {"get": _get(
            "getConformance", "Conformance classes", ["server"], fmts,
            {"200": _renderings(ANY_OBJECT, "application/json", "html", "jsonld"),
             "400": READ_ERRORS["400"]})},
        "/collections": {"get": _get(
            "getCollections", "The collections (layers)", ["server"], fmts,
            {"200": _renderings(ANY_OBJECT, "application/json", "html", "jsonld"),
             "400": READ_ERRORS["400"]})},
    }


def features_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of OGC API – Features (other routes are added by openapi_paths)."""
    paths = common_paths()
    schemas: dict[str, Any] = {}
    for c in COLLECTIONS:
        paths.update(collection_paths(c, settings))
        schemas[c.id] = feature_schema(c)
        schemas[f"{c.id}Page"] = _feature_collection_schema(c)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "SmartTrees",
            "description": "Trees, plantations, nurseries, timber and IOC layers "
                           "(OGC API – Features and Tiles, the scan API and the web map)",
            "version": _version(),
            "license": {"name": "CC-BY 4.0",
                        "url": "https://creativecommons.org/licenses/by/4.0/"},
        },
        "servers": [{"url": settings.server_url}],
        "tags": [{"name": "server", "description": "Landing page, conformance, collections"},
                 *({"name": c.id, "description": c.description} for c in COLLECTIONS)],
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smarttrees")
    except PackageNotFoundError:
        return "0"

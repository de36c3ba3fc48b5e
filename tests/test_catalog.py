"""One vocabulary (issue 9): every output of a layer uses the catalogue's field names and types.

Against a real server over the small province, for every layer that is both in
:mod:`smarttrees.catalog` and an OGC collection: the GeoJSON properties of its items, its
queryables, its ``/schema``, its vector tiles (where tiled) and the analyst API's frame carry the
catalogue's public fields, with compatible types; and nothing personal (a catalogue field marked
``personal``, a column of schema ``restricted``, a person's name or ID number) shows up in any.
"""

from __future__ import annotations

import datetime as dt
import json
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import morecantile
import numpy as np
import pandas as pd
import psycopg
import pytest

import smarttrees
from gis_api import provinces
from gis_api.collections import COLLECTIONS, IOC_COLLECTIONS
from gis_api.tiles.layers import tile_collections
from smarttrees import catalog, ioc
from smarttrees.settings import Settings
from tests.fixtures.care import CARE_CONTACT, CARE_NOTE, seed_care
from tests.fixtures.databases import copied_database
from tests.fixtures.province import PROVINCE_TEMPLATE
from tests.fixtures.server import serve_database

README = Path(__file__).resolve().parents[1] / "README.md"
TILED = tile_collections(Settings())
COLLECTION_IDS = {c.id for c in (*COLLECTIONS, *IOC_COLLECTIONS)}
SHARED = [layer for layer in catalog.LAYERS if layer.id in COLLECTION_IDS]

# Known differences between the catalogue and the collections, each with its reason; a field
# listed here that no longer differs fails the test, so the list shrinks as they are resolved.
MISSING_FROM_COLLECTION = {
    # The collection serves the communes in force today, whose valid_to is always empty; the
    # analyst API reads every version.
    ("communes", "valid_to"),
}
# Columns of schema restricted that a public layer may name: keys and figures that public
# layers only ever give per commune, province or month (added up, small counts withheld).
SHARED_WITH_RESTRICTED = {
    "id", "commune_code", "amount_vnd", "status", "channel", "at", "rows",
    "source",  # the file a record was loaded from, as trees.source
}


@pytest.fixture(scope="module")
def province(cluster: Any, province_template: Any) -> Iterator[str]:
    """One copy of the province, its IOC views refreshed, for this module's read-only tests."""
    with copied_database(cluster, PROVINCE_TEMPLATE, "catalog") as url:
        with psycopg.connect(url) as conn:
            ioc.refresh(conn, Settings())
            # Values as `smarttrees raster sample` stores them, at some trees and one stand.
            conn.execute(
                "INSERT INTO smarttrees.raster_samples (layer, feature_id, name, value, "
                "raster_path, band) SELECT layer, id, 'elevation', 40 + id % 300, "
                "'elevation.tif', 1 FROM ((SELECT 'trees' AS layer, id FROM smarttrees.trees "
                "ORDER BY id LIMIT 20) UNION ALL (SELECT 'stands', id FROM smarttrees.stands "
                "ORDER BY id LIMIT 1)) AS sampled"
            )
        seed_care(url)  # an inspection, an order, storm damage, a public report
        yield url


@pytest.fixture(scope="module")
def server(province: str) -> Iterator[str]:
    with serve_database(province) as base:
        yield base


@dataclass
class Outputs:
    """What a user gets of one layer from each output (texts: every body, for the privacy check)."""

    features: list[dict[str, Any]]
    queryables: dict[str, dict[str, Any]]
    schema: dict[str, dict[str, Any]]
    tile_features: list[dict[str, Any]] | None  # None: the layer is not tiled
    frame: pd.DataFrame
    texts: list[str] = default(default_factory=list)


@pytest.fixture(scope="module")
def outputs(server: str, province: str) -> dict[str, Outputs]:
    """Every shared layer read once through the items, queryables, schema, tiles and analyst API."""
    read: dict[str, Outputs] = {}
    with smarttrees.connect(province) as db:
        for layer in SHARED:
            texts: list[str] = []
            base = f"{server}/collections/{layer.id}"
            features = get_json(f"{base}/items", texts, limit=50)["features"]
            queryables = schema_properties(get_json(f"{base}/queryables", texts))
            schema = schema_properties(get_json(f"{base}/schema", texts))
            tiled = layer.id in TILED and bool(features)
            tile = a_tile_holding(server, layer, features[0], texts) if tiled else None
            frame = db.read(layer.id, columns=layer.field_names, limit=50)  # on request too
            texts.append(frame.drop(columns=["geometry"], errors="ignore").to_json(
                date_format="iso", default_handler=str
            ))
            read[layer.id] = Outputs(
                features, queryables, schema, tile[layer.id]["features"] if tile else None,
                frame, texts,
            )
    return read


def expected_names(layer: catalog.Layer) -> set[str]:
    """The public fields a collection of ``layer`` should publish."""
    return set(layer.field_names) - {n for lid, n in MISSING_FROM_COLLECTION if lid == layer.id}


def get_json(url: str, texts: list[str], **params: Any) -> Any:
    response = httpx.get(url, params={"f": "json", **params}, timeout=60)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    texts.append(response.text)
    return response.json()


def json_value_fits(field: catalog.Field, value: Any) -> bool:
    """Whether a GeoJSON / MVT property value is of the field's type (null always is)."""
    if value is None:
        return True
    if field.type == "string":
        return isinstance(value, str)
    if field.type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if field.type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if field.type == "boolean":
        return isinstance(value, bool)
    if field.type == "date":
        return isinstance(value, str) and _parses(dt.date.fromisoformat, value)
    if field.type == "datetime":
        return isinstance(value, str) and _parses(dt.datetime.fromisoformat, value)
    return isinstance(value, dict | list)  # json


def frame_value_fits(field: catalog.Field, value: Any) -> bool:
    """Whether a value of the analyst API's frame is of the field's type (missing always is)."""
    if value is None or (not isinstance(value, dict | list) and pd.isna(value)):
        return True
    if field.type == "string":
        return isinstance(value, str)
    if field.type == "integer":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if field.type == "number":
        return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    if field.type == "boolean":
        return isinstance(value, bool | np.bool_)
    if field.type == "date":
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime) or (
            isinstance(value, pd.Timestamp) and value == value.normalize()
        )
    if field.type == "datetime":
        return isinstance(value, dt.datetime)
    return isinstance(value, dict | list | str)  # json


def schema_type_fits(field: catalog.Field, schema: dict[str, Any]) -> bool:
    """Whether a JSON Schema property (queryables, /schema) is of the field's type."""
    kind, form = schema.get("type"), schema.get("format")
    return {
        "string": kind == "string" and form is None,
        "integer": kind == "integer",
        "number": kind == "number",
        "boolean": kind == "boolean",
        "date": kind == "string" and form == "date",
        "datetime": kind == "string" and form == "date-time",
        "json": kind == "object",
    }[field.type]


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def schema_properties(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A JSON Schema's properties, the geometry left out."""
    return {
        name: prop for name, prop in document["properties"].items()
        if prop.get("x-ogc-role") != "primary-geometry" and "$ref" not in prop
        and name not in ("geometry", "geom")
    }


@pytest.mark.parametrize("layer", SHARED, ids=lambda layer: layer.id)
def test_items_carry_the_catalogue_fields(
    layer: catalog.Layer, outputs: dict[str, Outputs]
) -> None:
    features = outputs[layer.id].features
    assert features, f"{layer.id}: the province has no feature to check"
    for feature in features:
        properties = dict(feature["properties"])
        if layer.key in layer.field_names:  # a key that is a field is the feature id, only
            assert layer.key not in properties
            properties[layer.key] = feature["id"]
        assert set(properties) == expected_names(layer), feature["id"]
        for name, value in properties.items():
            field = layer.field(name)
            assert field is not None and json_value_fits(field, value), (
                f"{layer.id}.{name} = {value!r} is not a {field and field.type}"
            )


@pytest.mark.parametrize("document", ["queryables", "schema"])
@pytest.mark.parametrize("layer", SHARED, ids=lambda layer: layer.id)
def test_queryables_and_schema_name_the_catalogue_fields(
    layer: catalog.Layer, document: str, outputs: dict[str, Outputs]
) -> None:
    properties = getattr(outputs[layer.id], document)
    published = set(properties) - ({layer.key} if layer.key not in layer.field_names else set())
    collection = next(c for c in COLLECTIONS if c.id == layer.id)
    if document == "queryables" and provinces.offered(collection):
        # the province filter is a queryable over the features' communes, not a field
        assert provinces.PROVINCE in published, f"{layer.id}: no province queryable"
        published.discard(provinces.PROVINCE)
    assert published == expected_names(layer)
    for name in published:
        field = layer.field(name)
        assert field is not None and schema_type_fits(field, properties[name]), (
            f"{layer.id}.{name}: {properties[name]} is not a {field and field.type}"
        )


def test_missing_and_extra_fields_listed_still_differ() -> None:
    """The known differences are real (remove an entry once it is resolved)."""
    collections = {c.id: c for c in (*COLLECTIONS, *IOC_COLLECTIONS)}
    for layer_id, name in MISSING_FROM_COLLECTION:
        layer = catalog.get(layer_id)
        assert layer is not None and layer.field(name) is not None
        assert collections[layer_id].property(name) is None


def a_tile_holding(
    server: str, layer: catalog.Layer, feature: dict[str, Any], texts: list[str]
) -> dict[str, Any]:
    """The decoded tile (at the point zoom, or 14) holding a feature of the collection."""
    lon, lat = _a_position(feature["geometry"]["coordinates"])
    zoom = max(TILED[layer.id].layers[0].minzoom, 14)
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, zoom)
    url = f"{server}/collections/{layer.id}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    decoded: dict[str, Any] = mapbox_vector_tile.decode(response.content)
    texts.append(json.dumps(decoded, default=str, ensure_ascii=False))
    return decoded


def _a_position(coordinates: Any) -> tuple[float, float]:
    while isinstance(coordinates[0], list):
        coordinates = coordinates[0]
    return float(coordinates[0]), float(coordinates[1])


@pytest.mark.parametrize(
    "layer", [layer for layer in SHARED if layer.id in TILED], ids=lambda layer: layer.id
)
def test_tiles_use_the_catalogue_fields(
    layer: catalog.Layer, outputs: dict[str, Outputs]
) -> None:
    tile_layer = TILED[layer.id].layers[0]
    assert tile_layer.id == layer.id
    assert set(tile_layer.fields) - {"id"} <= set(layer.field_names)  # TileJSON
    features = outputs[layer.id].tile_features
    assert features
    for feature in features:
        properties = feature["properties"]
        assert set(properties) <= set(layer.field_names), feature["id"]
        for name, value in properties.items():
            field = layer.field(name)
            if field is not None:
                assert json_value_fits(field, value), f"{layer.id}.{name} = {value!r}"


@pytest.mark.parametrize("layer", SHARED, ids=lambda layer: layer.id)
def test_the_analyst_api_reads_the_catalogue_fields(
    layer: catalog.Layer, outputs: dict[str, Outputs]
) -> None:
    frame = outputs[layer.id].frame
    assert len(frame), f"{layer.id}: nothing read"
    geometry = ["geometry"] if layer.geometry is not None else []
    key = [layer.key] if layer.key and layer.key not in layer.field_names else []
    assert list(frame.columns) == [*key, *layer.field_names, *geometry]
    for field in layer.public_fields:
        for value in frame[field.name].astype(object):
            assert frame_value_fits(field, value), f"{layer.id}.{field.name} = {value!r}"


def test_nothing_personal_in_any_output(province: str, outputs: dict[str, Outputs]) -> None:
    """No output names a personal field or a restricted column, or holds a person's name or ID."""
    names: set[str] = set()
    for read in outputs.values():
        names.update(read.queryables, read.schema, read.frame.columns)
        for feature in [*read.features, *(read.tile_features or [])]:
            names.update(feature["properties"])
    with psycopg.connect(province) as conn:
        restricted = {r[0] for r in conn.execute(
            "SELECT DISTINCT column_name FROM information_schema.columns "
            "WHERE table_schema = 'restricted'"
        )}
        people = conn.execute(
            "SELECT full_name, national_id FROM restricted.citizen_support_cases"
        ).fetchall()
    assert people, "the province has no citizen support case to look for"
    personal = {f.name for layer in catalog.LAYERS for f in layer.fields if f.personal}
    forbidden = personal | (restricted - SHARED_WITH_RESTRICTED)
    assert {"owner_name", "actor", "full_name", "national_id", "phone"} <= forbidden
    assert "tree_code" in names
    assert sorted(names & forbidden) == []
    text = "\n".join(t for read in outputs.values() for t in read.texts)
    for full_name, national_id in people:
        assert full_name not in text and json.dumps(full_name)[1:-1] not in text
        assert not national_id or national_id not in text
    for typed in (CARE_CONTACT, CARE_NOTE):  # what a member of the public typed
        assert typed not in text and json.dumps(typed)[1:-1] not in text


def test_the_readme_field_vocabulary_is_the_catalogue() -> None:
    text = README.read_text(encoding="utf-8")
    begin = text.index(catalog.VOCABULARY_BEGIN)
    end = text.index(catalog.VOCABULARY_END) + len(catalog.VOCABULARY_END) + 1
    assert text[begin:end] == catalog.markdown(), (
        "README's field vocabulary is out of date: paste `python -m smarttrees.catalog --markdown`"
    )

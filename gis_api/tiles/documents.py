"""The tiles' JSON documents, as pydantic models: tilesets, tileset metadata, tile matrix sets.

The models are what the responses are made from and what the tests validate real responses
against. Every link starts with the one base URL (:func:`gis_api.links.base_url`).
"""

from __future__ import annotations

from typing import Any, Literal

import morecantile
from pydantic import BaseModel, ConfigDict, Field

from gis_api.links import Link
from gis_api.tiles.grid import WEB_MERCATOR_QUAD
from gis_api.tiles.layers import MAX_ZOOM, MVT_MEDIA_TYPE, TMS_ID, TileCollection, TileLayer

TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
TILING_SCHEME_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"


_JSON_TYPES = {"Number": "number", "String": "string", "Boolean": "boolean"}


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertiesSchema(_Document):
    """The JSON schema of a layer's feature properties."""

    type: Literal["object"] = "object"
    properties: dict[str, dict[str, str]]


class GeoDataLayer(_Document):
    """An OGC API – Tiles ``layers`` entry of tileset metadata."""

    id: str
    dataType: Literal["vector"] = "vector"
    geometryDimension: Literal[0, 1, 2]
    minTileMatrix: str
    maxTileMatrix: str
    propertiesSchema: PropertiesSchema


class VectorLayer(_Document):
    """A TileJSON 3 ``vector_layers`` entry."""

    id: str
    description: str | None = None
    minzoom: int = Field(ge=0, le=MAX_ZOOM)
    maxzoom: int = Field(ge=0, le=MAX_ZOOM)
    fields: dict[str, Literal["Number", "String", "Boolean"]]


class BoundingBox(_Document):
    """A two-dimensional bounding box in CRS84."""

    lowerLeft: list[float] = Field(min_length=2, max_length=2)
    upperRight: list[float] = Field(min_length=2, max_length=2)
    crs: str = CRS84


class TilesetSummary(_Document):
    """A tileset as the ``/tiles`` listing shows it."""

    title: str
    dataType: Literal["vector"] = "vector"
    crs: str = CRS_3857
    tileMatrixSetURI: str = TMS_URI
    links: list[Link]


class Tilesets(_Document):
    """``/collections/{id}/tiles``: the tilesets of a collection."""

    links: list[Link]
    tilesets: list[TilesetSummary]


class Tileset(TilesetSummary):
    """OGC API – Tiles tileset metadata, with TileJSON 3 keys so web maps can use it directly."""

    layers: list[GeoDataLayer]
    tilejson: Literal["3.0.0"] = "3.0.0"
    tiles: list[str]
    minzoom: int = 0
    maxzoom: int = MAX_ZOOM
    vector_layers: list[VectorLayer]
    bounds: list[float] | None = Field(None, min_length=4, max_length=4)
    boundingBox: BoundingBox | None = None


class TileMatrixSetRef(_Document):
    """A tile matrix set as ``/tileMatrixSets`` lists it."""

    id: str
    title: str
    uri: str
    links: list[Link]


class TileMatrixSets(_Document):
    """``/tileMatrixSets``: the tile matrix sets served."""

    tileMatrixSets: list[TileMatrixSetRef]


# --- building them --------------------------------------------------------------------------


def dump(document: BaseModel) -> dict[str, Any]:
    """A model as the JSON object sent (unset optional members left out)."""
    return document.model_dump(mode="json", exclude_none=True)


def _tiles_url(base: str, collection: TileCollection) -> str:
    return f"{base}/collections/{collection.id}/tiles"


def _tileset_links(base: str, collection: TileCollection) -> list[Link]:
    """The links every description of the tileset carries: itself and its tiling scheme."""
    return [
        Link(rel="self", type="application/json", href=f"{_tiles_url(base, collection)}/{TMS_ID}"),
        Link(
            rel=TILING_SCHEME_REL, type="application/json", href=f"{base}/tileMatrixSets/{TMS_ID}"
        ),
    ]


def _summary_fields(base: str, collection: TileCollection) -> dict[str, Any]:
    return {"title": f"{collection.title} vector tiles", "links": _tileset_links(base, collection)}


def tilesets_document(base: str, collection: TileCollection) -> Tilesets:
    """The tilesets of a collection (one: WebMercatorQuad vector tiles)."""
    return Tilesets(
        links=[Link(rel="self", type="application/json", href=_tiles_url(base, collection))],
        tilesets=[TilesetSummary(**_summary_fields(base, collection))],
    )


def _geodata_layer(layer: TileLayer) -> GeoDataLayer:
    return GeoDataLayer(
        id=layer.id,
        geometryDimension=0 if layer.geometry_type == "point" else 2,
        minTileMatrix=str(layer.minzoom),
        maxTileMatrix=str(layer.maxzoom),
        propertiesSchema=PropertiesSchema(
            properties={
                name: {"type": _JSON_TYPES[kind]}
                for name, kind in layer.fields.items()
            }
        ),
    )


def _vector_layer(layer: TileLayer) -> VectorLayer:
    return VectorLayer(
        id=layer.id,
        description=layer.description,
        minzoom=layer.minzoom,
        maxzoom=layer.maxzoom,
        fields=dict(layer.fields),
    )


def tileset_document(
    collection: TileCollection, base: str, bounds: list[float] | None, query: str
) -> Tileset:
    """The tileset metadata; ``query`` (the tree filters) is carried on by the tile templates."""
    tms_url = f"{_tiles_url(base, collection)}/{TMS_ID}"
    suffix = f"?{query}" if query else ""
    summary = _summary_fields(base, collection)
    summary["links"] += [
        Link(
            rel="item",
            type=MVT_MEDIA_TYPE,
            href=tms_url + "/{tileMatrix}/{tileRow}/{tileCol}" + suffix,
            templated=True,
        ),
        Link(rel="collection", type="application/json", href=f"{base}/collections/{collection.id}"),
    ]
    return Tileset(
        **summary,
        layers=[_geodata_layer(layer) for layer in collection.layers],
        tiles=[tms_url + "/{z}/{y}/{x}" + suffix],
        vector_layers=[_vector_layer(layer) for layer in collection.layers],
        bounds=bounds,
        boundingBox=BoundingBox(lowerLeft=bounds[:2], upperRight=bounds[2:]) if bounds else None,
    )


def tile_matrix_sets_document(base: str) -> TileMatrixSets:
    """The tile matrix sets served: WebMercatorQuad."""
    tms = WEB_MERCATOR_QUAD
    return TileMatrixSets(
        tileMatrixSets=[
            TileMatrixSetRef(
                id=TMS_ID,
                title=tms.title or TMS_ID,
                uri=str(tms.uri),
                links=[
                    Link(
                        rel="self",
                        type="application/json",
                        href=f"{base}/tileMatrixSets/{TMS_ID}",
                    )
                ],
            )
        ]
    )


def tile_matrix_set() -> morecantile.TileMatrixSet:
    """The OGC Two Dimensional Tile Matrix Set 2.0 definition of WebMercatorQuad (morecantile's)."""
    return WEB_MERCATOR_QUAD

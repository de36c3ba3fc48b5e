"""The collections served as vector tiles and the MVT layers each tile carries.

Everything that sets one tiled collection apart from another is data here (which table bounds
it, whether it takes the tree filters, whether its tiles are keyed by the tree data version and
aggregated on a grid below the point zoom), so the endpoints never branch on a collection id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from smarttrees import catalog
from smarttrees.settings import Settings

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
TMS_ID = "WebMercatorQuad"
MAX_ZOOM = 24  # WebMercatorQuad defines tile matrices 0..24

FieldKind = Literal["Number", "String", "Boolean"]


@dataclass(frozen=True)
class TileLayer:
    """One MVT layer of a tile (a TileJSON ``vector_layers`` entry)."""

    id: str
    geometry_type: Literal["point", "polygon"]
    fields: Mapping[str, FieldKind]
    minzoom: int = 0
    maxzoom: int = MAX_ZOOM
    description: str | None = None


@dataclass(frozen=True)
class TileCollection:
    """A collection served as vector tiles.

    Attributes
    ----------
    id, title
        The OGC collection id and its title.
    layers
        The MVT layers its tiles carry.
    table
        The table or view (schema ``smarttrees``) whose extent bounds the tileset.
    sql
        The ``gis_api/sql`` file that renders a tile of features; ``None`` for the trees,
        rendered as points or grid counts (:func:`gis_api.tiles.render.render_trees`).
    filtered
        True: tiles take the ``category``, ``species`` and ``commune`` query filters, and the
        tileset's templates carry them on.
    versioned
        True: tiles are cached under the tree data version and low zooms are added up from
        ``smarttrees.tree_grid`` while it is current.
    estimated_extent
        True: the extent comes from the planner's statistics (an exact one would scan a
        million rows), exact when there are none yet.
    version_sql
        The ``gis_api/sql`` file giving the data version tiles are cached under (the IOC
        layers: advanced by every IOC load); ``None``: the collection's tiles never change
        while the server runs, or follow the trees (``versioned``).

    """

    id: str
    title: str
    layers: tuple[TileLayer, ...]
    table: str
    sql: str | None = None
    filtered: bool = False
    versioned: bool = False
    estimated_extent: bool = False
    version_sql: str | None = None


def catalogue_fields(layer_id: str, names: tuple[str, ...]) -> dict[str, FieldKind]:
    """The MVT field kinds of ``names``, public fields of the catalogue layer ``layer_id``.

    A tile carries fewer fields than the collection (tiles are small); which ones is chosen
    here, their names and types are the catalogue's, so a renamed or removed field fails at
    import, not in a client. ``id`` is the feature id every tile layer carries.
    """
    layer = catalog.get(layer_id)
    kinds: dict[str, FieldKind] = {}
    for name in names:
        field = layer.field(name) if layer is not None else None
        if name == "id":
            kinds[name] = "Number"
        elif field is None or field.type not in _MVT_KINDS:
            raise ValueError(f"tiles of {layer_id}: {name} is not a public scalar field there")
        else:
            kinds[name] = _MVT_KINDS[field.type]
    return kinds


_MVT_KINDS: dict[str, FieldKind] = {
    "string": "String", "integer": "Number", "number": "Number", "boolean": "Boolean"
}


def tile_collections(settings: Settings) -> dict[str, TileCollection]:
    """The collections served as tiles, with the layers each tile carries."""
    return {
        "trees": TileCollection(
            "trees",
            "Trees",
            (
                TileLayer(
                    "trees",
                    "point",
                    catalogue_fields("trees", (
                        "id", "tree_code", "category", "species_name", "species_vi",
                        "condition", "dbh_cm",
                    )),
                    minzoom=settings.tile_min_zoom_points,
                    description="individual trees",
                ),
                TileLayer(
                    "trees_grid",
                    "point",
                    {
                        "count": "Number",
                        "urban": "Number",
                        "scattered": "Number",
                        "plantation": "Number",
                    },
                    description=(
                        "trees counted per grid cell by category: below the point zoom, "
                        f"and where a tile would hold more than {settings.tile_max_features} trees"
                    ),
                ),
            ),
            table="trees",
            filtered=True,
            versioned=True,
            estimated_extent=True,
        ),
        "stands": TileCollection(
            "stands",
            "Plantation stands",
            (
                TileLayer(
                    "stands",
                    "polygon",
                    catalogue_fields("stands", (
                        "id", "stand_code", "species_vi", "planting_year", "area_ha",
                        "forest_function", "commune_code",
                    )),
                ),
            ),
            table="stands",
            sql="tiles_stands",
        ),
        "communes": TileCollection(
            "communes",
            "Communes (current)",
            (
                TileLayer(
                    "communes",
                    "polygon",
                    catalogue_fields("communes", ("id", "code", "name", "unit_type")),
                ),
            ),
            table="communes",
            sql="tiles_communes",
        ),
        # Tree care (issue 19): the web map's risk and storm layers.
        "care_inspections_due": TileCollection(
            "care_inspections_due",
            "Tree inspections: risk class and next due date",
            (
                TileLayer(
                    "care_inspections_due",
                    "point",
                    catalogue_fields("care_inspections_due", (
                        "id", "tree_code", "risk", "commune_code",
                    )) | {"next_due": "String"},
                ),
            ),
            table="care_tree_status",
            sql="tiles_care_inspections_due",
            version_sql="tiles_care_version",  # live: never archived
        ),
        "care_storm_damage": TileCollection(
            "care_storm_damage",
            "Storm damage to trees",
            (
                TileLayer(
                    "care_storm_damage",
                    "point",
                    catalogue_fields("care_storm_damage", (
                        "id", "storm_id", "damage", "priority", "commune_code",
                    )),
                ),
            ),
            table="care_damage",
            sql="tiles_care_storm_damage",
            version_sql="tiles_care_version",  # live: never archived
        ),
        **ioc_tile_collections(),
    }


# The IOC's area layers (issue 13): per commune, the fields a choropleth needs.
IOC_TILED: dict[str, tuple[str, tuple[str, ...]]] = {
    "documents_by_commune": (
        "Electronic documents per commune",
        ("id", "commune_code", "commune_name", "documents", "electronic", "courier_saving_vnd"),
    ),
    "citizen_support_by_commune": (
        "Citizen support per commune (withheld below the privacy threshold)",
        ("id", "commune_code", "commune_name", "people", "amount_vnd", "suppressed"),
    ),
    "trees_by_commune": (
        "Trees per commune and planting progress",
        ("id", "commune_code", "commune_name", "trees", "urban", "scattered", "plantation",
         "trees_per_km2", "carbon_t", "target", "progress"),
    ),
}


def ioc_tile_collections() -> dict[str, TileCollection]:
    """The IOC's area layers as tiles, cached under the IOC data version."""
    return {
        cid: TileCollection(
            cid,
            title,
            (TileLayer(cid, "polygon", catalogue_fields(cid, names)),),
            table="communes",
            sql=f"tiles_{cid}",
            version_sql="tiles_ioc_version",
        )
        for cid, (title, names) in IOC_TILED.items()
    }

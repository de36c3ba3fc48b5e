"""The published collections: one typed record per layer.

Adding a layer is a layer in :mod:`smarttrees.catalog` and one ``published(id)`` entry in
``COLLECTIONS``: titles, source, key, geometry and properties are the catalogue's
(:func:`published`). Only the layer's public fields are ever served, so personal fields
(``stands.owner_name``) and the ``restricted`` schema never reach a public layer. ``query`` is
a fixed SELECT (no parameters) for layers that join or aggregate; it is used as a sub-select,
so filters and paging apply to its output columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smarttrees import catalog


@dataclass(frozen=True)
class Property:
    """One published attribute.

    Example: ``Property("dbh_cm", "number", "trunk diameter at breast height, cm")``.
    """

    name: str
    type: str  # JSON Schema type: string, integer, number, boolean
    description: str = ""
    format: str | None = None  # JSON Schema format: date, date-time


@dataclass(frozen=True)
class Collection:
    """A layer served by OGC API Features (and listed by pygeoapi)."""

    id: str
    title: str  # what QGIS lists the layer as: Vietnamese, then English
    description: str
    properties: tuple[Property, ...]
    table: str | None = None  # a table or view of schema smarttrees
    query: str | None = None  # or a fixed SELECT; exactly one of the two
    id_column: str = "id"
    id_type: str = "integer"  # integer or string
    geometry_column: str | None = "geom"
    geometry_type: str | None = "Point"
    write_table: str | None = None  # OGC API Features Part 4 writes go to this table
    read_only: tuple[str, ...] = ()  # published properties a write may not set
    keywords: tuple[str, ...] = ()
    # A table whose row count (smarttrees.row_counts, kept by triggers) is the size of the
    # unfiltered collection: numberMatched without counting.
    counted_table: str | None = None

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise ValueError(f"collection {self.id}: give exactly one of table and query")

    @property
    def writable(self) -> bool:
        """True when features can be created, replaced, updated and deleted (Part 4)."""
        return self.write_table is not None

    @property
    def writable_properties(self) -> tuple[str, ...]:
        """Properties a write may set."""
        return tuple(n for n in self.property_names if n not in self.read_only)

    @property
    def property_names(self) -> tuple[str, ...]:
        """Names of the published properties, in order."""
        return tuple(p.name for p in self.properties)

    @property
    def feature_properties(self) -> tuple[Property, ...]:
        """Properties in a feature's ``properties``: all but the one its ``id`` already holds.

        The commune layers are identified by their commune code; repeating it as a property
        gave QGIS and GDAL two columns of the same value (``id`` and ``code``).
        """
        return tuple(p for p in self.properties if p.name != self.id_column)

    def property(self, name: str) -> Property | None:
        """The published property called ``name``, if any."""
        return next((p for p in self.properties if p.name == name), None)


_TIME = "date-time"

# The catalogue's field types as JSON Schema: (type, format).
_JSON_SCHEMA: dict[str, tuple[str, str | None]] = {
    "string": ("string", None), "integer": ("integer", None), "number": ("number", None),
    "boolean": ("boolean", None), "date": ("string", "date"), "datetime": ("string", _TIME),
    "json": ("object", None),
}


def catalogue_properties(layer_id: str, *, leave_out: tuple[str, ...] = ()) -> tuple[Property, ...]:
    """The published properties of a collection: its catalogue layer's public fields, in order.

    The catalogue (:mod:`smarttrees.catalog`) is the one home of field names, types, units and
    descriptions, so items, queryables, ``/schema``, the OpenAPI document, the analyst API and
    the exports cannot disagree. ``leave_out`` names fields the collection's source lacks.
    """
    layer = _layer(layer_id)
    properties = []
    for f in layer.public_fields:
        if f.name in leave_out:
            continue
        kind, fmt = _JSON_SCHEMA[f.type]
        description = f"{f.description}, {f.unit}" if f.unit and f.description else f.description
        properties.append(Property(f.name, kind, description, fmt))
    return tuple(properties)


def _layer(layer_id: str) -> catalog.Layer:
    layer = catalog.get(layer_id)
    if layer is None:
        raise ValueError(f"collection {layer_id}: no layer of that id in smarttrees.catalog")
    return layer


def published(layer_id: str, *, leave_out: tuple[str, ...] = (), **server: Any) -> Collection:
    """The collection publishing the catalogue layer ``layer_id``.

    Everything a client sees of it (title, description, keywords, key, geometry, properties) and
    the rows it reads (the layer's source with its lookups joined) come from the catalogue;
    ``server`` holds what only the server knows (the table writes go to, the row counter, the
    properties a write may not set) or a stated difference of the served source (``table``).
    """
    layer = _layer(layer_id)
    source = layer.joined_source
    is_select = source.lstrip().upper().startswith("SELECT")
    fields: dict[str, Any] = {
        "id": layer.id,
        "title": layer.display_title,
        "description": layer.description,
        "keywords": layer.keywords,
        "table": None if is_select else source,
        "query": source if is_select else None,
        "id_column": layer.key or "id",
        "id_type": "string" if layer.key_type == "string" else "integer",
        "geometry_column": layer.geometry,
        "geometry_type": layer.geometry_type,
        "properties": catalogue_properties(layer_id, leave_out=leave_out),
    }
    if "table" in server:  # a table served in place of the catalogue's source
        fields["query"] = None
    return Collection(**(fields | server))


TREES = published(
    "trees",
    write_table="trees",
    counted_table="trees",
    # A tree's carbon is computed (smarttrees.carbon): read-only, like the species names.
    read_only=(
        "species_name", "species_vi", "updated_at",
        *(f.name for f in catalog.TREE_CARBON_FIELDS),
    ),
)

COLLECTIONS: tuple[Collection, ...] = (
    TREES,
    published("stands"),
    published("nurseries"),
    published("seedling_lots"),
    published("timber_logs"),
    published("custody_events"),
    published("raster_samples"),
    # The catalogue's layer holds every version of every commune (the analyst API picks a
    # date); the collection serves the view of those in force, which has no end date.
    published(
        "communes", table="communes", leave_out=("valid_to",),
        description="Communes in force today (after the 2025 reorganisation).",
    ),
    published("documents_by_commune"),
    published("citizen_support_by_commune"),
)

# The IOC's layers (migration 0011; issue 13). Documents and trees are materialised views
# refreshed after each load; citizen support is a view over the restricted register with small
# counts (and their complements) withheld.
IOC_COLLECTIONS: tuple[Collection, ...] = (
    published("documents_by_agency_month"),
    published("documents_by_commune_month"),
    published("document_flows"),
    published("citizen_support_by_commune_detail"),
    published("citizen_support_by_province"),
    published("trees_by_commune"),
    published("tree_count_by_month"),
)
# Tree care (issue 19): inspections due, open work orders, storm damage, public reports.
CARE_COLLECTIONS: tuple[Collection, ...] = tuple(
    published(layer.id) for layer in catalog.CARE_LAYERS
)
COLLECTIONS = COLLECTIONS + IOC_COLLECTIONS + CARE_COLLECTIONS


def get(collection_id: str) -> Collection | None:
    """The published collection ``collection_id``, or ``None``."""
    return next((c for c in COLLECTIONS if c.id == collection_id), None)

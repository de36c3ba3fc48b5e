"""The published collections: one typed record per layer.

Adding a layer is one entry in ``COLLECTIONS``. Its properties are the public fields of the
layer of the same id in :mod:`smarttrees.catalog` (:func:`catalogue_properties`), and only those
are ever served, so personal fields (``stands.owner_name``) and the ``restricted`` schema never
reach a public layer. ``query`` is a fixed SELECT (no parameters) for layers that join or
aggregate; it is used as a sub-select, so filters and paging apply to its output columns.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _p(name: str, type_: str, description: str = "", format_: str | None = None) -> Property:
    return Property(name, type_, description, format_)


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
    layer = catalog.get(layer_id)
    if layer is None:
        raise ValueError(f"collection {layer_id}: no layer of that id in smarttrees.catalog")
    properties = []
    for f in layer.public_fields:
        if f.name in leave_out:
            continue
        kind, fmt = _JSON_SCHEMA[f.type]
        description = f"{f.description}, {f.unit}" if f.unit and f.description else f.description
        properties.append(Property(f.name, kind, description, fmt))
    return tuple(properties)

TREES = Collection(
    id="trees",
    title="Cây xanh — Trees",
    description="Every managed tree: urban, scattered rural and plantation trees.",
    query=(
        "SELECT t.*, s.scientific_name AS species_name, s.vietnamese_name AS species_vi "
        "FROM smarttrees.trees t LEFT JOIN smarttrees.species s ON s.id = t.species_id"
    ),
    write_table="trees",
    counted_table="trees",
    read_only=("species_name", "species_vi", "updated_at"),
    keywords=("trees", "urban green", "forestry"),
    properties=catalogue_properties("trees"),
)

COLLECTIONS: tuple[Collection, ...] = (
    TREES,
    Collection(
        id="stands",
        title="Lô rừng trồng — Plantation stands",
        description="Concentrated plantation stands (owner names are not published).",
        table="stands",
        geometry_type="MultiPolygon",
        keywords=("plantation", "forestry"),
        properties=catalogue_properties("stands"),
    ),
    Collection(
        id="nurseries",
        title="Vườn ươm — Nurseries",
        description="Registered forestry seedling nurseries.",
        table="nurseries",
        keywords=("seedlings", "nurseries"),
        properties=catalogue_properties("nurseries"),
    ),
    Collection(
        id="seedling_lots",
        title="Lô cây giống — Seedling lots",
        description="Seedling lots, located at their nursery.",
        query=(
            "SELECT l.*, n.nursery_code, s.scientific_name AS species_name, n.geom "
            "FROM smarttrees.seedling_lots l "
            "JOIN smarttrees.nurseries n ON n.id = l.nursery_id "
            "LEFT JOIN smarttrees.species s ON s.id = l.species_id"
        ),
        keywords=("seedlings",),
        properties=catalogue_properties("seedling_lots"),
    ),
    Collection(
        id="timber_logs",
        title="Gỗ tròn — Timber logs",
        description="Felled logs with barcodes, where each was last seen.",
        table="timber_logs",
        keywords=("timber",),
        properties=catalogue_properties("timber_logs"),
    ),
    Collection(
        id="custody_events",
        title="Truy xuất nguồn gốc — Chain-of-custody events",
        description="Every scan of a seedling lot, timber log, load or tree tag, where it happened "
        "(who scanned is not published).",
        table="custody_events",
        keywords=("timber", "seedlings", "chain of custody", "barcodes"),
        properties=catalogue_properties("custody_events"),
    ),
    Collection(
        id="raster_samples",
        title="Giá trị raster tại cây và lô rừng — Raster values at trees and stands",
        description="A raster's value at each tree, or at a point on each stand, stored by "
        "`smarttrees raster sample` under a name (filter on name and value).",
        query=(
            "SELECT r.id, r.layer, r.feature_id, coalesce(t.tree_code, s.stand_code) AS "
            "feature_code, r.name, r.value, r.band, r.sampled_at, "
            "coalesce(t.geom, ST_PointOnSurface(s.geom)) AS geom "
            "FROM smarttrees.raster_samples r "
            "LEFT JOIN smarttrees.trees t ON r.layer = 'trees' AND t.id = r.feature_id "
            "LEFT JOIN smarttrees.stands s ON r.layer = 'stands' AND s.id = r.feature_id"
        ),
        keywords=("raster", "sampling"),
        properties=(
            _p("layer", "string", "trees or stands"),
            _p("feature_id", "integer", "id of the tree or stand"),
            _p("feature_code", "string", "tree code or stand code"),
            _p("name", "string", "name of the sampled raster value, e.g. elevation"),
            _p("value", "number", "the raster's value there (null: nodata or outside)"),
            _p("band", "integer", "the raster band sampled"),
            _p("sampled_at", "string", "", _TIME),
        ),
    ),
    Collection(
        id="communes",
        title="Xã, phường — Communes",
        description="Communes in force today (after the 2025 reorganisation).",
        table="communes",
        id_column="code",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("administrative units",),
        properties=catalogue_properties("communes", leave_out=("valid_to",)),
    ),
    Collection(
        id="documents_by_commune",
        title="Văn bản điện tử theo xã — Electronic documents per commune",
        description="IOC: document flows per commune (counts only).",
        query=catalog.DOCUMENTS_BY_COMMUNE.source,  # one home for the aggregate
        id_column="commune_code",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "documents"),
        properties=catalogue_properties("documents_by_commune"),
    ),
    Collection(
        id="citizen_support_by_commune",
        title="Hỗ trợ người dân theo xã — Citizen support per commune",
        description="IOC: support paid per commune; fewer than 5 people → figures withheld.",
        table="citizen_support_by_commune",
        id_column="commune_code",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "citizen support"),
        properties=catalogue_properties("citizen_support_by_commune"),
    ),
)


# --- The IOC's layers (migration 0011; issue 13) ----------------------------------------------
# Documents and trees are materialised views refreshed after each load; citizen support is a
# view over the restricted register with small counts (and their complements) withheld.
IOC_COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        id="documents_by_agency_month",
        title="Văn bản theo cơ quan và tháng — Documents per agency and month",
        description="IOC: documents each agency sent and received per month, at the agency.",
        table="ioc_documents_agency_month",
        id_type="string",
        keywords=("IOC", "documents"),
        properties=catalogue_properties("documents_by_agency_month"),
    ),
    Collection(
        id="documents_by_commune_month",
        title="Văn bản theo xã và tháng — Documents per commune and month",
        description="IOC: documents the commune's agencies sent and received per month.",
        table="ioc_documents_commune_month",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "documents"),
        properties=catalogue_properties("documents_by_commune_month"),
    ),
    Collection(
        id="document_flows",
        title="Luồng văn bản giữa các cơ quan — Document flows between agencies",
        description="IOC: documents per sender, receiver and month, as a line between them.",
        table="ioc_document_flows",
        id_type="string",
        geometry_type="LineString",
        keywords=("IOC", "documents"),
        properties=catalogue_properties("document_flows"),
    ),
    Collection(
        id="citizen_support_by_commune_detail",
        title="Hỗ trợ người dân theo xã, trạng thái và kênh — Citizen support per commune, "
        "by status and channel",
        description="IOC: people and VND per commune and status, and per commune and channel; "
        "fewer than 5 people → withheld, with the cells that would give them away.",
        table="citizen_support_by_commune_detail",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "citizen support"),
        properties=catalogue_properties("citizen_support_by_commune_detail"),
    ),
    Collection(
        id="citizen_support_by_province",
        title="Hỗ trợ người dân theo tỉnh — Citizen support per province where people were "
        "stranded",
        description="IOC: people of the province stranded in each southern province, and VND.",
        table="citizen_support_by_province",
        id_column="province_code",
        id_type="string",
        keywords=("IOC", "citizen support"),
        properties=catalogue_properties("citizen_support_by_province"),
    ),
    Collection(
        id="trees_by_commune",
        title="Cây xanh theo xã — Trees per commune",
        description="IOC: trees per commune by category and condition, and per km².",
        query=catalog.TREES_BY_COMMUNE.source,
        id_column="commune_code",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "trees"),
        properties=catalogue_properties("trees_by_commune"),
    ),
    Collection(
        id="tree_count_by_month",
        title="Tree count per commune at the end of each month",
        description="IOC: trees planted per month of the inventory's latest year, and the count "
        "at the month's end ('' = trees outside every commune).",
        table="ioc_tree_count_month",
        id_type="string",
        geometry_column=None,
        geometry_type=None,
        keywords=("IOC", "trees"),
        properties=catalogue_properties("tree_count_by_month"),
    ),
)
COLLECTIONS = COLLECTIONS + IOC_COLLECTIONS

def get(collection_id: str) -> Collection | None:
    """The published collection ``collection_id``, or ``None``."""
    return next((c for c in COLLECTIONS if c.id == collection_id), None)

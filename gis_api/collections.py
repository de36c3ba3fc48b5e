"""The published collections: one typed record per layer.

Adding a layer is one entry in ``COLLECTIONS``. Only the properties listed here are ever
served, so personal columns (``stands.owner_name`` of a household) and the ``restricted`` schema
never reach a public layer. ``query`` is a fixed SELECT (no parameters) for layers that join or
aggregate; it is used as a sub-select, so filters and paging apply to its output columns.
"""

from __future__ import annotations

from dataclasses import dataclass


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


_DATE = "date"
_TIME = "date-time"

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
    properties=(
        _p("tree_code", "string", "code on the tree's label"),
        _p("category", "string", "urban, scattered or plantation"),
        _p("species_id", "integer", "species catalogue id"),
        _p("species_name", "string", "scientific name (read only)"),
        _p("species_vi", "string", "Vietnamese name (read only)"),
        _p("dbh_cm", "number", "trunk diameter at breast height, cm"),
        _p("height_m", "number", "height, m"),
        _p("crown_m", "number", "crown diameter, m"),
        _p("condition", "string", "good, fair, poor, dead or removed"),
        _p("planted_on", "string", "planting date", _DATE),
        _p("commune_code", "string", "commune code"),
        _p("stand_id", "integer", "plantation stand id"),
        _p("source", "string", "where the record came from"),
        _p("updated_at", "string", "last change", _TIME),
    ),
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
        properties=(
            _p("stand_code", "string", "stand code"),
            _p("species_id", "integer", "main species"),
            _p("planting_year", "integer"),
            _p("area_ha", "number", "area, ha"),
            _p("planted_count", "integer"),
            _p("owner_type", "string", "state, company, cooperative, household or community"),
            _p("forest_function", "string", "production, protection or special_use"),
            _p("harvest_allowed_m3", "number", "harvest allowed, m³"),
            _p("commune_code", "string"),
        ),
    ),
    Collection(
        id="nurseries",
        title="Vườn ươm — Nurseries",
        description="Registered forestry seedling nurseries.",
        table="nurseries",
        keywords=("seedlings", "nurseries"),
        properties=(
            _p("nursery_code", "string"),
            _p("name", "string"),
            _p("operator", "string"),
            _p("certificate_no", "string"),
            _p("capacity", "integer", "seedlings a year"),
            _p("commune_code", "string"),
        ),
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
        properties=(
            _p("lot_code", "string"),
            _p("nursery_id", "integer"),
            _p("nursery_code", "string"),
            _p("species_id", "integer"),
            _p("species_name", "string"),
            _p("seed_source", "string"),
            _p("quantity", "integer"),
            _p("quantity_dispatched", "integer"),
            _p("quantity_planted", "integer"),
            _p("certificate_no", "string"),
            _p("sown_on", "string", "", _DATE),
            _p("ready_on", "string", "", _DATE),
            _p("status", "string", "registered, certified, ready, dispatched or planted"),
        ),
    ),
    Collection(
        id="timber_logs",
        title="Gỗ tròn — Timber logs",
        description="Felled logs with barcodes, where each was last seen.",
        table="timber_logs",
        keywords=("timber",),
        properties=(
            _p("log_code", "string"),
            _p("stand_id", "integer"),
            _p("species_id", "integer"),
            _p("felled_on", "string", "", _DATE),
            _p("length_m", "number"),
            _p("diameter_cm", "number"),
            _p("volume_m3", "number"),
            _p("status", "string", "felled, at_landing, loaded, received, processed or sold"),
            _p("load_id", "integer"),
        ),
    ),
    Collection(
        id="custody_events",
        title="Truy xuất nguồn gốc — Chain-of-custody events",
        description="Every scan of a seedling lot, timber log, load or tree tag, where it happened "
        "(who scanned is not published).",
        table="custody_events",
        keywords=("timber", "seedlings", "chain of custody", "barcodes"),
        properties=(
            _p("code", "string", "tag code, e.g. TL-00000042-Y"),
            _p("item_type", "string", "seedling_lot, timber_log, transport_load or tree"),
            _p("event_type", "string", "dispatched, planted, at_landing, loaded, received, …"),
            _p("occurred_at", "string", "", _TIME),
            _p("quantity", "integer", "seedlings dispatched or planted"),
            _p("volume_m3", "number", "log volume measured at felling, m³"),
            _p("status_after", "string", "the item's custody state after the event"),
            _p("destination", "string", "commune, stand, mill or yard"),
            _p("fpl_number", "string", "forest-product list number of the load"),
            _p("species_name", "string", "scientific name"),
            _p("stand_code", "string", "stand a log comes from"),
        ),
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
        properties=(
            _p("code", "string", "commune code"),
            _p("name", "string"),
            _p("name_ascii", "string"),
            _p("unit_type", "string"),
            _p("parent_code", "string"),
            _p("valid_from", "string", "", _DATE),
        ),
    ),
    Collection(
        id="documents_by_commune",
        title="Văn bản điện tử theo xã — Electronic documents per commune",
        description="IOC: document flows per commune (counts only).",
        query=(
            "SELECT c.code AS commune_code, c.name AS commune_name, "
            "coalesce(a.documents, 0) AS documents, coalesce(a.electronic, 0) AS electronic, "
            "coalesce(a.courier_saving_vnd, 0) AS courier_saving_vnd, c.geom "
            "FROM smarttrees.communes c LEFT JOIN ("
            "SELECT commune_code, count(*) AS documents, "
            "count(*) FILTER (WHERE electronic) AS electronic, "
            "sum(courier_saving_vnd) AS courier_saving_vnd "
            "FROM smarttrees.documents GROUP BY commune_code) a ON a.commune_code = c.code"
        ),
        id_column="commune_code",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "documents"),
        properties=(
            _p("commune_code", "string"),
            _p("commune_name", "string"),
            _p("documents", "integer", "documents recorded"),
            _p("electronic", "integer", "documents sent electronically"),
            _p("courier_saving_vnd", "integer", "courier cost saved, VND"),
        ),
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
        properties=(
            _p("commune_code", "string"),
            _p("commune_name", "string"),
            _p("people", "integer", "people supported (withheld below 5)"),
            _p("amount_vnd", "integer", "amount paid, VND (withheld below 5 people)"),
            _p("suppressed", "boolean", "figures withheld to protect privacy"),
        ),
    ),
)


# --- The IOC's layers (migration 0011; issue 13) ----------------------------------------------
# Documents and trees are materialised views refreshed after each load; citizen support is a
# view over the restricted register with small counts (and their complements) withheld.
_MONTH = _p("month", "string", "first day of the month", _DATE)
_WITHHELD = _p("suppressed", "boolean", "figures withheld to protect privacy")
_DOCUMENT_FIGURES = (
    _p("sent", "integer", "documents sent"),
    _p("sent_electronic", "integer", "documents sent electronically"),
    _p("received", "integer", "documents received"),
    _p("received_electronic", "integer", "documents received electronically"),
    _p("electronic_share", "number", "share of the documents sent that went electronically"),
    _p("courier_saving_vnd", "integer", "courier cost saved by the documents sent, VND"),
)
IOC_COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        id="documents_by_agency_month",
        title="Văn bản theo cơ quan và tháng — Documents per agency and month",
        description="IOC: documents each agency sent and received per month, at the agency.",
        table="ioc_documents_agency_month",
        id_type="string",
        keywords=("IOC", "documents"),
        properties=(
            _p("id", "string", "feature id: code and month"),
            _p("agency_code", "string"),
            _p("agency_name", "string"),
            _p("level", "string", "province, department or commune"),
            _p("commune_code", "string"),
            _MONTH,
            *_DOCUMENT_FIGURES,
        ),
    ),
    Collection(
        id="documents_by_commune_month",
        title="Văn bản theo xã và tháng — Documents per commune and month",
        description="IOC: documents the commune's agencies sent and received per month.",
        table="ioc_documents_commune_month",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "documents"),
        properties=(
            _p("id", "string", "feature id: code and month"),
            _p("commune_code", "string"),
            _p("commune_name", "string"),
            _MONTH,
            *_DOCUMENT_FIGURES,
        ),
    ),
    Collection(
        id="document_flows",
        title="Luồng văn bản giữa các cơ quan — Document flows between agencies",
        description="IOC: documents per sender, receiver and month, as a line between them.",
        table="ioc_document_flows",
        id_type="string",
        geometry_type="LineString",
        keywords=("IOC", "documents"),
        properties=(
            _p("id", "string", "feature id: sender>receiver:month"),
            _p("sender_code", "string"),
            _p("sender_name", "string"),
            _p("receiver_code", "string"),
            _p("receiver_name", "string"),
            _MONTH,
            _p("documents", "integer", "documents from the sender to the receiver"),
            _p("electronic", "integer", "of which sent electronically"),
        ),
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
        properties=(
            _p("id", "string", "feature id: commune, dimension and value"),
            _p("commune_code", "string"),
            _p("commune_name", "string"),
            _p("dimension", "string", "status or channel"),
            _p("value", "string", "received, verified, paid, rejected; web or app"),
            _p("people", "integer", "people (withheld: null)"),
            _p("amount_vnd", "integer", "VND (withheld: null)"),
            _WITHHELD,
        ),
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
        properties=(
            _p("province_code", "string"),
            _p("province_name", "string"),
            _p("people", "integer", "people (withheld: null)"),
            _p("amount_vnd", "integer", "VND (withheld: null)"),
            _WITHHELD,
        ),
    ),
    Collection(
        id="trees_by_commune",
        title="Cây xanh theo xã — Trees per commune",
        description="IOC: trees per commune by category and condition, and per km².",
        query="SELECT * FROM smarttrees.ioc_trees_by_commune WHERE geom IS NOT NULL",
        id_column="commune_code",
        id_type="string",
        geometry_type="MultiPolygon",
        keywords=("IOC", "trees"),
        properties=(
            _p("commune_code", "string"),
            _p("commune_name", "string"),
            _p("area_km2", "number", "area, km²"),
            _p("trees", "integer"),
            _p("urban", "integer"),
            _p("scattered", "integer"),
            _p("plantation", "integer"),
            _p("good", "integer"),
            _p("fair", "integer"),
            _p("poor", "integer"),
            _p("dead", "integer"),
            _p("removed", "integer"),
            _p("trees_per_km2", "number"),
        ),
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
        properties=(
            _p("id", "string", "feature id: code and month"),
            _p("commune_code", "string"),
            _MONTH,
            _p("planted", "integer", "trees planted in the month"),
            _p("trees", "integer", "trees at the end of the month"),
        ),
    ),
)
COLLECTIONS = COLLECTIONS + IOC_COLLECTIONS

def get(collection_id: str) -> Collection | None:
    """The published collection ``collection_id``, or ``None``."""
    return next((c for c in COLLECTIONS if c.id == collection_id), None)

"""The catalogue of public layers: one typed description of every layer an analyst can read.

Each :class:`Layer` says where its rows come from (a table, view or fixed SELECT of schema
``smarttrees``), its key, its geometry and its fields (name, type, unit, description and whether
the field is personal). The analyst API (:mod:`smarttrees.api`) is derived from it: it selects
the public fields only, so a field flagged ``personal`` is described here and never read.

Layer ids and field names are those of the OGC API collections (``gis_api.collections``), so a
column means the same thing in QGIS, in the web map and in a notebook. The OGC collections
(:mod:`gis_api.collections`) are derived from it: their titles, sources, keys, geometries and
properties are read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from smarttrees.domain import Category

FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime", "json"]
GeometryType = Literal["Point", "LineString", "MultiPolygon"]


@dataclass(frozen=True)
class Lookup:
    """A field read from a small reference table by a key column of the layer.

    The API fetches the key and maps it through the reference table on the client (a pandas
    categorical), which is both faster than a join for a million rows and lighter in memory.
    """

    table: str  # a table of schema smarttrees, e.g. "species"
    key: str  # the layer's column holding the reference table's id, e.g. "species_id"
    column: str  # the reference table's column giving the value, e.g. "scientific_name"


@dataclass(frozen=True)
class Field:
    """One attribute of a layer.

    Example: ``Field("dbh_cm", "number", "trunk diameter at breast height", unit="cm")``.
    """

    name: str
    type: FieldType
    description: str = ""
    unit: str | None = None
    personal: bool = False  # personal data: described, never read by the public API
    lookup: Lookup | None = None
    # Served by the OGC API, but read by the analyst API and the exports only when named in
    # ``columns``: the trees' carbon comes from a join that doubles a whole-province read.
    on_request: bool = False


@dataclass(frozen=True)
class ChoicesTable:
    """A filter's choices read from a reference table of schema ``smarttrees``.

    Example: the species filter offers ``smarttrees.species`` rows, the value being ``id``.
    """

    table: str  # e.g. "species"
    value: str  # the column a choice's value is read from, e.g. "id"
    # (alias, column) pairs sent with each choice besides its value: ("name", "vietnamese_name")
    columns: tuple[tuple[str, str], ...]
    order: tuple[str, ...]  # the columns the choices are listed by
    bbox: bool = False  # also send each row's bounding box (the map zooms to a chosen commune)


@dataclass(frozen=True)
class MapFilter:
    """A filter the web map and the vector tiles offer on a layer.

    ``param`` is the query parameter (``/collections/trees/tiles/...?species=12``) and the
    select the map draws; ``field`` the layer's public field it keeps rows by. Its choices are
    either fixed ``values`` (a domain vocabulary) or the rows of ``table``; a value typed in a URL
    must then match ``pattern``.
    """

    param: str
    field: str
    type: Literal["string", "integer"]
    options_key: str  # the key of /map/options.json listing the choices, e.g. "species"
    values: tuple[str, ...] = ()
    table: ChoicesTable | None = None
    pattern: str = ""  # a regular expression a value from a URL must match (with table)
    expected: str = ""  # what the pattern asks for, in an error message: "a species id (integer)"


@dataclass(frozen=True)
class Layer:
    """A public layer: where it comes from and what it holds."""

    id: str  # the OGC collection id
    title: str  # English
    source: str  # a table or view of schema smarttrees, or a fixed SELECT
    fields: tuple[Field, ...]
    key: str | None = "id"
    geometry: str | None = "geom"  # geometry column of the source, EPSG:4326
    geometry_type: GeometryType | None = "Point"
    title_vi: str = ""  # Vietnamese: QGIS lists a collection as "title_vi — title"
    description: str = ""
    keywords: tuple[str, ...] = ()
    map_filters: tuple[MapFilter, ...] = ()  # what the web map and the tiles filter this layer by
    # A source joining another table on the key, written with ``{start}`` and ``{stop}`` where
    # a read of the key range [start, stop) bounds the joined table too: PostgreSQL carries a
    # range on the key to the key's own table only (smarttrees.parallel_read).
    ranged_source: str | None = None

    @property
    def display_title(self) -> str:
        """The title a client lists the layer under: Vietnamese, then English."""
        return f"{self.title_vi} — {self.title}" if self.title_vi else self.title

    @property
    def key_type(self) -> FieldType:
        """The type of the key: that of the key's field, else an integer id."""
        field = self.field(self.key) if self.key is not None else None
        return field.type if field is not None else "integer"

    @property
    def relation(self) -> str:
        """The source as something a FROM clause takes (a fixed SELECT is parenthesised)."""
        if self.source.lstrip().upper().startswith("SELECT"):
            return f"({self.source})"
        return f"smarttrees.{self.source}"

    def relation_in_range(self, start: int, stop: int) -> str:
        """:attr:`relation` for a read of the keys in [start, stop) (see ``ranged_source``)."""
        if self.ranged_source is None:
            return self.relation
        return f"({self.ranged_source.format(start=int(start), stop=int(stop))})"

    @property
    def public_fields(self) -> tuple[Field, ...]:
        """The fields the public API reads, in order (personal ones left out)."""
        return tuple(f for f in self.fields if not f.personal)

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the public fields, in order."""
        return tuple(f.name for f in self.public_fields)

    @property
    def default_fields(self) -> tuple[Field, ...]:
        """The public fields read when no columns are named: all but the ``on_request`` ones."""
        return tuple(f for f in self.public_fields if not f.on_request)

    def field(self, name: str) -> Field | None:
        """The public field called ``name``, if any."""
        return next((f for f in self.public_fields if f.name == name), None)

    @property
    def joined_source(self) -> str:
        """The source with every lookup field joined in: a fixed SELECT giving all public fields.

        One LEFT JOIN per reference table and key (the two species names share one), so a
        server reading rows as they are (OGC items, tiles) gets the same columns as the analyst
        API, which maps the keys on the client instead. A layer without lookups is its source.
        """
        joins: dict[tuple[str, str], str] = {}  # (table, key) -> alias
        columns = ["l.*"]
        for f in self.public_fields:
            if f.lookup is not None:
                alias = joins.setdefault((f.lookup.table, f.lookup.key), f"ref{len(joins)}")
                columns.append(f"{alias}.{f.lookup.column} AS {f.name}")
        if not joins:
            return self.source
        text = f"SELECT {', '.join(columns)} FROM {self.relation} AS l"
        for (table, key), alias in joins.items():
            text += f" LEFT JOIN smarttrees.{table} AS {alias} ON {alias}.id = l.{key}"
        return text


def _f(name: str, type_: FieldType, description: str = "", unit: str | None = None) -> Field:
    return Field(name, type_, description, unit)


_SPECIES_NAME = Field(
    "species_name", "string", "scientific name",
    lookup=Lookup("species", "species_id", "scientific_name"),
)
_SPECIES_VI = Field(
    "species_vi", "string", "Vietnamese name",
    lookup=Lookup("species", "species_id", "vietnamese_name"),
)

def _carbon(name: str, type_: FieldType, description: str, unit: str | None = None) -> Field:
    return Field(name, type_, description, unit, on_request=True)


# A tree's carbon as of the last carbon refresh (smarttrees.carbon; see the README's "Carbon").
TREE_CARBON_FIELDS = (
    _carbon("agb_kg", "number", "above-ground biomass (dry), at the last carbon refresh", "kg"),
    _carbon("carbon_kg", "number", "carbon in above-ground biomass", "kg C"),
    _carbon("co2e_kg", "number", "carbon as CO₂ equivalent (× 44/12)", "kg CO₂e"),
    _carbon("carbon_equation", "string",
            "equation used: chave2014_eq4, chave2014_eq7 or a species equation's name"),
    _carbon("carbon_outside_range", "boolean",
            "diameter outside the validity range of the equation used"),
)

_TREES_SOURCE = (
    "SELECT t.*, c.agb_kg, c.carbon_kg, c.co2e_kg, c.equation AS carbon_equation, "
    "c.outside_range AS carbon_outside_range FROM smarttrees.trees t "
    "LEFT JOIN smarttrees.tree_carbon c ON c.tree_id = t.id{carbon_range} "
    "AND c.dbh_cm IS NOT DISTINCT FROM t.dbh_cm::float8 "
    "AND c.species_id IS NOT DISTINCT FROM t.species_id "
    "AND (c.height_source IS NOT DISTINCT FROM 'measured') = (t.height_m IS NOT NULL) "
    "AND (t.height_m IS NULL OR c.height_m = t.height_m::float8)"
)

TREES = Layer(
    id="trees",
    title="Trees",
    title_vi="Cây xanh",
    description="Every managed tree: urban, scattered rural and plantation trees.",
    keywords=("trees", "urban green", "forestry"),
    # A tree's carbon as of the last refresh, and only while the diameter, species and measured
    # height it was computed from are still the tree's: an edited tree has none until the next
    # refresh. The join is removed by PostgreSQL when no carbon field is selected (tree_carbon's
    # tree_id is unique), so reading the other fields costs what reading the table does.
    source=_TREES_SOURCE.format(carbon_range=""),
    # A part of a split read hashes only its range of tree_carbon, not all of it.
    ranged_source=_TREES_SOURCE.format(
        carbon_range=" AND c.tree_id >= {start} AND c.tree_id < {stop}"),
    fields=(
        _f("tree_code", "string", "code on the tree's label"),
        _f("category", "string", "urban, scattered or plantation"),
        _f("species_id", "integer", "species catalogue id"),
        _SPECIES_NAME,
        _SPECIES_VI,
        _f("dbh_cm", "number", "trunk diameter at breast height (1.3 m)", "cm"),
        _f("height_m", "number", "total height", "m"),
        _f("crown_m", "number", "crown diameter", "m"),
        _f("condition", "string", "good, fair, poor, dead or removed"),
        _f("planted_on", "date", "planting date"),
        _f("commune_code", "string", "commune code"),
        _f("stand_id", "integer", "plantation stand id"),
        _f("source", "string", "where the record came from"),
        _f("updated_at", "datetime", "last change"),
        *TREE_CARBON_FIELDS,
        _f("attributes", "json", "survey columns the mapping does not know, by the file's header "
           "(filter on one: \"attributes.Ghi chú\" = '…')"),
    ),
    map_filters=(
        MapFilter("category", "category", "string", "categories",
                  values=tuple(c.value for c in Category)),
        MapFilter("species", "species_id", "integer", "species",
                  table=ChoicesTable("species", "id",
                                     (("name", "vietnamese_name"),
                                      ("scientific_name", "scientific_name")),
                                     ("vietnamese_ascii", "id")),
                  pattern="[0-9]{1,9}", expected="a species id (integer)"),
        MapFilter("commune", "commune_code", "string", "communes",
                  table=ChoicesTable("communes", "code", (("name", "name"),),
                                     ("name_ascii", "name", "code"), bbox=True),
                  pattern="[0-9]{1,10}", expected="a commune code (digits)"),
    ),
)

STANDS = Layer(
    id="stands",
    title="Plantation stands",
    title_vi="Lô rừng trồng",
    description="Concentrated plantation stands (owner names are not published).",
    keywords=("plantation", "forestry"),
    source="stands",
    geometry_type="MultiPolygon",
    fields=(
        _f("stand_code", "string", "stand code"),
        _f("species_id", "integer", "main species"),
        _SPECIES_NAME,
        _SPECIES_VI,
        _f("planting_year", "integer", "year planted"),
        _f("area_ha", "number", "area (computed in VN-2000 / TM-3)", "ha"),
        _f("planted_count", "integer", "seedlings planted", "trees"),
        _f("owner_type", "string", "state, company, cooperative, household or community"),
        Field("owner_name", "string", "owner (a household's name is personal)", personal=True),
        _f("forest_function", "string", "production, protection or special_use"),
        _f("harvest_allowed_m3", "number", "harvest allowed", "m³"),
        _f("commune_code", "string", "commune code"),
    ),
)

NURSERIES = Layer(
    id="nurseries",
    title="Nurseries",
    title_vi="Vườn ươm",
    description="Registered forestry seedling nurseries.",
    keywords=("seedlings", "nurseries"),
    source="nurseries",
    fields=(
        _f("nursery_code", "string", "nursery code"),
        _f("name", "string", "nursery name"),
        _f("operator", "string", "operating organisation"),
        _f("certificate_no", "string", "nursery certificate number"),
        _f("capacity", "integer", "seedlings a year", "seedlings/year"),
        _f("commune_code", "string", "commune code"),
    ),
)

SEEDLING_LOTS = Layer(
    id="seedling_lots",
    title="Seedling lots",
    title_vi="Lô cây giống",
    description="Seedling lots, located at their nursery.",
    keywords=("seedlings",),
    source=(
        "SELECT l.*, n.nursery_code, n.geom FROM smarttrees.seedling_lots l "
        "JOIN smarttrees.nurseries n ON n.id = l.nursery_id"
    ),
    fields=(
        _f("lot_code", "string", "lot code"),
        _f("nursery_id", "integer", "nursery id"),
        _f("nursery_code", "string", "nursery code"),
        _f("species_id", "integer", "species catalogue id"),
        _SPECIES_NAME,
        _f("seed_source", "string", "seed origin"),
        _f("quantity", "integer", "seedlings in the lot", "seedlings"),
        _f("quantity_dispatched", "integer", "seedlings dispatched", "seedlings"),
        _f("quantity_planted", "integer", "seedlings planted", "seedlings"),
        _f("certificate_no", "string", "seed or seedling certificate number"),
        _f("sown_on", "date", "sowing date"),
        _f("ready_on", "date", "date ready for planting"),
        _f("status", "string", "registered, certified, ready, dispatched or planted"),
    ),
)

TIMBER_LOGS = Layer(
    id="timber_logs",
    title="Timber logs",
    title_vi="Gỗ tròn",
    description="Felled logs with barcodes, where each was last seen.",
    keywords=("timber",),
    source="timber_logs",
    fields=(
        _f("log_code", "string", "log code"),
        _f("stand_id", "integer", "stand the log was felled in"),
        _f("species_id", "integer", "species catalogue id"),
        _f("felled_on", "date", "felling date"),
        _f("length_m", "number", "length", "m"),
        _f("diameter_cm", "number", "mid diameter", "cm"),
        _f("volume_m3", "number", "volume measured at felling", "m³"),
        _f("status", "string", "felled, at_landing, loaded, received, processed or sold"),
        _f("load_id", "integer", "transport load id"),
    ),
)

CUSTODY_EVENTS = Layer(
    id="custody_events",
    title="Chain-of-custody events",
    title_vi="Truy xuất nguồn gốc",
    description=(
        "Every scan of a seedling lot, timber log, load or tree tag, where it happened (who "
        "scanned is not published)."
    ),
    keywords=("timber", "seedlings", "chain of custody", "barcodes"),
    source="custody_events",
    fields=(
        _f("code", "string", "tag code, e.g. TL-00000042-Y"),
        _f("item_type", "string", "seedling_lot, timber_log, transport_load or tree"),
        _f("event_type", "string", "dispatched, planted, at_landing, loaded, received, …"),
        _f("occurred_at", "datetime", "when the scan happened"),
        _f("quantity", "integer", "seedlings dispatched or planted", "seedlings"),
        _f("volume_m3", "number", "log volume measured at felling", "m³"),
        _f("status_after", "string", "the item's custody state after the event"),
        _f("destination", "string", "commune, stand, mill or yard"),
        _f("fpl_number", "string", "forest-product list number of the load"),
        _f("species_name", "string", "scientific name"),
        _f("stand_code", "string", "stand a log comes from"),
    ),
)

# Every version of every commune: the API picks the versions in force at a date.
COMMUNES = Layer(
    id="communes",
    title="Communes",
    title_vi="Xã, phường",
    description="Every version of every commune (the OGC collection serves those in force).",
    keywords=("administrative units",),
    source="SELECT * FROM smarttrees.admin_units WHERE level = 'commune'",
    key="code",
    geometry_type="MultiPolygon",
    fields=(
        _f("code", "string", "commune code"),
        _f("name", "string", "commune name"),
        _f("name_ascii", "string", "name without diacritics"),
        _f("unit_type", "string", "xã, phường or thị trấn"),
        _f("parent_code", "string", "code of the unit above"),
        _f("valid_from", "date", "first day of this version"),
        _f("valid_to", "date", "day this version ended (empty: in force)"),
    ),
)

TREE_HISTORY = Layer(
    id="tree_history",
    title="Tree history",
    source="tree_history",
    geometry=None,
    geometry_type=None,
    fields=(
        _f("tree_id", "integer", "tree id (kept after the tree is deleted)"),
        _f("tree_code", "string", "tree code"),
        _f("change", "string", "insert, update or delete"),
        _f("changed_at", "datetime", "when"),
        Field("actor", "string", "user who made the change", personal=True),
        _f("source", "string", "file or program the change came from"),
        _f("changes", "json", "update: {field: {old, new}}; delete: the old row"),
    ),
)

SPECIES = Layer(
    id="species",
    title="Species catalogue",
    source="species",
    geometry=None,
    geometry_type=None,
    fields=(
        _f("scientific_name", "string", "scientific name"),
        _f("vietnamese_name", "string", "Vietnamese name"),
        _f("family", "string", "botanical family"),
        _f("use", "string", "plantation, urban, native, fruit…"),
        _f("wood_density", "number", "basic wood density (oven-dry mass / green volume)", "g/cm³"),
        _f("wood_density_source", "string", "where the wood density comes from"),
    ),
)

DOCUMENTS_BY_COMMUNE = Layer(
    id="documents_by_commune",
    title="Electronic documents per commune",
    title_vi="Văn bản điện tử theo xã",
    description="IOC: document flows per commune (counts only).",
    keywords=("IOC", "documents"),
    source=(
        "SELECT c.code AS commune_code, c.name AS commune_name, "
        "coalesce(a.documents, 0) AS documents, coalesce(a.electronic, 0) AS electronic, "
        "coalesce(a.courier_saving_vnd, 0) AS courier_saving_vnd, c.geom "
        "FROM smarttrees.communes c "
        "LEFT JOIN smarttrees.ioc_documents_commune a ON a.commune_code = c.code"
    ),
    key="commune_code",
    geometry_type="MultiPolygon",
    fields=(
        _f("commune_code", "string", "commune code"),
        _f("commune_name", "string", "commune name"),
        _f("documents", "integer", "documents recorded", "documents"),
        _f("electronic", "integer", "documents sent electronically", "documents"),
        _f("courier_saving_vnd", "integer", "courier cost saved", "VND"),
    ),
)

CITIZEN_SUPPORT_BY_COMMUNE = Layer(
    id="citizen_support_by_commune",
    title="Citizen support per commune",
    title_vi="Hỗ trợ người dân theo xã",
    description="IOC: support paid per commune; fewer than 5 people → figures withheld.",
    keywords=("IOC", "citizen support"),
    source="citizen_support_by_commune",
    key="commune_code",
    geometry_type="MultiPolygon",
    fields=(
        _f("commune_code", "string", "commune code"),
        _f("commune_name", "string", "commune name"),
        _f("people", "integer", "people supported (withheld below 5)", "people"),
        _f("amount_vnd", "integer", "amount paid (withheld below 5 people)", "VND"),
        _f("suppressed", "boolean", "figures withheld to protect privacy"),
    ),
)

_CARBON = (
    _f("agb_t", "number", "above-ground biomass (dry)", "t"),
    _f("carbon_t", "number", "carbon in above-ground biomass", "t C"),
    _f("co2e_t", "number", "carbon as CO₂ equivalent (× 44/12)", "t CO₂e"),
)

TREE_CARBON = Layer(
    id="tree_carbon",
    title="Carbon per tree",
    source=(
        "SELECT c.*, t.geom FROM smarttrees.tree_carbon c "
        "JOIN smarttrees.trees t ON t.id = c.tree_id"
    ),
    key="tree_id",
    fields=(
        _f("tree_code", "string", "code on the tree's label"),
        _f("category", "string", "urban, scattered or plantation"),
        _f("species_id", "integer", "species catalogue id"),
        _SPECIES_NAME,
        _f("commune_code", "string", "commune code"),
        _f("stand_id", "integer", "plantation stand id"),
        _f("dbh_cm", "number", "trunk diameter at breast height", "cm"),
        _f("wood_density", "number", "the species' wood density", "g/cm³"),
        _f("height_m", "number", "height used: measured or predicted", "m"),
        _f("height_source", "string", "measured, hd_model (the species' height–diameter model)"),
        _f("equation", "string", "chave2014_eq4, chave2014_eq7 or a species equation's name"),
        _f("outside_range", "boolean", "diameter outside the validity range of the equation"),
        _f("agb_kg", "number", "above-ground biomass (dry)", "kg"),
        _f("carbon_kg", "number", "carbon in above-ground biomass", "kg C"),
        _f("co2e_kg", "number", "carbon as CO₂ equivalent (× 44/12)", "kg CO₂e"),
    ),
)

STAND_CARBON = Layer(
    id="stand_carbon",
    title="Carbon per plantation stand",
    source="stand_carbon",
    key="stand_id",
    geometry_type="MultiPolygon",
    fields=(
        _f("stand_code", "string", "stand code"),
        _f("species_id", "integer", "main species"),
        _SPECIES_NAME,
        _SPECIES_VI,
        _f("planting_year", "integer", "year planted"),
        _f("area_ha", "number", "area", "ha"),
        _f("planted_count", "integer", "seedlings planted", "trees"),
        _f("commune_code", "string", "commune code"),
        _f("method", "string", "inventoried trees, or planted count × mean tree of the same "
           "species and year"),
        _f("trees", "integer", "inventoried trees", "trees"),
        *_CARBON,
        _f("carbon_t_per_ha", "number", "carbon per hectare", "t C/ha"),
    ),
)

COMMUNE_CARBON = Layer(
    id="commune_carbon",
    title="Carbon per commune",
    source="commune_carbon",
    key="commune_code",
    geometry_type="MultiPolygon",
    fields=(
        _f("commune_name", "string", "commune name"),
        _f("trees", "integer", "trees", "trees"),
        _f("estimated", "integer", "trees with an estimate", "trees"),
        *_CARBON,
    ),
)

SPECIES_CARBON = Layer(
    id="species_carbon",
    title="Carbon per species",
    source="species_carbon",
    key="species_id",
    geometry=None,
    geometry_type=None,
    fields=(
        _f("species_name", "string", "scientific name"),
        _f("species_vi", "string", "Vietnamese name"),
        _f("trees", "integer", "trees", "trees"),
        _f("estimated", "integer", "trees with an estimate", "trees"),
        *_CARBON,
        _f("mean_carbon_kg", "number", "mean carbon per estimated tree", "kg C"),
    ),
)

# --- The IOC's layers (migration 0011): documents, citizen support and trees per commune ------
_MONTH = _f("month", "date", "first day of the month")
_WITHHELD = _f("suppressed", "boolean", "figures withheld to protect privacy")
_DOCUMENT_FIGURES = (
    _f("sent", "integer", "documents sent", "documents"),
    _f("sent_electronic", "integer", "documents sent electronically", "documents"),
    _f("received", "integer", "documents received", "documents"),
    _f("received_electronic", "integer", "documents received electronically", "documents"),
    _f("electronic_share", "number", "share of the documents sent that went electronically"),
    _f("courier_saving_vnd", "integer", "courier cost saved by the documents sent", "VND"),
)

DOCUMENTS_BY_AGENCY_MONTH = Layer(
    id="documents_by_agency_month",
    title="Documents per agency and month",
    title_vi="Văn bản theo cơ quan và tháng",
    description="IOC: documents each agency sent and received per month, at the agency.",
    keywords=("IOC", "documents"),
    source="ioc_documents_agency_month",
    fields=(
        _f("id", "string", "feature id: code and month"),
        _f("agency_code", "string", "agency code"),
        _f("agency_name", "string", "agency name"),
        _f("level", "string", "province, department or commune"),
        _f("commune_code", "string", "commune code"),
        _MONTH,
        *_DOCUMENT_FIGURES,
    ),
)

DOCUMENTS_BY_COMMUNE_MONTH = Layer(
    id="documents_by_commune_month",
    title="Documents per commune and month",
    title_vi="Văn bản theo xã và tháng",
    description="IOC: documents the commune's agencies sent and received per month.",
    keywords=("IOC", "documents"),
    source="ioc_documents_commune_month",
    geometry_type="MultiPolygon",
    fields=(
        _f("id", "string", "feature id: code and month"),
        _f("commune_code", "string", "commune code"),
        _f("commune_name", "string", "commune name"),
        _MONTH,
        *_DOCUMENT_FIGURES,
    ),
)

DOCUMENT_FLOWS = Layer(
    id="document_flows",
    title="Document flows between agencies",
    title_vi="Luồng văn bản giữa các cơ quan",
    description="IOC: documents per sender, receiver and month, as a line between them.",
    keywords=("IOC", "documents"),
    source="ioc_document_flows",
    geometry_type="LineString",
    fields=(
        _f("id", "string", "feature id: sender>receiver:month"),
        _f("sender_code", "string", "sending agency"),
        _f("sender_name", "string", "sending agency's name"),
        _f("receiver_code", "string", "receiving agency"),
        _f("receiver_name", "string", "receiving agency's name"),
        _MONTH,
        _f("documents", "integer", "documents from the sender to the receiver", "documents"),
        _f("electronic", "integer", "of which sent electronically", "documents"),
    ),
)

CITIZEN_SUPPORT_BY_COMMUNE_DETAIL = Layer(
    id="citizen_support_by_commune_detail",
    title="Citizen support per commune, by status and channel",
    title_vi="Hỗ trợ người dân theo xã, trạng thái và kênh",
    description=(
        "IOC: people and VND per commune and status, and per commune and channel; fewer than "
        "5 people → withheld, with the cells that would give them away."
    ),
    keywords=("IOC", "citizen support"),
    source="citizen_support_by_commune_detail",
    geometry_type="MultiPolygon",
    fields=(
        _f("id", "string", "feature id: commune, dimension and value"),
        _f("commune_code", "string", "commune code"),
        _f("commune_name", "string", "commune name"),
        _f("dimension", "string", "status or channel"),
        _f("value", "string", "received, verified, paid, rejected; web or app"),
        _f("people", "integer", "people (withheld: empty)", "people"),
        _f("amount_vnd", "integer", "amount (withheld: empty)", "VND"),
        _WITHHELD,
    ),
)

CITIZEN_SUPPORT_BY_PROVINCE = Layer(
    id="citizen_support_by_province",
    title="Citizen support per province where people were stranded",
    title_vi="Hỗ trợ người dân theo tỉnh",
    description="IOC: people of the province stranded in each southern province, and VND.",
    keywords=("IOC", "citizen support"),
    source="citizen_support_by_province",
    key="province_code",
    fields=(
        _f("province_code", "string", "province code"),
        _f("province_name", "string", "province name"),
        _f("people", "integer", "people (withheld: empty)", "people"),
        _f("amount_vnd", "integer", "amount (withheld: empty)", "VND"),
        _WITHHELD,
    ),
)

TREES_BY_COMMUNE = Layer(
    id="trees_by_commune",
    title="Trees per commune",
    title_vi="Cây xanh theo xã",
    description=(
        "IOC: trees per commune by category and condition, per km², their carbon, and the "
        "progress towards the commune's planting target."
    ),
    keywords=("IOC", "trees"),
    source=(
        "SELECT i.*, s.agb_t, s.carbon_t, s.co2e_t, p.target, "
        "round(i.trees::numeric / nullif(p.target, 0), 4) AS progress "
        "FROM smarttrees.ioc_trees_by_commune i "
        "LEFT JOIN smarttrees.tree_carbon_by_commune s ON s.commune_code = i.commune_code "
        "LEFT JOIN smarttrees.planting_targets p ON p.commune_code = i.commune_code "
        "WHERE i.geom IS NOT NULL"
    ),
    key="commune_code",
    geometry_type="MultiPolygon",
    fields=(
        _f("commune_code", "string", "commune code"),
        _f("commune_name", "string", "commune name"),
        _f("area_km2", "number", "area", "km²"),
        *(_f(n, "integer", f"{n} trees", "trees") for n in (
            "trees", "urban", "scattered", "plantation", "good", "fair", "poor", "dead", "removed"
        )),
        _f("trees_per_km2", "number", "trees per km²", "trees/km²"),
        *_CARBON,  # at the last carbon refresh
        _f("target", "integer", "the commune's planting target (smarttrees load targets)",
           "trees"),
        _f("progress", "number", "trees ÷ target"),
    ),
)

TREE_COUNT_BY_MONTH = Layer(
    id="tree_count_by_month",
    title="Tree count per commune at the end of each month",
    description=(
        "IOC: trees planted per month of the inventory's latest year, and the count at the "
        "month's end ('' = trees outside every commune)."
    ),
    keywords=("IOC", "trees"),
    source="ioc_tree_count_month",
    geometry=None,
    geometry_type=None,
    fields=(
        _f("id", "string", "feature id: code and month"),
        _f("commune_code", "string", "commune code ('' = outside every commune)"),
        _MONTH,
        _f("planted", "integer", "trees planted in the month", "trees"),
        _f("trees", "integer", "trees at the end of the month", "trees"),
    ),
)

# Values stored by `smarttrees raster sample` (migration 0009), at the tree or stand they describe.
RASTER_SAMPLES = Layer(
    id="raster_samples",
    title="Raster values at trees and stands",
    title_vi="Giá trị raster tại cây và lô rừng",
    description=(
        "A raster's value at each tree, or at a point on each stand, stored by "
        "`smarttrees raster sample` under a name (filter on name and value)."
    ),
    keywords=("raster", "sampling"),
    source=(
        "SELECT r.id, r.layer, r.feature_id, coalesce(t.tree_code, s.stand_code) AS "
        "feature_code, r.name, r.value, r.band, r.sampled_at, "
        "coalesce(t.geom, ST_PointOnSurface(s.geom)) AS geom "
        "FROM smarttrees.raster_samples r "
        "LEFT JOIN smarttrees.trees t ON r.layer = 'trees' AND t.id = r.feature_id "
        "LEFT JOIN smarttrees.stands s ON r.layer = 'stands' AND s.id = r.feature_id"
    ),
    fields=(
        _f("layer", "string", "trees or stands"),
        _f("feature_id", "integer", "id of the tree or stand"),
        _f("feature_code", "string", "tree code or stand code"),
        _f("name", "string", "name of the sampled raster value, e.g. elevation"),
        _f("value", "number", "the raster's value there (null: nodata or outside)"),
        _f("band", "integer", "the raster band sampled"),
        _f("sampled_at", "datetime", "when the value was sampled"),
    ),
)

# Tree care (issue 19, migrations 0012_care_*): what the department looks after. No person is
# named: crews, inspectors and accounts, devices, and what the public typed stay out.
CARE_INSPECTIONS_DUE = Layer(
    id="care_inspections_due",
    title="Tree inspections: risk class and next due date",
    title_vi="Kiểm tra cây: cấp rủi ro và hạn kiểm tra",
    description=(
        "Every inspected tree's latest ISA TRAQ risk class and the day its next inspection is "
        "due (the inspection cycle of its category and risk class)."
    ),
    keywords=("tree care", "inspections", "risk"),
    source=(
        "SELECT s.tree_id AS id, s.tree_code, s.category, s.commune_code, s.risk, "
        "s.last_inspected_on, s.next_due, s.next_due <= current_date AS due, "
        "array_to_string(s.defects, ';') AS defects, s.geom "
        "FROM smarttrees.care_tree_status s"
    ),
    fields=(
        _f("tree_code", "string", "tree code"),
        _f("category", "string", "urban, scattered or plantation"),
        _f("commune_code", "string", "commune code"),
        _f("risk", "string", "ISA TRAQ risk class: low, moderate, high or extreme"),
        _f("last_inspected_on", "date", "day of the latest inspection"),
        _f("next_due", "date", "day the next inspection is due"),
        _f("due", "boolean", "the next inspection is due today or overdue"),
        _f("defects", "string", "defects found at the latest inspection, ';'-separated"),
    ),
)

CARE_WORK_ORDERS = Layer(
    id="care_work_orders",
    title="Open work orders",
    title_vi="Lệnh công việc đang mở",
    description="Work orders requested, approved or scheduled, at their first tree or spot.",
    keywords=("tree care", "work orders"),
    source=(
        "SELECT o.id, o.work_type, o.status, o.priority, o.origin, o.scheduled_on, "
        "o.estimated_cost_vnd, (SELECT count(*) FROM smarttrees.care_work_order_trees x "
        "WHERE x.order_id = o.id)::integer AS trees, o.commune_code, o.created_at, o.geom "
        "FROM smarttrees.care_work_orders o "
        "WHERE o.status IN ('requested', 'approved', 'scheduled')"
    ),
    fields=(
        _f("work_type", "string", "pruning, removal, planting, stump_removal, staking, "
           "watering or cabling"),
        _f("status", "string", "requested, approved or scheduled"),
        _f("priority", "integer", "1 (most urgent) to 5"),
        _f("origin", "string", "staff, inspection, report, storm or replacement"),
        _f("scheduled_on", "date", "day the work is scheduled"),
        _f("estimated_cost_vnd", "integer", "estimated cost from the price catalogue", "VND"),
        _f("trees", "integer", "trees the order names", "trees"),
        _f("commune_code", "string", "commune code"),
        _f("created_at", "datetime", "when the order was requested"),
    ),
)

CARE_STORM_DAMAGE = Layer(
    id="care_storm_damage",
    title="Storm damage to trees",
    title_vi="Cây bị thiệt hại do bão",
    description="Damage field teams recorded under each storm event, with its priority.",
    keywords=("tree care", "storm"),
    source=(
        "SELECT d.id, d.storm_id, s.name AS storm_name, d.damage, d.blocks_road, "
        "d.hazard_to_people, d.priority, t.tree_code, d.observed_at, d.commune_code, "
        "d.work_order_id, d.geom FROM smarttrees.care_damage d "
        "JOIN smarttrees.care_storms s ON s.id = d.storm_id "
        "LEFT JOIN smarttrees.trees t ON t.id = d.tree_id"
    ),
    fields=(
        _f("storm_id", "integer", "storm event id"),
        _f("storm_name", "string", "storm name"),
        _f("damage", "string", "fallen, broken, leaning or uprooted"),
        _f("blocks_road", "boolean", "the tree blocks a road"),
        _f("hazard_to_people", "boolean", "the tree endangers people"),
        _f("priority", "integer", "1 hazard to people, 2 road blocked, 3 fallen or uprooted, "
           "4 broken or leaning"),
        _f("tree_code", "string", "tree code, when the tree is in the inventory"),
        _f("observed_at", "datetime", "when the damage was seen"),
        _f("commune_code", "string", "commune code"),
        _f("work_order_id", "integer", "the work order opened for it, if any"),
    ),
)

CARE_STORM_DAMAGE_BY_COMMUNE = Layer(
    id="care_storm_damage_by_commune",
    title="Storm damage per commune",
    title_vi="Thiệt hại cây do bão theo xã",
    description="IOC: each storm's damage records per commune in force, by kind.",
    keywords=("IOC", "tree care", "storm"),
    source=(
        "SELECT storm_id || ':' || commune_code AS id, * "
        "FROM smarttrees.care_storm_damage_by_commune"
    ),
    geometry_type="MultiPolygon",
    fields=(
        _f("id", "string", "feature id: storm id and commune code"),
        _f("storm_id", "integer", "storm event id"),
        _f("storm_name", "string", "storm name"),
        _f("commune_code", "string", "commune code"),
        _f("commune_name", "string", "commune name"),
        *(_f(n, "integer", d, "trees") for n, d in (
            ("records", "damage records"), ("fallen", "fallen trees"),
            ("uprooted", "uprooted trees"), ("broken", "broken trees"),
            ("leaning", "leaning trees"), ("blocking_roads", "trees blocking a road"),
            ("hazards_to_people", "trees endangering people"),
            ("without_order", "records without a work order"),
        )),
    ),
)

CARE_REPORTS = Layer(
    id="care_reports",
    title="Hazard reports from the public",
    title_vi="Phản ánh cây nguy hiểm của người dân",
    description=(
        "Where people reported a dangerous or fallen tree, the kind of hazard and what staff "
        "decided; nothing a reporter typed, and no contact."
    ),
    keywords=("tree care", "public reports"),
    source=(
        "SELECT r.id, r.hazard, r.status, r.received_at::date AS received_on, r.commune_code, "
        "t.tree_code, r.work_order_id, r.geom FROM smarttrees.care_reports r "
        "LEFT JOIN smarttrees.trees t ON t.id = r.tree_id"
    ),
    fields=(
        _f("hazard", "string", "fallen, leaning, broken_branch, dead, blocking or other"),
        _f("status", "string", "new, accepted or rejected"),
        _f("received_on", "date", "day the report came in"),
        _f("commune_code", "string", "commune code"),
        _f("tree_code", "string", "tree code, when the report named one"),
        _f("work_order_id", "integer", "the work order it became, if accepted"),
    ),
)

CARE_LAYERS: tuple[Layer, ...] = (
    CARE_INSPECTIONS_DUE, CARE_WORK_ORDERS, CARE_STORM_DAMAGE, CARE_STORM_DAMAGE_BY_COMMUNE,
    CARE_REPORTS,
)

# What db.ioc(indicator, by=…) reads.
IOC_LAYERS: dict[tuple[str, str], Layer] = {
    ("documents", "commune"): DOCUMENTS_BY_COMMUNE,
    ("documents", "commune_month"): DOCUMENTS_BY_COMMUNE_MONTH,
    ("documents", "agency_month"): DOCUMENTS_BY_AGENCY_MONTH,
    ("documents", "flow"): DOCUMENT_FLOWS,
    ("citizen_support", "commune"): CITIZEN_SUPPORT_BY_COMMUNE,
    ("citizen_support", "commune_detail"): CITIZEN_SUPPORT_BY_COMMUNE_DETAIL,
    ("citizen_support", "province"): CITIZEN_SUPPORT_BY_PROVINCE,
    ("trees", "commune"): TREES_BY_COMMUNE,
    ("trees", "month"): TREE_COUNT_BY_MONTH,
    ("storm_damage", "commune"): CARE_STORM_DAMAGE_BY_COMMUNE,
}

# Computed from the trees (migration 0010): read after smarttrees.carbon.refresh().
CARBON_LAYERS: tuple[Layer, ...] = (TREE_CARBON, STAND_CARBON, COMMUNE_CARBON, SPECIES_CARBON)

LAYERS: tuple[Layer, ...] = (
    TREES,
    STANDS,
    NURSERIES,
    SEEDLING_LOTS,
    TIMBER_LOGS,
    CUSTODY_EVENTS,
    RASTER_SAMPLES,
    COMMUNES,
    TREE_HISTORY,
    SPECIES,
    DOCUMENTS_BY_COMMUNE,
    CITIZEN_SUPPORT_BY_COMMUNE,
    *CARBON_LAYERS,
    DOCUMENTS_BY_AGENCY_MONTH,
    DOCUMENTS_BY_COMMUNE_MONTH,
    DOCUMENT_FLOWS,
    CITIZEN_SUPPORT_BY_COMMUNE_DETAIL,
    CITIZEN_SUPPORT_BY_PROVINCE,
    TREES_BY_COMMUNE,
    TREE_COUNT_BY_MONTH,
    *CARE_LAYERS,
)


def get(layer_id: str) -> Layer | None:
    """The layer ``layer_id``, or ``None``."""
    return next((layer for layer in LAYERS if layer.id == layer_id), None)


# --- The field vocabulary, as the README shows it -----------------------------------------------
VOCABULARY_BEGIN = "<!-- field vocabulary, generated: python -m smarttrees.catalog --markdown -->"
VOCABULARY_END = "<!-- end of the field vocabulary -->"


def markdown(layers: tuple[Layer, ...] = LAYERS) -> str:
    """The public fields of ``layers`` as Markdown: per layer, a table of name, type, unit, meaning.

    The README's field vocabulary is this text between :data:`VOCABULARY_BEGIN` and
    :data:`VOCABULARY_END` (a test keeps the two equal).
    """
    lines = [VOCABULARY_BEGIN]
    for layer in layers:
        shape = layer.geometry_type or "no geometry"
        key = f", key `{layer.key}`" if layer.key else ""
        lines += ["", f"**`{layer.id}`** — {layer.title} ({shape}{key})", ""]
        lines += ["| field | type | unit | description |", "|---|---|---|---|"]
        lines += [
            f"| `{f.name}` | {f.type} | {_cell(f.unit or '')} | {_cell(_described(f))} |"
            for f in layer.public_fields
        ]
    lines += ["", VOCABULARY_END]
    return "\n".join(lines) + "\n"


def _described(field: Field) -> str:
    """A field's description, saying when the analyst API reads it only on request."""
    if field.on_request:
        return f"{field.description} (analyst API: on request)"
    return field.description


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell (a ``|`` would split it)."""
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    """``python -m smarttrees.catalog --markdown``: print the field vocabulary."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m smarttrees.catalog", description="The catalogue of public layers."
    )
    parser.add_argument("--markdown", action="store_true", help="print the field vocabulary")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
    else:
        print("\n".join(f"{layer.id}: {', '.join(layer.field_names)}" for layer in LAYERS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

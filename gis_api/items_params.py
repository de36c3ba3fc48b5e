"""The items requests' parameters, parsed into typed values before any SQL is built.

:func:`parse_items` turns the query string of ``/collections/{id}/items`` into an
:class:`ItemsQuery` (limit, offset, keyset ``after``, bbox, CRSs, property filters, the CQL2
filter already translated and checked); :mod:`gis_api.features` makes the SQL from it. Every
fault names the parameter it is in and is an :class:`~gis_api.errors.InvalidParameter` or
:class:`~gis_api.errors.InvalidFilter` (400).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from gis_api import collections, cql2, provinces
from gis_api.collections import Collection
from gis_api.crs import CRS84, Crs, parse_crs
from gis_api.errors import InvalidFilter, InvalidParameter, NotFound

Fragment = cql2.Fragment


def collection_or_404(request: Request) -> Collection:
    """The collection named in the path (``collection_id``), or a 404."""
    cid = request.path_params["collection_id"]
    found = collections.get(cid)
    if found is None:
        raise NotFound(f"no collection {cid!r}")
    return found


# Query parameters of the items endpoint besides property=value filters.
ITEMS_PARAMETERS = frozenset({
    "f", "lang", "limit", "offset", "after", "bbox", "bbox-crs", "crs", "filter", "filter-lang",
    "filter-crs", "datetime", "skipGeometry", "properties", "sortby", "resulttype", "q",
})
FILTER_LANGUAGES = ("cql2-text", "cql2-json")


@dataclass
class ItemsQuery:
    """A validated items request.

    Example: ``ItemsQuery(TREES, limit=100, bbox=(105.8, 21.5, 105.9, 21.6))``.
    """

    collection: Collection
    limit: int
    offset: int = 0
    after: str | int | None = None
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: Crs = CRS84
    crs: Crs = CRS84
    filter: Fragment | None = None
    equals: dict[str, str] = field(default_factory=dict)
    skip_geometry: bool = False
    properties: tuple[str, ...] | None = None  # None: every published property
    province: Fragment | None = None  # ``province=``: its communes (gis_api.provinces)

    @property
    def is_unfiltered(self) -> bool:
        """True when every feature of the collection matches."""
        return (self.bbox is None and self.filter is None and not self.equals
                and self.province is None)

    @property
    def first_page(self) -> bool:
        """True when the page starts at the first match."""
        return self.offset == 0 and self.after is None


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(f"{name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidParameter(f"{name}: {value} is outside {low}..{high}")
    return value


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    """A ``bbox`` parameter: four (or six, with heights) finite numbers, low before high."""
    try:
        numbers = [float(v) for v in raw.split(",")]
    except ValueError:
        raise InvalidParameter(f"bbox: {raw!r} is not a list of numbers") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise InvalidParameter(f"bbox: {raw!r} needs 4 or 6 finite numbers")
    x1, y1, x2, y2 = numbers
    if x1 > x2 or y1 > y2:
        raise InvalidParameter(f"bbox: {raw!r} has a lower corner above its upper corner")
    return x1, y1, x2, y2


def _boolean(params: Mapping[str, str], name: str) -> bool:
    raw = (params.get(name) or "false").lower()
    if raw not in ("true", "false"):
        raise InvalidParameter(f"{name}: {params[name]!r} is neither true nor false")
    return raw == "true"


def _after(collection: Collection, raw: str | None) -> str | int | None:
    if raw is None or raw == "":
        return None
    if collection.id_type == "integer":
        try:
            return int(raw)
        except ValueError:
            raise InvalidParameter(f"after: {raw!r} is not an id of {collection.id}") from None
    return raw


def _selected(collection: Collection, raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    # Each name once: a repeated one made duplicate JSON keys and files GDAL cannot write.
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in collection.property_names]
    if unknown:
        raise InvalidParameter(f"properties: unknown {', '.join(unknown)} of {collection.id}")
    return names


def _equals(collection: Collection, params: Mapping[str, str]) -> dict[str, str]:
    """The ``<property>=<value>`` parameters, each value checked against the property's type.

    A value its property can never hold (``species_id=abc``) is a 400, as the same value in a
    filter is, not an empty page.
    """
    equals: dict[str, str] = {}
    for name, value in params.items():
        prop = collection.property(name)
        if prop is None:
            continue
        if prop.type == "object":
            raise InvalidParameter(
                f"{name}: an object is not compared with '='; filter on one of its members "
                f"with CQL2, e.g. filter=\"{name}.Ghi chú\" = 'x'")
        if not _holds(prop.type, prop.format, value):
            kind = prop.format or prop.type
            raise InvalidParameter(f"{name}: {value!r} is not a valid {kind} ({name} is a {kind})")
        equals[name] = value
    return equals


def _holds(json_type: str, json_format: str | None, value: str) -> bool:
    """Whether a property of this JSON Schema type and format can hold the text ``value``."""
    try:
        if json_format == "date":
            dt.date.fromisoformat(value)
        elif json_format == "date-time":
            dt.datetime.fromisoformat(value)
        elif json_type == "integer":
            return re.fullmatch(r"-?[0-9]{1,18}", value) is not None
        elif json_type == "number":
            return math.isfinite(float(value))
        elif json_type == "boolean":
            return value in ("true", "false")
    except ValueError:
        return False
    return True


def parse_items(
    collection: Collection,
    params: Mapping[str, str],
    default_limit: int,
    max_limit: int,
    filter_limits: cql2.Limits = cql2.Limits(),  # noqa: B008 - frozen, shared safely
    province_communes: provinces.Provinces | None = None,
) -> ItemsQuery:
    """Validate the query parameters of an items request.

    ``province_communes``: each province's communes, for the ``province`` parameter and
    queryable (:mod:`gis_api.provinces`); needed when :func:`provinces.mentioned` says so.

    Raises
    ------
    InvalidParameter
        A malformed or out-of-range value, an unknown parameter, a limit above the cap (400).
    InvalidFilter
        A filter that does not parse, names an unknown property, compares values of different
        types or is larger than ``filter_limits`` (400).

    """
    by_province = provinces.offered(collection)
    for name in params:
        if name not in ITEMS_PARAMETERS and name not in collection.property_names and not (
                by_province and name == provinces.PROVINCE):
            raise InvalidParameter(f"unknown query parameter {name!r} for {collection.id}")
    if by_province and provinces.mentioned(params) and province_communes is None:
        raise ValueError("parse_items: the province filter needs province_communes")
    communes = province_communes or {}
    if params.get("sortby"):
        raise InvalidParameter("sortby: sorting is not supported; items come in id order")
    if params.get("q"):
        raise InvalidParameter("q: free-text search is not supported; use filter")
    query = ItemsQuery(
        collection,
        limit=_int(params, "limit", min(default_limit, max_limit), 1, max_limit),
        offset=_int(params, "offset", 0, 0, 10**9),
        after=_after(collection, params.get("after")),
        bbox=parse_bbox(params["bbox"]) if params.get("bbox") else None,
        bbox_crs=parse_crs(params.get("bbox-crs"), "bbox-crs"),
        crs=parse_crs(params.get("crs"), "crs"),
        equals=_equals(collection, params),
        skip_geometry=_boolean(params, "skipGeometry"),
        properties=_selected(collection, params.get("properties")),
    )
    if by_province and provinces.PROVINCE in params:
        query.province = provinces.condition(communes, [params[provinces.PROVINCE]])
    if (params.get("filter-lang") or "cql2-text").lower() not in FILTER_LANGUAGES:
        raise InvalidFilter(f"filter-lang: {params['filter-lang']!r} is not supported; use "
                            f"{' or '.join(FILTER_LANGUAGES)}")
    filter_crs = parse_crs(params.get("filter-crs"), "filter-crs")  # checked even if unused
    if params.get("filter"):
        tree = cql2.parse(params["filter"], params.get("filter-lang"))
        cql2.check_size(tree, filter_limits)
        query.filter = cql2.Translator(collection, filter_crs, communes).where(tree)
    if query.bbox and not collection.geometry_column:
        raise InvalidParameter(f"bbox: {collection.id} has no geometry")
    return query


def parse_id(collection: Collection, raw: str) -> str | int | None:
    """An item id in its column's type, or ``None`` when it cannot be one (so: not found)."""
    if collection.id_type != "integer":
        return raw
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


# Query parameters of the one-item endpoint.
ITEM_PARAMETERS = frozenset({"f", "crs", "lang"})


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query parameters as a dict; a parameter given twice is refused (which would win?)."""
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidParameter(f"{key}: given more than once")
        params[key] = value
    return params


def parse_item(params: Mapping[str, str]) -> Crs:
    """Check the query parameters of a one-item request; the output CRS they ask for."""
    for name in params:
        if name not in ITEM_PARAMETERS:
            raise InvalidParameter(f"unknown query parameter {name!r} for one item")
    return parse_crs(params.get("crs"))

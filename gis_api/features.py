"""Features SQL: one statement per page, GeoJSON built by PostGIS.

Each feature leaves the database as finished GeoJSON text (``json_build_object`` with
``ST_AsGeoJSON``); Python only joins the rows into a FeatureCollection, so no geometry is ever
walked in Python. Pages are ordered by the id column and continue from the last id seen (keyset
pagination), so page 5,000 costs what page 1 costs; ``offset`` is still honoured.

``numberMatched`` is exact when it is free (the whole result fits in the first page) or cheap
(the planner estimates at most ``exact_count_max`` matches: a capped count runs); above that it
is omitted, which OGC API Features allows.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from gis_api import cql2
from gis_api.collections import Collection
from gis_api.crs import CRS84, Crs, from_input, parse_crs, to_output
from gis_api.errors import InvalidFilter, InvalidParameter

Fragment = tuple[sql.Composable, list[Any]]
Statement = tuple[sql.Composed, list[Any]]

# Query parameters of the items endpoint besides property=value filters.
ITEMS_PARAMETERS = frozenset({
    "f", "lang", "limit", "offset", "after", "bbox", "bbox-crs", "crs", "filter", "filter-lang",
    "filter-crs", "datetime", "skipGeometry", "properties", "sortby", "resulttype", "q",
})


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

    @property
    def is_unfiltered(self) -> bool:
        """True when every feature of the collection matches."""
        return self.bbox is None and self.filter is None and not self.equals

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
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
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
) -> ItemsQuery:
    """Validate the query parameters of an items request.

    Raises
    ------
    InvalidParameter
        A malformed or out-of-range value, an unknown parameter, a limit above the cap (400).
    InvalidFilter
        A filter that does not parse, names an unknown property, compares values of different
        types or is larger than ``filter_limits`` (400).

    """
    for name in params:
        if name not in ITEMS_PARAMETERS and name not in collection.property_names:
            raise InvalidParameter(f"unknown query parameter {name!r} for {collection.id}")
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
        skip_geometry=params.get("skipGeometry", "false").lower() == "true",
        properties=_selected(collection, params.get("properties")),
    )
    if params.get("filter"):
        tree = cql2.parse(params["filter"], params.get("filter-lang"))
        cql2.check_size(tree, filter_limits)
        filter_crs = parse_crs(params.get("filter-crs"), "filter-crs")
        query.filter = cql2.Translator(collection, filter_crs).where(tree)
    if query.bbox and not collection.geometry_column:
        raise InvalidParameter(f"bbox: {collection.id} has no geometry")
    return query


@contextmanager
def evaluating(query: ItemsQuery) -> Iterator[None]:
    """Run a query's statements; a filter whose values PostgreSQL cannot compute is a 400.

    Types are checked before any SQL is built (:mod:`gis_api.cql2`); what is left is what only
    the data shows, such as ``dbh_cm / (height_m - height_m) > 1`` dividing by zero, or an
    integer overflowing. Without a filter, such an error is the server's own and stays a 500.
    """
    try:
        yield
    except psycopg.errors.DataError as exc:
        if query.filter is None:
            raise
        reason = exc.diag.message_primary or type(exc).__name__
        raise InvalidFilter(f"filter: cannot be evaluated: {reason}") from None


@functools.lru_cache(maxsize=64)
def relation(collection: Collection) -> sql.Composable:
    """The FROM item of a collection, aliased ``t``."""
    if collection.query is not None:
        return sql.SQL("({}) AS t").format(sql.SQL(collection.query))  # fixed text, no input
    return sql.SQL("smarttrees.{} AS t").format(sql.Identifier(collection.table or ""))


@functools.lru_cache(maxsize=256)
def feature_json(
    collection: Collection,
    crs: Crs,
    skip_geometry: bool = False,
    properties: tuple[str, ...] | None = None,
) -> sql.Composable:
    """SQL for one row as GeoJSON Feature text (``properties``: a subset to include).

    Rendered once per shape and cached: composing it costs more than half a millisecond.
    """
    names = collection.property_names if properties is None else properties
    props = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(p), sql.Identifier("t", p)) for p in names
    )
    geometry: sql.Composable = sql.SQL("'null'")
    if collection.geometry_column and not skip_geometry:
        geom = to_output(sql.Identifier("t", collection.geometry_column), crs)
        geometry = sql.SQL("coalesce(ST_AsGeoJSON({}, {}), 'null')").format(
            geom, sql.Literal(crs.decimals)
        )
    # Text concatenation: the geometry JSON from ST_AsGeoJSON is not parsed again (a ::json
    # cast would), which saves about a sixth of the database time per feature.
    composed = sql.SQL(
        "'{{\"type\":\"Feature\",\"id\":' || to_json({})::text || ',\"geometry\":' || {} "
        "|| ',\"properties\":' || json_build_object({})::text || '}}'"
    ).format(sql.Identifier("t", collection.id_column), geometry, props)
    return sql.SQL(composed.as_string(None))  # identifiers and constants only: no context


def conditions(query: ItemsQuery, with_after: bool) -> Fragment:
    """The WHERE clause of a query (bbox, property filters, CQL2; the keyset `after`)."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    c = query.collection
    if query.bbox and c.geometry_column:
        envelope = from_input(sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, 4326)"), query.bbox_crs)
        parts.append(
            sql.SQL("ST_Intersects({}, {})").format(
                sql.Identifier("t", c.geometry_column), envelope
            )
        )
        params += list(query.bbox)
    for name, value in query.equals.items():
        parts.append(sql.SQL("{}::text = %s").format(sql.Identifier("t", name)))
        params.append(value)
    if query.filter is not None:
        parts.append(query.filter[0])
        params += query.filter[1]
    if with_after and query.after is not None:
        parts.append(sql.SQL("{} > %s").format(sql.Identifier("t", c.id_column)))
        params.append(query.after)
    if not parts:
        return sql.SQL("TRUE"), []
    return sql.SQL(" AND ").join(parts), params


def page_sql(query: ItemsQuery) -> Statement:
    """SQL of one page: rows (feature text, id); one row more than the limit, to see a next."""
    where, params = conditions(query, with_after=True)
    c = query.collection
    statement = sql.SQL(
        "SELECT {feature}, {id} FROM {rel} WHERE {where} ORDER BY {id} LIMIT %s OFFSET %s"
    ).format(
        feature=feature_json(c, query.crs, query.skip_geometry, query.properties),
        id=sql.Identifier("t", c.id_column),
        rel=relation(c),
        where=where,
    )
    return statement, [*params, query.limit + 1, query.offset]


def estimate_sql(query: ItemsQuery) -> Statement:
    """EXPLAIN of the matching rows: the planner's estimate of numberMatched."""
    where, params = conditions(query, with_after=False)
    statement = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(
        relation(query.collection), where
    )
    return statement, params


def count_sql(query: ItemsQuery, cap: int) -> Statement:
    """Exact count of matching rows, stopping after ``cap + 1``."""
    where, params = conditions(query, with_after=False)
    statement = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT %s) AS m").format(
        relation(query.collection), where
    )
    return statement, [*params, cap + 1]


def item_sql(collection: Collection, crs: Crs) -> sql.Composed:
    """SQL of one feature by id (one parameter)."""
    return sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        feature_json(collection, crs),
        relation(collection),
        sql.Identifier("t", collection.id_column),
    )


def parse_id(collection: Collection, raw: str) -> str | int | None:
    """An item id in its column's type, or ``None`` when it cannot be one (so: not found)."""
    if collection.id_type != "integer":
        return raw
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None

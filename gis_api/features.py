"""Features SQL: one statement per page, GeoJSON built by PostGIS.

The SQL is built here from an already parsed :class:`~gis_api.items_params.ItemsQuery`; the
request's parameters are parsed in :mod:`gis_api.items_params`.

Each feature leaves the database as finished GeoJSON text (``json_build_object`` with
``ST_AsGeoJSON``); Python only joins the rows into a FeatureCollection, so no geometry is ever
walked in Python. Pages are ordered by the id column and continue from the last id seen (keyset
pagination), so page 5,000 costs what page 1 costs; ``offset`` is still honoured.

``numberMatched`` is exact when it is free (the whole result fits in the first page) or cheap
(the planner estimates at most ``exact_count_max`` matches: a capped count runs); above that it
is omitted, which OGC API Features allows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from gis_api.collections import Collection
from gis_api.crs import Crs, from_input, to_output
from gis_api.errors import InvalidFilter
from gis_api.items_params import Fragment, ItemsQuery

Statement = tuple[sql.Composed, list[Any]]


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
    names = (
        tuple(p.name for p in collection.feature_properties) if properties is None else properties
    )
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
    if query.province is not None:
        parts.append(query.province[0])
        params += query.province[1]
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


def page_text_sql(query: ItemsQuery) -> Statement:
    """SQL of one page as one row: the features joined, the rows read, the page's last id.

    The page's rows are those of :func:`page_sql` (one more than the limit, to see a next
    page), and their features leave PostgreSQL as one text value, ``feature,feature,…`` in id
    order, ready to go between the brackets of a FeatureCollection; the fourth column is the
    length in bytes of the extra feature, which the caller cuts off (:func:`page_features`).
    Rows sent one by one woke the server for every 8 KB the database sent (18 times for a page
    of 400 trees); one value comes in a few reads, and Python neither decodes nor joins it.

    The aggregates take the rows in the order the sub-select sorts them, as PostgreSQL does
    for a plain aggregate over a sorted sub-select; an ``ORDER BY`` inside them, or a window
    numbering the rows, cost a quarter more database time.
    """
    rows, params = page_sql(query)
    statement = sql.SQL(
        "SELECT coalesce(string_agg(r.feature, ','), ''), count(*),"
        " (array_agg(r.id))[least(count(*), %s)], (array_agg(octet_length(r.feature)))[%s]"
        " FROM ({rows}) AS r (feature, id)"
    ).format(rows=rows)
    return statement, [query.limit, query.limit + 1, *params]


def page_features(joined: bytes, read: int, extra_length: int | None, limit: int) -> bytes:
    """The features of a page from a :func:`page_text_sql` row: without the extra one, if read.

    ``joined`` is ``feature,feature,…`` of the ``read`` rows; past the ``limit``, the last
    feature (``extra_length`` bytes) and the comma before it are the next page's.
    """
    if read <= limit or extra_length is None:
        return joined
    return joined[: len(joined) - extra_length - 1]


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

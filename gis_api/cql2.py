"""CQL2 filters (OGC API Features Part 3) translated into SQL with bound parameters.

pygeofilter parses CQL2 text and JSON into an AST; this module walks that AST and emits
``psycopg.sql`` fragments whose values are all placeholders. Property names are checked
against the collection's published properties, so a filter can neither read an unpublished
column nor inject SQL. Anything outside the supported subset is a 400 naming what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import orjson
from psycopg import sql
from pygeofilter import ast, values

from gis_api.collections import Collection
from gis_api.crs import CRS84, Crs, from_input
from gis_api.errors import InvalidFilter

Fragment = tuple[sql.Composable, list[Any]]

_COMPARISONS = {
    ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
    ast.GreaterThan: ">", ast.GreaterEqual: ">=",
}
_SPATIAL = {
    ast.GeometryIntersects: "ST_Intersects", ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains", ast.GeometryWithin: "ST_Within",
    ast.GeometryTouches: "ST_Touches", ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryOverlaps: "ST_Overlaps", ast.GeometryEquals: "ST_Equals",
}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/"}
_TEMPORAL = {ast.TimeAfter: ">", ast.TimeBefore: "<", ast.TimeEquals: "="}
_GEOMETRY_NAMES = ("geom", "geometry")


def parse(text: str, lang: str | None) -> ast.AstType:
    """Parse a filter in ``cql2-text`` (default) or ``cql2-json``; 400 when it does not parse."""
    lang = (lang or "cql2-text").lower()
    try:
        if lang == "cql2-json":
            from pygeofilter.parsers.cql2_json import parse as parse_json

            return parse_json(_normalise_json(orjson.loads(text)))
        if lang == "cql2-text":
            from pygeofilter.parsers.cql2_text import parse as parse_text

            return parse_text(text)
    except Exception as exc:  # the parsers raise many kinds; all mean "malformed"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidFilter(f"filter: cannot parse {lang}: {first}") from None
    raise InvalidFilter(f"filter-lang: {lang!r} is not supported; use cql2-text or cql2-json")


def _normalise_json(node: Any) -> Any:
    """Rewrite the CQL2-JSON forms pygeofilter 0.4 misreads.

    It reads a ``{"bbox": [...]}`` array in the wrong order (so it becomes a GeoJSON polygon),
    and expects the draft ``between`` form ``[x, [low, high]]`` instead of ``[x, low, high]``.
    """
    if isinstance(node, dict):
        args = node.get("args")
        if node.get("op") == "between" and isinstance(args, list) and len(args) == 3:
            node = {**node, "args": [args[0], [args[1], args[2]]]}
        box = node.get("bbox")
        if set(node) == {"bbox"} and isinstance(box, list) and len(box) in (4, 6):
            x1, y1, x2, y2 = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
            ring = [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]
            return {"type": "Polygon", "coordinates": [ring]}
        return {k: _normalise_json(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise_json(v) for v in node]
    return node


class Translator:
    """Turns one parsed filter into SQL for one collection."""

    def __init__(self, collection: Collection, filter_crs: Crs = CRS84) -> None:
        self.collection = collection
        self.filter_crs = filter_crs

    def where(self, node: ast.AstType) -> Fragment:
        """The SQL condition of a whole filter."""
        return self._condition(node)

    # -- conditions -------------------------------------------------------------------------
    def _condition(self, node: Any) -> Fragment:
        handler = self._handler(node)
        return handler(node)

    def _handler(self, node: Any) -> Callable[[Any], Fragment]:
        for cls, method in (
            (ast.And, self._combination), (ast.Or, self._combination), (ast.Not, self._not),
            (ast.Comparison, self._comparison), (ast.Between, self._between),
            (ast.Like, self._like), (ast.In, self._in), (ast.IsNull, self._is_null),
            (ast.SpatialComparisonPredicate, self._spatial), (ast.DistanceWithin, self._dwithin),
            (ast.BBox, self._bbox), (ast.TemporalPredicate, self._temporal),
            (ast.Include, self._include),
        ):
            if isinstance(node, cls):
                return method
        if isinstance(node, bool):
            return self._include_bool
        raise InvalidFilter(f"filter: {_describe(node)} is not supported")

    def _combination(self, node: ast.Combination) -> Fragment:
        left, lp = self._condition(node.lhs)
        right, rp = self._condition(node.rhs)
        op = sql.SQL(" AND " if isinstance(node, ast.And) else " OR ")
        return sql.SQL("({})").format(sql.Composed([left, op, right])), lp + rp

    def _not(self, node: ast.Not) -> Fragment:
        inner, params = self._condition(node.sub_node)
        return sql.SQL("(NOT {})").format(inner), params

    def _include(self, node: ast.Include) -> Fragment:
        return sql.SQL("FALSE" if node.not_ else "TRUE"), []

    def _include_bool(self, node: bool) -> Fragment:
        return sql.SQL("TRUE" if node else "FALSE"), []

    def _comparison(self, node: ast.Comparison) -> Fragment:
        left, lp = self._scalar(node.lhs)
        right, rp = self._scalar(node.rhs)
        op = sql.SQL(_COMPARISONS[type(node)])
        return sql.SQL("({} {} {})").format(left, op, right), lp + rp

    def _between(self, node: ast.Between) -> Fragment:
        lhs, p1 = self._scalar(node.lhs)
        low, p2 = self._scalar(node.low)
        high, p3 = self._scalar(node.high)
        neg = sql.SQL("NOT " if node.not_ else "")
        return sql.SQL("({} {}BETWEEN {} AND {})").format(lhs, neg, low, high), p1 + p2 + p3

    def _like(self, node: ast.Like) -> Fragment:
        lhs, params = self._scalar(node.lhs)
        if not isinstance(node.pattern, str):
            raise InvalidFilter("filter: LIKE needs a text pattern")
        op = ("NOT " if node.not_ else "") + ("ILIKE" if node.nocase else "LIKE")
        return sql.SQL("({}::text {} %s)").format(lhs, sql.SQL(op)), [*params, node.pattern]

    def _in(self, node: ast.In) -> Fragment:
        lhs, params = self._scalar(node.lhs)
        items = [self._scalar(v) for v in node.sub_nodes]
        if not items:
            raise InvalidFilter("filter: IN needs at least one value")
        listed = sql.SQL(", ").join(frag for frag, _ in items)
        neg = sql.SQL("NOT " if node.not_ else "")
        item_params = [p for _, ps in items for p in ps]
        return sql.SQL("({} {}IN ({}))").format(lhs, neg, listed), params + item_params

    def _is_null(self, node: ast.IsNull) -> Fragment:
        lhs, params = self._scalar(node.lhs)
        return sql.SQL("({} IS {}NULL)").format(lhs, sql.SQL("NOT " if node.not_ else "")), params

    def _spatial(self, node: ast.SpatialComparisonPredicate) -> Fragment:
        left, lp = self._geometry(node.lhs)
        right, rp = self._geometry(node.rhs)
        function = sql.SQL(_SPATIAL[type(node)])
        return sql.SQL("{}({}, {})").format(function, left, right), lp + rp

    def _dwithin(self, node: ast.DistanceWithin) -> Fragment:
        left, lp = self._geometry(node.lhs)
        right, rp = self._geometry(node.rhs)
        metres = _metres(node.distance, node.units)
        return (
            sql.SQL("ST_DWithin({}::geography, {}::geography, %s)").format(left, right),
            [*lp, *rp, metres],
        )

    def _bbox(self, node: ast.BBox) -> Fragment:
        left, lp = self._geometry(node.lhs)
        box = [node.minx, node.miny, node.maxx, node.maxy]
        right, rp = self._envelope(box)
        return sql.SQL("ST_Intersects({}, {})").format(left, right), lp + rp

    def _temporal(self, node: ast.TemporalPredicate) -> Fragment:
        op = _TEMPORAL.get(type(node))
        if op is None or not isinstance(node.rhs, date):
            raise InvalidFilter(
                "filter: only T_AFTER, T_BEFORE and T_EQUALS with a date or timestamp are supported"
            )
        left, lp = self._scalar(node.lhs)
        return sql.SQL("({} {} %s)").format(left, sql.SQL(op)), [*lp, node.rhs]

    # -- expressions ------------------------------------------------------------------------
    def _scalar(self, node: Any) -> Fragment:
        if isinstance(node, ast.Attribute):
            return self._attribute(node.name), []
        if isinstance(node, bool | int | float | str | date | datetime):
            return sql.SQL("%s"), [node]
        if isinstance(node, ast.Arithmetic):
            left, lp = self._scalar(node.lhs)
            right, rp = self._scalar(node.rhs)
            return sql.SQL("({} {} {})").format(left, sql.SQL(_ARITHMETIC[type(node)]), right), [
                *lp, *rp,
            ]
        if isinstance(node, ast.Function) and node.name == "lower" and len(node.arguments) == 1:
            inner, params = self._scalar(node.arguments[0])
            return sql.SQL("lower({}::text)").format(inner), params
        raise InvalidFilter(f"filter: {_describe(node)} is not supported as a value")

    def _attribute(self, name: str) -> sql.Composable:
        collection = self.collection
        if name in collection.property_names or name == collection.id_column:
            return sql.Identifier("t", name)
        if name in _GEOMETRY_NAMES and collection.geometry_column:
            return sql.Identifier("t", collection.geometry_column)
        known = ", ".join(collection.property_names)
        raise InvalidFilter(f"filter: unknown property {name!r} of {collection.id}; known: {known}")

    def _geometry(self, node: Any) -> Fragment:
        if isinstance(node, ast.Attribute):
            if node.name not in _GEOMETRY_NAMES or not self.collection.geometry_column:
                raise InvalidFilter(f"filter: {node.name!r} is not a geometry property")
            return sql.Identifier("t", self.collection.geometry_column), []
        if isinstance(node, values.Geometry):
            geom = sql.SQL("ST_GeomFromGeoJSON(%s)")
            return from_input(geom, self.filter_crs), [json.dumps(node.geometry)]
        if isinstance(node, values.Envelope):
            return self._envelope([node.x1, node.y1, node.x2, node.y2])
        if isinstance(node, ast.Function) and node.name.lower() == "bbox":
            return self._envelope(list(node.arguments))
        raise InvalidFilter(f"filter: {_describe(node)} is not a geometry")

    def _envelope(self, box: list[Any]) -> Fragment:
        if len(box) == 6:
            box = [box[0], box[1], box[3], box[4]]
        if len(box) != 4 or not all(isinstance(v, int | float) for v in box):
            raise InvalidFilter("filter: a bbox needs four numbers")
        envelope = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
        return from_input(envelope, self.filter_crs), [float(v) for v in box]


def _metres(distance: float, units: str | None) -> float:
    factor = {None: 1.0, "meters": 1.0, "metres": 1.0, "m": 1.0, "kilometers": 1000.0,
              "km": 1000.0}.get(units.lower() if units else None)
    if factor is None:
        raise InvalidFilter(f"filter: distance unit {units!r} is not supported; use meters")
    return float(distance) * factor


def _describe(node: Any) -> str:
    if isinstance(node, ast.Node):
        return type(node).__name__
    return repr(node)[:60]

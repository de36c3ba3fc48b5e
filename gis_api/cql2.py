"""CQL2 filters (OGC API Features Part 3) translated into SQL with bound parameters.

pygeofilter parses CQL2 text and JSON into an AST; this module walks that AST and emits
``psycopg.sql`` fragments whose values are all placeholders. Property names are checked
against the collection's published properties, so a filter can neither read an unpublished
column nor inject SQL. Every value is type-checked against those properties (the queryables)
before any SQL is built: ``tree_code = 1`` or ``dbh_cm BETWEEN 'a' AND 'z'`` is a 400 naming the
property and its type, never an SQL error. :func:`check_size` bounds a filter's terms and
nesting first. Anything outside the supported subset is a 400 naming what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import orjson
from psycopg import sql
from pygeofilter import ast, values

from gis_api import provinces
from gis_api.collections import Collection
from gis_api.crs import CRS84, Crs, from_input
from gis_api.errors import InvalidFilter

Fragment = tuple[sql.Composable, list[Any]]


class Value(NamedTuple):
    """A translated scalar expression: its SQL, its parameters and its type (see ``_FAMILY``)."""

    sql: sql.Composable
    params: list[Any]
    kind: str
    shown: str  # how the filter wrote it, for messages
    is_property: bool = False


# Types of scalar values, as a filter's messages name them; comparable within one family.
_FAMILY = {
    "integer": "number", "number": "number", "string": "string", "boolean": "boolean",
    "date": "time", "timestamp": "time", "geometry": "geometry",
}
_ARTICLE = {"integer": "an integer", "number": "a number", "string": "a string",
            "boolean": "a boolean", "date": "a date", "timestamp": "a timestamp",
            "geometry": "a geometry"}

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


@dataclass(frozen=True)
class Limits:
    """How large a filter may be: ``terms`` conditions and operations, nested ``depth`` deep."""

    terms: int = 200
    depth: int = 10


def _children(node: Any) -> list[Any]:
    if isinstance(node, ast.Node):
        return [c for c in node.get_sub_nodes() if isinstance(c, ast.Node)]
    return []


def _chains(parent: Any, child: Any) -> bool:
    """True when ``child`` continues ``parent``'s chain: ``a OR b OR c`` is one level, not two.

    AND and OR chain on both sides; arithmetic on its left (``a - b - c`` is ``(a - b) - c``).
    The SQL is built flat along the same chains, so it nests no deeper than the depth counted.
    """
    if type(parent) is not type(child):
        return False
    if isinstance(parent, ast.And | ast.Or):
        return True
    return isinstance(parent, ast.Arithmetic) and child is parent.lhs


def check_size(node: Any, limits: Limits) -> None:
    """Refuse a filter with more terms or deeper nesting than ``limits`` allow (400).

    Terms are conditions (comparisons, LIKE, IN, BETWEEN, IS NULL, spatial and temporal
    predicates), arithmetic operations and functions. Depth counts nested groups and
    operations; a chain of one operator (``a OR b OR c``) is one level. Checked without
    recursion, before any SQL is built, so a huge filter costs nothing but this walk.
    """
    terms = 0
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limits.depth:
            raise InvalidFilter(
                f"filter: nested deeper than {limits.depth} levels; simplify it"
            )
        if isinstance(current, ast.Predicate | ast.Arithmetic | ast.Function):
            terms += 1
            if terms > limits.terms:
                raise InvalidFilter(
                    f"filter: more than {limits.terms} conditions and operations; split the "
                    "request or use IN (...) for lists of values"
                )
        for child in _children(current):
            stack.append((child, depth if _chains(current, child) else depth + 1))


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
    """Turns one parsed filter into SQL for one collection.

    ``province_communes``: each province's communes, for the ``province`` queryable of a
    collection with communes (:mod:`gis_api.provinces`): ``province = '19'``,
    ``province <> '19'`` and ``province IN ('19', '20')``.
    """

    def __init__(
        self,
        collection: Collection,
        filter_crs: Crs = CRS84,
        province_communes: provinces.Provinces | None = None,
    ) -> None:
        self.collection = collection
        self.filter_crs = filter_crs
        self.provinces = province_communes if provinces.offered(collection) else None

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
        # A chain of one operator becomes one flat list: a OR b OR … OR z nests no deeper in
        # the SQL than a OR b (deeply nested fragments exhaust Python's recursion limit).
        parts: list[sql.Composable] = []
        params: list[Any] = []
        for operand in _operands(node):
            part, ps = self._condition(operand)
            parts.append(part)
            params += ps
        op = sql.SQL(" AND " if isinstance(node, ast.And) else " OR ")
        return sql.SQL("({})").format(op.join(parts)), params

    def _not(self, node: ast.Not) -> Fragment:
        inner, params = self._condition(node.sub_node)
        return sql.SQL("(NOT {})").format(inner), params

    def _include(self, node: ast.Include) -> Fragment:
        return sql.SQL("FALSE" if node.not_ else "TRUE"), []

    def _include_bool(self, node: bool) -> Fragment:
        return sql.SQL("TRUE" if node else "FALSE"), []

    def _comparison(self, node: ast.Comparison) -> Fragment:
        if self._is_province(node.lhs) or self._is_province(node.rhs):
            value = node.rhs if self._is_province(node.lhs) else node.lhs
            if type(node) not in (ast.Equal, ast.NotEqual):
                raise InvalidFilter("filter: province is compared with =, <> or IN only")
            return self._province([value], negated=isinstance(node, ast.NotEqual))
        left, right = self._alike(self._scalar(node.lhs), self._scalar(node.rhs))
        op = sql.SQL(_COMPARISONS[type(node)])
        return sql.SQL("({} {} {})").format(left.sql, op, right.sql), left.params + right.params

    def _between(self, node: ast.Between) -> Fragment:
        lhs = self._scalar(node.lhs)
        lhs, low = self._alike(lhs, self._scalar(node.low))
        lhs, high = self._alike(lhs, self._scalar(node.high))
        neg = sql.SQL("NOT " if node.not_ else "")
        return (
            sql.SQL("({} {}BETWEEN {} AND {})").format(lhs.sql, neg, low.sql, high.sql),
            lhs.params + low.params + high.params,
        )

    def _like(self, node: ast.Like) -> Fragment:
        lhs = self._scalar(node.lhs)
        if not isinstance(node.pattern, str) or "\x00" in node.pattern:
            raise InvalidFilter("filter: LIKE needs a text pattern (without NUL characters)")
        op = ("NOT " if node.not_ else "") + ("ILIKE" if node.nocase else "LIKE")
        return sql.SQL("({}::text {} %s)").format(lhs.sql, sql.SQL(op)), [*lhs.params, node.pattern]

    def _in(self, node: ast.In) -> Fragment:
        if not node.sub_nodes:
            raise InvalidFilter("filter: IN needs at least one value")
        if self._is_province(node.lhs):
            return self._province(list(node.sub_nodes), negated=node.not_)
        lhs = self._scalar(node.lhs)
        items = []
        for v in node.sub_nodes:
            lhs, item = self._alike(lhs, self._scalar(v))
            items.append(item)
        listed = sql.SQL(", ").join(item.sql for item in items)
        neg = sql.SQL("NOT " if node.not_ else "")
        item_params = [p for item in items for p in item.params]
        return sql.SQL("({} {}IN ({}))").format(lhs.sql, neg, listed), lhs.params + item_params

    def _is_province(self, node: Any) -> bool:
        return (self.provinces is not None and isinstance(node, ast.Attribute)
                and node.name == provinces.PROVINCE)

    def _province(self, values: list[Any], negated: bool) -> Fragment:
        """The features whose commune is in (or, ``negated``, not in) one of the provinces."""
        assert self.provinces is not None
        codes = []
        for value in values:
            if not isinstance(value, str):
                raise InvalidFilter(f"filter: province is a string; {_describe(value)} is not")
            codes.append(value)
        return provinces.condition(self.provinces, codes, negated)

    def _is_null(self, node: ast.IsNull) -> Fragment:
        lhs = self._scalar(node.lhs)
        neg = sql.SQL("NOT " if node.not_ else "")
        return sql.SQL("({} IS {}NULL)").format(lhs.sql, neg), lhs.params

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
        left = self._scalar(node.lhs)
        if _FAMILY[left.kind] != "time":
            raise InvalidFilter(
                f"filter: {left.shown} is {_ARTICLE[left.kind]}; "
                "temporal predicates need a date or timestamp property"
            )
        return sql.SQL("({} {} %s)").format(left.sql, sql.SQL(op)), [*left.params, node.rhs]

    # -- expressions ------------------------------------------------------------------------
    def _scalar(self, node: Any) -> Value:
        if isinstance(node, ast.Attribute):
            return self._attribute(node.name)
        if isinstance(node, str) and "\x00" in node:  # cql2-json can write one as \u0000
            raise InvalidFilter("filter: a text value contains a NUL character")
        if isinstance(node, int) and not isinstance(node, bool) and -(2**63) <= node < 2**63:
            # psycopg sends a small int as a smallint, and smallint arithmetic overflows at
            # 32,767 (30000 + 30000); bigint still compares with integer columns by index.
            return Value(sql.SQL("%s::bigint"), [node], "integer", _shown(node))
        if isinstance(node, bool | int | float | str | date | datetime):
            return Value(sql.SQL("%s"), [node], _literal_kind(node), _shown(node))
        if isinstance(node, ast.Arithmetic):
            return self._arithmetic(node)
        if isinstance(node, ast.Function) and node.name == "lower" and len(node.arguments) == 1:
            inner = self._scalar(node.arguments[0])
            return Value(sql.SQL("lower({}::text)").format(inner.sql), inner.params, "string",
                         f"lower({inner.shown})")
        raise InvalidFilter(f"filter: {_describe(node)} is not supported as a value")

    def _arithmetic(self, node: ast.Arithmetic) -> Value:
        # a - b - c arrives as ((a - b) - c): walk the left spine, so a long chain is one flat
        # SQL expression (left-associative, like the filter) and no deep recursion.
        rights: list[Any] = []
        current: Any = node
        while type(current) is type(node):
            rights.append(current.rhs)
            current = current.lhs
        symbol = _ARITHMETIC[type(node)]
        nodes = [current, *reversed(rights)]
        operands = [self._scalar(n) for n in nodes]
        for i, operand in enumerate(operands):
            if _FAMILY[operand.kind] != "number":
                raise InvalidFilter(
                    f"filter: {operand.shown} is {_ARTICLE[operand.kind]}; "
                    f"arithmetic ({symbol}) needs numbers"
                )
            if symbol == "/" and i > 0 and _is_zero(nodes[i]):
                raise InvalidFilter(f"filter: {operands[i - 1].shown} / 0 divides by zero")
        joined = sql.SQL(f" {symbol} ").join(o.sql for o in operands)
        return Value(
            sql.SQL("({})").format(joined),
            [p for o in operands for p in o.params],
            "number",
            f" {symbol} ".join(o.shown for o in operands),
        )

    def _attribute(self, name: str) -> Value:
        collection = self.collection
        if name == collection.id_column and name not in collection.property_names:
            return Value(sql.Identifier("t", name), [], collection.id_type, name, True)
        prop = collection.property(name)
        if prop is not None and prop.type == "object":
            raise InvalidFilter(f"filter: {name} is an object; compare one of its keys, "
                                f'e.g. "{name}.Ghi chú" = \'…\'')
        head, dot, key = name.partition(".")
        parent = collection.property(head) if dot and key else None
        if parent is not None and parent.type == "object":
            # One key of an object property, as text; the key is bound, never spliced.
            return Value(sql.SQL("({} ->> %s)").format(sql.Identifier("t", head)), [key],
                         "string", name, True)
        if prop is not None:
            kind = _property_kind(prop.type, prop.format)
            return Value(sql.Identifier("t", name), [], kind, name, True)
        if name in _GEOMETRY_NAMES and collection.geometry_column:
            geom = sql.Identifier("t", collection.geometry_column)
            return Value(geom, [], "geometry", name, True)
        if name == provinces.PROVINCE and self.provinces is not None:
            raise InvalidFilter("filter: province is compared with =, <> or IN only")
        known = ", ".join(collection.property_names)
        raise InvalidFilter(f"filter: unknown property {name!r} of {collection.id}; known: {known}")

    def _alike(self, a: Value, b: Value) -> tuple[Value, Value]:
        """``a`` and ``b`` when they can be compared (a text date read as a date); else a 400."""
        a, b = _as_time(a, b), _as_time(b, a)
        if _FAMILY[a.kind] == _FAMILY[b.kind] != "geometry":
            return a, b
        named, other = (b, a) if b.is_property and not a.is_property else (a, b)
        raise InvalidFilter(
            f"filter: {named.shown} is {_ARTICLE[named.kind]}; it cannot be compared with "
            f"{other.shown} ({_ARTICLE[other.kind]})"
        )

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


def _operands(node: ast.Combination) -> Iterator[Any]:
    """The operands of a chain of one operator, left to right, without recursion."""
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if current is node or _chains(node, current):
            stack += [current.rhs, current.lhs]
        else:
            yield current


def _is_zero(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool) and node == 0


def _property_kind(json_type: str, json_format: str | None) -> str:
    if json_format == "date":
        return "date"
    if json_format == "date-time":
        return "timestamp"
    return json_type if json_type in _FAMILY else "string"


def _literal_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, date):
        return "date"
    return "string"


def _shown(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return repr(value)[:60]


def _as_time(value: Value, other: Value) -> Value:
    """A text literal compared with a date or timestamp, read as one ('2020-05-01')."""
    literal = not value.is_property and value.sql == sql.SQL("%s") and len(value.params) == 1
    if not literal or value.kind != "string" or _FAMILY[other.kind] != "time":
        return value
    text = value.params[0]
    try:
        parsed: date = (
            date.fromisoformat(text) if other.kind == "date" else datetime.fromisoformat(text)
        )
    except ValueError:
        raise InvalidFilter(
            f"filter: {other.shown} is {_ARTICLE[other.kind]}; {value.shown} is not one"
        ) from None
    return Value(value.sql, [parsed], _literal_kind(parsed), value.shown, value.is_property)


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

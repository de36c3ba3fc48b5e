"""SQL reading a layer of the catalogue: its SELECT, WHERE conditions and bound values.

Values are always bound: conditions hold ``%s`` placeholders (psycopg's style, so they compose
with :mod:`psycopg.sql`), turned into PostgreSQL's ``$1, $2…`` for the ADBC driver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from psycopg import sql

from smarttrees import catalog
from smarttrees.errors import ArgumentError

WKB = "__wkb"  # the helper column of the geometry, dropped after reading


class Where:
    """Conditions of a WHERE clause and their bound values, in order."""

    def __init__(self) -> None:
        self.parts: list[sql.Composable] = []
        self.params: list[object] = []

    def add(self, condition: str, *params: object) -> None:
        """Add ``condition`` (SQL text of our own, values as ``%s``) with its values."""
        self.parts.append(sql.SQL(condition))
        self.params.extend(params)

    def add_in(self, column: str, values: Sequence[object]) -> None:
        """Add ``column IN (…)`` with one bound value per element."""
        placeholders = sql.SQL(", ").join(sql.Placeholder() for _ in values)
        self.parts.append(
            sql.SQL("{} IN ({})").format(sql.Identifier(column), placeholders)
        )
        self.params.extend(values)

    def sql(self) -> sql.Composable:
        """`` WHERE a AND b…``, or nothing."""
        if not self.parts:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(self.parts)


def chosen_fields(layer: catalog.Layer, columns: Sequence[str] | None) -> list[catalog.Field]:
    """The public fields named in ``columns`` (by default all but the ``on_request`` ones).

    An unknown name is an error.
    """
    if columns is None:
        return list(layer.default_fields)
    if isinstance(columns, str):
        columns = [columns]
    chosen = []
    for name in columns:
        field = layer.field(name)
        if field is None:
            if name in (layer.key, "geometry"):
                continue
            raise ArgumentError("columns", f"{layer.id} has no public field {name!r}",
                                layer.field_names)
        chosen.append(field)
    return chosen


def output_names(layer: catalog.Layer, fields: Sequence[catalog.Field]) -> list[str]:
    """Column names of the frame: the key first, then the fields."""
    names = [f.name for f in fields]
    if layer.key is not None and layer.key not in names:
        names.insert(0, layer.key)
    return names


def select(
    layer: catalog.Layer,
    fields: Sequence[catalog.Field],
    where: Where,
    order_by: Sequence[str],
    limit: int | None,
    relation: str | None = None,
) -> tuple[sql.Composable, list[object]]:
    """The SELECT reading ``fields`` of ``layer`` (lookups by their key, geometry last).

    ``relation`` replaces the layer's own (:meth:`~smarttrees.catalog.Layer.relation_in_range`).
    """
    columns: list[str] = []
    if layer.key is not None:
        columns.append(layer.key)
    for field in fields:
        name = field.lookup.key if field.lookup is not None else field.name
        if name not in columns:
            columns.append(name)
    selected: list[sql.Composable] = []
    for name in columns:
        expr: sql.Composable = sql.Identifier(name)
        column = layer.field(name)
        if column is not None and column.type == "json":
            expr = sql.SQL("{}::text").format(expr)
        selected.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(name)))
    if layer.geometry is not None:
        # Points as stored: PostGIS sends a geometry as EWKB (25 bytes for a point with its
        # SRID), which arrow_frames decodes with numpy; ST_X/ST_Y cost the server 0.3 s of the
        # province's 1 s, and two fields to parse instead of one.
        template = "{g} AS {w}" if layer.geometry_type == "Point" else "ST_AsBinary({g}) AS {w}"
        selected.append(sql.SQL(template).format(
            g=sql.Identifier(layer.geometry), w=sql.Identifier(WKB)))
    query = sql.SQL("SELECT {cols} FROM {rel} AS layer").format(
        cols=sql.SQL(", ").join(selected), rel=sql.SQL(relation or layer.relation)
    ) + where.sql()
    params = list(where.params)
    if order_by:
        query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(map(sql.Identifier, order_by))
    if limit is not None:
        query += sql.SQL(" LIMIT %s")
        params.append(int(limit))
    return query, params


_PLACEHOLDER = re.compile(r"%(%|s)")


def numbered(query: str) -> str:
    """Psycopg's ``%s`` placeholders (and ``%%``) as PostgreSQL's ``$1, $2…`` for ADBC."""
    counter = iter(range(1, 1_000_000))
    return _PLACEHOLDER.sub(lambda m: "%" if m.group(1) == "%" else f"${next(counter)}", query)

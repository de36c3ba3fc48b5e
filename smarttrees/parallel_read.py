"""Reading a large layer as several key ranges at once, each on its own connection.

A whole-province read is bound by the client: the ADBC driver parses the binary COPY stream
into Arrow on one thread, then shapely builds the points. Both release the GIL, so the rows
are read as ``parts`` ranges of the layer's integer key, each by a thread with a connection
of its own (its own PostgreSQL backend), and each thread builds its points too. It pays where
cores are idle: at load 6 the whole province took 3.35 s against 5.22 s on one connection; with
both cores busy it gained nothing (``bench/README.md``, "the read split").

Each part is its own transaction, so a load committed while the parts run may show in some
ranges and not in others (a synchronised snapshot, ``pg_export_snapshot``, would close that).

Only reads estimated above :data:`MIN_ROWS` rows are split: below it a second connection and
query cost more than they save (a town's thousand trees read in one part).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
from psycopg import sql

from smarttrees import catalog
from smarttrees.arrow_frames import geometry
from smarttrees.layer_sql import Where, select

MIN_ROWS = 200_000  # estimated rows of a read worth splitting

Query = Callable[[Any, sql.Composable, Sequence[object]], pa.Table]  # (connection, sql, params)


def key_ranges(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` half-open ranges ``[start, stop)`` covering ``low..high`` (inclusive)."""
    edges = np.linspace(low, high + 1, parts + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def read_in_parts(
    layer: catalog.Layer,
    fields: Sequence[catalog.Field],
    where: Where,
    bounds: tuple[int, int],
    connections: Sequence[Any],
    run: Query,
) -> tuple[pa.Table, np.ndarray | None]:
    """The rows of ``layer`` matching ``where``, read as one key range per connection.

    Parameters
    ----------
    layer, fields, where:
        What to read, as for :func:`smarttrees.layer_sql.select`.
    bounds:
        The smallest and largest key of the layer (inclusive).
    connections:
        One open connection per part.
    run:
        Runs a query on a connection and returns its Arrow table.

    Returns
    -------
    tuple
        The rows (in key-range order; a table of several chunks) and their geometries.

    """
    assert layer.key is not None

    def part(index: int, start: int, stop: int) -> tuple[pa.Table, np.ndarray | None]:
        bounded = Where()
        bounded.parts.extend(where.parts)
        bounded.params.extend(where.params)
        # The bounds are integers of our own, written as literals: a query with no bound value
        # is read through COPY, which the driver streams; with one it takes libpq's buffered
        # path (0.6 s more for the province, and every row held twice, 450 MB more).
        # The last part also takes any row without a key, which no range holds.
        template = "{key} >= {start} AND {key} < {stop}"
        if index == len(ranges) - 1:
            template = f"({template} OR {{key}} IS NULL)"
        bounded.parts.append(sql.SQL(template).format(
            key=sql.Identifier(layer.key or ""), start=sql.Literal(start),
            stop=sql.Literal(stop)))
        query, params = select(layer, fields, bounded, (), None)
        table = run(connections[index], query, params)
        return table, geometry(layer, table)

    ranges = key_ranges(*bounds, len(connections))
    with ThreadPoolExecutor(len(ranges), thread_name_prefix="smarttrees-read") as pool:
        results = list(pool.map(part, range(len(ranges)), *zip(*ranges, strict=True)))
    table = pa.concat_tables([t for t, _ in results])
    shapes = [g for _, g in results if g is not None]
    return table, np.concatenate(shapes) if shapes else None

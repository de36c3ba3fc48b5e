"""Reading a large layer as several key ranges at once, each on its own connection.

A whole-province read is bound by the client: the ADBC driver parses the binary COPY stream
into Arrow on one thread, then shapely builds the points. Both release the GIL, so the rows
are read as ``parts`` ranges of the layer's integer key, each by a thread with a connection
of its own (its own PostgreSQL backend), and each thread builds its points too. It pays where
cores are idle: at load 6 the whole province took 3.35 s against 5.22 s on one connection; with
both cores busy it gained nothing (``bench/README.md``, "the read split").

The parts read one snapshot (:func:`one_snapshot`): the first connection opens a REPEATABLE
READ transaction and exports its snapshot (``pg_export_snapshot``), the others import it, so a
load committed while the parts run shows in every range or in none.

Only reads estimated above :data:`MIN_ROWS` rows are split: below it a second connection and
query cost more than they save (a town's thousand trees read in one part).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
import pyarrow as pa
from psycopg import sql

from smarttrees import catalog
from smarttrees.arrow_frames import geometry
from smarttrees.layer_sql import Where, select

MIN_ROWS = 200_000  # estimated rows of a read worth splitting

Query = Callable[[Any, sql.Composable, Sequence[object]], pa.Table]  # (connection, sql, params)
Statement = Callable[[Any, sql.Composable], pa.Table]  # (connection, sql): not wrapped in COPY


@contextmanager
def one_snapshot(connections: Sequence[Any], execute: Statement,
                 settings: Sequence[sql.Composable] = ()) -> Iterator[None]:
    """Run the block with every connection in a read-only transaction on one snapshot.

    ``settings`` (``SET LOCAL …``) are run on each connection inside its transaction. The
    transactions end with the block (committed; rolled back on an error).
    """
    begin = sql.SQL("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    opened: list[Any] = []
    try:
        for index, conn in enumerate(connections):
            execute(conn, begin)
            opened.append(conn)
            if index == 0 and len(connections) > 1:
                snapshot = execute(conn, sql.SQL("SELECT pg_export_snapshot()")).column(0)[0]
            elif index > 0:
                execute(conn, sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                    sql.Literal(snapshot.as_py())))
            for setting in settings:
                execute(conn, setting)
        yield
    except BaseException:
        for conn in opened:
            with suppress(Exception):  # a dropped connection has no transaction left
                execute(conn, sql.SQL("ROLLBACK"))
        raise
    for conn in opened:
        execute(conn, sql.SQL("COMMIT"))


def key_ranges(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` half-open ranges ``[start, stop)`` covering ``low..high`` (inclusive)."""
    edges = np.linspace(low, high + 1, parts + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def in_range(layer: catalog.Layer, where: Where, start: int, stop: int, with_null: bool
             ) -> Where:
    """``where`` and the layer's key in ``[start, stop)`` (or NULL, with ``with_null``)."""
    bounded = Where()
    bounded.parts.extend(where.parts)
    bounded.params.extend(where.params)
    # The bounds are integers of our own, written as literals: a query with no bound value
    # is read through COPY, which the driver streams; with one it takes libpq's buffered
    # path (0.6 s more for the province, and every row held twice, 450 MB more).
    # The last range also takes any row without a key, which no range holds.
    template = "{key} >= {start} AND {key} < {stop}"
    if with_null:
        template = f"({template} OR {{key}} IS NULL)"
    bounded.parts.append(sql.SQL(template).format(
        key=sql.Identifier(layer.key or ""), start=sql.Literal(start), stop=sql.Literal(stop)))
    return bounded


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
        last = index == len(ranges) - 1
        query, params = select(layer, fields, in_range(layer, where, start, stop, last), (), None,
                               relation=layer.relation_in_range(start, stop))
        table = run(connections[index], query, params)
        return table, geometry(layer, table)

    ranges = key_ranges(*bounds, len(connections))
    with ThreadPoolExecutor(len(ranges), thread_name_prefix="smarttrees-read") as pool:
        results = list(pool.map(part, range(len(ranges)), *zip(*ranges, strict=True)))
    table = pa.concat_tables([t for t, _ in results])
    shapes = [g for _, g in results if g is not None]
    return table, np.concatenate(shapes) if shapes else None

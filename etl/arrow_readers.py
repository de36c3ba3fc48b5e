"""GIS layers and workbooks read into Arrow batches shaped as the direct path reads CSVs.

A layer is opened once with pyogrio's Arrow stream (``open_arrow``) and read batch by batch.
Each batch becomes the columns ``c0 … c{n-1}`` of the layer's fields, typed as
``etl.direct.read_batches`` types a CSV's (lookup fields as dictionary text, the rest as text,
numbers too: the checker parses them as it parses a CSV's), plus three columns ``c{n}`` …
``c{n+2}``: each point's X and Y in the layer's CRS, and what is wrong with its geometry.
:func:`vector_plan` gives the plan that reads those as the position.

A workbook's first sheet is read by fastexcel straight into Arrow (``etl.xlsx_arrow``), or,
when a column mixes kinds of cell, by calamine row by row into the same columns
(:func:`read_xlsx_batches`). Either way every cell is text, shown as ``etl.readers.cell_text``
shows it; a cell over the field limit is refused by the tree loader, naming its row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from etl import validate
from etl.readers import Table, cell_text, point_xy, xlsx_data_line, xlsx_rows

BATCH_ROWS = 65_536
POSITION_HEADERS = ("geometry X", "geometry Y", "geometry problem")
GEOMETRY_PROBLEM = "geometry_problem"    # the plan's name of the third added column


def point_layer(table: Table) -> bool:
    """True for a GIS layer of points (or of unknown geometry type, checked per feature)."""
    kind = (table.geometry_type or "").replace(" Z", "").replace(" M", "")
    return table.kind == "vector" and kind in ("Point", "Unknown")


def vector_plan(plan: validate.FilePlan) -> validate.FilePlan:
    """The plan that reads the two position columns :func:`read_vector_batches` appends."""
    n = len(plan.headers)
    columns = {k: v for k, v in plan.columns.items() if k not in ("x", "y", "lon", "lat")}
    return dataclasses.replace(plan, headers=[*plan.headers, *POSITION_HEADERS],
                               columns={**columns, "x": n, "y": n + 1, GEOMETRY_PROBLEM: n + 2},
                               geometry=True)


def read_vector_batches(table: Table, columns: dict[str, int], lookups: set[int],
                        tick: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """The layer's features in batches: fields as text, then the point X and Y columns.

    ``lookups`` are the indices of the fields read as dictionary text.
    """
    from pyogrio.raw import open_arrow

    names = [f"c{i}" for i in range(len(table.headers) + 3)]
    with open_arrow(table.path, layer=table.layer, batch_size=BATCH_ROWS,
                    use_pyarrow=True) as (meta, reader):
        geometry = meta.get("geometry_name") or "wkb_geometry"
        for batch in reader:
            out = [_text(batch.column(header), i in lookups)
                   for i, header in enumerate(table.headers)]
            x, y, problems = _points(batch.column(geometry))
            out += [pa.array(x, pa.float64()), pa.array(y, pa.float64()),
                    pa.array(problems, pa.string())]
            yield pa.record_batch(out, names=names)
            if tick:
                tick(batch.num_rows)


def _points(column: pa.Array) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """X and Y of each feature's point, NaN where it is not a usable point, and why not.

    A layer of plain points is read straight from the WKB bytes; anything else goes through
    shapely.
    """
    xy = wkb_point_xy(column)
    if xy is not None:
        x, y = xy
        empty = np.isnan(x) | np.isnan(y)
        return x, y, [("geometry: empty" if e else None) for e in empty.tolist()]
    geoms = shapely.from_wkb(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object))
    return point_xy(geoms)


# WKB point types by their byte length: 2D; Z or M (ISO and EWKB codes); ZM.
_WKB_POINT_TYPES = {21: (1,), 29: (1001, 2001, 0x80000001, 0x40000001), 37: (3001, 0xC0000001)}


def wkb_point_xy(column: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """X and Y of a WKB column of little-endian points, read from Arrow's buffers.

    ``None`` when the column holds anything else (a null, another geometry type, big-endian
    bytes, points of mixed dimensions): the caller then parses it with shapely. An empty point
    (NaN coordinates in WKB) gives NaN, as shapely's reading does. Decoding each feature with
    shapely took ten seconds per million points; this takes milliseconds.

    >>> import shapely
    >>> wkb = pa.array(shapely.to_wkb(shapely.points([(1.5, 2.0), (3.0, -4.25)])), pa.binary())
    >>> x, y = wkb_point_xy(wkb)
    >>> x.tolist(), y.tolist()
    ([1.5, 3.0], [2.0, -4.25])
    """
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    wide = pa.types.is_large_binary(column.type)
    if column.null_count or not (wide or pa.types.is_binary(column.type)):
        return None
    n = len(column)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if wide else np.int32,
                            count=n + 1, offset=column.offset * (8 if wide else 4))
    size = int(offsets[1] - offsets[0])
    if size not in _WKB_POINT_TYPES or (np.diff(offsets) != size).any():
        return None
    layout = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8"),
                       ("rest", f"V{size - 21}")])     # packed: one record per point
    rows = np.frombuffer(column.buffers()[2], dtype=layout, count=n, offset=int(offsets[0]))
    if (rows["order"] != 1).any() or not np.isin(rows["kind"], _WKB_POINT_TYPES[size]).all():
        return None                                    # 1: little-endian
    return rows["x"].astype(np.float64), rows["y"].astype(np.float64)


def _text(column: pa.Array, lookup: bool) -> pa.Array:
    """One field as the direct path's CSV columns: dictionary text or text, dates as ISO days."""
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        column = pc.strftime(column, format="%Y-%m-%d")
    # (A cell over the field limit is refused by the tree loader, naming its row.)
    text = pc.fill_null(column.cast(pa.string()), "")
    return pc.dictionary_encode(text) if lookup else text


def read_xlsx_batches(table: Table, lookups: set[int], tick: Callable[[int], None] | None = None
                      ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """The first sheet's rows after the header, in batches typed as a CSV's; empty rows skipped.

    Each batch comes with its rows' numbers in the sheet (as Excel shows them, for messages).

    Every cell is text as ``etl.readers.cell_text`` shows it (1.0 → "1"); ``lookups`` are the
    indices of the fields read as dictionary text.
    """
    from etl import xlsx_arrow

    sheet = xlsx_arrow.read_sheet(table)
    if sheet is None:
        yield from _xlsx_row_batches(table, lookups, tick)
    else:
        yield from xlsx_arrow.batches(sheet, lookups, tick)


def _xlsx_row_batches(table: Table, lookups: set[int], tick: Callable[[int], None] | None = None
                      ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """:func:`read_xlsx_batches` cell by cell, for sheets fastexcel does not read as we do."""
    width = len(table.headers)
    names = [f"c{i}" for i in range(width)]
    rows: list[list[object]] = []
    numbers: list[int] = []
    first = xlsx_data_line(table)
    for number, values in xlsx_rows(table.path):
        if number < first:
            continue
        row = list(values[:width]) + [None] * (width - len(values))
        if all(v is None or v == "" for v in row):
            continue
        rows.append(row)
        numbers.append(number)
        if len(rows) == BATCH_ROWS:
            yield _xlsx_batch(rows, names, lookups), np.array(numbers, dtype=np.int64)
            if tick:
                tick(len(rows))
            rows, numbers = [], []
    if rows:
        yield _xlsx_batch(rows, names, lookups), np.array(numbers, dtype=np.int64)


def _xlsx_batch(rows: list[list[object]], names: list[str],
                lookups: set[int]) -> pa.RecordBatch:
    columns = []
    for i, values in enumerate(zip(*rows, strict=True)):
        array = pa.array([cell_text(v) for v in values], pa.string())
        columns.append(pc.dictionary_encode(array) if i in lookups else array)
    return pa.record_batch(columns, names=names)

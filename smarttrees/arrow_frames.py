"""Arrow tables read for a catalogue layer, as the values of (Geo)DataFrame columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from smarttrees import catalog
from smarttrees.layer_sql import WKB

# A 2D point in little-endian EWKB with an SRID: byte order 1, type 0x20000001, then the SRID
# (4 bytes) and x, y (8 bytes each).
EWKB_POINT_HEAD = np.frombuffer(b"\x01\x01\x00\x00\x20", dtype=np.uint8)
EWKB_POINT_SIZE = 25


def geometry(layer: catalog.Layer, table: pa.Table) -> np.ndarray | None:
    """Shapely geometries of a fetched table (column ``__wkb``: EWKB points, WKB otherwise).

    Missing geometries and empty points are None.
    """
    if layer.geometry is None:
        return None
    values = table.column(WKB)
    if isinstance(values.type, pa.ExtensionType):  # the driver's opaque ``geometry`` type
        values = pa.chunked_array([c.storage for c in values.chunks], values.type.storage_type)
    if layer.geometry_type == "Point":
        parts = [ewkb_points(chunk) for chunk in values.chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)
    return shapely.from_wkb(values.to_numpy(zero_copy_only=False))


def ewkb_points(wkb: pa.BinaryArray) -> np.ndarray:
    """Shapely points of EWKB values: read by numpy when every one is a plain 2D point."""
    n = len(wkb)
    offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int32, count=n + 1, offset=wkb.offset * 4)
    if wkb.null_count or not (np.diff(offsets) == EWKB_POINT_SIZE).all():
        return _from_wkb(wkb)
    raw = np.frombuffer(wkb.buffers()[2], dtype=np.uint8, count=n * EWKB_POINT_SIZE,
                        offset=int(offsets[0])).reshape(n, EWKB_POINT_SIZE)
    if not (raw[:, :5] == EWKB_POINT_HEAD).all():  # big-endian, 3D or another type
        return _from_wkb(wkb)
    return points_of(np.ascontiguousarray(raw[:, 9:]).view("<f8"))


def points_of(coords: np.ndarray) -> np.ndarray:
    """Shapely points of an n × 2 array of (x, y); None where x is NaN (an empty point)."""
    points: np.ndarray = np.asarray(shapely.points(coords), dtype=object)
    empty = np.isnan(coords[:, 0])
    if empty.any():
        points[empty] = None
    return points


def _from_wkb(wkb: pa.BinaryArray) -> np.ndarray:
    points = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    points[shapely.is_empty(points)] = None
    return points


def column(values: pa.ChunkedArray, field: catalog.Field | None) -> pd.Series:
    """One fetched column as pandas values of the field's type.

    Integers with missing values stay integers (pandas' nullable ``Int64``) rather than
    becoming floats; PostgreSQL ``numeric`` (which the driver hands over as text) becomes
    float64, or int64 for an integer field (a ``sum`` of integers is numeric); dates become
    ``datetime64``; JSON becomes dicts.
    """
    if field is not None:
        kind = field.type
    else:  # the key, when it is not a field: as stored
        kind = "integer" if pa.types.is_integer(values.type) else "string"
    if isinstance(values.type, pa.ExtensionType):
        values = pa.chunked_array([c.storage for c in values.chunks], values.type.storage_type)
    if kind == "number" and not pa.types.is_floating(values.type):
        values = values.cast(pa.float64())
    if kind == "integer" and not pa.types.is_integer(values.type):  # numeric: sum(bigint)
        values = values.cast(pa.float64()).cast(pa.int64())
    if kind == "integer" and values.null_count:
        return values.to_pandas(types_mapper={values.type: pd.Int64Dtype()}.get)
    if kind == "json":
        return json_values(values)
    return values.to_pandas(date_as_object=False)


def json_values(values: pa.ChunkedArray) -> pd.Series:
    """JSON text as Python values, None where NULL.

    Only the non-null texts are parsed: most trees have no extra attributes, and a Python call
    per row of a million-row column costs about a second.
    """
    import orjson

    out = np.full(len(values), None, dtype=object)
    present = pc.is_valid(values).to_numpy(zero_copy_only=False)
    if values.null_count < len(values):
        out[present] = [orjson.loads(t) for t in values.drop_null().to_pylist()]
    return pd.Series(out, dtype=object)


"""Arrow tables read for a catalogue layer, as the values of (Geo)DataFrame columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from smarttrees import catalog
from smarttrees.layer_sql import WKB, X, Y


def geometry(layer: catalog.Layer, table: pa.Table) -> np.ndarray | None:
    """Shapely geometries of a fetched table: points from coordinates, others from WKB."""
    if layer.geometry is None:
        return None
    if layer.geometry_type == "Point":
        x = table.column(X).to_numpy(zero_copy_only=False)
        y = table.column(Y).to_numpy(zero_copy_only=False)
        points = shapely.points(x, y)
        missing = np.isnan(x)
        if missing.any():
            points[missing] = None
        return points
    return shapely.from_wkb(table.column(WKB).to_numpy(zero_copy_only=False))


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
        return values.to_pandas().map(json_value)
    return values.to_pandas(date_as_object=False)


def json_value(text: object) -> object:
    """JSON text as Python values (None stays None)."""
    import orjson

    return orjson.loads(text) if isinstance(text, str) else None

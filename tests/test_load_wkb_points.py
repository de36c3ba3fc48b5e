"""The GIS reader's fast decoding of point layers gives what shapely's parsing gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely

from etl.arrow_readers import wkb_point_xy
from etl.readers import point_xy

LAYERS = {
    "2D points": shapely.points([(105.7, 21.5), (105.8, 21.6), (-0.5, 1e-9)]),
    "points with Z": shapely.points([(105.7, 21.5, 3.0), (105.8, 21.6, 4.0)]),
    "an empty point": np.array([shapely.Point(105.7, 21.5), shapely.Point()]),
    "a multipoint of one": np.array([shapely.Point(105.7, 21.5), shapely.MultiPoint([(1, 2)])]),
    "a line among points": np.array([shapely.Point(105.7, 21.5),
                                     shapely.LineString([(0, 0), (1, 1)])]),
}


def _shapely_xy(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = point_xy(shapely.from_wkb(np.asarray(column.to_pylist(), dtype=object)))
    return x, y


@pytest.mark.parametrize("flavor", ["iso", "extended"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_fast_points_match_shapely_or_give_way(name: str, flavor: str) -> None:
    column = pa.array(shapely.to_wkb(LAYERS[name], flavor=flavor), pa.binary())
    fast = wkb_point_xy(column)
    if name in ("a multipoint of one", "a line among points"):
        assert fast is None           # left to shapely, which knows these
        return
    assert fast is not None
    for ours, theirs in zip(fast, _shapely_xy(column), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_sliced_and_large_columns_and_what_is_not_plain_wkb() -> None:
    points = shapely.points(np.column_stack([np.linspace(105, 106, 50), np.linspace(21, 22, 50)]))
    for kind in (pa.binary(), pa.large_binary()):
        column = pa.array(shapely.to_wkb(points), kind).slice(7, 20)
        x, y = wkb_point_xy(column) or (None, None)
        np.testing.assert_array_equal(x, shapely.get_x(points[7:27]))
        np.testing.assert_array_equal(y, shapely.get_y(points[7:27]))
    assert wkb_point_xy(pa.array([shapely.to_wkb(points[0]), None], pa.binary())) is None
    assert wkb_point_xy(pa.array(shapely.to_wkb(points, byte_order=0), pa.binary())) is None

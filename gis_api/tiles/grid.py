"""The WebMercatorQuad tile matrix set, from morecantile, and the tile arithmetic built on it."""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import morecantile

from gis_api.tiles.layers import MAX_ZOOM, TMS_ID

WEB_MERCATOR_QUAD: morecantile.TileMatrixSet = morecantile.tms.get(TMS_ID)
assert WEB_MERCATOR_QUAD.maxzoom == MAX_ZOOM  # the OpenAPI paths and the parser agree with it


class TileAddress(NamedTuple):
    """One tile of WebMercatorQuad: tile matrix (zoom), row (y) and column (x)."""

    z: int
    y: int
    x: int


@cache
def matrix_size(zoom: int) -> int:
    """Tiles per side of a tile matrix (its columns; WebMercatorQuad's matrices are square)."""
    return int(WEB_MERCATOR_QUAD.matrix(zoom).matrixWidth)


def tile_origin(tile: TileAddress) -> tuple[float, float, float]:
    """West and south edges of a tile in EPSG:3857 metres, and its width."""
    box = WEB_MERCATOR_QUAD.xy_bounds(morecantile.Tile(x=tile.x, y=tile.y, z=tile.z))
    return box.left, box.bottom, box.right - box.left

"""Tile request parameters, parsed into typed values: the tile address and the tree filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from gis_api.errors import InvalidParameter, NotFound
from gis_api.tiles.grid import TileAddress, matrix_size
from gis_api.tiles.layers import MAX_ZOOM, TMS_ID
from smarttrees.catalog import TREES, MapFilter

_INTEGER = re.compile(r"[0-9]{1,9}")
TREE_FILTERS = TREES.map_filters


class TreeFilters(NamedTuple):
    """Filters a trees tile may be asked for (``None``: no filter on that attribute).

    One attribute per ``map_filters`` entry of the catalogue's trees layer, named by its query
    parameter (a test keeps the two the same).
    """

    category: str | None = None
    species: int | None = None
    commune: str | None = None


def parse_tile_address(z: str, y: str, x: str) -> TileAddress:
    """Check a tile address from the URL; raise a 400 for non-integers, a 404 outside the set."""
    values = {}
    for name, text in (("tileMatrix", z), ("tileRow", y), ("tileCol", x)):
        if not _INTEGER.fullmatch(text):
            raise InvalidParameter(f"{name} must be a non-negative integer, got {text!r}")
        values[name] = int(text)
    zoom, row, col = values["tileMatrix"], values["tileRow"], values["tileCol"]
    if zoom > MAX_ZOOM:
        raise NotFound(f"tile matrix {zoom} is not in {TMS_ID} (0 to {MAX_ZOOM})")
    size = matrix_size(zoom)
    if row >= size or col >= size:
        raise NotFound(
            f"tile {zoom}/{row}/{col} is outside tile matrix {zoom}: "
            f"tileRow and tileCol run from 0 to {size - 1}"
        )
    return TileAddress(zoom, row, col)


def parse_tree_filters(params: Mapping[str, str]) -> TreeFilters:
    """Read the trees layer's filters (:data:`smarttrees.catalog.TREES` ``map_filters``).

    Today ``category``, ``species`` (species id) and ``commune`` (commune code); an empty value is
    no filter. Raise a 400 naming the parameter for a value outside its choices or pattern.
    """
    values = {f.param: parse_filter_value(f, params.get(f.param) or None) for f in TREE_FILTERS}
    return TreeFilters(**values)  # type: ignore[arg-type]  # each typed by its definition


def parse_filter_value(definition: MapFilter, text: str | None) -> str | int | None:
    """One filter's value from a query parameter, checked against its catalogue definition."""
    if text is None:
        return None
    if definition.values:
        if text not in definition.values:
            allowed = ", ".join(definition.values)
            raise InvalidParameter(f"{definition.param} must be one of {allowed}, got {text!r}")
    elif not re.fullmatch(definition.pattern, text):
        raise InvalidParameter(f"{definition.param} must be {definition.expected}, got {text!r}")
    return int(text) if definition.type == "integer" else text

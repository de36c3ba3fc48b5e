"""Tile request parameters, parsed into typed values: the tile address and the tree filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from gis_api.errors import InvalidParameter, NotFound
from gis_api.tiles.grid import TileAddress, matrix_size
from gis_api.tiles.layers import MAX_ZOOM, TMS_ID
from smarttrees.domain import Category

_INTEGER = re.compile(r"[0-9]{1,9}")
_COMMUNE_CODE = re.compile(r"[0-9]{1,10}")


class TreeFilters(NamedTuple):
    """Filters a trees tile may be asked for (``None``: no filter on that attribute)."""

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
    """Read ``category``, ``species`` (species id) and ``commune`` (commune code) from a query."""
    category = params.get("category") or None
    if category is not None and category not in {c.value for c in Category}:
        allowed = ", ".join(c.value for c in Category)
        raise InvalidParameter(f"category must be one of {allowed}, got {category!r}")
    species_text = params.get("species") or None
    species = None
    if species_text is not None:
        if not _INTEGER.fullmatch(species_text):
            raise InvalidParameter(f"species must be a species id (integer), got {species_text!r}")
        species = int(species_text)
    commune = params.get("commune") or None
    if commune is not None and not _COMMUNE_CODE.fullmatch(commune):
        raise InvalidParameter(f"commune must be a commune code (digits), got {commune!r}")
    return TreeFilters(category, species, commune)

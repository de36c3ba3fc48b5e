"""The "trees" layer of a point-zoom tile, from the columns ``tiles_trees_points.sql`` returns.

PostgreSQL picks the tile's trees and places them in tile space; this module reads its packed
columns with numpy and has :func:`gis_api.tiles.mvt.point_layer` encode them, with the
properties ST_AsMVT used to write (the same names, values and types; see
``tests/test_tiles_mvt.py``): ``tree_code``, ``category``, ``species_name``, ``species_vi``,
``condition`` and ``dbh_cm`` (one decimal), the tree's id as the feature id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gis_api.tiles.mvt import ChoiceColumn, Column, NumberColumn, TextColumn, point_layer

LAYER = "trees"

# The columns of tiles_trees_points.sql after its first ("grid"), in order.
COLUMNS = (
    "ids", "x", "y", "tree_code", "tree_code_len", "category", "category_len", "species_id",
    "condition", "condition_len", "dbh_cm",
    "species_ids", "scientific", "scientific_len", "vietnamese", "vietnamese_len",
)

# How each packed column's values are written (PostgreSQL's binary forms are big-endian).
_PACKED = {
    "ids": ">i8", "x": ">i2", "y": ">i2", "tree_code_len": ">i4", "category_len": ">i4",
    "species_id": ">i4", "condition_len": ">i4", "dbh_cm": ">f4", "species_ids": ">i4",
    "scientific_len": ">i4", "vietnamese_len": ">i4",
}


def packed(row: dict[str, Any], name: str) -> npt.NDArray[Any]:
    """A packed column of the row as numbers (int64, or float64 for float4); empty if NULL."""
    dtype = np.dtype(_PACKED[name])
    values = np.frombuffer(row[name] or b"", dtype)
    return values.astype(np.float64 if dtype.kind == "f" else np.int64)


def one_decimal(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``round(v::numeric, 1)::float8`` of float4 values, as PostgreSQL computes it (NaN kept).

    float4 becomes numeric through its text of 6 significant digits (``%.6g``, rounding the
    exact binary value half to even); numeric's round goes half away from zero. Both steps
    are done on exact integers: the 6 digits as one integer, then the rounding of its
    decimal places beyond the first.
    """
    out = np.full(values.shape, np.nan)
    size = np.abs(values)
    ok = np.isfinite(values) & (size > 0)
    out[np.isfinite(values) & (size == 0)] = 0.0
    size = size[ok]
    places = 5 - np.floor(np.log10(size)).astype(np.int64)  # decimals of the 6 digits
    digits = np.rint(size * 10.0 ** places).astype(np.int64)
    extra = np.maximum(places - 1, 0)  # decimals to round away
    step = 10 ** extra
    rounded = np.where(extra > 0, (digits + step // 2) // step, digits)
    kept = np.minimum(places, 1)  # decimals left: 1, or fewer (large values: none, or < 0)
    # dividing by an exact power of ten gives the decimal's nearest float, as numeric does
    scaled = np.where(kept >= 0, rounded / 10.0 ** np.maximum(kept, 0),
                      rounded * 10.0 ** np.maximum(-kept, 0))
    out[ok] = np.copysign(scaled, values[ok])
    return out


def _text(row: dict[str, Any], name: str, distinct: bool = False) -> TextColumn:
    return TextColumn((row[name] or "").encode(), packed(row, f"{name}_len"), distinct)


def _split(row: dict[str, Any], name: str) -> list[str | None]:
    """A few text values sent back to back with their byte lengths (-1: NULL)."""
    blob = (row[name] or "").encode()
    values: list[str | None] = []
    start = 0
    for length in packed(row, f"{name}_len").tolist():
        values.append(None if length < 0 else blob[start:start + length].decode())
        start += max(length, 0)
    return values


def _species(row: dict[str, Any], species_id: npt.NDArray[np.int64]
             ) -> tuple[ChoiceColumn, ChoiceColumn]:
    """Each tree's scientific and Vietnamese species names, chosen from the tile's species."""
    ids = packed(row, "species_ids")
    order = np.argsort(ids)
    found = np.minimum(np.searchsorted(ids[order], species_id), max(len(ids) - 1, 0))
    index = np.full(len(species_id), -1, np.int64)
    if len(ids):
        known = ids[order][found] == species_id
        index[known] = order[found][known]
    scientific = _split(row, "scientific")
    vietnamese = _split(row, "vietnamese")
    return ChoiceColumn(scientific, index), ChoiceColumn(vietnamese, index)


def trees_layer(values: Sequence[Any]) -> bytes:
    """The tile's "trees" layer from the statement's columns (after ``grid``); b"" if empty."""
    row = dict(zip(COLUMNS, values, strict=True))
    ids = packed(row, "ids")
    if not len(ids):
        return b""
    scientific, vietnamese = _species(row, packed(row, "species_id"))
    properties: list[tuple[str, Column]] = [
        # tree codes are unique (the table's constraint): no two trees share one
        ("tree_code", _text(row, "tree_code", distinct=True)),
        ("category", _text(row, "category")),
        ("species_name", scientific),
        ("species_vi", vietnamese),
        ("condition", _text(row, "condition")),
        ("dbh_cm", NumberColumn(one_decimal(packed(row, "dbh_cm")))),
    ]
    return point_layer(LAYER, ids, packed(row, "x"), packed(row, "y"), properties)

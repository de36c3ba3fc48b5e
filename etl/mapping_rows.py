"""What a mapping does to a file's rows before they are checked: open-inventory layouts.

Open city inventories split one field over several columns (genus and epithet), put the point
in one text column ("48.83, 2.40", WKT, GeoJSON), write dates their own way (M/D/YYYY), record
numbers as range classes and leave out rows by a status ("Stump"). A mapping says so in data
(``data/mappings/README.md``); this module turns a file into the columns the checks read:

- a field built from several columns gets one added column ("genus_name + species_name"),
  joined (or the first non-empty one), its case normalised;
- a point column gives two added columns, its longitude and latitude;
- a date in the mapping's format is rewritten as YYYY-MM-DD, a class as its stated value;
- a row the skip rule names is left out and counted.

A value these cannot read is passed on unchanged, so the usual checks refuse the row with their
usual message (the rejects file shows the row as the file wrote it, plus the added columns).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import shapely

from etl.errors import MappingError
from smarttrees.domain import fold

if TYPE_CHECKING:
    import pandas as pd

    from etl.mappings import Mapping
    from etl.readers import Chunk, Table

CASES = ("sentence", "lower", "upper", "title")
POINT_FORMATS = ("latlon", "lonlat", "wkt", "geojson", "auto")
_PAIR = re.compile(r"^\s*[(\[]?\s*(-?\d+(?:\.\d+)?)\s*[,; ]\s*(-?\d+(?:\.\d+)?)\s*[)\]]?\s*$")


@dataclass
class Derivation:
    """The row work one file needs under one mapping (column positions in the file)."""

    joins: dict[str, tuple[list[int], str, str, str | None]] = field(default_factory=dict)
    point: tuple[int, str] | None = None
    dates: dict[int, str] = field(default_factory=dict)            # column → strptime format
    classes: dict[int, dict[str, str]] = field(default_factory=dict)  # column → folded → value
    skip: dict[int, set[str]] = field(default_factory=dict)        # column → folded values
    left_out: int = 0                                              # rows skipped so far
    file_columns: int = 0                                          # the file's own headers

    def __bool__(self) -> bool:
        return bool(self.joins or self.point or self.dates or self.classes or self.skip)

    def apply(self, chunk: Chunk) -> Chunk:
        """The chunk with the added columns, dates and classes rewritten, skipped rows out."""
        import pandas as pd

        cells = chunk.cells
        added: dict[str, pd.Series] = {}
        for label, (cols, how, sep, case) in self.joins.items():
            parts = [cells.iloc[:, c].astype(str).str.strip() for c in cols]
            added[label] = pd.Series(_combine(parts, how, sep, case), index=cells.index,
                                     dtype=object)
        if self.point is not None:
            col, fmt = self.point
            lon, lat = _points(cells.iloc[:, col].astype(str).tolist(), fmt)
            added[f"lon from {cells.columns[col]}"] = pd.Series(lon, index=cells.index)
            added[f"lat from {cells.columns[col]}"] = pd.Series(lat, index=cells.index)
        if added:
            cells = pd.concat([cells, pd.DataFrame(added, index=cells.index)], axis=1)
        # Each distinct value once: folding and parsing cost more than the lookups.
        for col, fmt in self.dates.items():
            cells.isetitem(col, _per_value(cells.iloc[:, col], partial(_date, fmt=fmt)))
        for col, table in self.classes.items():
            cells.isetitem(col, _per_value(cells.iloc[:, col], partial(_class, table=table)))
        if not self.skip:
            return replace(chunk, cells=cells)
        drop = np.zeros(len(cells), dtype=bool)
        for col, values in self.skip.items():
            drop |= np.array([v in values for v in _per_value(cells.iloc[:, col], fold)],
                             dtype=bool)
        self.left_out += int(drop.sum())
        keep = ~drop
        return replace(
            chunk, cells=cells[keep].reset_index(drop=True), row_no=chunk.row_no[keep],
            x=None if chunk.x is None else chunk.x[keep],
            y=None if chunk.y is None else chunk.y[keep],
            geom_problem=None if chunk.geom_problem is None
            else [p for p, k in zip(chunk.geom_problem, keep, strict=True) if k])


def _per_value(column: pd.Series, func: Callable[[str], str]) -> list[str]:
    """``func`` of each cell, computed once per distinct value."""
    values = column.astype(str).tolist()
    table = {v: func(v) for v in set(values)}
    return [table[v] for v in values]


def _combine(parts: list[pd.Series], how: str, sep: str, case: str | None) -> list[str]:
    """The combined text of each row, computed once per distinct combination (few: names)."""
    rows = list(zip(*(p.tolist() for p in parts), strict=True))
    table = {row: _combine_one(row, how, sep, case) for row in set(rows)}
    return [table[row] for row in rows]


def _combine_one(row: tuple[str, ...], how: str, sep: str, case: str | None) -> str:
    given = [v for v in row if v]
    text = (given[0] if given else "") if how == "first" else sep.join(given)
    if case == "sentence":
        return text.lower().capitalize()
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    if case == "title":
        return text.title()
    return text


def _class(value: str, table: dict[str, str]) -> str:
    return table.get(fold(value), value)


def _date(value: str, fmt: str) -> str:
    text = value.strip()
    if not text:
        return value
    try:
        return datetime.strptime(text, fmt).date().isoformat()
    except ValueError:
        # Marked, so that the date check refuses it (a D/M/Y date read as the file's M/D/Y
        # would otherwise pass) and the reason names the mapping's format.
        return f"{text} (not {fmt})"


def _points(values: list[str], fmt: str) -> tuple[list[str], list[str]]:
    """Longitude and latitude text of each cell; the cell itself where it is not a point.

    Pairs are read by one regular expression over the column and WKT by one GEOS call (a
    row at a time was 5 times slower); GeoJSON, rare in CSVs, a row at a time.
    """
    import pandas as pd

    text = pd.Series(values, dtype=object).str.strip()
    lon = np.full(len(text), np.nan)
    lat = np.full(len(text), np.nan)
    if fmt in ("latlon", "lonlat", "auto"):
        pairs = text.str.extract(_PAIR).astype(float).to_numpy()
        first, second = (1, 0) if fmt in ("latlon", "auto") else (0, 1)
        lon, lat = pairs[:, first].copy(), pairs[:, second].copy()   # pandas' are read-only
    todo = np.isnan(lon) & (text != "").to_numpy()
    if fmt in ("wkt", "auto") and todo.any():
        wkt = todo & ~text.str.startswith("{").to_numpy()
        geoms = shapely.from_wkt(text[wkt].to_numpy(dtype=object), on_invalid="ignore")
        ok = (shapely.get_type_id(geoms) == 0) & ~shapely.is_empty(geoms)
        at = np.flatnonzero(wkt)[ok]
        lon[at], lat[at] = shapely.get_x(geoms[ok]), shapely.get_y(geoms[ok])
    if fmt in ("geojson", "auto"):
        for i in np.flatnonzero(np.isnan(lon) & (text != "").to_numpy()):
            pair = _geojson_point(str(values[int(i)]))
            if pair is not None:
                lon[i], lat[i] = pair
    found = ~np.isnan(lon)
    # Passed on as written where not a point: the position check refuses it, quoting it.
    lons = [repr(float(x)) if f else v for x, f, v in zip(lon, found, values, strict=True)]
    lats = [repr(float(y)) if f else (v if v.strip() else "")
            for y, f, v in zip(lat, found, values, strict=True)]
    return lons, lats


def _geojson_point(text: str) -> tuple[float, float] | None:
    try:
        geom = shapely.from_geojson(json.dumps(json.loads(text)))
    except (ValueError, shapely.errors.GEOSException):
        return None
    if geom is None or geom.geom_type != "Point" or geom.is_empty:
        return None
    return float(shapely.get_x(geom)), float(shapely.get_y(geom))


def derive(table: Table, mapping: Mapping) -> tuple[Table, Mapping]:
    """The table as the checks read it under ``mapping``, and the mapping for its headers.

    A file whose mapping needs no row work is returned as it is.

    Raises
    ------
    MappingError
        A column the mapping names for a join, a point or a skip rule is not in the file:
        the message names the mapping file, its key and the data file.

    """
    from etl.mappings import FieldSpec

    plan = Derivation(file_columns=len(table.headers))
    headers = list(table.headers)
    fields = dict(mapping.fields)
    for name, spec in mapping.fields.items():
        if spec.combine is not None:
            cols = [mapping.column(table, c, f"fields.{name}.columns") for c in spec.columns]
            label = " + ".join(table.headers[c] for c in cols)
            plan.joins[label] = (cols, spec.combine, spec.separator, spec.case)
            headers.append(label)
            fields[name] = FieldSpec(name, (label,), spec.unit, spec.values)
    point = fields.pop("point", None)
    if point is not None:
        col = _first_present(table, mapping, point.columns, "fields.point.columns")
        plan.point = (col, point.format or "auto")
        head = table.headers[col]
        headers += [f"lon from {head}", f"lat from {head}"]
        fields["lon"] = FieldSpec("lon", (f"lon from {head}",))
        fields["lat"] = FieldSpec("lat", (f"lat from {head}",))
        for gone in ("x", "y"):
            fields.pop(gone, None)
    for column, values in mapping.skip.items():
        col = mapping.column(table, column, f"skip.{column}")
        plan.skip[col] = {fold(v) for v in values}
    derived = replace(mapping, fields=fields,
                      exclude=mapping.exclude + tuple(_sources(table, plan)))
    found = derived.match(headers, table.path) if (
        any(s.format or s.classes for s in fields.values())) else {}
    for name, spec in fields.items():
        if name not in found:
            continue
        if spec.format and name == "planted_on":
            plan.dates[found[name]] = spec.format
        if spec.classes:
            plan.classes[found[name]] = {fold(k): str(v) for k, v in spec.classes.items()}
    if not plan:
        return table, mapping
    return replace(table, headers=headers, derivation=plan), derived


def _first_present(table: Table, mapping: Mapping, columns: tuple[str, ...], key: str) -> int:
    for c in columns[:-1]:
        try:
            return mapping.column(table, c, key)
        except MappingError:    # the next alias may be there; the last one explains
            continue
    return mapping.column(table, columns[-1], key)


def _sources(table: Table, plan: Derivation) -> list[str]:
    """Headers whose content now feeds an added column: not kept again in attributes."""
    cols = [c for cols, *_ in plan.joins.values() for c in cols]
    if plan.point is not None:
        cols.append(plan.point[0])
    return [table.headers[c] for c in cols]

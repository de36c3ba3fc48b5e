"""Forestry seed data: nurseries (points), seedling lots, plantation stands (polygons).

The fields' rules are ``etl.rules.SEED``, checked by the one checker (``etl.checker``) over the
file's cells in Arrow, as tree surveys are: every refused row goes to a rejects file with all its
reasons, the write is one transaction keyed on the code, unchanged rows are not touched,
``--strict`` refuses all when one row is bad. Stand areas are computed in VN-2000 / TM-3
106°30' (EPSG:9213), an equal-scale projection for the province, not on the sphere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from etl import checker, report
from etl import crs as crsmod
from etl import headers as headers_mod
from etl.errors import InputError
from etl.readers import open_table, read_gis_frame
from etl.rules import SEED, Rules
from etl.validate import SpeciesIndex
from smarttrees import territory
from smarttrees.database import connect
from smarttrees.domain import fold

AREA_CRS = 9213
AREAS: dict[bytes, float] = {}   # polygon WKB → area in hectares, filled while reading

@dataclass(frozen=True)
class Spec:
    """A seed table: its key, the rules of its columns (``etl.rules.SEED``) and its geometry."""

    table: str
    key: str
    rules: Rules
    geometry: str | None         # point, polygon or None


SPECS = {
    "nurseries": Spec("nurseries", "nursery_code", SEED["nurseries"], "point"),
    "lots": Spec("seedling_lots", "lot_code", SEED["lots"], None),
    "stands": Spec("stands", "stand_code", SEED["stands"], "polygon"),
}


@dataclass
class SeedResult:
    """Counts of one keyed load: seed data, and the IOC registers (etl.ioc_load)."""

    kind: str
    path: Path
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    rejects_path: Path | None = None
    written: bool = False
    problems: list[tuple[int, str]] = field(default_factory=list)
    all_outside: str | None = None   # the line saying every position is outside the territory

    def summary(self) -> str:
        """One line for the terminal."""
        text = (f"{self.path.name}: {self.rows} {self.kind}: inserted {self.inserted}, updated "
                f"{self.updated}, unchanged {self.unchanged}, refused {self.refused}")
        if self.all_outside:
            text += f"\n  {self.all_outside}"
        if self.rejects_path:
            text += f"\n  refused rows and reasons: {self.rejects_path}"
        return text


def _match(headers: list[str], spec: Spec, path: Path) -> dict[str, int]:
    """Column → header index, by the rule of ``etl.headers`` (most specific alias wins)."""
    found = headers_mod.match(headers, spec.rules.aliases(), path=path)
    return {name: m.index for name, m in found.items()}


def load(kind: str, url: str | None, path: Path, *, crs: str | None = None,
         dry_run: bool = False, strict: bool = False, rejects: Path | None = None,
         source_name: str | None = None) -> SeedResult:
    """Load nurseries, seedling lots or plantation stands from one file; all or nothing."""
    spec = SPECS[kind]
    result = SeedResult(kind, path)
    with connect(url) as conn:
        area = territory.current(conn)
    headers, records = _read(spec, path, crs, area)
    columns = _match(headers, spec, path)
    for rule in spec.rules:
        if rule.required and rule.name not in columns:
            raise InputError(path, f"no column for {rule.name}: expected one of "
                             f"{', '.join(repr(a) for a in rule.aliases)}", row=1)
    with connect(url) as conn:
        species = SpeciesIndex.from_db(conn)
        nurseries = dict(conn.execute(
            "SELECT nursery_code, id FROM smarttrees.nurseries").fetchall())
        refused, good = _checked(spec, headers, columns, records, species, nurseries)
        result.rows = len(records)
        result.refused = len(refused)
        result.all_outside = _all_outside(area, path, records)
        if refused:
            result.rejects_path = rejects or report.default_path(path)
            report.write_rows(result.rejects_path, headers, refused)
        write = not dry_run and not (strict and refused)
        if good and (write or dry_run):
            result.inserted, result.updated = _upsert(conn, spec, good, source_name or path.name,
                                                      set(columns))
        result.unchanged = len(good) - result.inserted - result.updated
        if not write:
            conn.rollback()
            if strict and refused:
                result.inserted = result.updated = 0
                result.unchanged = 0
        result.written = write
    return result


def _read(spec: Spec, path: Path, crs: str | None, area: territory.Territory
          ) -> tuple[list[str], list[tuple[int, list[str], bytes | None, str | None]]]:
    """Rows as (row number, text cells, WKB geometry in WGS 84, geometry problem)."""
    if spec.geometry == "polygon":
        return _read_polygons(path, crs)
    table = open_table(path)
    records: list[tuple[int, list[str], bytes | None, str | None]] = []
    import shapely

    source = crsmod.resolve(crs) if crs else (table.crs or crsmod.resolve(4326))
    for chunk in table.chunks():
        cells = chunk.cells.astype(str).values.tolist()
        if spec.geometry == "point":
            x, y = _point_columns(table.headers, chunk)
            lon, lat = crsmod.to_wgs84(source, x, y)
            inside = area.contains(lon, lat)
        for i, row_no in enumerate(chunk.row_no):
            geom = problem = None
            if spec.geometry == "point":
                if chunk.geom_problem and chunk.geom_problem[i]:
                    problem = chunk.geom_problem[i]
                elif np.isnan(lon[i]) or np.isnan(lat[i]):
                    problem = "position: missing or not a number"
                elif not inside[i]:
                    problem = f"position: {lon[i]:.6f}, {lat[i]:.6f} is outside the territory"
                else:
                    geom = shapely.to_wkb(shapely.Point(lon[i], lat[i]))
            records.append((int(row_no), cells[i], geom, problem))
    return table.headers, records


def _all_outside(area: territory.Territory, path: Path,
                 records: list[tuple[int, list[str], bytes | None, str | None]]) -> str | None:
    """The territory line when no row has a position inside and some are outside."""
    if any(geom is not None for _, _, geom, _ in records):
        return None
    found = [re.match(r"position: (-?[0-9.]+), (-?[0-9.]+) is outside", problem or "")
             for *_, problem in records]
    points = np.array([(float(m[1]), float(m[2])) for m in found if m]).reshape(-1, 2)
    return territory.all_outside(area, path.name, points[:, 0], points[:, 1])


def _point_columns(headers: list[str], chunk: Any) -> tuple[np.ndarray, np.ndarray]:
    if chunk.x is not None:
        return chunk.x, chunk.y
    folded = [fold(h) for h in headers]
    for a, b in (("kinh do", "vi do"), ("lon", "lat"), ("longitude", "latitude"), ("x", "y")):
        if a in folded and b in folded:
            def num(i: int) -> np.ndarray:
                col = chunk.cells.iloc[:, i].str.replace(",", ".", regex=False)
                import pandas as pd

                return pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64")
            return num(folded.index(a)), num(folded.index(b))
    nan = np.full(len(chunk.cells), np.nan)
    return nan, nan


def _read_polygons(path: Path, crs: str | None) -> tuple[list[str], list[tuple[int, list[str],
                                                                              bytes | None,
                                                                              str | None]]]:
    import shapely

    frame = read_gis_frame(path)
    if crs:
        frame = frame.set_crs(crsmod.resolve(crs), allow_override=True)
    if frame.crs is None:
        raise InputError(path, "declares no CRS (a Shapefile without .prj?): give --crs")
    AREAS.clear()
    # Area on the ground, in the province's own transverse Mercator zone (pyproj).
    areas = frame.geometry.to_crs(AREA_CRS).area.to_numpy() / 10_000
    frame = frame.to_crs(4326)
    headers = [str(c) for c in frame.columns if c != "geometry"]
    records = []
    for i, (geom, cells) in enumerate(zip(frame.geometry, frame[headers].astype(str).values,
                                          strict=True), start=1):
        problem = None
        wkb = None
        if geom is None or geom.is_empty:
            problem = "geometry: missing"
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            problem = f"geometry: {geom.geom_type} where a polygon was expected"
        elif not geom.is_valid:
            problem = f"geometry: invalid polygon ({shapely.is_valid_reason(geom)})"
        else:
            wkb = shapely.to_wkb(geom)
            AREAS[wkb] = round(float(areas[i - 1]), 4)
        cells_list = ["" if c in ("None", "nan") else c for c in cells]
        records.append((i, cells_list, wkb, problem))
    return headers, records


def _checked(spec: Spec, headers: list[str], columns: dict[str, int],
             records: list[tuple[int, list[str], bytes | None, str | None]],
             species: SpeciesIndex, nurseries: dict[str, int]
             ) -> tuple[list[tuple[list[str], int, str]], list[dict[str, Any]]]:
    """(refused rows with their reasons, good rows' values): every problem of every row."""
    empty = ("", "nan", "None")      # how the readers' text writes an empty cell
    cells = pa.table({f"c{i}": pa.array([None if r[1][i] in empty else r[1][i] for r in records],
                                        pa.string())
                      for i in range(len(headers))})
    checked = checker.check(cells, columns, {n: headers[i] for n, i in columns.items()},
                            spec.rules, {"species": lambda raw: _species(raw, species),
                                         "nursery": lambda raw: _nursery(raw, nurseries)})
    values, problems = checked.values, checked.problems
    if "sown_on" in values and "ready_on" in values:
        sown, ready = values["sown_on"], values["ready_on"]
        late = [s is not None and r is not None and r < s for s, r in zip(sown, ready,
                                                                         strict=True)]
        problems.add(np.array(late, dtype=bool), "ready_on: before the sowing date")
    geometry = np.array([bool(r[3]) for r in records], dtype=bool)
    problems.add(geometry, lambda rows: [records[int(i)][3] or "" for i in rows])
    _repeated_codes(spec, headers, columns, values, records, problems)
    reasons = problems.reasons()
    refused = [(records[i][1], records[i][0], "; ".join(reasons[i])) for i in reasons]
    good = [{**{name: v[i] for name, v in values.items() if v[i] is not None},
             "geom": records[i][2]}
            for i in range(len(records)) if i not in reasons]
    return refused, good


def _repeated_codes(spec: Spec, headers: list[str], columns: dict[str, int],
                    values: dict[str, np.ndarray],
                    records: list[tuple[int, list[str], bytes | None, str | None]],
                    problems: checker.Problems) -> None:
    """A key seen in an earlier row refuses the later one."""
    seen: dict[str, int] = {}
    repeated, reasons = [], []
    label = headers[columns[spec.key]]
    for i, code in enumerate(values[spec.key]):
        if code is None:
            continue
        first = seen.setdefault(code, records[i][0])
        if first != records[i][0]:
            repeated.append(i)
            reasons.append(f"{label}: {code} already appears in row {first}")
    problems.extend([checker.Finding(np.array(repeated, dtype=np.int64), reasons)])


def _species(raw: str, species: SpeciesIndex) -> tuple[object, str | None]:
    sid = species.resolve(raw)
    if sid is None:
        close = species.suggest(raw)
        return None, "is not in the species catalogue" + (
            f"; closest: {', '.join(close)}" if close else "")
    return sid, None


def _nursery(raw: str, nurseries: dict[str, int]) -> tuple[object, str | None]:
    if raw not in nurseries:
        return None, "is not a known nursery (load nurseries first)"
    return nurseries[raw], None


def _upsert(conn: Any, spec: Spec, rows: list[dict[str, Any]], source: str,
            present: set[str]) -> tuple[int, int]:
    """Insert or update the good rows, skipping unchanged ones; return (inserted, updated).

    Only the columns the file has are written: the others keep their defaults or values.
    """
    from psycopg import sql

    given = [r.name for r in spec.rules if r.name in present]
    cols = [*given, "source"]
    exprs = ["%s"] * len(cols)
    data = [[r.get(name) for name in given] + [source] for r in rows]
    if spec.geometry == "point":
        cols += ["geom", "source_crs"]
        exprs += ["ST_SetSRID(%s::geometry, 4326)", "%s"]
        data = [[*d, r["geom"], "EPSG:4326"] for d, r in zip(data, rows, strict=True)]
    elif spec.geometry == "polygon":
        cols += ["geom", "area_ha", "source_crs"]
        exprs += ["ST_Multi(ST_SetSRID(%s::geometry, 4326))", "%s", "%s"]
        data = [[*d, r["geom"], AREAS[r["geom"]], "EPSG:4326"]
                for d, r in zip(data, rows, strict=True)]
    compared = [c for c in cols if c not in (spec.key, "source", "source_crs")]
    ident = sql.Identifier
    statement = sql.SQL(
        "INSERT INTO smarttrees.{t} AS t ({cols}) VALUES ({ph}) ON CONFLICT ({key}) DO UPDATE "
        "SET {sets} WHERE ({old}) IS DISTINCT FROM ({new}) RETURNING (xmax = 0)"
    ).format(
        t=ident(spec.table), cols=sql.SQL(", ").join(map(ident, cols)),
        ph=sql.SQL(", ").join(sql.SQL(e) for e in exprs), key=ident(spec.key),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=ident(c))
                                for c in cols if c != spec.key),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(ident(c)) for c in compared),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(ident(c)) for c in compared),
    )
    inserted = updated = 0
    with conn.cursor() as cur:
        for d in data:
            cur.execute(statement, d)
            got = cur.fetchone()
            if got is not None:
                inserted += int(got[0])
                updated += int(not got[0])
    return inserted, updated

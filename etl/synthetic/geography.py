"""Synthetic geography: the province outline, communes, towns, villages and roads.

Everything is built in longitude/latitude (EPSG:4326), the CRS it is stored in, so that what
the generator checks with shapely is what PostGIS checks with ``ST_Within``. Distances that
must mean metres (street spacing, stand sizes) go through :func:`offset_degrees`, a local
tangent-plane conversion that is exact enough at the scale of a stand or a town.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Polygon

from smarttrees.domain import fold
from smarttrees.errors import SmartTreesError
from smarttrees.territory import unit_code_problem

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0

PROVINCE_CODE = "19"
PROVINCE_NAME = "Thái Nguyên (synthetic)"
VALID_FROM = "2025-07-01"
# The outline spans about 105.5–106.3 E, 21.3–22.75 N, like the province formed in 2025.
PROVINCE_CENTRE = (105.90, 22.02)
PROVINCE_HALF_AXES = (0.38, 0.70)
# Towns grow around the provincial capital (south) and the former Bắc Kạn town (north).
CAPITAL = (105.84, 21.59)
NORTH_TOWN = (105.85, 22.15)

SYLLABLES = [
    "An",
    "Bình",
    "Cao",
    "Cường",
    "Đại",
    "Đồng",
    "Hà",
    "Hạ",
    "Hòa",
    "Hợp",
    "Khánh",
    "Kim",
    "Lâm",
    "Linh",
    "Lộc",
    "Lương",
    "Minh",
    "Nam",
    "Phú",
    "Phúc",
    "Quang",
    "Sơn",
    "Tân",
    "Thành",
    "Thịnh",
    "Thượng",
    "Trung",
    "Vạn",
    "Văn",
    "Yên",
    "Bắc",
    "Đông",
    "Tiến",
    "Hưng",
    "Thái",
    "Long",
    "Quyết",
    "Thắng",
]


class CommunesFileError(SmartTreesError):
    """A communes boundary file that cannot be used; the message names the file and field."""

    rule = "communes_file"


@dataclass(frozen=True)
class Communes:
    """The communes of the province, in a fixed order, with their town or village centres."""

    codes: list[str]
    names: list[str]
    unit_types: list[str]
    urban: np.ndarray  # bool per commune: a ward (phường) or town (thị trấn)
    geoms: np.ndarray  # shapely MultiPolygons, EPSG:4326
    centres: np.ndarray  # (n, 2) lon/lat of the commune seat, inside its polygon
    source: str
    province_name: str = PROVINCE_NAME  # a boundary file's own province is not Thái Nguyên

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def province(self) -> shapely.Geometry:
        """The province as the union of its communes."""
        return shapely.union_all(self.geoms)


def offset_degrees(lat: np.ndarray | float, dx_m: np.ndarray, dy_m: np.ndarray) -> tuple:
    """Convert east/north offsets in metres at latitude ``lat`` to degrees of lon/lat."""
    cos_lat = np.cos(np.radians(lat))
    return dx_m / (M_PER_DEG_LON_EQUATOR * cos_lat), dy_m / M_PER_DEG_LAT


def areas_m2(geoms: np.ndarray) -> np.ndarray:
    """Areas in square metres, computed in UTM zone 48N (EPSG:32648) where the province lies."""
    from pyproj import Transformer

    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    projected = shapely.transform(
        geoms, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
    )
    return np.asarray(shapely.area(projected))


def as_multipolygon(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal parts of a geometry as one valid MultiPolygon."""
    geom = shapely.make_valid(geom)
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and not p.is_empty]
    return shapely.MultiPolygon(parts)


def random_points_in(geom: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random points inside ``geom`` (rejection sampling), as (n, 2) lon/lat."""
    xmin, ymin, xmax, ymax = shapely.bounds(geom)
    shapely.prepare(geom)
    found: list[np.ndarray] = []
    have = 0
    while have < n:
        batch = max(64, 2 * (n - have))
        xy = np.column_stack([rng.uniform(xmin, xmax, batch), rng.uniform(ymin, ymax, batch)])
        xy = xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])]
        found.append(xy)
        have += len(xy)
    return np.concatenate(found)[:n]


def province_outline(rng: np.random.Generator) -> Polygon:
    """A smooth, lobed province outline around :data:`PROVINCE_CENTRE`."""
    theta = np.linspace(0.0, 2 * np.pi, 240, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 12):
        radius += rng.uniform(0.03, 0.12) / np.sqrt(k) * np.sin(k * theta + rng.uniform(0, 6.3))
    radius = np.maximum(radius, 0.55)
    x = PROVINCE_CENTRE[0] + PROVINCE_HALF_AXES[0] * radius * np.cos(theta)
    y = PROVINCE_CENTRE[1] + PROVINCE_HALF_AXES[1] * radius * np.sin(theta)
    return Polygon(np.column_stack([x, y]))


def _spread_seeds(outline: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points inside the outline, no two closer than a spacing derived from its area."""
    spacing = 0.75 * np.sqrt(outline.area / n)
    while True:
        candidates = random_points_in(outline, 60 * n, rng)
        chosen = np.empty((n, 2))
        count = 0
        for xy in candidates:
            distance = np.hypot(*(chosen[:count] - xy).T)
            if count == 0 or distance.min() >= spacing:
                chosen[count] = xy
                count += 1
                if count == n:
                    return chosen
        spacing *= 0.9


def _commune_names(n: int, rng: np.random.Generator) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        first, second = rng.choice(len(SYLLABLES), 2, replace=False)
        name = f"{SYLLABLES[first]} {SYLLABLES[second]}"
        if name not in names:
            names.append(name)
    return names


def _pick_urban(seeds: np.ndarray, n_urban: int, rng: np.random.Generator) -> np.ndarray:
    """Wards cluster around the capital and the northern town; a few towns elsewhere."""
    urban = np.zeros(len(seeds), dtype=bool)
    south = max(2, round(0.6 * n_urban)) if n_urban >= 2 else n_urban
    north = min(max(1, round(0.2 * n_urban)), n_urban - south)
    for (lon, lat), count in ((CAPITAL, south), (NORTH_TOWN, north)):
        distance = np.hypot(seeds[:, 0] - lon, seeds[:, 1] - lat)
        distance[urban] = np.inf
        urban[np.argsort(distance)[:count]] = True
    rest = n_urban - int(urban.sum())
    if rest > 0:
        urban[rng.choice(np.flatnonzero(~urban), rest, replace=False)] = True
    return urban


def synthetic_communes(n: int, n_urban: int, rng: np.random.Generator) -> Communes:
    """Voronoi cells of spread-out seats, clipped to a province-shaped outline.

    The commune listed first among the urban ones holds the provincial capital.
    """
    outline = province_outline(rng)
    seeds = _spread_seeds(outline, n, rng)
    # The capital's commune first: the densest town is then easy to find and document.
    capital_first = np.argsort(np.hypot(seeds[:, 0] - CAPITAL[0], seeds[:, 1] - CAPITAL[1]))
    seeds = seeds[capital_first]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            MultiPoint(seeds), extend_to=outline.envelope.buffer(0.2), ordered=True
        )
    )
    geoms = np.array([as_multipolygon(c.intersection(outline)) for c in cells], dtype=object)
    urban = _pick_urban(seeds, n_urban, rng)
    names = _commune_names(n, rng)
    return Communes(
        codes=[f"9{i + 1:04d}" for i in range(n)],
        names=names,
        unit_types=["phường" if u else "xã" for u in urban],
        urban=urban,
        geoms=geoms,
        centres=seeds,
        source="synthetic",
    )


def _column(frame_columns: list[str], choices: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in frame_columns}
    return next((lowered[c] for c in choices if c in lowered), None)


def read_communes(path: Path) -> Communes:
    """Communes from a boundary file (any format GDAL reads), reprojected to EPSG:4326.

    The file needs a code column (``code``, ``ma_xa``, ``commune_code``…) and polygons; a name
    column and a type column (``division_type``/``unit_type``: phường and thị trấn are urban)
    are used when present.
    """
    import geopandas as gpd

    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several kinds; all mean "not a boundary file"
        raise CommunesFileError(f"{path}: cannot read as a boundary file ({exc})") from exc
    columns = [str(c) for c in frame.columns if c != frame.geometry.name]
    code_col = _column(columns, ("code", "ma_xa", "commune_code", "ma", "id"))
    if code_col is None:
        raise CommunesFileError(f"{path}: no commune code column (looked for code, ma_xa…)")
    name_col = _column(columns, ("name_vi", "name", "ten", "ten_xa", "commune_name"))
    type_col = _column(columns, ("division_type", "unit_type", "type", "loai"))
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    codes = [str(c).strip() for c in frame[code_col]]
    for row, code in enumerate(codes, start=1):
        problem = unit_code_problem(code)
        if problem:
            raise CommunesFileError(f"{path}: row {row}: field {code_col}: {problem}")
        if frame.geometry.iloc[row - 1] is None or frame.geometry.iloc[row - 1].is_empty:
            raise CommunesFileError(f"{path}: row {row}: commune {code} has no geometry")
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise CommunesFileError(f"{path}: field {code_col}: duplicate codes {duplicates[:5]}")
    geoms = np.array([as_multipolygon(g) for g in frame.geometry], dtype=object)
    names = [str(v) for v in frame[name_col]] if name_col else [f"Xã {c}" for c in codes]
    types = [str(v) for v in frame[type_col]] if type_col else ["" for _ in codes]
    urban = np.array([fold(t) in ("phuong", "thi tran") for t in types])
    if not urban.any():
        # No type column: the smallest sixth of the units are taken as the urban wards.
        areas = shapely.area(geoms)
        urban = areas <= np.quantile(areas, 1 / 6)
    centres = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = np.argsort(_capital_rank(centres, urban), kind="stable")
    return Communes(
        codes=[codes[i] for i in order],
        names=[names[i] for i in order],
        unit_types=[types[i] or ("phường" if urban[i] else "xã") for i in order],
        urban=urban[order],
        geoms=geoms[order],
        centres=centres[order],
        source=Path(path).name,
        province_name=f"{Path(path).stem} (synthetic)",
    )


def _capital_rank(centres: np.ndarray, urban: np.ndarray) -> np.ndarray:
    """Sort key putting the urban commune nearest the capital first, the rest in file order."""
    key = np.arange(len(centres), dtype=float) + 1.0
    distance = np.hypot(centres[:, 0] - CAPITAL[0], centres[:, 1] - CAPITAL[1])
    distance[~urban] = np.inf
    key[int(np.argmin(distance))] = 0.0
    return key


def villages(communes: Communes, per_commune: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Village centres of each commune, (k, 2) lon/lat arrays (the seat is the first)."""
    result = []
    for i, geom in enumerate(communes.geoms):
        inner = random_points_in(geom, per_commune, rng)
        result.append(np.vstack([communes.centres[i : i + 1], inner]))
    return result


def _spanning_tree(points: np.ndarray) -> list[tuple[int, int]]:
    """Edges of the minimum spanning tree over the points (Prim, fine for a hundred seats)."""
    n = len(points)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = np.hypot(*(points - points[0]).T)
    parent = np.zeros(n, dtype=int)
    edges = []
    for _ in range(n - 1):
        candidates = np.where(in_tree, np.inf, best)
        nxt = int(np.argmin(candidates))
        edges.append((int(parent[nxt]), nxt))
        in_tree[nxt] = True
        distance = np.hypot(*(points - points[nxt]).T)
        closer = distance < best
        parent[closer] = nxt
        best = np.minimum(best, distance)
    return edges


def roads(communes: Communes, village_points: list[np.ndarray]) -> shapely.Geometry:
    """Roads: a network joining the commune seats, and a track from each seat to its villages."""
    seats = communes.centres
    lines = [shapely.LineString([seats[a], seats[b]]) for a, b in _spanning_tree(seats)]
    for points in village_points:
        lines.extend(shapely.LineString([points[0], p]) for p in points[1:])
    return shapely.MultiLineString(lines)

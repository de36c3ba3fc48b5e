"""Tree points of the three categories, built as columns (numpy arrays), never row by row.

* urban: both sides of the streets of a grid around each town centre, every 8–12 m with a
  little jitter, one species per street mostly (as streets are planted), denser near the centre;
* scattered: clouds around villages and lines along roads;
* plantation: a regular grid inside each stand (a sample of the full planting, whose count the
  stand records), with gaps where trees died.

Each tree knows its commune from where it was generated; every point is checked to lie inside
that commune's polygon before it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from etl.synthetic.arrays import rank_within
from etl.synthetic.forestry import SURVEY_YEAR, Stands, local_to_lonlat
from etl.synthetic.geography import Communes, areas_m2, offset_degrees
from etl.synthetic.species_mix import Mix, conditions, sizes
from smarttrees.errors import SmartTreesError


@dataclass(frozen=True)
class Trees:
    """Columns of tree rows; ``stand`` is an index into the stands, -1 outside any stand."""

    lon: np.ndarray
    lat: np.ndarray
    category: np.ndarray
    species_id: np.ndarray
    dbh_cm: np.ndarray
    height_m: np.ndarray
    crown_m: np.ndarray
    condition: np.ndarray
    planted_on: np.ndarray  # datetime64[D]
    commune: np.ndarray
    stand: np.ndarray

    def __len__(self) -> int:
        return len(self.lon)


def numbered(trees: Trees) -> tuple[Trees, np.ndarray]:
    """The trees ordered by their codes, and the codes.

    Codes are ``<commune>-<U|S|P><nnnnnn>``, numbered within commune and category in generation
    order (street by street, stand by stand). Rows go to the database in code order: the
    unique index then grows by appending, and trees of a commune sit together on disk.
    """
    letters = np.select(
        [trees.category == "urban", trees.category == "scattered"], ["U", "S"], default="P"
    )
    prefix = np.strings.add(np.strings.add(trees.commune.astype(str), "-"), letters)
    seq = (rank_within(prefix) + 1).astype(str)
    codes = np.strings.add(prefix, np.strings.zfill(seq, 6))
    order = np.argsort(codes, kind="stable")
    fields = Trees.__dataclass_fields__
    return Trees(**{name: getattr(trees, name)[order] for name in fields}), codes[order]


def concat(parts: list[Trees]) -> Trees:
    """One Trees from several."""
    fields = Trees.__dataclass_fields__
    return Trees(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in fields})


def _attributes(
    lon: np.ndarray,
    lat: np.ndarray,
    category: str,
    mix: Mix,
    species: np.ndarray,
    planted_year: np.ndarray,
    commune: np.ndarray,
    stand: np.ndarray,
    rng: np.random.Generator,
) -> Trees:
    n = len(lon)
    day_of_year = rng.integers(30, 240, n).astype("timedelta64[D]")
    planted_on = (planted_year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + day_of_year
    age = SURVEY_YEAR - planted_year + 0.5
    dbh, height, crown = sizes(mix, species, age.astype(float), rng)
    return Trees(
        lon=lon,
        lat=lat,
        category=np.full(n, category),
        species_id=mix.ids[species],
        dbh_cm=dbh,
        height_m=height,
        crown_m=crown,
        condition=conditions(n, rng),
        planted_on=planted_on,
        commune=commune,
        stand=stand,
    )


def _keep_inside(geom: shapely.Geometry, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    shapely.prepare(geom)
    return shapely.contains_xy(geom, lon, lat)


def _street_candidates(
    centre: np.ndarray, radius_m: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tree spots along a street grid around a centre: (x m, y m, street id, distance m)."""
    spacing = rng.uniform(140, 200)
    lines = np.arange(-radius_m, radius_m + 1, spacing)
    step = rng.uniform(8, 12)
    along = np.arange(-radius_m, radius_m, step)
    xs, ys, streets = [], [], []
    for orientation in (0, 1):
        for side in (-6.0, 6.0):
            offset, position = np.meshgrid(lines + side, along, indexing="ij")
            street = np.repeat(np.arange(len(lines)) + orientation * len(lines), len(along))
            x, y = (
                (position.ravel(), offset.ravel())
                if orientation == 0
                else (offset.ravel(), position.ravel())
            )
            xs.append(x)
            ys.append(y)
            streets.append(street)
    x = np.concatenate(xs) + rng.normal(0, 0.8, sum(len(a) for a in xs))
    y = np.concatenate(ys) + rng.normal(0, 0.8, len(x))
    angle = rng.uniform(0, np.pi / 2)
    xr, yr = x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)
    return xr, yr, np.concatenate(streets), np.hypot(xr, yr)


# Four rows of trees per street spacing (~170 m), one every ~10 m: one spot per ~425 m².
SQUARE_METRES_PER_SPOT = 425.0


def share_within(
    n: int, weights: np.ndarray, capacity: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Split ``n`` by ``weights`` without exceeding any ``capacity``: overflow goes elsewhere."""
    if n > capacity.sum():
        raise SmartTreesError(
            f"the {len(capacity)} urban communes are too small for {n:,} street trees "
            f"(room for about {int(capacity.sum()):,})"
        )
    shares = np.zeros(len(weights), dtype=np.int64)
    left = n
    while left > 0:
        room = capacity - shares
        open_weights = np.where(room > 0, weights, 0.0)
        shares += np.minimum(rng.multinomial(left, open_weights / open_weights.sum()), room)
        left = n - int(shares.sum())
    return shares


def urban(communes: Communes, n: int, mix: Mix, rng: np.random.Generator) -> Trees:
    """``n`` street trees in the urban communes, about half of them in the capital."""
    towns = np.flatnonzero(communes.urban)
    weights = rng.uniform(0.6, 1.4, len(towns))
    weights[0] = weights[1:].sum() if len(towns) > 1 else 1.0  # the capital: half of them
    # A ward holds at most about half the spots a street grid over all of it would give.
    capacity = (areas_m2(communes.geoms[towns]) / SQUARE_METRES_PER_SPOT / 2).astype(np.int64)
    per_town = share_within(n, weights, capacity, rng)
    parts = []
    for town, need in zip(towns, per_town, strict=True):
        if need == 0:
            continue
        lon, lat, species, year = _town_trees(communes, int(town), int(need), mix, rng)
        code = communes.codes[town]
        parts.append(
            _attributes(
                lon,
                lat,
                "urban",
                mix,
                species,
                year,
                np.full(len(lon), code),
                np.full(len(lon), -1),
                rng,
            )
        )
    return concat(parts)


def _town_trees(
    communes: Communes, town: int, need: int, mix: Mix, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    centre = communes.centres[town]
    # About half the spots within the radius survive the fall-off: a town of `need` trees
    # needs roughly this radius.
    radius = max(250.0, np.sqrt(need * SQUARE_METRES_PER_SPOT / np.pi / 0.92))
    for _attempt in range(8):
        x, y, street, distance = _street_candidates(centre, 1.6 * radius, rng)
        # Dense in the centre, thinning out towards the edge of town.
        keep = rng.uniform(0, 1, len(x)) < np.exp(-((distance / radius) ** 2))
        keep &= distance <= 1.6 * radius
        dlon, dlat = offset_degrees(centre[1], x[keep], y[keep])
        lon, lat = centre[0] + dlon, centre[1] + dlat
        inside = _keep_inside(communes.geoms[town], lon, lat)
        if inside.sum() >= need:
            chosen = np.sort(rng.choice(np.flatnonzero(inside), need, replace=False))
            street_species = mix.draw(int(street.max()) + 1, rng)
            species = street_species[street[keep][chosen]]
            mixed = rng.uniform(0, 1, need) < 0.2  # replanting brings other species in
            species[mixed] = mix.draw(int(mixed.sum()), rng)
            # Streets were planted in waves; newer streets towards the edge.
            base = 2020 - (45 * np.exp(-distance[keep][chosen] / radius)).astype(int)
            year = np.clip(base + rng.integers(-5, 6, need), 1960, SURVEY_YEAR - 1)
            return lon[chosen], lat[chosen], species, year
        radius *= 1.4
    raise RuntimeError(f"commune {communes.codes[town]} too small for {need} street trees")


def scattered(
    communes: Communes,
    n: int,
    village_points: list[np.ndarray],
    road_network: shapely.Geometry,
    mix: Mix,
    rng: np.random.Generator,
) -> Trees:
    """``n`` trees around villages (60 %) and along roads (40 %), fewer in urban communes."""
    weights = np.where(communes.urban, 0.3, 1.0) * np.sqrt(shapely.area(communes.geoms))
    per_commune = rng.multinomial(n, weights / weights.sum())
    parts = []
    for c, need in enumerate(per_commune):
        if need == 0:
            continue
        geom = communes.geoms[c]
        road_part = shapely.intersection(road_network, geom)
        on_roads = int(round(0.4 * need)) if shapely.length(road_part) > 0 else 0
        lon1, lat1 = _around_villages(geom, village_points[c], need - on_roads, rng)
        lon2, lat2 = _along_roads(geom, road_part, on_roads, rng)
        lon, lat = np.r_[lon1, lon2], np.r_[lat1, lat2]
        species = mix.draw(need, rng)
        year = SURVEY_YEAR - 1 - np.minimum(rng.gamma(2.0, 8.0, need).astype(int), 60)
        parts.append(
            _attributes(
                lon,
                lat,
                "scattered",
                mix,
                species,
                year,
                np.full(need, communes.codes[c]),
                np.full(need, -1),
                rng,
            )
        )
    return concat(parts)


def _around_villages(
    geom: shapely.Geometry, villages: np.ndarray, need: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    lon_out: list[np.ndarray] = []
    lat_out: list[np.ndarray] = []
    have = 0
    while have < need:
        k = 2 * (need - have) + 16
        village = villages[rng.integers(0, len(villages), k)]
        dx, dy = rng.normal(0, 250, (2, k))
        dlon, dlat = offset_degrees(village[:, 1], dx, dy)
        lon, lat = village[:, 0] + dlon, village[:, 1] + dlat
        inside = _keep_inside(geom, lon, lat)
        lon_out.append(lon[inside])
        lat_out.append(lat[inside])
        have += int(inside.sum())
    return np.concatenate(lon_out)[:need], np.concatenate(lat_out)[:need]


def _along_roads(
    geom: shapely.Geometry, road_part: shapely.Geometry, need: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    lon_out: list[np.ndarray] = []
    lat_out: list[np.ndarray] = []
    have = 0
    lines = shapely.get_parts(road_part)
    lengths = shapely.length(lines)
    lines, lengths = lines[lengths > 0], lengths[lengths > 0]
    while have < need:
        k = 2 * (need - have) + 16
        line = rng.choice(len(lines), k, p=lengths / lengths.sum())
        where = rng.uniform(0, 1, k)
        points = shapely.line_interpolate_point(lines[line], where, normalized=True)
        ahead = shapely.line_interpolate_point(
            lines[line], np.minimum(where + 1e-3, 1.0), normalized=True
        )
        xy, xy2 = shapely.get_coordinates(points), shapely.get_coordinates(ahead)
        direction = xy2 - xy
        norm = np.hypot(direction[:, 0], direction[:, 1])
        norm[norm == 0] = 1.0
        side = rng.choice([-1.0, 1.0], k) * rng.uniform(5, 15, k)
        # The normal to the road, in metres then degrees.
        dlon, dlat = offset_degrees(
            xy[:, 1], -direction[:, 1] / norm * side, direction[:, 0] / norm * side
        )
        lon, lat = xy[:, 0] + dlon, xy[:, 1] + dlat
        inside = _keep_inside(geom, lon, lat)
        lon_out.append(lon[inside])
        lat_out.append(lat[inside])
        have += int(inside.sum())
    if need == 0:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(lon_out)[:need], np.concatenate(lat_out)[:need]


def plantation(stands: Stands, n: int, mix: Mix, rng: np.random.Generator) -> Trees:
    """``n`` trees on regular grids inside the stands, with random gaps (dead or cut)."""
    total_m2 = float((stands.width_m * stands.depth_m).sum())
    spacing = np.sqrt(total_m2 / n) * 0.95
    while True:
        nx = np.maximum(np.floor(stands.width_m / spacing).astype(int), 1)
        ny = np.maximum(np.floor(stands.depth_m / spacing).astype(int), 1)
        if (nx * ny).sum() >= n:
            break
        spacing *= 0.95
    counts = nx * ny
    stand = np.repeat(np.arange(len(stands)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    i, j = k % nx[stand], k // nx[stand]
    # Cell centres of an nx × ny grid filling the rectangle: every point strictly inside.
    x = ((i + 0.5) / nx[stand] - 0.5) * stands.width_m[stand]
    y = ((j + 0.5) / ny[stand] - 0.5) * stands.depth_m[stand]
    x += rng.uniform(-0.1, 0.1, len(x)) * stands.width_m[stand] / nx[stand]
    y += rng.uniform(-0.1, 0.1, len(y)) * stands.depth_m[stand] / ny[stand]
    keep = np.sort(rng.choice(len(x), n, replace=False))
    stand = stand[keep]
    lon, lat = local_to_lonlat(stands.centre[stand], stands.angle[stand], x[keep], y[keep])
    return _attributes(
        lon,
        lat,
        "plantation",
        mix,
        stands.mix_index[stand],
        stands.planting_year[stand],
        stands.commune[stand],
        stand,
        rng,
    )

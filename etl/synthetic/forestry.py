"""Plantation stands, nurseries, seedling lots and timber logs of the synthetic province.

Stands are rotated rectangles of 1–30 ha inside rural communes, never overlapping, each with
its species, planting year, owner and forest function; production stands of Keo, Bạch đàn or
Thông old enough to cut carry a harvest allowance, and the timber logs come from those stands
(their volumes never add up to more than the allowance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from etl.synthetic.arrays import rank_within
from etl.synthetic.geography import Communes, areas_m2, offset_degrees, random_points_in
from etl.synthetic.names import organisation_names, person_names
from etl.synthetic.species_mix import (
    DEFAULT_DENSITY,
    MEAN_ANNUAL_INCREMENT,
    PLANTING_DENSITY,
    Mix,
    sizes,
)

SURVEY_YEAR = 2025
OWNER_TYPES = np.array(["household", "company", "state", "cooperative", "community"])
OWNER_SHARES = np.array([0.45, 0.2, 0.2, 0.05, 0.1])
FUNCTIONS = np.array(["production", "protection", "special_use"])
FUNCTION_SHARES = np.array([0.8, 0.17, 0.03])
# Age from which a stand may be cut, by genus (fast-growing plantations first).
ROTATION_AGE = {"Acacia": 5, "Eucalyptus": 5, "Pinus": 15}


@dataclass(frozen=True)
class Stands:
    """Plantation stands; ``width_m``/``depth_m``/``angle`` describe each rectangle."""

    codes: np.ndarray
    commune: np.ndarray
    centre: np.ndarray  # (n, 2) lon/lat
    width_m: np.ndarray
    depth_m: np.ndarray
    angle: np.ndarray  # radians, counter-clockwise from east
    geoms: np.ndarray  # shapely Polygons, EPSG:4326
    mix_index: np.ndarray  # into the plantation Mix
    species_id: np.ndarray
    planting_year: np.ndarray
    area_ha: np.ndarray
    planted_count: np.ndarray
    owner_type: np.ndarray
    owner_name: np.ndarray
    forest_function: np.ndarray
    harvest_allowed_m3: np.ndarray  # NaN: no allowance

    def __len__(self) -> int:
        return len(self.codes)


def local_to_lonlat(
    centre: np.ndarray, angle: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points given in metres in each rectangle's own frame, as lon/lat."""
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = x * cos - y * sin, x * sin + y * cos
    dlon, dlat = offset_degrees(centre[:, 1], dx, dy)
    return centre[:, 0] + dlon, centre[:, 1] + dlat


def _rectangles(centre: np.ndarray, width: np.ndarray, depth: np.ndarray, angle: np.ndarray):
    corners_x = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])[None, :] * width[:, None]
    corners_y = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])[None, :] * depth[:, None]
    n = len(centre)
    lon, lat = local_to_lonlat(
        np.repeat(centre, 5, axis=0),
        np.repeat(angle, 5),
        corners_x.ravel(),
        corners_y.ravel(),
    )
    return shapely.polygons(np.column_stack([lon, lat]).reshape(n, 5, 2))


def _place_stands(
    communes: Communes, per_commune: np.ndarray, rng: np.random.Generator
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping rectangles inside each commune: (commune, centre, w, d, angle, polygon)."""
    out_commune: list[int] = []
    out: list[tuple[np.ndarray, ...]] = []
    for c, need in enumerate(per_commune):
        if need == 0:
            continue
        geom = communes.geoms[c]
        shapely.prepare(geom)
        accepted: list[shapely.Geometry] = []
        parts: list[tuple[np.ndarray, ...]] = []
        for _round in range(4):
            k = 3 * (need - len(accepted)) + 4
            centre = random_points_in(geom, k, rng)
            area_m2 = np.clip(rng.lognormal(np.log(6.0), 0.7, k), 1.0, 30.0) * 10_000
            aspect = rng.uniform(1.0, 2.5, k)
            width = np.sqrt(area_m2 * aspect)
            depth = area_m2 / width
            angle = rng.uniform(0, np.pi, k)
            rects = _rectangles(centre, width, depth, angle)
            inside = shapely.contains_properly(geom, rects)
            for i in np.flatnonzero(inside):
                if any(shapely.intersects(rects[i], other) for other in _near(accepted, rects[i])):
                    continue
                accepted.append(rects[i])
                parts.append((centre[i], width[i], depth[i], angle[i], rects[i]))
                if len(accepted) == need:
                    break
            if len(accepted) == need:
                break
        out_commune.extend([c] * len(parts))
        out.extend(parts)
    return (
        out_commune,
        np.array([p[0] for p in out]).reshape(-1, 2),
        np.array([p[1] for p in out]),
        np.array([p[2] for p in out]),
        np.array([p[3] for p in out]),
        np.array([p[4] for p in out], dtype=object),
    )


def _near(accepted: list[shapely.Geometry], rect: shapely.Geometry) -> list[shapely.Geometry]:
    """Accepted stands whose bounding boxes meet ``rect``'s (a cheap pre-filter)."""
    if not accepted:
        return []
    xmin, ymin, xmax, ymax = shapely.bounds(rect)
    bounds = shapely.bounds(np.array(accepted, dtype=object))
    hit = (
        (bounds[:, 0] <= xmax)
        & (bounds[:, 2] >= xmin)
        & (bounds[:, 1] <= ymax)
        & (bounds[:, 3] >= ymin)
    )
    return [accepted[i] for i in np.flatnonzero(hit)]


def stands(communes: Communes, n: int, mix: Mix, rng: np.random.Generator) -> Stands:
    """About ``n`` plantation stands spread over the rural communes by area."""
    weights = np.where(communes.urban, 0.0, shapely.area(communes.geoms))
    per_commune = rng.multinomial(n, weights / weights.sum())
    commune_index, centre, width, depth, angle, geoms = _place_stands(communes, per_commune, rng)
    count = len(commune_index)
    species = mix.draw(count, rng)
    genus = np.array([mix.genus(i) for i in species])
    oldest = np.select(
        [np.isin(genus, ["Acacia", "Eucalyptus"]), genus == "Pinus"], [12, 35], default=25
    )
    planting_year = SURVEY_YEAR - 1 - np.floor(rng.uniform(0, 1, count) * oldest).astype(int)
    area_ha = np.round(areas_m2(geoms) / 10_000, 4)
    density = np.array([PLANTING_DENSITY.get(g, DEFAULT_DENSITY) for g in genus])
    owner_type = OWNER_TYPES[rng.choice(len(OWNER_TYPES), count, p=OWNER_SHARES)]
    function = FUNCTIONS[rng.choice(len(FUNCTIONS), count, p=FUNCTION_SHARES)]
    codes_commune = np.array(communes.codes)[commune_index]
    return Stands(
        codes=_stand_codes(codes_commune),
        commune=codes_commune,
        centre=centre,
        width_m=width,
        depth_m=depth,
        angle=angle,
        geoms=geoms,
        mix_index=species,
        species_id=mix.ids[species],
        planting_year=planting_year,
        area_ha=area_ha,
        planted_count=np.round(area_ha * density).astype(int),
        owner_type=owner_type,
        owner_name=_owner_names(owner_type, rng),
        forest_function=function,
        harvest_allowed_m3=_harvest_allowance(genus, planting_year, area_ha, function, rng),
    )


def _stand_codes(commune_codes: np.ndarray) -> np.ndarray:
    """``ST-<commune>-<nnnn>``, numbered within each commune."""
    seq = rank_within(commune_codes) + 1
    return np.strings.add(
        np.strings.add("ST-", commune_codes.astype(str)),
        np.strings.add("-", np.strings.zfill(seq.astype(str), 4)),
    )


def _owner_names(owner_type: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    names = np.empty(len(owner_type), dtype=object)
    households = owner_type == "household"
    names[households] = person_names(int(households.sum()), rng)
    names[~households] = organisation_names(owner_type[~households], rng)
    return names


def _harvest_allowance(
    genus: np.ndarray,
    planting_year: np.ndarray,
    area_ha: np.ndarray,
    function: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Allowed volume (m³) for production stands past rotation age; NaN for the others."""
    age = SURVEY_YEAR - planting_year
    rotation = np.array([ROTATION_AGE.get(g, 999) for g in genus])
    increment = np.array([MEAN_ANNUAL_INCREMENT.get(g, 0.0) for g in genus])
    eligible = (function == "production") & (age >= rotation)
    chosen = eligible & (rng.uniform(0, 1, len(genus)) < 0.35)
    if eligible.any() and not chosen.any():
        chosen[np.flatnonzero(eligible)[0]] = True
    volume = np.round(area_ha * increment * age * rng.uniform(0.7, 0.9, len(genus)), 3)
    return np.where(chosen, volume, np.nan)


@dataclass(frozen=True)
class Nurseries:
    """Seedling nurseries (points) and their seedling lots."""

    codes: np.ndarray
    names: list[str]
    operators: list[str]
    certificates: list[str]
    capacity: np.ndarray
    commune: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


def nurseries(
    communes: Communes, village_points: list[np.ndarray], n: int, rng: np.random.Generator
) -> Nurseries:
    """Nurseries beside villages of rural communes."""
    rural = np.flatnonzero(~communes.urban) if (~communes.urban).any() else np.arange(len(communes))
    chosen = rng.choice(rural, n, replace=len(rural) < n)
    points = []
    for c in chosen:
        village = village_points[c][rng.integers(len(village_points[c]))]
        near = shapely.intersection(
            communes.geoms[c], shapely.Point(village).buffer(0.004)
        )  # within ~400 m of the village, inside the commune
        points.append(random_points_in(near, 1, rng)[0])
    xy = np.array(points)
    codes = np.strings.add("NS-", np.strings.zfill(np.arange(1, n + 1).astype(str), 3))
    operators = organisation_names(np.full(n, "nursery"), rng).tolist()
    return Nurseries(
        codes=codes,
        names=[f"Vườn ươm {communes.names[c]} {i + 1}" for i, c in enumerate(chosen)],
        operators=operators,
        certificates=[f"{100 + i}/GCN-CCKL" for i in range(n)],
        capacity=(rng.integers(2, 20, n) * 100_000),
        commune=np.array(communes.codes)[chosen],
        lon=xy[:, 0],
        lat=xy[:, 1],
    )


@dataclass(frozen=True)
class SeedlingLots:
    """Seedling lots, each raised in one nursery; what became of them is their custody history."""

    codes: np.ndarray
    nursery: np.ndarray  # index into Nurseries
    species_id: np.ndarray
    seed_source: list[str]
    quantity: np.ndarray
    sown_on: np.ndarray
    ready_on: np.ndarray


SEED_SOURCES = ["Vườn giống", "Rừng giống", "Nuôi cấy mô", "Hom", "Cây trội"]
# Lots are sown from March 2024 to mid-September 2025 and ready three to six months later, so
# by the end of the survey some are long planted and some are still seedlings in their trays.
FIRST_SOWING = np.datetime64("2024-03-01")
SOWING_DAYS = 560


def seedling_lots(n_nurseries: int, n: int, mix: Mix, rng: np.random.Generator) -> SeedlingLots:
    """Lots spread over the nurseries, with their sowing and expected ready dates."""
    quantity = rng.integers(10, 400, n) * 500
    sown = FIRST_SOWING + rng.integers(0, SOWING_DAYS, n).astype("timedelta64[D]")
    ready = sown + rng.integers(90, 180, n).astype("timedelta64[D]")
    return SeedlingLots(
        codes=np.strings.add("LOT-", np.strings.zfill(np.arange(1, n + 1).astype(str), 5)),
        nursery=rng.integers(0, n_nurseries, n),
        species_id=mix.ids[mix.draw(n, rng)],
        seed_source=[SEED_SOURCES[i] for i in rng.integers(0, len(SEED_SOURCES), n)],
        quantity=quantity,
        sown_on=sown,
        ready_on=ready,
    )


@dataclass(frozen=True)
class TimberLogs:
    """Logs felled in the stands that carry a harvest allowance (their custody: elsewhere)."""

    codes: np.ndarray
    stand: np.ndarray  # index into Stands
    species_id: np.ndarray
    felled_on: np.ndarray
    length_m: np.ndarray
    diameter_cm: np.ndarray
    volume_m3: np.ndarray
    lon: np.ndarray  # where the log was felled, inside its stand
    lat: np.ndarray


def timber_logs(stands_: Stands, n: int, mix: Mix, rng: np.random.Generator) -> TimberLogs:
    """About ``n`` logs, shared among harvested stands by allowance, within each allowance."""
    allowed = np.nan_to_num(stands_.harvest_allowed_m3)
    per_stand = rng.multinomial(n, allowed / allowed.sum()) if allowed.sum() > 0 else allowed * 0
    stand = np.repeat(np.arange(len(stands_)), per_stand.astype(int))
    age = SURVEY_YEAR - stands_.planting_year[stand]
    dbh, _, _ = sizes(mix, stands_.mix_index[stand], age.astype(float), rng)
    length = np.round(rng.choice([2.0, 2.2, 2.5, 4.0, 6.0], len(stand)), 1)
    diameter = np.round(np.maximum(dbh * rng.uniform(0.7, 0.95, len(stand)), 8.0), 1)
    volume = np.round(np.pi / 4 * (diameter / 100) ** 2 * length * 0.85, 4)
    # Never more felled than allowed: drop a stand's logs past its allowance.
    within = _cumulative_within(stand, volume, allowed)
    stand, length, diameter, volume = (
        stand[within],
        length[within],
        diameter[within],
        volume[within],
    )
    count = len(stand)
    felled = _felling_days(stand, len(stands_), rng)
    x = rng.uniform(-0.4, 0.4, count) * stands_.width_m[stand]
    y = rng.uniform(-0.4, 0.4, count) * stands_.depth_m[stand]
    lon, lat = local_to_lonlat(stands_.centre[stand], stands_.angle[stand], x, y)
    return TimberLogs(
        codes=np.strings.add("LOG-", np.strings.zfill(np.arange(1, count + 1).astype(str), 7)),
        stand=stand,
        species_id=stands_.species_id[stand],
        felled_on=felled,
        length_m=length.astype(np.float32),
        diameter_cm=diameter.astype(np.float32),
        volume_m3=volume,
        lon=lon,
        lat=lat,
    )


# A stand is cut in one campaign of one to six weeks, starting between January and September.
FIRST_FELLING = np.datetime64("2025-01-02")
LAST_FELLING = np.datetime64("2025-09-28")


def _felling_days(stand: np.ndarray, n_stands: int, rng: np.random.Generator) -> np.ndarray:
    """The day each log is felled: within its stand's harvest campaign."""
    season = int((LAST_FELLING - FIRST_FELLING).astype(int))
    length = rng.integers(7, 43, n_stands)
    start = rng.integers(0, season - 6, n_stands)
    day = start[stand] + np.floor(rng.uniform(0, 1, len(stand)) * length[stand]).astype(int)
    return FIRST_FELLING + np.minimum(day, season).astype("timedelta64[D]")


def _cumulative_within(stand: np.ndarray, volume: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """True for logs whose running volume total stays within their stand's allowance."""
    if len(stand) == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(stand, kind="stable")
    running = np.cumsum(volume[order])
    starts = np.r_[0, np.flatnonzero(np.diff(stand[order])) + 1]
    lengths = np.diff(np.r_[starts, len(stand)])
    before = np.repeat(np.r_[0.0, running][starts], lengths)
    keep = np.empty(len(stand), dtype=bool)
    keep[order] = (running - before) <= allowed[stand[order]]
    return keep

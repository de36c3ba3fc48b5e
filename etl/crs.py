"""Coordinate reference systems of Vietnamese surveys, resolved with pyproj.

Names a person may type (``--crs``) and what a file declares both become a :class:`pyproj.CRS`.
VN-2000 comes in three flavours: geographic (EPSG:4756), UTM 6° zones 48N/49N (EPSG:3405/3406)
and the provincial 3° TM zones with scale 0.9999 (EPSG:9205–9218 by central meridian; Thái Nguyên
uses 106°30', EPSG:9213). pyproj picks EPSG's VN-2000 → WGS 84 transformation (the 7-parameter
Helmert of Decision 05/2007/QĐ-BTNMT), which is what the datum shift must be.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from smarttrees.errors import SmartTreesError
from smarttrees.territory import Territory

WGS84 = "EPSG:4326"

# Central meridian (degrees) → EPSG code of the VN-2000 / TM-3 provincial zone.
VN2000_TM3 = {
    103.0: 9205, 104.0: 9206, 104.5: 9207, 104.75: 9208, 105.5: 9209, 105.75: 9210,
    106.0: 9211, 106.25: 9212, 106.5: 9213, 107.0: 9214, 107.25: 9215, 107.5: 9216,
    108.25: 9217, 108.5: 9218, 107.75: 5899,
}

ALIASES = {
    "wgs84": 4326, "wgs 84": 4326, "lonlat": 4326, "latlon": 4326,
    "vn2000": 4756, "vn-2000": 4756, "vn2000-geographic": 4756,
    "utm48": 32648, "utm48n": 32648, "utm49": 32649, "utm49n": 32649,
    "vn2000-utm48": 3405, "vn2000-utm48n": 3405, "vn2000-utm49": 3406, "vn2000-utm49n": 3406,
    # The province's own zone: the name people use for it.
    "vn2000-thainguyen": 9213, "vn2000-thai-nguyen": 9213,
}

class CRSNameError(SmartTreesError):
    """A CRS name or code that pyproj does not know."""

    rule = "unknown_crs"


def resolve(name: str | int | CRS) -> CRS:
    """A CRS from an EPSG code, an alias, a VN-2000 zone name, WKT or a PROJ string.

    Accepted forms: ``4326``, ``EPSG:9213``, ``wgs84``, ``utm48``, ``vn2000-utm48``,
    ``vn2000-tm3-106.5``, ``vn2000-tm3-106-30`` (degrees-minutes), ``vn2000-thai-nguyen``.

    >>> resolve("vn2000-tm3-106-30").to_epsg()
    9213
    """
    if isinstance(name, CRS):
        return name
    text = str(name).strip()
    key = text.lower().replace("_", "-").replace(" ", "")
    if key in ALIASES:
        return CRS.from_epsg(ALIASES[key])
    zone = re.fullmatch(r"vn-?2000-?tm-?3-(\d{3})(?:[.-](\d{1,2}))?", key)
    if zone:
        return CRS.from_epsg(_tm3_code(zone.group(1), zone.group(2), text))
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise CRSNameError(
            f"unknown CRS {name!r}: give an EPSG code (4326, 9213…), or one of "
            f"{', '.join(sorted(ALIASES))}, or vn2000-tm3-<meridian> such as vn2000-tm3-106-30"
        ) from exc


def _tm3_code(degrees: str, fraction: str | None, text: str) -> int:
    """EPSG code of a VN-2000 3° zone from ``106-30`` (minutes) or ``106.5`` (decimal)."""
    meridian = float(degrees)
    if fraction:
        # Two-digit minutes (30, 45, 15) unless it reads as a decimal fraction (106.5, 106.25).
        minutes = int(fraction)
        meridian += minutes / 60 if fraction in ("15", "30", "45") and "." not in text else float(
            f"0.{fraction}"
        )
    if meridian not in VN2000_TM3:
        known = ", ".join(f"{m:g}" for m in sorted(VN2000_TM3))
        raise CRSNameError(
            f"no VN-2000 3° zone with central meridian {meridian:g}° (known: {known})")
    return VN2000_TM3[meridian]


def label(crs: CRS) -> str:
    """Short name recorded in ``source_crs``: ``EPSG:9213`` when it has one, else its name."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.name


@lru_cache(maxsize=32)
def _transformer(wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(wkt), WGS84, always_xy=True)


def to_wgs84(crs: CRS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reproject coordinate arrays (easting/longitude first) to WGS 84 longitude/latitude."""
    if crs.to_epsg() == 4326:
        return x, y
    lon, lat = _transformer(crs.to_wkt()).transform(x, y)
    return np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")


def easting_first(crs: CRS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A survey's projected coordinate columns as (easting, northing), whichever order they are in.

    VN-2000 surveying calls the northing X: a pair whose first value is a northing (over
    1,000 km) and second an easting is swapped, as fits Vietnam. Geographic pairs are kept.
    """
    if crs.is_geographic:
        return x, y
    north_first = (x > 1_000_000) & (y < 1_000_000)
    return np.where(north_first, y, x), np.where(north_first, x, y)


# The CRSs tried when projected points fall outside the territory: the usual mix-ups.
_CANDIDATES = (9213, 9211, 9212, 9214, 9210, 5897, 3405, 3406, 32648, 32649)


def wrong_zone_hints(
    crs: CRS, x: np.ndarray, y: np.ndarray, territory: Territory
) -> list[str | None]:
    """For each point, a hint naming the CRS under which it would fall inside the territory.

    Only computed for points outside the territory; ``None`` where no candidate helps.
    """
    hints: list[str | None] = [None] * len(x)
    todo = np.ones(len(x), dtype=bool)
    own = crs.to_epsg()
    if crs.is_geographic:
        swapped = territory.contains(y, x)
        for i in np.flatnonzero(swapped):
            hints[i] = "longitude and latitude look swapped"
        return hints
    for code in _CANDIDATES:
        if code == own or not todo.any():
            continue
        lon, lat = to_wgs84(CRS.from_epsg(code), x[todo], y[todo])
        ok = territory.contains(lon, lat)
        idx = np.flatnonzero(todo)[ok]
        name = CRS.from_epsg(code).name
        for i in idx:
            hints[i] = f"inside the territory if the CRS is EPSG:{code} ({name}): wrong zone?"
        todo[idx] = False
    return hints

"""The EUDR geolocation file: the plots of origin of a load, a log, a lot or a stand, as GeoJSON.

A due diligence statement under the EU Deforestation Regulation (Regulation (EU) 2023/1115,
amended by 2025/2650) carries the geolocation of every plot the wood came from: GeoJSON in
WGS 84, longitude before latitude, at most six decimal places, a polygon for every plot over
4 ha (we give the polygon for every plot), valid closed rings, and one file of at most 25 MB.

Geometry is reduced to the 10⁻⁶° grid in PostGIS (``ST_ReducePrecision`` keeps it valid) and
written there (``ST_AsGeoJSON(…, 6)``); every polygon is then checked again with shapely, so a
plot that fails the rules stops the document instead of reaching a buyer. Each plot is also
flagged for what a reviewer must look at: planted after the 2020-12-31 cut-off, an area that
does not match the stand record, an overlap with another recorded plot, and — when a forest-loss
raster is registered as ``forest_loss`` — forest lost after the cut-off. A plot without a polygon
refuses the whole document, naming the logs that came from it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import shapely
from psycopg import AsyncConnection

from barcodes.origin import Origin, TraceError

CUTOFF = date(2020, 12, 31)
POLYGON_OVER_HA = 4.0
MAX_FILE_BYTES = 25 * 1000 * 1000  # the EU information system's cap on one statement's file
AREA_TOLERANCE = 0.05  # a computed area more than 5 % off the stand record is flagged
DECIMALS = 6
# A raster registered under this name (`smarttrees raster add FILE --name forest_loss`) is
# sampled over every plot: the year forest was lost in each cell.
LOSS_RASTER = "forest_loss"


class PlotWithoutPolygon(TraceError):
    """A plot of origin has no polygon (or an empty one): no statement can be made for it."""

    rule = "plot_without_polygon"


class InvalidPlot(TraceError):
    """A plot's polygon breaks the GeoJSON rules (invalid or open rings, bad coordinates)."""

    rule = "invalid_plot_geometry"


class FileTooLarge(TraceError):
    """One plot alone is larger than the file cap, so no split can hold it."""

    rule = "eudr_file_too_large"


@dataclass(frozen=True)
class EudrParts:
    """The GeoJSON files of one statement (each under the cap) and their manifest."""

    name: str
    parts: tuple[bytes, ...]
    manifest: dict[str, Any]


_PLOTS_SQL = """
SELECT st.id, st.stand_code, st.area_ha, st.planting_year, st.owner_type, st.commune_code,
       sp.scientific_name,
       ST_IsEmpty(st.geom),
       ST_AsGeoJSON(CASE WHEN ST_NumGeometries(g.geom) = 1 THEN ST_GeometryN(g.geom, 1)
                         ELSE g.geom END, 6),
       ST_Area(st.geom::geography) / 10000.0,
       (SELECT coalesce(array_agg(o.stand_code ORDER BY o.stand_code), '{}')
          FROM smarttrees.stands o
         WHERE o.id <> st.id AND o.geom && st.geom AND ST_Relate(o.geom, st.geom, '2********'))
FROM smarttrees.stands st
LEFT JOIN smarttrees.species sp ON sp.id = st.species_id
CROSS JOIN LATERAL (SELECT ST_ReducePrecision(st.geom, 1e-6) AS geom) g
WHERE st.id = ANY(%s)
ORDER BY st.stand_code
"""


async def plot_features(conn: AsyncConnection, origin: Origin) -> list[dict[str, Any]]:
    """One GeoJSON Feature per plot of origin, checked and flagged.

    Raises
    ------
    PlotWithoutPolygon
        A plot has an empty geometry (the message names the stand and its logs).
    InvalidPlot
        A plot's polygon is not valid once written with six decimals.

    """
    cur = await conn.execute(_PLOTS_SQL, [list(origin.stand_ids)])
    rows = await cur.fetchall()
    by_stand: dict[int, list[Any]] = {}
    for log in origin.logs:
        by_stand.setdefault(log.stand_id, []).append(log)
    missing = [r for r in rows if r[7] or r[8] is None]
    if missing:
        raise PlotWithoutPolygon("; ".join(_missing_message(r[1], by_stand.get(r[0], []))
                                           for r in missing))
    features = [_feature(r, by_stand.get(r[0], [])) for r in rows]
    cur = await conn.execute(
        "SELECT path, band, nodata FROM smarttrees.rasters WHERE name = %s", [LOSS_RASTER]
    )
    raster = await cur.fetchone()
    if raster is not None:
        await asyncio.to_thread(flag_forest_loss, features, raster[0], int(raster[1]), raster[2])
    return features


def flag_forest_loss(
    features: Sequence[dict[str, Any]], path: str, band: int, nodata: float | None
) -> None:
    """Sample the forest-loss raster over each plot; flag plots that lost forest after 2020.

    The raster's cells hold the year forest was lost: a full year (2019) or, as Hansen et al.'s
    Global Forest Change ``lossyear`` band does, years since 2000 (19); 0 or nodata is no loss.
    Each plot gets ``forest_loss_share`` (of its cells, any cell it touches) and, when any cell
    lost forest after the cut-off, the flag ``forest_loss_after_cutoff``; a plot outside the
    raster gets ``forest_loss_share: null``.
    """
    import numpy as np
    import rasterio
    import rasterio.mask
    from rasterio.warp import transform_geom

    with rasterio.open(path) as source:
        for feature in features:
            shape = transform_geom("EPSG:4326", source.crs, feature["geometry"])
            try:
                cells, _ = rasterio.mask.mask(source, [shape], crop=True, all_touched=True,
                                              filled=False, indexes=band)
            except ValueError:  # the plot lies outside the raster
                feature["properties"]["forest_loss_share"] = None
                continue
            values = np.ma.masked_equal(cells, nodata) if nodata is not None else cells
            inside = values.compressed().astype("int64")
            years = np.where(inside < 100, inside + 2000, inside)
            lost = int(np.count_nonzero((inside > 0) & (years > CUTOFF.year)))
            share = lost / inside.size if inside.size else 0.0
            feature["properties"]["forest_loss_share"] = round(share, 4)
            if lost:
                feature["properties"]["flags"].append("forest_loss_after_cutoff")


def _missing_message(stand_code: str, logs: Sequence[Any]) -> str:
    named = ", ".join(log.code for log in logs[:5]) + (" …" if len(logs) > 5 else "")
    whose = f" (logs {named})" if logs else ""
    return f"stand {stand_code}{whose} has no polygon (rule plot_without_polygon)"


def _feature(row: Any, logs: Sequence[Any]) -> dict[str, Any]:
    (_, stand_code, area_ha, planting_year, owner_type, commune, stand_species, _, geojson,
     computed_ha, overlaps) = row
    geometry = orjson.loads(geojson)
    check_geometry(stand_code, geometry)
    area = round(float(computed_ha), 4)
    flags: list[str] = []
    if planting_year is not None and planting_year > CUTOFF.year:
        flags.append("planted_after_cutoff")
    if area_ha is None or abs(area - float(area_ha)) > AREA_TOLERANCE * float(area_ha):
        flags.append("area_mismatch")
    if overlaps:
        flags.append("overlap")
    volume = sum((log.volume_m3 for log in logs), Decimal(0))
    species = sorted({log.species for log in logs if log.species}) or (
        [stand_species] if stand_species else []
    )
    felled = sorted(log.felled_on for log in logs)
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "ProducerCountry": "VN",
            "ProductionPlace": stand_code,
            "Area": area,  # hectares, as the EU information system reads it
            "area_ha": area,
            "area_ha_recorded": float(area_ha) if area_ha is not None else None,
            "commune_code": commune,
            # A household's name is personal data: the owner is told by kind only.
            "owner_type": owner_type,
            "planting_year": planting_year,
            "species": species,
            "harvest_start": felled[0].isoformat() if felled else None,
            "harvest_end": felled[-1].isoformat() if felled else None,
            "log_count": len(logs),
            "volume_m3": float(volume),
            "flags": flags,
            "overlaps": list(overlaps),
        },
    }


def check_geometry(plot: str, geometry: dict[str, Any]) -> None:
    """Check one plot's GeoJSON geometry against the rules; raise :class:`InvalidPlot` if not.

    Polygon or MultiPolygon, every ring closed with at least four positions, longitude and
    latitude in range with at most six decimals, and valid as a whole (OGC simple features).
    """
    kind = geometry.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise InvalidPlot(f"plot {plot}: a {kind} is not a polygon (rule invalid_plot_geometry)")
    polygons = [geometry["coordinates"]] if kind == "Polygon" else geometry["coordinates"]
    for polygon in polygons:
        for ring in polygon:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise InvalidPlot(f"plot {plot}: a ring is not closed (rule invalid_plot_geometry)")
            for lon, lat in ring:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise InvalidPlot(
                        f"plot {plot}: [{lon}, {lat}] is not lon/lat (rule invalid_plot_geometry)"
                    )
                if round(lon, DECIMALS) != lon or round(lat, DECIMALS) != lat:
                    raise InvalidPlot(
                        f"plot {plot}: [{lon}, {lat}] has more than six decimals "
                        "(rule invalid_plot_geometry)"
                    )
    shape = shapely.from_geojson(orjson.dumps(geometry))
    if not shape.is_valid:
        why = shapely.is_valid_reason(shape)
        raise InvalidPlot(f"plot {plot}: {why} (rule invalid_plot_geometry)")


def split(
    name: str, features: Sequence[dict[str, Any]], max_bytes: int = MAX_FILE_BYTES
) -> EudrParts:
    """The features as FeatureCollections of at most ``max_bytes`` each, and their manifest.

    Plots are never cut: each file holds whole features, in order.
    """
    head, tail = b'{"type":"FeatureCollection","features":[', b"]}"
    encoded = [orjson.dumps(f) for f in features]
    parts: list[list[bytes]] = [[]]
    size = len(head) + len(tail)
    for blob in encoded:
        if len(head) + len(tail) + len(blob) > max_bytes:
            plot = orjson.loads(blob)["properties"]["ProductionPlace"]
            raise FileTooLarge(f"plot {plot} alone is over {max_bytes:,} bytes "
                               "(rule eudr_file_too_large)")
        if parts[-1] and size + 1 + len(blob) > max_bytes:
            parts.append([])
            size = len(head) + len(tail)
        size += len(blob) + (1 if parts[-1] else 0)
        parts[-1].append(blob)
    files = tuple(head + b",".join(p) + tail for p in parts)
    return EudrParts(name, files, _manifest(name, files, features, parts))


def _manifest(
    name: str, files: Sequence[bytes], features: Sequence[dict[str, Any]],
    parts: Sequence[Sequence[bytes]],
) -> dict[str, Any]:
    props = [f["properties"] for f in features]
    return {
        "statement": name,
        "files": [
            {
                "file": part_name(name, i, len(files)),
                "plots": len(parts[i]),
                "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
            for i, blob in enumerate(files)
        ],
        "plots": len(features),
        "area_ha": round(sum(p["area_ha"] for p in props), 4),
        "volume_m3": float(sum(Decimal(str(p["volume_m3"])) for p in props)),
        "log_count": sum(p["log_count"] for p in props),
        "flagged": sorted(p["ProductionPlace"] for p in props if p["flags"]),
    }


def part_name(name: str, index: int, count: int) -> str:
    """The file name of part ``index`` (from 0) of ``count``."""
    return f"eudr-{name}.geojson" if count == 1 else f"eudr-{name}-part{index + 1}.geojson"


async def eudr_document(
    conn: AsyncConnection, origin: Origin, max_bytes: int = MAX_FILE_BYTES
) -> EudrParts:
    """The statement's files for ``origin``, named after its first code."""
    features = await plot_features(conn, origin)
    name = origin.codes[0] + (f"-and-{len(origin.codes) - 1}-more" if len(origin.codes) > 1
                              else "")
    return split(name, features, max_bytes)

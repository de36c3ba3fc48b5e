"""Deterministic tree surveys in every input format, for tests and the benchmark.

``make_survey(n)`` gives a frame of ``n`` plausible trees in Thái Nguyên (Vietnamese or English
headers; WGS 84, VN-2000 3° zone 106°30' or UTM 48N coordinates); ``write_survey`` writes it as
CSV, XLSX, GeoJSON, GPKG, Shapefile or FlatGeobuf. Same arguments, same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from etl import encodings
from etl.crs import resolve, to_wgs84  # noqa: F401 - to_wgs84 kept for symmetry in callers

HEADERS = {
    "vi": {"tree_code": "Mã cây", "species": "Tên cây", "category": "Loại cây",
           "dbh": "Đường kính (cm)", "height": "Chiều cao (m)", "crown": "Đường kính tán (m)",
           "condition": "Tình trạng", "planted_on": "Ngày trồng", "lon": "Kinh độ",
           "lat": "Vĩ độ", "x": "X (m)", "y": "Y (m)"},
    "en": {"tree_code": "tree_code", "species": "species", "category": "category",
           "dbh": "dbh_cm", "height": "height_m", "crown": "crown_m", "condition": "condition",
           "planted_on": "planted_on", "lon": "lon", "lat": "lat", "x": "x", "y": "y"},
}
CONDITIONS = {"vi": ["Tốt", "Tốt", "Trung bình", "Kém", "Chết"],
              "en": ["good", "good", "fair", "poor", "dead"]}
CATEGORIES = {"vi": ["Cây đô thị", "Cây phân tán", "Rừng trồng"],
              "en": ["urban", "scattered", "plantation"]}
SPECIES_CSV = Path(__file__).resolve().parent.parent / "data" / "species.csv"
ORIGIN = (105.70, 21.50)     # south-west corner of the synthetic survey, inside the province
SPACING = 1e-4               # about 10 m between grid nodes: no two trees share a spot


def species_names(lang: str) -> list[str]:
    """Vietnamese or scientific names of the shipped catalogue."""
    with SPECIES_CSV.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    key = "vietnamese_name" if lang == "vi" else "scientific_name"
    return [r[key] for r in rows]


def make_survey(n: int, *, lang: str = "vi", crs: str = "wgs84", seed: int = 1,
                start: int = 1, prefix: str = "TN") -> pd.DataFrame:
    """A survey of ``n`` trees with the headers of ``lang`` and coordinates in ``crs``.

    Codes run ``{prefix}-{start:07d}`` onwards; positions lie on a jittered 10 m grid.
    """
    h = HEADERS[lang]
    rng = np.random.default_rng(seed)
    i = np.arange(start, start + n)
    names = np.array(species_names(lang))
    width = 1500
    lon = ORIGIN[0] + (i % width) * SPACING + rng.uniform(0, SPACING / 4, n)
    lat = ORIGIN[1] + (i // width) * SPACING + rng.uniform(0, SPACING / 4, n)
    days = rng.integers(0, 9000, n)
    frame = pd.DataFrame({
        h["tree_code"]: [f"{prefix}-{k:07d}" for k in i],
        h["species"]: names[rng.integers(0, len(names), n)],
        h["category"]: np.array(CATEGORIES[lang])[rng.integers(0, 3, n)],
        h["dbh"]: rng.uniform(5, 90, n).round(1),
        h["height"]: rng.uniform(2, 30, n).round(1),
        h["crown"]: rng.uniform(1, 15, n).round(1),
        h["condition"]: np.array(CONDITIONS[lang])[rng.integers(0, 5, n)],
        h["planted_on"]: (np.datetime64("1995-01-01") + days).astype(str),
    })
    target = resolve(crs)
    if target.is_geographic:
        frame[h["lon"]] = lon.round(7)
        frame[h["lat"]] = lat.round(7)
    else:
        from pyproj import Transformer

        x, y = Transformer.from_crs(4326, target, always_xy=True).transform(lon, lat)
        frame[h["x"]] = np.round(x, 2)
        frame[h["y"]] = np.round(y, 2)
    return frame


def write_survey(frame: pd.DataFrame, path: Path, *, crs: str = "wgs84", encoding: str = "utf-8",
                 delimiter: str = ",") -> Path:
    """Write a survey in the format its suffix names (.csv .xlsx .geojson .gpkg .shp .fgb).

    GIS formats carry the points as geometry (in ``crs``) instead of coordinate columns.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        encodings.register()
        frame.to_csv(path, index=False, sep=delimiter, encoding=encoding)
    elif suffix == ".xlsx":
        frame.to_excel(path, index=False, engine="openpyxl")
    else:
        _write_vector(frame, path, crs)
    return path


def _write_vector(frame: pd.DataFrame, path: Path, crs: str) -> None:
    import geopandas as gpd

    coords = [c for c in frame.columns if c in ("Kinh độ", "Vĩ độ", "lon", "lat", "X (m)",
                                                 "Y (m)", "x", "y")]
    x, y = frame[coords[0]].to_numpy(), frame[coords[1]].to_numpy()
    attrs = frame.drop(columns=coords)
    gdf = gpd.GeoDataFrame(attrs, geometry=gpd.points_from_xy(x, y), crs=resolve(crs))
    driver = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG",
              ".shp": "ESRI Shapefile", ".fgb": "FlatGeobuf"}[path.suffix.lower()]
    gdf.to_file(path, driver=driver, engine="pyogrio")

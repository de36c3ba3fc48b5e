"""`smarttrees raster sample`: values at every tree and stand, stored and served over OGC API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from etl.raster.errors import RasterError
from etl.raster.inputs import open_raster
from etl.raster.sample import column_name, sample
from smarttrees.database import connect
from tests.fixtures.server import serve_database

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def run(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    return subprocess.run([*SMARTTREES, "raster", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def utm_raster(path: Path, *, nodata_west_of: float | None = None) -> Path:
    """A UTM 48N raster over the synthetic province, value = row * 1000 + column (tiled 256)."""
    west, north, size = 540_000.0, 2_520_000.0, 200.0
    height, width = 1_000, 500
    values = (np.arange(height)[:, None] * 1000 + np.arange(width)[None, :]).astype("float32")
    if nodata_west_of is not None:
        values[:, : int((nodata_west_of - west) / size)] = -1
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="float32", crs="EPSG:32648", nodata=-1, tiled=True,
                       blockxsize=256, blockysize=256, transform=from_origin(west, north, size, size)) as dst:
        dst.write(values, 1)
    return path


def expected_at(path: Path, lonlat: np.ndarray) -> np.ndarray:
    """rasterio's own point sampling, as an independent reference."""
    x, y = Transformer.from_crs(4326, 32648, always_xy=True).transform(lonlat[:, 0], lonlat[:, 1])
    with rasterio.open(path) as ds:
        got = np.array([v[0] for v in ds.sample(zip(x, y, strict=True), masked=True)], dtype=object)
        return np.array([np.nan if v is np.ma.masked else float(v) for v in got])


def test_every_tree_gets_the_value_of_its_cell(province_env: str, tmp_path: Path) -> None:
    raster = utm_raster(tmp_path / "Elevation 2025.tif", nodata_west_of=580_000)
    result = run("sample", str(raster), url=province_env)
    assert result.returncode == 0, result.stderr
    with connect(province_env) as conn:
        rows = conn.execute(
            "SELECT t.id, ST_X(t.geom), ST_Y(t.geom), r.value FROM trees t "
            "LEFT JOIN raster_samples r ON r.layer = 'trees' AND r.feature_id = t.id "
            "AND r.name = 'elevation_2025' ORDER BY t.id").fetchall()
    table = np.array([(r[1], r[2], np.nan if r[3] is None else r[3]) for r in rows], dtype=float)
    expected = expected_at(raster, table[:, :2])
    assert len(rows) == 5000
    assert np.array_equal(np.isnan(table[:, 2]), np.isnan(expected))  # nodata → NULL
    assert 0 < np.isnan(expected).sum() < 5000
    ok = ~np.isnan(expected)
    assert np.array_equal(table[ok, 2], expected[ok])
    assert f"elevation_2025 sampled at 5,000 trees, {int(ok.sum()):,} with a value" in result.stdout


def test_stands_are_sampled_at_a_point_on_their_surface_and_served(province_url: str, tmp_path: Path) -> None:
    raster = utm_raster(tmp_path / "elev.tif")
    with connect(province_url) as conn, open_raster(raster) as source:
        report = sample(conn, source, "elev", "stands")
        again = sample(conn, source, "elev", "stands")  # replaces, never duplicates
        points = np.array(conn.execute(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), stand_code "
            "FROM stands ORDER BY stand_code").fetchall(), dtype=object)
        stored = conn.execute("SELECT count(*) FROM raster_samples").fetchone()[0]
    assert report.features == again.features == stored == len(points)
    expected = dict(zip(points[:, 2], expected_at(raster, points[:, :2].astype(float)), strict=True))
    with serve_database(province_url) as base:
        page = httpx.get(f"{base}/collections/raster_samples/items",
                         params={"filter": "name = 'elev' AND layer = 'stands'", "limit": 100}, timeout=30).json()
        assert page["numberReturned"] == len(points)
        for feature in page["features"]:
            props = feature["properties"]
            assert props["value"] == expected[props["feature_code"]]
            assert feature["geometry"]["type"] == "Point"
        high = httpx.get(f"{base}/collections/raster_samples/items",
                         params={"filter": f"value > {np.median(list(expected.values()))}"}, timeout=30).json()
        assert 0 < high["numberReturned"] < len(points)


def test_names_and_bad_rasters(province_url: str, tmp_path: Path) -> None:
    assert column_name("NDVI 2025-06") == "ndvi_2025_06"
    assert column_name("2025 ndvi") == "r_2025_ndvi"
    with pytest.raises(RasterError, match="--column: '' cannot name a column"):
        column_name("")
    far = tmp_path / "far.tif"
    with rasterio.open(far, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                       crs="EPSG:32648", transform=from_origin(100_000, 1_000_000, 10, 10)) as dst:
        dst.write(np.ones((1, 4, 4), "uint8"))
    result = run("sample", str(far), url=province_url)
    assert result.returncode == 1 and result.stderr.startswith("error: far.tif: does not overlap the territory")
    assert len(result.stderr.strip().splitlines()) == 1
    with connect(province_url) as conn:
        assert conn.execute("SELECT count(*) FROM raster_samples").fetchone()[0] == 0


@pytest.mark.shared_data
def test_reference_relief_at_every_tree(province_env: str, shared_data: Path) -> None:
    relief = shared_data / "raster" / "etopo1_shaded_relief_window.tif"
    if not relief.exists():
        pytest.skip(f"{relief} not found")
    refused = run("sample", str(relief), url=province_env)
    assert refused.returncode == 1 and "has 3 bands; choose one with --band 1…3" in refused.stderr
    result = run("sample", str(relief), "--band", "2", "--column", "relief_green", url=province_env)
    assert result.returncode == 0, result.stderr
    with connect(province_env) as conn:
        n, low, high = conn.execute("SELECT count(value), min(value), max(value) FROM raster_samples "
                                    "WHERE name = 'relief_green'").fetchone()
    assert n == 5000 and 0 <= low <= high <= 255

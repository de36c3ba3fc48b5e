"""`smarttrees raster add` and the served rasters: PNG tiles, the raster list, coverages."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_bounds

from etl.raster.density import density_surface
from etl.raster.errors import RasterError
from etl.raster.registry import add_raster
from smarttrees.database import connect
from tests.fixtures.server import serve_database

SMARTTREES = [sys.executable, "-m", "smarttrees"]
CAPITAL = (105.84, 21.59)
R = 6378137.0


def run(*args: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`smarttrees raster ARGS` on database ``url``, Web Mercator copies in ``data_dir``."""
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url, "SMARTTREES_DATA_DIR": str(data_dir)}
    return subprocess.run([*SMARTTREES, "raster", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = 2 * math.pi * R / 2**z
    west = -math.pi * R + x * size
    north = math.pi * R - y * size
    return west, north - size, west + size, north


def class_map_on_tile(path: Path, z: int, x: int, y: int) -> Path:
    """A 256 × 256 class raster exactly on one Web Mercator tile: west half 1, east half 2."""
    classes = np.ones((256, 256), dtype="uint8")
    classes[:, 128:] = 2
    classes[:16, :16] = 0  # nodata corner
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1, dtype="uint8",
                       crs="EPSG:3857", nodata=0, transform=from_bounds(*tile_bounds_3857(z, x, y), 256, 256)) as dst:
        dst.write(classes, 1)
        dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (220, 20, 60, 255), 2: (30, 60, 200, 255)})
    return path


def png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def test_registered_rasters_are_tiled_listed_and_covered(province_url: str, tmp_path: Path) -> None:
    z = 12
    x, y = tile_of(*CAPITAL, z)
    classes = class_map_on_tile(tmp_path / "landcover.tif", z, x, y)
    with connect(province_url) as conn:
        density_surface(conn, 30, tmp_path / "density.tif")
    added = run("add", str(classes), "--name", "landcover", url=province_url, data_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "registered as landcover" in added.stdout
    density = run("add", str(tmp_path / "density.tif"), "--name", "density_30m", "--colormap", "greens",
                  url=province_url, data_dir=tmp_path)
    assert density.returncode == 0, density.stderr
    with serve_database(province_url) as base:
        # The class map drawn with its own colours, nodata transparent.
        pixels = png(httpx.get(f"{base}/collections/landcover/tiles/WebMercatorQuad/{z}/{y}/{x}.png", timeout=30))
        assert pixels.shape == (256, 256, 4)
        assert tuple(pixels[100, 40]) == (220, 20, 60, 255)
        assert tuple(pixels[100, 200]) == (30, 60, 200, 255)
        assert pixels[4, 4, 3] == 0
        # A tile elsewhere or off the tile matrix is a 404; a bad address a 400; an unknown raster a 404.
        far = httpx.get(f"{base}/collections/landcover/tiles/WebMercatorQuad/{z}/{y}/{x + 5}.png", timeout=30)
        assert far.status_code == 404 and "outside raster 'landcover'" in far.json()["description"]
        assert httpx.get(f"{base}/collections/landcover/tiles/WebMercatorQuad/99/0/0.png", timeout=30).status_code == 404
        assert httpx.get(f"{base}/collections/landcover/tiles/WebMercatorQuad/z/0/0.png", timeout=30).status_code == 400
        assert httpx.get(f"{base}/collections/nope/tiles/WebMercatorQuad/1/0/0.png", timeout=30).status_code == 404
        # The density surface: green where the capital's trees are, transparent off the communes.
        dz = 9
        dx, dy = tile_of(*CAPITAL, dz)
        town = png(httpx.get(f"{base}/collections/density_30m/tiles/WebMercatorQuad/{dz}/{dy}/{dx}.png", timeout=30))
        assert (town[..., 3] == 255).any()
        # Vector tiles still answer beside the raster route.
        vector = httpx.get(f"{base}/collections/trees/tiles/WebMercatorQuad/{dz}/{dy}/{dx}", timeout=30)
        assert vector.status_code == 200 and vector.headers["content-type"].startswith("application/vnd.mapbox-vector-tile")
        # Listed: in /collections (pygeoapi's rasterio coverage provider) and /api/rasters.
        listed = httpx.get(f"{base}/collections", params={"f": "json"}, timeout=30).json()["collections"]
        ids = {c["id"]: c for c in listed}
        assert {"landcover", "density_30m", "trees"} <= set(ids)
        assert any(link["rel"].endswith("/coverage") for link in ids["density_30m"]["links"])
        rasters = {r["name"]: r for r in httpx.get(f"{base}/api/rasters", timeout=30).json()["rasters"]}
        assert rasters["density_30m"]["units"] == "trees/ha" and len(rasters["density_30m"]["legend"]) == 6
        assert rasters["landcover"]["colormap"] == "file"
        assert rasters["density_30m"]["tiles"].endswith("/collections/density_30m/tiles/WebMercatorQuad/{z}/{y}/{x}.png")
        # The coverage as GeoTIFF is the class map itself.
        cov = httpx.get(f"{base}/collections/landcover/coverage", params={"f": "GTiff"}, timeout=60)
        assert cov.status_code == 200, cov.text
        (tmp_path / "coverage.tif").write_bytes(cov.content)
        with rasterio.open(tmp_path / "coverage.tif") as got, rasterio.open(classes) as src:
            assert got.crs == src.crs and got.shape == src.shape
            assert np.array_equal(got.read(1), src.read(1))
        assert httpx.get(f"{base}/collections/trees/coverage", timeout=30).status_code == 404


def test_bad_rasters_are_refused_and_nothing_is_registered(province_url: str, tmp_path: Path) -> None:
    z = 12
    x, y = tile_of(*CAPITAL, z)
    good = class_map_on_tile(tmp_path / "good.tif", z, x, y)
    far = class_map_on_tile(tmp_path / "far.tif", z, x + 400, y)
    with rasterio.open(tmp_path / "nocrs.tif", "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
        dst.write(np.ones((1, 4, 4), "uint8"))
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    cases = [
        (good, "Bad Name", "--name: 'Bad Name': use lower-case letters"),
        (good, "stands", "--name: 'stands' is already the name of a published collection"),
        (far, "far", "far.tif: does not overlap the territory"),
        (tmp_path / "nocrs.tif", "nocrs", "nocrs.tif: has no coordinate reference system"),
        (tmp_path / "broken.tif", "broken", "broken.tif: is not a raster GDAL can read"),
    ]
    with connect(province_url) as conn:
        for path, name, message in cases:
            with pytest.raises(RasterError) as caught:
                add_raster(conn, path, name, reserved={"stands", "trees"}, copies=tmp_path)
            assert message in str(caught.value)
        with pytest.raises(RasterError, match="--colormap: 'rainbowz' is not a colormap"):
            add_raster(conn, good, "good", colormap="rainbowz", copies=tmp_path)
        add_raster(conn, good, "good", copies=tmp_path)
        with pytest.raises(RasterError, match="'good' is already registered"):
            add_raster(conn, good, "good", copies=tmp_path)
        assert conn.execute("SELECT count(*) FROM rasters").fetchone()[0] == 1
    cli = run("add", str(tmp_path / "broken.tif"), "--name", "broken", url=province_url, data_dir=tmp_path)
    assert cli.returncode == 1 and cli.stderr.strip().startswith("error: broken.tif: is not a raster")
    assert len(cli.stderr.strip().splitlines()) == 1


@pytest.mark.shared_data
def test_reference_relief_is_served(province_url: str, shared_data: Path, tmp_path: Path) -> None:
    relief = shared_data / "raster" / "etopo1_shaded_relief_window.tif"
    if not relief.exists():
        pytest.skip(f"{relief} not found")
    refused = run("add", str(relief), "--name", "relief", url=province_url, data_dir=tmp_path)
    assert refused.returncode == 1 and "choose one with --band 1…3" in refused.stderr
    added = run("add", str(relief), "--name", "relief", "--band", "1", "--colormap", "gray", url=province_url, data_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    x, y = tile_of(*CAPITAL, 7)
    with serve_database(province_url) as base:
        pixels = png(httpx.get(f"{base}/collections/relief/tiles/WebMercatorQuad/7/{y}/{x}.png", timeout=30))
    opaque = pixels[pixels[..., 3] == 255]
    assert len(opaque) > 0 and (opaque[:, 0] == opaque[:, 1]).all()  # gray: r == g == b


def test_a_stretched_tile_shows_the_colormap_over_the_range_and_hides_nodata() -> None:
    from rio_tiler.colormap import cmap

    from gis_api.raster_tiles import stretched_png

    values = np.tile(np.linspace(-50, 250, 256, dtype="float32"), (256, 1))  # west to east
    values[:, 0] = np.nan
    band = np.ma.masked_array(values, mask=np.zeros(values.shape, bool))
    band.mask[:10] = True  # the top rows are nodata
    pixels = np.asarray(Image.open(io.BytesIO(stretched_png(band, 0.0, 200.0, "greens"))).convert("RGBA"))
    greens = cmap.get("greens")
    assert pixels.shape == (256, 256, 4)
    assert (pixels[:10, :, 3] == 0).all() and (pixels[:, 0, 3] == 0).all()
    assert (pixels[10:, 1:, 3] == 255).all()
    for col in (1, 60, 128, 200, 255):
        value = float(values[100, col])
        expected = greens[int(round(np.clip(value / 200.0, 0, 1) * 255))][:3]
        assert np.abs(pixels[100, col, :3].astype(int) - expected).max() <= 3, (col, value)

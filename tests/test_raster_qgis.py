"""A registered raster in QGIS: its coverage opens as a raster layer, its tiles draw as XYZ.

Runs Debian's QGIS (python3-qgis, with the system Python and GDAL QGIS itself uses) against a
live server over the small province, the way a forestry analyst adds the layers: the coverage's
GeoTIFF through GDAL's /vsicurl_streaming/ (the coverage is answered whole, not by byte ranges),
the PNG tiles as an "XYZ Tiles" connection. Skipped, saying so, where python3-qgis is not
installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

from etl.raster.density import density_surface
from smarttrees.database import connect
from tests.fixtures.qgis import SYSTEM_PYTHON, needs_qgis
from tests.fixtures.server import serve_database

CAPITAL = (105.84, 21.59)


pytestmark = [
    pytest.mark.slow,
    needs_qgis,
]

# Run by the system Python: prints one JSON line with what QGIS saw.
QGIS_SCRIPT = r"""
import json, sys
from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsMapRendererSequentialJob,
                       QgsMapSettings, QgsRasterLayer, QgsRectangle)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

base, name, lon, lat = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
app = QgsApplication([], False)
app.initQgis()
seen = {}
coverage = QgsRasterLayer(f"/vsicurl_streaming/{base}/collections/{name}/coverage?f=GTiff", "coverage", "gdal")
seen["coverage_valid"] = coverage.isValid()
if coverage.isValid():
    provider = coverage.dataProvider()
    stats = provider.bandStatistics(1)
    extent = coverage.extent()
    seen.update(crs=coverage.crs().authid(), width=coverage.width(), height=coverage.height(),
                extent=[extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
                mean=stats.mean, maximum=stats.maximumValue, nodata=provider.sourceNoDataValue(1))
url = f"{base}/collections/{name}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png"
tiles = QgsRasterLayer(f"type=xyz&url={url}&zmin=0&zmax=14", "tiles", "wms")
seen["tiles_valid"] = tiles.isValid()
if tiles.isValid():
    settings = QgsMapSettings()
    settings.setLayers([tiles])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    settings.setOutputSize(QSize(256, 256))
    settings.setOutputDpi(96)
    half = 0.15  # degrees around the provincial capital
    from qgis.core import QgsCoordinateTransform, QgsProject
    to_map = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                    QgsCoordinateReferenceSystem("EPSG:3857"), QgsProject.instance())
    settings.setExtent(to_map.transformBoundingBox(QgsRectangle(lon - half, lat - half, lon + half, lat + half)))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    opaque = green = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            c = image.pixelColor(x, y)
            if c.alpha() > 200:
                opaque += 1
                green += c.green() >= c.red() and c.green() >= c.blue()
    seen.update(opaque=opaque, green=green, errors=[e.message for e in job.errors()])
print(json.dumps(seen), flush=True)
del coverage, tiles  # before QGIS is torn down
app.exitQgis()
"""


def test_qgis_opens_the_coverage_and_draws_the_tiles(province_url: str, tmp_path: Path) -> None:
    density = tmp_path / "density.tif"
    with connect(province_url) as conn:
        density_surface(conn, 30, density)
    env = {**os.environ, "SMARTTREES_DATABASE_URL": province_url, "SMARTTREES_DATA_DIR": str(tmp_path)}
    added = subprocess.run([sys.executable, "-m", "smarttrees", "raster", "add", str(density), "--name",
                            "density_30m", "--colormap", "greens"],
                           capture_output=True, text=True, env=env, timeout=300, check=False)
    assert added.returncode == 0, added.stderr
    qgis_home = tmp_path / "qgis-home"  # QGIS writes its profile under HOME: keep it in the test
    qgis_home.mkdir()
    qgis_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(qgis_home),
                "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(qgis_home),
                "GDAL_HTTP_TIMEOUT": "60", "NO_PROXY": "127.0.0.1,localhost"}
    with serve_database(province_url) as base:
        done = subprocess.run([SYSTEM_PYTHON, "-c", QGIS_SCRIPT, base, "density_30m", *map(str, CAPITAL)],
                              capture_output=True, text=True, env=qgis_env, timeout=300, check=False)
    shutil.rmtree(qgis_home, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    with rasterio.open(density) as src:
        values = src.read(1, masked=True)
        bounds, crs, shape, nodata = src.bounds, src.crs, src.shape, src.nodata
    # The coverage, as QGIS reads it, is the registered surface: grid, CRS and figures.
    assert seen["coverage_valid"], done.stderr[-2000:]
    assert seen["crs"] == f"EPSG:{crs.to_epsg()}"
    assert (seen["height"], seen["width"]) == shape
    assert seen["extent"] == pytest.approx(list(bounds), abs=1e-3)
    assert seen["nodata"] == pytest.approx(nodata)
    assert seen["mean"] == pytest.approx(float(values.mean()), rel=1e-4)
    assert seen["maximum"] == pytest.approx(float(values.max()), rel=1e-6)
    # The tiles draw: the capital's trees show in the greens colormap.
    assert seen["tiles_valid"] and seen["errors"] == []
    assert seen["opaque"] > 500 and seen["green"] == seen["opaque"], seen

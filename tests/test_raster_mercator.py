"""Web Mercator copies of registered rasters: tiles read from them, and their life cycle."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from etl.raster.registry import add_raster
from smarttrees.database import connect
from tests.fixtures.server import serve_database
from tests.test_raster_serving import CAPITAL, run, tile_of

CELL = 30.0
SIZE = 240  # cells a side: 7.2 km around the capital


def ramp_in_vn2000(path: Path) -> Path:
    """A smooth float surface in VN-2000 / TM-3 (EPSG:9213) around the capital, nodata on a
    corner, so that nearest-neighbour differences between two warps stay small in value."""
    x, y = Transformer.from_crs(4326, 9213, always_xy=True).transform(*CAPITAL)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    values = (rows + cols).astype("float32")
    values[:40, :40] = -9999
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1,
                       dtype="float32", crs="EPSG:9213", nodata=-9999,
                       transform=from_origin(x - SIZE * CELL / 2, y + SIZE * CELL / 2, CELL, CELL),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(values, 1)
    return path


def rgba(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA")).astype(int)


def test_tiles_from_the_mercator_copy_match_the_warped_file(province_url: str,
                                                            tmp_path: Path) -> None:
    source = ramp_in_vn2000(tmp_path / "ramp.tif")
    copies = tmp_path / "copies"
    with connect(province_url) as conn:
        fast = add_raster(conn, source, "ramp", colormap="gray", value_range=(0, 2 * SIZE),
                          copies=copies)
        add_raster(conn, source, "ramp_warped", colormap="gray", value_range=(0, 2 * SIZE),
                   copies=copies)
        # As if registered before the copies existed: tiles warped from the file itself.
        conn.execute("UPDATE rasters SET mercator_path = NULL WHERE name = 'ramp_warped'")
    with rasterio.open(fast.mercator_path) as copy:
        assert copy.crs.to_epsg() == 3857 and copy.count == 1 and copy.overviews(1)
        assert copy.block_shapes == [(256, 256)]
    with serve_database(province_url) as base:
        for z in (11, 12, 13):
            x, y = tile_of(*CAPITAL, z)
            for dx, dy in ((0, 0), (1, 0), (0, 1), (-1, -1)):
                address = f"tiles/WebMercatorQuad/{z}/{y + dy}/{x + dx}.png"
                new = httpx.get(f"{base}/collections/ramp/{address}", timeout=30)
                old = httpx.get(f"{base}/collections/ramp_warped/{address}", timeout=30)
                assert new.status_code == old.status_code, address
                if old.status_code == 404:
                    continue
                a, b = rgba(new), rgba(old)
                opaque_a, opaque_b = a[..., 3] == 255, b[..., 3] == 255
                # Same footprint but for the cells on the edges, which either warp may take.
                assert (opaque_a != opaque_b).mean() < 0.03, address
                both = opaque_a & opaque_b
                assert both.sum() > 0.3 * opaque_b.sum(), address
                diff = np.abs(a[..., 0][both] - b[..., 0][both])
                # One 30 m cell on the ramp is about one grey level: a cell apart at most.
                assert diff.mean() < 2 and np.percentile(diff, 99) <= 4, (address, diff.mean())


def test_tiles_read_from_the_copys_levels_are_rio_tilers(tmp_path: Path) -> None:
    # At the zooms of the copy's levels a tile is read as a window of whole cells; it must be
    # the tile rio-tiler draws from the same copy, masks and margins included.
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    from etl.raster.mercator import write_mercator_copy
    from gis_api.raster_tiles import copy_tile

    copy = tmp_path / "ramp_3857.tif"
    write_mercator_copy(ramp_in_vn2000(tmp_path / "ramp.tif"), 1, copy, categorical=False)
    compared = set()
    with Reader(str(copy)) as reader:
        for z in range(reader.minzoom - 1, reader.maxzoom + 2):
            x, y = tile_of(*CAPITAL, z)
            for dx, dy in ((0, 0), (1, 0), (0, 1), (-1, -1), (1, 1)):
                fast = copy_tile(str(copy), z, y + dy, x + dx)
                if fast is None:  # not one of the copy's levels: rio-tiler draws it
                    continue
                try:
                    drawn = reader.tile(x + dx, y + dy, z, tilesize=256, indexes=1).array[0]
                except TileOutsideBounds:
                    assert fast.mask.all(), (z, dx, dy)
                    continue
                assert (fast.mask == np.ma.getmaskarray(drawn)).all(), (z, dx, dy)
                assert (fast.compressed() == drawn.compressed()).all(), (z, dx, dy)
                compared.add(z)
    assert len(compared) >= 2  # the full resolution and its overview


def test_removal_and_replacement_delete_the_copy(province_url: str, tmp_path: Path) -> None:
    source = ramp_in_vn2000(tmp_path / "ramp.tif")
    data_dir = tmp_path / "data"
    added = run("add", str(source), "--name", "ramp", url=province_url, data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    first = list((data_dir / "rasters").glob("ramp.*.tif"))
    assert len(first) == 1
    with connect(province_url) as conn:
        assert conn.execute("SELECT mercator_path FROM rasters").fetchone()[0] == str(first[0])
    again = run("add", str(source), "--name", "ramp", url=province_url, data_dir=data_dir)
    assert again.returncode == 1 and "'ramp' is already registered" in again.stderr
    assert list((data_dir / "rasters").glob("ramp.*")) == first  # nothing new left behind
    replaced = run("add", str(source), "--name", "ramp", "--replace", url=province_url,
                   data_dir=data_dir)
    assert replaced.returncode == 0, replaced.stderr
    second = list((data_dir / "rasters").glob("ramp.*"))
    assert len(second) == 1 and second != first
    removed = run("remove", "ramp", url=province_url, data_dir=data_dir)
    assert removed.returncode == 0, removed.stderr
    assert list((data_dir / "rasters").iterdir()) == []
    assert source.exists()  # the registered file itself is left alone
    with connect(province_url) as conn:
        assert conn.execute("SELECT count(*) FROM rasters").fetchone()[0] == 0

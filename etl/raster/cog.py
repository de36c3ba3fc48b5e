"""Cloud-Optimised GeoTIFFs: tiled, compressed, with internal overviews and nodata.

GDAL's COG driver (through rasterio) makes the file from a plain tiled GeoTIFF written first
beside the target; both are temporary files in the target's folder, and only the finished,
validated COG is moved into place (``os.replace``), so a failed or interrupted run leaves the
previous file, or none, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

from etl.raster.errors import RasterError
from etl.raster.grid import Grid

BLOCK_SIZE = 256  # tiles and overviews down to one tile; 256 matches web-map tiles
COMPRESSION = "ZSTD"  # as small as DEFLATE on these sparse surfaces, several times faster
COMPRESSION_LEVEL = 1  # level 1 and no predictor: 3-4 × faster than DEFLATE+predictor
# on a province at 10 m, and the mostly-empty tiles are a few bytes whatever the level
GDAL_CACHE_MB = 256


@contextmanager
def _temporary(target: Path, suffix: str) -> Iterator[Path]:
    """A path for a temporary file beside ``target``, removed afterwards if still there."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with suppress(FileNotFoundError):
            path.unlink()


def write_cog(
    array: np.ndarray,
    grid: Grid,
    target: Path,
    *,
    nodata: float,
    resampling: str = "average",
    tags: Mapping[str, str] | None = None,
    band_tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> None:
    """Write one band over ``grid`` as a COG at ``target``, atomically.

    Parameters
    ----------
    array:
        ``(grid.height, grid.width)`` values; cells equal to ``nodata`` are nodata.
    grid:
        Where the cells are.
    target:
        The file to (re)place; its folder must exist.
    nodata:
        The nodata value written in the file.
    resampling:
        How overviews are computed (``average`` for densities, ``nearest`` for classes).
    tags, band_tags, description:
        Metadata stored in the file (dataset tags, band tags, band description).

    """
    target = Path(target)
    if not target.parent.is_dir():
        raise RasterError(target, f"the folder {target.parent} does not exist")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": grid.rio_crs,
        "transform": grid.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": BLOCK_SIZE,
        "blockysize": BLOCK_SIZE,
        "compress": COMPRESSION,
        "zstd_level": 1,  # a temporary file: the fastest level
        "BIGTIFF": "IF_SAFER",
    }
    with (
        _temporary(target, ".part.tif") as plain,
        _temporary(target, ".cog.tif") as cog,
        rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=GDAL_CACHE_MB),
    ):
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(array, 1)
            dst.update_tags(**(tags or {}))
            dst.update_tags(1, **(band_tags or {}))
            if description:
                dst.set_band_description(1, description)
        rasterio.shutil.copy(
            plain,
            cog,
            driver="COG",
            COMPRESS=COMPRESSION,
            LEVEL=COMPRESSION_LEVEL,
            BLOCKSIZE=BLOCK_SIZE,
            OVERVIEWS="IGNORE_EXISTING",
            OVERVIEW_RESAMPLING=resampling.upper(),
            RESAMPLING=resampling.upper(),
            NUM_THREADS="ALL_CPUS",
            BIGTIFF="IF_SAFER",
        )
        valid, errors, _warnings = cog_validate(str(cog), quiet=True)
        if not valid:  # GDAL wrote it: this is a bug of ours or GDAL's, not of the input
            raise RasterError(target, f"the written COG is not valid: {'; '.join(errors)}")
        umask = os.umask(0)
        os.umask(umask)
        cog.chmod(0o666 & ~umask)  # mkstemp makes 0600; the finished file reads like any other
        os.replace(cog, target)

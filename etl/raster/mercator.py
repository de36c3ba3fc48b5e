"""Web Mercator copies of registered rasters, so that a PNG tile is a plain windowed read.

A tile of a raster in VN-2000 costs GDAL a new VN-2000 → Web Mercator transformation and a
warped read every time (110–210 ms a tile). ``smarttrees raster add`` therefore writes, once, a
copy of the served band warped onto the WebMercatorQuad grid (rio-cogeo's COG on that tile
matrix set: its blocks are the map's 256 × 256 tiles and each overview one zoom level), and the
tiles are read from it. The copy lives in ``<data folder>/rasters/`` (the registered file itself is
left where it is), is written to a temporary file and moved into place, and is deleted with the
registration.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import suppress
from pathlib import Path

import morecantile
import rasterio
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from etl.raster.errors import RasterError

FOLDER = "rasters"
GDAL_CACHE_MB = 256


def copies_folder(data_dir: Path) -> Path:
    """The folder of the Web Mercator copies in the data folder ``data_dir``."""
    return Path(data_dir) / FOLDER


def write_mercator_copy(
    source: Path, band: int, target: Path, *, categorical: bool
) -> None:
    """Warp band ``band`` of ``source`` onto WebMercatorQuad as a COG at ``target``, atomically.

    Parameters
    ----------
    source:
        The registered raster.
    band:
        The band served (the copy has only this band, and its colour table if it has one).
    target:
        The copy to (re)place; its folder is made if missing.
    categorical:
        Classes (nearest-neighbour warp and overviews) rather than a continuous surface
        (nearest warp, so that cells keep their values, and averaged overviews, like the
        registered COGs' own).

    Raises
    ------
    RasterError
        The folder cannot be made or written.

    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".part.tif",
                                    dir=target.parent)
    except OSError as exc:
        raise RasterError(target.parent, f"cannot write the Web Mercator copy here: "
                          f"{exc.strerror}") from None
    os.close(fd)
    part = Path(name)
    with warnings.catch_warnings():  # "non-standard compression": GDAL here reads ZSTD
        warnings.simplefilter("ignore", UserWarning)
        profile = cog_profiles.get("zstd")
    profile.update(blockxsize=256, blockysize=256, level=1)
    with rasterio.open(source) as src:
        # No nodata value: an internal mask keeps the margins of the tile grid transparent.
        add_mask = src.nodata is None
    try:
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=GDAL_CACHE_MB):
            cog_translate(
                str(source),
                str(part),
                profile,
                indexes=(band,),
                tms=morecantile.tms.get("WebMercatorQuad"),
                resampling="nearest",
                overview_resampling="nearest" if categorical else "average",
                in_memory=False,
                add_mask=add_mask,
                quiet=True,
                use_cog_driver=False,
                config={"GDAL_NUM_THREADS": "ALL_CPUS"},
            )
        umask = os.umask(0)
        os.umask(umask)
        part.chmod(0o666 & ~umask)  # mkstemp makes 0600
        os.replace(part, target)
    finally:
        with suppress(FileNotFoundError):
            part.unlink()


def remove_copy(path: str | None) -> None:
    """Delete a copy (gone already: nothing to do)."""
    if path:
        with suppress(FileNotFoundError):
            Path(path).unlink()


"""`smarttrees raster density|canopy`: COGs of the inventory, checked with rasterio and rio-cogeo."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate

from etl.raster.density import TreeFilter, canopy_surface, density_surface
from etl.raster.errors import RasterError
from smarttrees.database import connect

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def run(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    return subprocess.run([*SMARTTREES, "raster", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def projected_trees(conn: psycopg.Connection, where: str = "true") -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(conn.execute(f"SELECT ST_X(geom), ST_Y(geom) FROM trees WHERE {where}").fetchall())
    x, y = Transformer.from_crs(4326, 9213, always_xy=True).transform(rows[:, 0], rows[:, 1])
    return np.asarray(x), np.asarray(y)


def test_density_cog_holds_every_tree_in_its_cell(province_env: str, tmp_path: Path) -> None:
    out = tmp_path / "density.tif"
    result = run("density", "--resolution", "100", "--out", str(out), url=province_env)
    assert result.returncode == 0, result.stderr
    assert "5,000 trees" in result.stdout
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid, errors
    with rasterio.open(out) as ds, connect(province_env) as conn:
        assert ds.crs.to_epsg() == 9213
        assert ds.res == (100.0, 100.0)
        assert ds.nodata == -9999.0
        assert ds.compression is not None and ds.profile["tiled"]
        assert ds.overviews(1), "internal overviews"
        assert ds.tags(1)["units"] == "trees/ha"
        density = ds.read(1, masked=True)
        # Every tree is counted: density × cell area (1 ha) sums to the inventory.
        total = conn.execute("SELECT count(*) FROM trees").fetchone()[0]
        assert float(density.sum()) * 1.0 == pytest.approx(total)
        # Cell by cell, the values are the point counts of an independent histogram.
        x, y = projected_trees(conn)
        west, south, east, north = ds.bounds
        counts, _, _ = np.histogram2d(north - y, x - west, bins=[ds.height, ds.width],
                                      range=[[0, north - south], [0, east - west]])
        assert np.array_equal(density.filled(0), counts)
        # The grid covers the communes in force.
        communes = shapely.from_wkb([r[0] for r in conn.execute("SELECT ST_AsBinary(geom) FROM communes")])
        tx = Transformer.from_crs(4326, 9213, always_xy=True)
        projected = shapely.transform(shapely.union_all(communes), lambda xy: np.column_stack(tx.transform(xy[:, 0], xy[:, 1])))
        cminx, cminy, cmaxx, cmaxy = projected.bounds
        assert west <= cminx + 1 and south <= cminy + 1 and east >= cmaxx - 1 and north >= cmaxy - 1
        assert west > cminx - 5000 and north < cmaxy + 5000
        # Cells outside every commune, with no tree, are nodata; some exist at the corners.
        assert density.mask.any() and not density.mask.all()


def test_density_filters_by_category_and_species(province_url: str, tmp_path: Path) -> None:
    with connect(province_url) as conn:
        urban = density_surface(conn, 30, tmp_path / "urban.tif", TreeFilter(categories=("urban",)))
        species_id, name, n = conn.execute(
            "SELECT t.species_id, s.scientific_name, count(*) FROM trees t JOIN species s ON s.id = t.species_id "
            "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1").fetchone()
        one = density_surface(conn, 30, tmp_path / "one.tif", TreeFilter(species=(name.upper(),)))
        urban_count = conn.execute("SELECT count(*) FROM trees WHERE category = 'urban'").fetchone()[0]
    assert urban.trees == urban_count and one.trees == n
    with rasterio.open(tmp_path / "urban.tif") as ds:
        assert float(ds.read(1, masked=True).sum(dtype="float64")) * 0.09 == pytest.approx(urban_count, rel=1e-5)
    with rasterio.open(tmp_path / "one.tif") as ds:
        assert float(ds.read(1, masked=True).sum(dtype="float64")) * 0.09 == pytest.approx(n, rel=1e-5)
        assert cog_validate(str(tmp_path / "one.tif"), quiet=True)[0]


def _add_tree(conn: psycopg.Connection, code: str, lon: float, lat: float, crown: float | None,
              species: int = 1) -> None:
    conn.execute(
        "INSERT INTO trees (tree_code, category, species_id, crown_m, geom) "
        "VALUES (%s, 'urban', %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
        (code, species, crown, lon, lat))


def test_canopy_adds_crown_areas_and_uses_the_species_default(conn: psycopg.Connection, tmp_path: Path) -> None:
    # No communes: the grid is the trees' extent. Six trees of species 1 with a 6 m crown (the
    # species' median), two of 10 m together, and one without a crown in a cell of its own.
    tx = Transformer.from_crs(9213, 4326, always_xy=True)
    for i in range(6):
        _add_tree(conn, f"A{i}", *tx.transform(430_050 + 1000 * i, 2_380_050), 6.0)
    _add_tree(conn, "B1", *tx.transform(430_020, 2_381_020), 10.0)
    _add_tree(conn, "B2", *tx.transform(430_080, 2_381_080), 10.0)
    _add_tree(conn, "C1", *tx.transform(432_050, 2_381_050), None)
    report = canopy_surface(conn, 100, tmp_path / "canopy.tif")
    assert report.trees == 9 and report.crown_defaults_used == 1
    with rasterio.open(tmp_path / "canopy.tif") as ds:
        assert cog_validate(str(tmp_path / "canopy.tif"), quiet=True)[0]
        cover = ds.read(1)

        def at(x: float, y: float) -> float:
            row, col = ds.index(x, y)
            return float(cover[row, col])

        six = math.pi * 3.0**2 / 10_000 * 100
        assert at(430_050, 2_380_050) == pytest.approx(six, rel=1e-5)
        assert at(430_050, 2_381_050) == pytest.approx(2 * math.pi * 25 / 100, rel=1e-5)
        assert at(432_050, 2_381_050) == pytest.approx(six, rel=1e-5)  # the default: 6 m
        assert at(431_050, 2_381_050) == 0.0  # no communes: every cell is data


def test_canopy_is_capped_at_full_cover(conn: psycopg.Connection, tmp_path: Path) -> None:
    tx = Transformer.from_crs(9213, 4326, always_xy=True)
    for i in range(3):
        _add_tree(conn, f"BIG{i}", *tx.transform(430_001 + 3 * i, 2_380_001), 20.0)
    canopy_surface(conn, 10, tmp_path / "full.tif")
    with rasterio.open(tmp_path / "full.tif") as ds:
        assert float(ds.read(1).max()) == 100.0


def test_bad_options_are_one_line_and_write_nothing(province_env: str, tmp_path: Path) -> None:
    out = tmp_path / "d.tif"
    for args, message in [
        (["--species", "Cây lạ"], "error: --species: 'Cây lạ' is not in the species catalogue"),
        (["--resolution", "0.5"], "more than 400,000,000; choose a coarser resolution"),
    ]:
        result = run("density", *args, "--out", str(out), url=province_env)
        assert result.returncode == 1
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    with connect(province_env) as conn:
        with pytest.raises(RasterError, match="--category: 'forest' is not one of urban, scattered, plantation"):
            density_surface(conn, 100, out, TreeFilter(categories=("forest",)))
        with pytest.raises(RasterError, match="--resolution: must be a positive number of metres, not 0"):
            canopy_surface(conn, 0, out)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_has_no_territory(conn: psycopg.Connection, tmp_path: Path) -> None:
    with pytest.raises(RasterError, match="no communes and no trees"):
        density_surface(conn, 100, tmp_path / "d.tif")
    assert not (tmp_path / "d.tif").exists()


def test_tree_chunks_give_every_tree_once_with_its_value(province_url: str) -> None:
    # Small chunks over ids with gaps (some trees deleted); rolled back afterwards.
    from psycopg import sql

    from etl.raster.points import tree_chunks

    with connect(province_url) as conn:
        conn.execute("DELETE FROM trees WHERE id % 7 = 3")
        rows = conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM trees ORDER BY id").fetchall()
        chunks = list(tree_chunks(conn, Transformer.from_crs(4326, 9213).target_crs,
                                  sql.SQL("true"), sql.SQL("t.id"), chunk_rows=500))
        conn.rollback()
    assert len(chunks) > 3
    ids = np.concatenate([c.values for c in chunks]).astype(np.int64)
    x = np.concatenate([c.x for c in chunks])
    y = np.concatenate([c.y for c in chunks])
    expected = np.array(rows)
    assert sorted(ids.tolist()) == expected[:, 0].astype(np.int64).tolist()
    order = np.argsort(ids)
    ex, ey = Transformer.from_crs(4326, 9213, always_xy=True).transform(expected[:, 1], expected[:, 2])
    assert np.allclose(x[order], ex, atol=1e-6) and np.allclose(y[order], ey, atol=1e-6)

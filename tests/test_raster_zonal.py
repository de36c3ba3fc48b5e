"""`smarttrees raster zonal`: hand-computed figures on small rasters, stored and as CSV."""

from __future__ import annotations

import csv
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from etl.raster import interior, zonal
from etl.raster.density import density_surface
from etl.raster.errors import RasterError
from etl.raster.inputs import open_raster
from etl.raster.zonal import Zones, run_zonal, zonal_statistics, zones_from_file
from smarttrees.database import connect

SMARTTREES = [sys.executable, "-m", "smarttrees"]
X0, Y0 = 430_000.0, 2_400_000.0  # top-left corner of the test rasters, EPSG:9213


def run(*args: str, url: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([*SMARTTREES, "raster", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False, cwd=cwd)


def make_raster(path: Path, values: np.ndarray, *, crs: str | None = "EPSG:9213",
                nodata: float | None = -1, colormap: dict[int, tuple[int, int, int, int]] | None = None,
                x0: float = X0, y0: float = Y0) -> Path:
    bands = values if values.ndim == 3 else values[np.newaxis]
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                       count=bands.shape[0], dtype=bands.dtype.name, crs=crs, nodata=nodata,
                       transform=from_origin(x0, y0, 10, 10)) as dst:
        dst.write(bands)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


def box(col0: float, row0: float, col1: float, row1: float) -> shapely.Polygon:
    """A rectangle in cell units of the test rasters (columns east, rows south)."""
    return shapely.box(X0 + 10 * col0, Y0 - 10 * row1, X0 + 10 * col1, Y0 - 10 * row0)


def zone_file(path: Path, zones: dict[str, shapely.Geometry], crs: str = "EPSG:9213") -> Path:
    frame = gpd.GeoDataFrame({"code": list(zones), "name": [f"zone {c}" for c in zones]},
                             geometry=list(zones.values()), crs="EPSG:9213").to_crs(crs)
    frame.to_file(path)
    return path


VALUES = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, -1]], dtype="float32")


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return {row["zone_code"]: row for row in csv.DictReader(handle)}


def test_fractional_coverage_matches_hand_figures(settings_env: str, tmp_path: Path) -> None:
    raster = make_raster(tmp_path / "values.tif", VALUES)
    zones = zone_file(tmp_path / "zones.gpkg", {
        "A": box(0, 0, 2, 2),          # cells 1, 2, 5, 6 whole
        "B": box(0.5, 0, 1.5, 1),      # half of 1, half of 2
        "C": box(2, 2, 4, 4),          # 11, 12, 15 and the nodata cell
    })
    out = tmp_path / "out.csv"
    result = run("zonal", str(raster), "--by", str(zones), "--stats", "mean,min,max,sum,count,std,majority",
                 "--csv", str(out), url=settings_env)
    assert result.returncode == 0, result.stderr
    assert "for 3 zones" in result.stdout
    rows = read_csv(out)
    a, b, c = rows["A"], rows["B"], rows["C"]
    assert float(a["mean"]) == pytest.approx(3.5) and float(a["sum"]) == pytest.approx(14)
    assert float(a["count"]) == pytest.approx(4) and float(a["min"]) == 1 and float(a["max"]) == 6
    assert float(a["std"]) == pytest.approx(np.std([1, 2, 5, 6]))
    assert float(b["count"]) == pytest.approx(1.0) and float(b["sum"]) == pytest.approx(1.5)
    assert float(b["mean"]) == pytest.approx(1.5)
    assert float(c["count"]) == pytest.approx(3) and float(c["mean"]) == pytest.approx((11 + 12 + 15) / 3)
    assert a["zone_name"] == "zone A"
    with connect(settings_env) as conn:
        run_row = conn.execute("SELECT raster_name, raster_crs, band, zones, stats, table_name, zone_count, "
                               "created_at::date = current_date FROM zonal_runs").fetchall()
        assert len(run_row) == 1
        name, crs, band, zsource, stats, table, count, today = run_row[0]
        assert (name, crs, band, zsource, count, today) == ("values", "EPSG:9213", 1, "zones.gpkg", 3, True)
        assert stats == ["mean", "min", "max", "sum", "count", "std", "majority"]
        stored = dict(conn.execute(f'SELECT zone_code, mean FROM smarttrees."{table}"').fetchall())
        assert stored["A"] == pytest.approx(3.5) and stored["B"] == pytest.approx(1.5)
        assert conn.execute(f'SELECT ST_SRID(geom), ST_GeometryType(geom) FROM smarttrees."{table}" LIMIT 1'
                            ).fetchone() == (4326, "ST_MultiPolygon")


def test_zones_in_another_crs_are_reprojected(settings_env: str, tmp_path: Path) -> None:
    raster = make_raster(tmp_path / "values.tif", VALUES)
    zones = zone_file(tmp_path / "zones.geojson", {"A": box(0, 0, 2, 2), "B": box(0.5, 0, 1.5, 1)}, crs="EPSG:4326")
    result = run("zonal", str(raster), "--by", str(zones), "--stats", "mean,count",
                 "--csv", str(tmp_path / "z.csv"), url=settings_env)
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "z.csv")
    # Round trip through lon/lat moves edges by millimetres: figures agree to 1e-3.
    assert float(rows["A"]["mean"]) == pytest.approx(3.5, rel=1e-3)
    assert float(rows["B"]["count"]) == pytest.approx(1.0, rel=1e-3)


def test_categorical_raster_gives_class_shares(settings_env: str, tmp_path: Path) -> None:
    classes = np.array([[1, 1, 2, 3], [1, 2, 2, 3], [3, 3, 3, 3], [3, 3, 3, 3]], dtype="uint8")
    raster = make_raster(tmp_path / "landcover.tif", classes, nodata=0,
                         colormap={1: (0, 128, 0, 255), 2: (200, 200, 0, 255), 3: (0, 0, 255, 255)})
    zones = zone_file(tmp_path / "zones.gpkg", {"A": box(0, 0, 2, 2), "B": box(1.5, 0, 3, 1)})
    result = run("zonal", str(raster), "--by", str(zones), "--stats", "majority",
                 "--csv", str(tmp_path / "lc.csv"), url=settings_env)
    assert result.returncode == 0, result.stderr
    assert "class shares" in result.stdout
    rows = read_csv(tmp_path / "lc.csv")
    assert json.loads(rows["A"]["class_shares"]) == pytest.approx({"1": 0.75, "2": 0.25})
    assert float(rows["A"]["majority"]) == 1
    assert json.loads(rows["B"]["class_shares"]) == pytest.approx({"1": 0.5 / 1.5, "2": 1 / 1.5})
    with connect(settings_env) as conn:
        table, categorical = conn.execute("SELECT table_name, categorical FROM zonal_runs").fetchone()
        shares = conn.execute(f"SELECT class_shares FROM smarttrees.\"{table}\" WHERE zone_code = 'A'").fetchone()[0]
    assert categorical and shares == pytest.approx({"1": 0.75, "2": 0.25})


def test_large_and_small_zones_and_masked_cells_give_hand_figures(tmp_path: Path) -> None:
    # Large zones are read one at a time, small ones by raster chunks (etl.raster.zonal):
    # both must give the same hand-computed figures, leaving out nodata cells and cells hidden
    # by an internal mask (a raster with no nodata value).
    rows, cols = np.mgrid[0:600, 0:600]
    values = (rows * 1000 + cols).astype("float32")  # a cell's value tells where it is
    valid = np.ones(values.shape, dtype=bool)
    valid[10:12, 20:25] = valid[200:210, 150:160] = False
    plain = make_raster(tmp_path / "grid.tif", np.where(valid, values, -1).astype("float32"))
    masked = make_raster(tmp_path / "masked.tif", values, nodata=None)
    with rasterio.open(masked, "r+") as dst:
        dst.write_mask(np.where(valid, 255, 0).astype("uint8"))

    def figures(raster: Path, shapes: dict[str, shapely.Geometry],
                workers: int) -> dict[str, dict[str, float]]:
        frame = gpd.GeoDataFrame({"zone_code": list(shapes), "zone_name": list(shapes)},
                                 geometry=list(shapes.values()), crs="EPSG:9213")
        with open_raster(raster) as source:
            result = zonal_statistics(source, Zones("test", frame), ("mean", "count", "min"), False,
                                      workers=workers)
        return {r.zone_code: {"mean": r.mean, "count": r.count, "min": r.min}
                for r in result.itertuples()}

    def expected(shape: shapely.Geometry) -> dict[str, float]:
        c0, r1, c1, r0 = ((np.array(shape.bounds) - [X0, Y0, X0, Y0]) / [10, -10, 10, -10]).astype(int)
        cells = values[r0:r1, c0:c1][valid[r0:r1, c0:c1]]
        return {"mean": float(cells.mean()), "count": float(cells.size), "min": float(cells.min())}

    large = {"L1": box(0, 0, 400, 300), "L2": box(100, 350, 600, 600)}  # 120,000 cells and more
    small = {f"S{i}": box(20 * i, 10 * i, 20 * i + 15, 10 * i + 8) for i in range(1, 25)}
    for raster in (plain, masked):
        for shapes in (large, small):
            for workers in (1, 3):  # in this process, and shared out over worker processes
                got = figures(raster, shapes, workers)
                assert list(got) == list(shapes)  # rows in the zones' order
                for code, shape in shapes.items():
                    assert got[code] == pytest.approx(expected(shape)), (raster.name, code, workers)


def test_large_zones_cut_at_tiles_give_the_whole_zones_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Zones spanning many 128-cell tiles are cut (tiles inside summed with numpy, edges by
    # exactextract): the same figures as exactextract over each whole zone, which it still
    # computes when a statistic that does not pool (majority) is asked for.
    rng = np.random.default_rng(11)
    values = rng.gamma(2.0, 50.0, size=(700, 700)).astype("float32")
    values[rng.random(values.shape) < 0.02] = -1  # nodata cells, inside tiles too
    values[300:310, 300:305] = np.nan  # NaN is no value either
    values[384:576, 64:320] = 7.5  # tiles of one value: a spread of exactly 0
    raster = make_raster(tmp_path / "big.tif", values)
    shapes = {
        "circle": shapely.Point(X0 + 3500, Y0 - 3500).buffer(3300),
        "diamond": shapely.Polygon([(X0 + 3500, Y0 - 100), (X0 + 6900, Y0 - 3500),
                                    (X0 + 3500, Y0 - 6900), (X0 + 100, Y0 - 3500)]),
        "past the edge": box(300.5, 250.25, 900, 900),
        "rectangle": box(10, 10, 590, 590),
        "small": box(5, 5, 9.5, 9.5),
        "on tile lines": box(64, 128, 448, 576),  # edges on the 64-cell tiles' sides
        "with a hole": shapely.Point(X0 + 3000, Y0 - 3000).buffer(2500).difference(
            shapely.Point(X0 + 3100, Y0 - 2900).buffer(1200)),
        "two parts": shapely.MultiPolygon([box(20, 330, 300, 690), box(320.5, 330, 690, 690)]),
    }
    frame = gpd.GeoDataFrame({"zone_code": list(shapes), "zone_name": None},
                             geometry=list(shapes.values()), crs="EPSG:9213")
    pooled = ("mean", "min", "max", "sum", "count", "std")
    with open_raster(raster) as source:
        whole = zonal_statistics(source, Zones("t", frame), (*pooled, "majority"), False, workers=1)
        for workers in (1, 2):
            cut = zonal_statistics(source, Zones("t", frame), pooled, False, workers=workers)
            assert list(cut["zone_code"]) == list(shapes)
            assert cut[list(pooled)].to_numpy() == pytest.approx(
                whole[list(pooled)].to_numpy(), rel=1e-9), workers
        # In three bands of different heights read one after the other into one array, then
        # each read by a thread while exactextract works on the one before
        monkeypatch.setattr(zonal, "WINDOW_MAX_CELLS", 450_000)
        for read_ahead in (False, True):
            monkeypatch.setattr(zonal, "READ_AHEAD", read_ahead)
            with rasterio.Env(GDAL_CACHEMAX=64 * 2**20):
                banded = zonal_statistics(source, Zones("t", frame), pooled, False, workers=1)
                # the job holds GDAL's block cache small while it reads, then gives it back
                assert rasterio.env.get_gdal_config("GDAL_CACHEMAX") == 64 * 2**20
            assert banded[list(pooled)].to_numpy() == pytest.approx(
                whole[list(pooled)].to_numpy(), rel=1e-9), read_ahead
    cells = values[10:590, 10:590]
    cells = cells[(cells != -1) & ~np.isnan(cells)].astype("float64")
    rectangle = cut.set_index("zone_code").loc["rectangle"]
    assert rectangle["count"] == pytest.approx(cells.size)
    assert rectangle["sum"] == pytest.approx(cells.sum(), rel=1e-9)
    assert rectangle["std"] == pytest.approx(cells.std(), rel=1e-9)
    assert (rectangle["min"], rectangle["max"]) == (cells.min(), cells.max())


def test_a_cut_zone_is_its_pieces_tiles_and_strips_each_cell_once() -> None:
    # Runs of edge tiles are narrowed to the columns the rings cross; the sides inside the
    # zone are summed as strips of cells: pieces, tiles and strips cover the zone once.
    transform = from_origin(X0, Y0, 10, 10)
    zones = [shapely.Point(X0 + 3500, Y0 - 3500).buffer(3300),
             shapely.Polygon([(X0 + 3500, Y0 - 100), (X0 + 6900, Y0 - 3500),
                              (X0 + 3500, Y0 - 6900), (X0 + 100, Y0 - 3500)]),
             box(64, 128, 448, 576),  # edges on the tiles' sides
             shapely.Point(X0 + 3000, Y0 - 3000).buffer(2500).difference(
                 shapely.Point(X0 + 3100, Y0 - 2900).buffer(1200))]
    split = interior.split_zones(np.asarray(zones, dtype=object), list(shapely.to_wkb(zones)),
                                 [0, 1, 2, 3], transform, 700, 700)
    assert split is not None and len(split.strips)
    pieces = shapely.area(shapely.from_wkb(split.pieces)) / 100
    tile = interior.TILE
    for k, zone in enumerate(zones):
        cells = (pieces[split.piece_owner == k].sum() + tile * tile * (split.tile_owner == k).sum()
                 + tile * (split.strip_owner == k).sum())
        assert cells == pytest.approx(zone.area / 100, rel=1e-12), k
    strips = {(int(k), int(r), int(c))
              for k, (r, c) in zip(split.strip_owner, split.strips, strict=True)}
    tiles = {(int(k), int(r), int(c))
             for k, (r, c) in zip(split.tile_owner, split.tiles, strict=True)}
    assert len(strips) == len(split.strips)  # no strip twice in a zone
    assert not any((k, r - r % tile, c - c % tile) in tiles for k, r, c in strips)  # nor in a tile


def test_inside_tiles_of_one_value_and_of_many_give_numpys_figures() -> None:
    # Tiles of one value take a short cut (their sum is n × the value, their spread 0); tiles
    # of one infinite value, of many values, with nodata or NaN cells are summed cell by cell.
    tile = interior.TILE
    rng = np.random.default_rng(5)
    values = rng.gamma(2.0, 50.0, size=(2 * tile, 4 * tile)).astype("float32")
    values[:tile, :tile] = 7.5
    values[:tile, tile:2 * tile] = np.inf
    values[tile:, :tile] = -1  # nodata only
    values[tile + 3, 2 * tile + 5] = -1
    values[5, 3 * tile + 1] = np.nan
    tiles = np.array([(r, c) for r in (0, tile) for c in range(0, 4 * tile, tile)])
    with np.errstate(invalid="ignore"):
        got = interior.tile_figures(values, (0, 0), -1.0, tiles)
        for (r, c), figures in zip(tiles, got, strict=True):
            cells = values[r:r + tile, c:c + tile].astype("float64").ravel()
            cells = cells[(cells != -1) & ~np.isnan(cells)]
            if not len(cells):
                assert list(figures[:2]) == [0, 0] and np.isnan(figures[2:4]).all()
                continue
            spread = ((cells - cells.sum() / len(cells)) ** 2).sum()
            assert figures == pytest.approx([len(cells), cells.sum(), cells.min(), cells.max(),
                                             spread], rel=1e-12, nan_ok=True), (r, c)
    assert list(got[0]) == [tile * tile, 7.5 * tile * tile, 7.5, 7.5, 0.0]
    assert np.isinf(got[1][1]) and np.isnan(got[1][4])  # as exactextract: inf − inf


def test_results_gathered_by_column_are_exactextracts_own(tmp_path: Path) -> None:
    # exactextract's results go straight to columns (no dictionary feature per zone): the
    # same frame as its pandas output, zones over nodata only and class arrays included.
    from exactextract import exact_extract

    values = np.array([[1, 2, 2, -1], [3, 3, 1, -1], [1, 1, 2, -1]], dtype="int16")
    zones = [box(0, 0, 2.5, 2), box(1.5, 0.5, 3, 3), box(3, 0, 4, 3), box(10, 10, 12, 12)]
    wkbs = list(shapely.to_wkb(zones))
    ops = ["count", "sum", "min", "max", "stdev", "unique", "frac"]
    with rasterio.open(make_raster(tmp_path / "c.tif", values)) as dataset:
        source = zonal._BandSource(dataset, 1)
        wkt = dataset.crs.to_wkt()
        ours = zonal._extract(source, wkbs, [7, 8, 9, 10], wkt, ops, "feature-sequential")
        stock = exact_extract(source, zonal._ZoneSource(wkbs, [7, 8, 9, 10], wkt), ops,
                              include_cols=[zonal.ZONE_INDEX], output="pandas")
    assert list(ours.columns) == list(stock.columns) and list(ours[zonal.ZONE_INDEX]) == [7, 8, 9, 10]
    for name in ("count", "sum", "min", "max", "stdev"):
        assert ours[name].to_numpy(float) == pytest.approx(stock[name].to_numpy(float), nan_ok=True)
    assert [list(u) for u in ours["unique"]] == [list(u) for u in stock["unique"]]
    assert [list(f) for f in ours["frac"]] == [list(f) for f in stock["frac"]]
    assert ours["count"][2] == 0 and np.isnan(ours["min"][2])  # nodata cells only


def test_worker_processes_give_the_same_figures_and_class_shares(tmp_path: Path) -> None:
    # Zones shared out over processes by bands of the raster: every figure as in one process.
    rng = np.random.default_rng(7)
    classes = rng.integers(1, 5, size=(300, 300)).astype("uint8")
    raster = make_raster(tmp_path / "classes.tif", classes, nodata=0)
    shapes = [shapely.Point(X0 + 30 * i, Y0 - 25 * i - 40).buffer(15 + 3 * i) for i in range(1, 60)]
    frame = gpd.GeoDataFrame({"zone_code": [f"Z{i}" for i in range(len(shapes))],
                              "zone_name": None}, geometry=shapes, crs="EPSG:9213")
    stats = ("mean", "min", "max", "sum", "count", "std", "majority")
    with open_raster(raster) as source:
        alone = zonal_statistics(source, Zones("test", frame), stats, True, workers=1)
        shared = zonal_statistics(source, Zones("test", frame), stats, True, workers=2)
        assert gc.isenabled()  # the garbage collector, paused through the job, runs again
        gc.disable()  # ... unless the caller had paused it
        try:
            zonal_statistics(source, Zones("test", frame), ("mean",), False, workers=2)
            assert not gc.isenabled()
        finally:
            gc.enable()
    assert list(shared["zone_code"]) == list(frame["zone_code"])
    assert shared[list(stats)].to_numpy() == pytest.approx(alone[list(stats)].to_numpy())
    assert list(shared["class_shares"]) == list(alone["class_shares"])
    assert all(sum(s.values()) == pytest.approx(1, abs=1e-5) for s in shared["class_shares"])


def test_density_per_commune_adds_up_to_the_trees(province_url: str, tmp_path: Path) -> None:
    with connect(province_url) as conn:
        report = density_surface(conn, 30, tmp_path / "density.tif")
    result = run("zonal", str(tmp_path / "density.tif"), "--by", "commune", "--stats", "sum",
                 url=province_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "density_zonal_commune.csv")
    with connect(province_url) as conn:
        communes = conn.execute("SELECT count(*) FROM communes").fetchone()[0]
    assert len(rows) == communes
    # Each cell's trees split between the communes sharing it; together they are every tree.
    trees = sum(float(r["sum"]) for r in rows.values()) * 0.09
    assert trees == pytest.approx(report.trees, rel=1e-4)


def test_stand_zones(province_url: str, tmp_path: Path) -> None:
    with connect(province_url) as conn:
        density_surface(conn, 30, tmp_path / "d.tif")
        stands = conn.execute("SELECT count(*) FROM stands").fetchone()[0]
    result = run("zonal", str(tmp_path / "d.tif"), "--by", "stand", "--csv", str(tmp_path / "s.csv"),
                 url=province_url)
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "s.csv")
    assert len(rows) == stands and all(float(r["max"]) > 0 for r in rows.values())


def stored_runs(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM smarttrees.zonal_runs").fetchone()[0]


def test_bad_inputs_are_one_line_and_store_nothing(settings_env: str, tmp_path: Path) -> None:
    good_zones = zone_file(tmp_path / "zones.gpkg", {"A": box(0, 0, 2, 2)})
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 20, Y0 - 20), (X0 + 20, Y0), (X0, Y0 - 20)])
    bad_zones = tmp_path / "bad_zones.geojson"
    gpd.GeoDataFrame({"code": ["OK", "X9"]}, geometry=[box(0, 0, 1, 1), bowtie], crs="EPSG:9213").to_file(bad_zones)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(make_raster(tmp_path / "whole.tif", VALUES).read_bytes()[:300])
    cases = [
        (make_raster(tmp_path / "nocrs.tif", VALUES, crs=None), good_zones,
         "error: nocrs.tif: has no coordinate reference system"),
        (make_raster(tmp_path / "far.tif", VALUES, x0=800_000, y0=1_000_000), good_zones,
         "error: far.tif: does not overlap the zones.gpkgs"),
        (make_raster(tmp_path / "rgb.tif", np.stack([VALUES] * 3)), good_zones,
         "error: rgb.tif: has 3 bands; choose one with --band 1…3"),
        (corrupt, good_zones, "error: corrupt.tif: "),
        (tmp_path / "whole.tif", bad_zones, "error: bad_zones.geojson: feature 2 (code 'X9'): invalid polygon (Self-intersection"),
        (tmp_path / "missing.tif", good_zones, "error: missing.tif: no such file"),
    ]
    with connect(settings_env) as conn:
        for raster, zones, message in cases:
            with pytest.raises(RasterError) as caught, open_raster(raster) as source:
                run_zonal(conn, source, zones_from_file(zones), ("mean",), tmp_path / "out.csv")
            assert f"error: {caught.value}".startswith(message)
    # As a person sees it: one line on stderr, exit code 1, no traceback.
    for raster, zones, message in (cases[3], cases[4]):
        result = run("zonal", str(raster), "--by", str(zones), "--csv", str(tmp_path / "out.csv"), url=settings_env)
        assert result.returncode == 1, (raster, result.stdout)
        assert result.stderr.startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()
    assert stored_runs(settings_env) == 0


@pytest.mark.shared_data
def test_reference_relief_per_commune(province_env: str, shared_data: Path, tmp_path: Path) -> None:
    relief = shared_data / "raster" / "etopo1_shaded_relief_window.tif"
    if not relief.exists():
        pytest.skip(f"{relief} not found")
    result = run("zonal", str(relief), "--band", "1", "--by", "commune", "--stats", "mean,min,max",
                 "--continuous", "--csv", str(tmp_path / "relief.csv"), url=province_env)
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "relief.csv")
    assert len(rows) == 12
    for row in rows.values():
        assert 0 <= float(row["min"]) <= float(row["mean"]) <= float(row["max"]) <= 255


def write_tiled(path: Path) -> None:
    """A 512² float raster in 64² deflated tiles, to be damaged by the tests below."""
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=1,
                       dtype="float32", crs="EPSG:9213", nodata=-1,
                       transform=from_origin(X0, Y0, 10, 10), tiled=True, blockxsize=64,
                       blockysize=64, compress="deflate") as dst:
        dst.write(np.arange(512 * 512, dtype=np.float32).reshape(512, 512) % 97, 1)


def test_damage_found_in_the_middle_of_a_job_is_one_line(settings_env: str, tmp_path: Path) -> None:
    """A tile damaged inside the file (the first and last blocks read fine at open) is named."""
    damaged = tmp_path / "damaged.tif"
    write_tiled(damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = b"\xff" * 2000  # tiles in the middle
    damaged.write_bytes(bytes(data))
    zones = zone_file(tmp_path / "zones.gpkg", {"A": box(0, 0, 512, 512)})
    result = run("zonal", str(damaged), "--by", str(zones), "--csv", str(tmp_path / "out.csv"),
                 url=settings_env)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error: damaged.tif: cannot be read (damaged or truncated?)")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()
    assert stored_runs(settings_env) == 0


def test_damage_met_by_a_worker_process_is_named(tmp_path: Path) -> None:
    # The damaged tiles lie in the southern zone's band, which a worker process reads while
    # this process reads the northern one: its error comes back here, naming the file.
    damaged = tmp_path / "damaged.tif"
    write_tiled(damaged)
    with rasterio.open(damaged) as ds:  # the tile of rows 384-447, columns 0-63
        offset = int(ds.get_tag_item("BLOCK_OFFSET_0_6", "TIFF", bidx=1))
    data = bytearray(damaged.read_bytes())
    data[offset : offset + 300] = b"\xff" * 300
    damaged.write_bytes(bytes(data))
    frame = gpd.GeoDataFrame({"zone_code": ["north", "south"], "zone_name": None},
                             geometry=[box(0, 0, 512, 200), box(0, 256, 512, 512)],
                             crs="EPSG:9213")
    with open_raster(damaged) as source, pytest.raises(RasterError) as caught:
        zonal_statistics(source, Zones("t", frame), ("mean",), False, workers=2)
    assert str(caught.value).startswith("damaged.tif: cannot be read (damaged or truncated?)")


def test_processes_sharing_a_job_claim_each_part_once(tmp_path: Path) -> None:
    # A process through its own share goes on with the parts another has not begun: every
    # part goes to exactly one process, however they race for them.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    parts = 600
    claims = zonal._Claims(context, parts)
    shares = [list(range(0, 200)), list(range(200, 400)), list(range(400, 600))]
    assert zonal._preference(shares, 1)[:202] == [*range(200, 400), 199, 198]

    def take(own: int, out: Path) -> None:
        out.write_text(json.dumps([k for k in zonal._preference(shares, own) if claims.take(k)]))

    children = [context.Process(target=take, args=(i, tmp_path / f"{i}.json")) for i in (1, 2)]
    for child in children:
        child.start()
    take(0, tmp_path / "0.json")
    for child in children:
        child.join()
    taken = [json.loads((tmp_path / f"{i}.json").read_text()) for i in (0, 1, 2)]
    assert sorted(k for got in taken for k in got) == list(range(parts))


def test_zones_over_many_parts_and_workers_are_each_summarised_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many small bands shared by three processes that take each other's: one row per zone,
    # in the zones' order, with the figures of one process.
    rng = np.random.default_rng(5)
    raster = make_raster(tmp_path / "values.tif", rng.gamma(2.0, 5.0, (400, 400)).astype("float32"))
    shapes = [box(c, r, c + 7.5, r + 5.25) for r in range(0, 390, 13) for c in range(0, 390, 29)]
    frame = gpd.GeoDataFrame({"zone_code": [f"Z{i}" for i in range(len(shapes))],
                              "zone_name": None}, geometry=shapes, crs="EPSG:9213")
    monkeypatch.setattr(zonal, "PARTS_PER_WORKER", 7)
    stats = ("mean", "min", "max", "count", "std")
    with open_raster(raster) as source:
        alone = zonal_statistics(source, Zones("t", frame), stats, False, workers=1)
        shared = zonal_statistics(source, Zones("t", frame), stats, False, workers=3)
    assert list(shared["zone_code"]) == list(frame["zone_code"])
    assert shared[list(stats)].to_numpy() == pytest.approx(alone[list(stats)].to_numpy(), rel=1e-12)


def test_zones_scattered_over_blocks_read_only_their_blocks_into_one_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pairs of small zones far apart in one band: each band reads only the blocks their boxes
    # touch, into one array reused band after band (the cells between are left as they were):
    # every figure is exactextract's own over the file.
    from exactextract import exact_extract

    rng = np.random.default_rng(11)
    values = rng.gamma(2.0, 5.0, (1024, 1024)).astype("float32")
    values[rng.random(values.shape) < 0.05] = -1  # nodata cells in the zones too
    path = tmp_path / "tiled.tif"
    with rasterio.open(path, "w", driver="GTiff", width=1024, height=1024, count=1,
                       dtype="float32", crs="EPSG:9213", nodata=-1, tiled=True, blockxsize=256,
                       blockysize=256, transform=from_origin(X0, Y0, 10, 10)) as dst:
        dst.write(values, 1)
    corners = ((20.2, 30.7), (21.5, 980.4), (500.5, 700.1), (502.3, 90.9), (900.8, 20.4),
               (901.1, 1010.6))
    shapes = [box(c, r, c + 3.3, r + 2.9).union(box(c + 1, r + 2, c + 2.4, r + 4.2))
              for r, c in corners]
    frame = gpd.GeoDataFrame({"zone_code": [f"S{i}" for i in range(len(shapes))],
                              "zone_name": None}, geometry=shapes, crs="EPSG:9213")
    monkeypatch.setattr(zonal, "WINDOW_MAX_CELLS", 700_000)  # three bands, one array
    stats = ("mean", "min", "max", "count", "sum")
    with open_raster(path) as source:
        band = zonal._BandSource(source.dataset, 1)
        geometries = frame.geometry.values
        parts = zonal.spatial_parts(geometries, zonal._zone_cells(geometries, (10, 10)),
                                    zonal._part_count(source.dataset, geometries, 1))
        readings = [zonal._plan_read(band, geometries[p], source.crs.to_wkt()) for p in parts]
        assert len(parts) == 3 and all(r is not None for r in readings)
        assert any(len(r.runs) == 2 for r in readings if r is not None)  # blocks left out
        ours = zonal_statistics(source, Zones("t", frame), stats, False, workers=1)
        stock = exact_extract(source.dataset, frame, list(stats), output="pandas")
    assert ours[list(stats)].to_numpy() == pytest.approx(stock[list(stats)].to_numpy(), rel=1e-12)

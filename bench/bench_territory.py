"""Benchmark: what the territory checks cost (issue 12), against a bounding-box test.

Run: .venv/bin/python bench/bench_territory.py [--points 1000000]

Starts a throwaway PostGIS cluster, migrates it and makes the province's 92 communes of 2025
(../shared/data, when present; else a 92-cell synthetic province) the territory. Then times,
for ``--points`` random points over the province's extent:
  1. the old check: a bounding box in SQL (``lon BETWEEN … AND lat BETWEEN …``);
  2. ``smarttrees.in_territory(lon, lat)``: the stored outline, prepared once per statement;
  3. the alternative not taken: GiST probes into the outline cut by ``ST_Subdivide`` (64);
  4. the same points in Python: ``Territory.contains`` (prepared shapely outline) against the
     numpy bounding-box test;
  5. an INSERT … SELECT of the points into ``smarttrees.trees`` with and without the
     statement-level territory trigger (migration 0014_territory_rules).
Prints every figure, the load average and the versions; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMUNES = REPO.parent / "shared" / "data" / "admin" / "communes_2025_approx.geojson"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

EXTENT = (105.25, 21.25, 106.45, 22.80)


def seconds(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def setup_territory(url: str) -> str:
    import datetime as dt

    import numpy as np

    from etl.admin import load_admin
    from etl.synthetic.geography import synthetic_communes

    if COMMUNES.exists():
        load_admin(url, COMMUNES, level="commune", valid_from=dt.date(2025, 7, 1))
        return f"{COMMUNES.name} (92 communes)"
    import geopandas as gpd

    communes = synthetic_communes(92, 15, np.random.default_rng(2025))
    path = Path(tempfile.mkdtemp()) / "communes.geojson"
    gpd.GeoDataFrame({"code": communes.codes, "name": communes.names},
                     geometry=list(communes.geoms), crs=4326).to_file(path)
    load_admin(url, path, level="commune", valid_from=dt.date(2025, 7, 1))
    return "92 synthetic communes"


def run(points: int) -> None:
    import psycopg
    import shapely
    from psycopg import sql

    from smarttrees import schema, territory
    from smarttrees.cluster import Cluster
    from smarttrees.database import connect

    rng = np.random.default_rng(1)
    lon = rng.uniform(EXTENT[0], EXTENT[2], points)
    lat = rng.uniform(EXTENT[1], EXTENT[3], points)
    folder = Path(tempfile.mkdtemp(prefix="bench-territory-"))
    folder.chmod(0o755)
    cluster = Cluster(folder / "db", dbname="bench")
    try:
        cluster.start()
        url = cluster.url()
        schema.upgrade(url)
        what = setup_territory(url)
        with connect(url) as conn:
            area = territory.current(conn)
            conn.execute("CREATE TEMP TABLE parts AS SELECT ST_Subdivide(geom, 64) AS geom "
                         "FROM smarttrees.territory")
            conn.execute("CREATE INDEX ON parts USING gist (geom)")
            conn.execute("ANALYZE parts")
            parts = conn.execute("SELECT count(*) FROM parts").fetchone()
            vertices = conn.execute("SELECT ST_NPoints(geom) FROM smarttrees.territory").fetchone()
            print(f"territory: {what}; {area.describe()}; {vertices[0]:,} vertices "
                  f"({parts[0]} parts when subdivided)")
            conn.execute("CREATE TEMP TABLE pts (lon float8, lat float8)")
            with conn.cursor().copy("COPY pts FROM STDIN") as copy:
                for x, y in zip(lon.tolist(), lat.tolist(), strict=True):
                    copy.write_row((x, y))
            conn.execute("ANALYZE pts")
            box = "lon BETWEEN 105.25 AND 106.45 AND lat BETWEEN 21.25 AND 22.80"
            t_box = seconds(lambda: conn.execute(f"SELECT count(*) FROM pts WHERE {box}"))
            inside: list[int] = []
            test = territory.sql_inside(sql.SQL("lon"), sql.SQL("lat"))
            t_idx = seconds(lambda: inside.append(conn.execute(
                sql.SQL("SELECT count(*) FROM pts WHERE {}").format(test)).fetchone()[0]))
            t_fn = seconds(lambda: conn.execute(
                "SELECT count(*) FROM pts WHERE smarttrees.in_territory(lon, lat)"))
            t_parts = seconds(lambda: conn.execute(
                "SELECT count(*) FROM pts WHERE EXISTS (SELECT 1 FROM parts p WHERE "
                "ST_Intersects(p.geom, ST_SetSRID(ST_MakePoint(lon, lat), 4326)))"))
            print(f"SQL, {points:,} points: bounding box {t_box:.2f} s; sql_inside "
                  f"{t_idx:.2f} s ({t_idx / points * 1e6:.1f} µs a point; {inside[0]:,} inside); "
                  f"the function in_territory {t_fn:.2f} s; "
                  f"GiST probes into the parts {t_parts:.2f} s "
                  f"({t_parts / points * 1e6:.1f} µs a point)")
            t_np = seconds(lambda: (lon >= EXTENT[0]) & (lon <= EXTENT[2])
                           & (lat >= EXTENT[1]) & (lat <= EXTENT[3]))
            t_py = seconds(lambda: area.contains(lon, lat))
            print(f"Python, {points:,} points: numpy bounding box {t_np:.3f} s; "
                  f"Territory.contains {t_py:.2f} s")
            conn.execute(sql.SQL("DELETE FROM pts WHERE NOT {}").format(test))
            insert = ("INSERT INTO smarttrees.trees (tree_code, category, geom) "
                      "SELECT 'B' || row_number() OVER (), 'urban', "
                      "ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM pts "
                      "WHERE lon BETWEEN 105.25 AND 106.45")
            conn.execute("SAVEPOINT a")
            t_with = seconds(lambda: conn.execute(insert))
            conn.execute("ROLLBACK TO SAVEPOINT a")
            conn.execute("ALTER TABLE smarttrees.trees DISABLE TRIGGER trees_in_territory_insert")
            t_without = seconds(lambda: conn.execute(insert))
            conn.rollback()
            print(f"INSERT of {inside[0]:,} trees: with the territory trigger {t_with:.2f} s, "
                  f"without {t_without:.2f} s (difference {t_with - t_without:+.2f} s, "
                  f"the points inside only)")
            version = conn.execute("SELECT postgis_lib_version(), version()").fetchone()
        print(f"versions: PostGIS {version[0]}; {version[1].split(',')[0]}; shapely "
              f"{shapely.__version__}; psycopg {psycopg.__version__}; numpy {np.__version__}")
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        cluster.destroy()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    try:
        run(args.points)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it never ends in a traceback
        print(f"benchmark failed: {type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()

"""National layout benchmark: items and tile latency as the inventory grows from 1 to N provinces.

For each province count in ``--provinces`` (e.g. ``1,3`` here, ``1,10`` for the issue's 11 M
trees), a fresh database gets that many synthetic provinces side by side — each 0.5° × 0.5°,
100 communes of 0.05° with their province as ``parent_code``, ``--trees-per-province`` trees at
random positions (1,130,000 by default, Thái Nguyên's count) written through the trees table's
triggers like any load — and is measured twice with our server (tile cache off, one worker):
as one table, and after ``smarttrees db partition-trees`` (the national layout).

Cases, each ``--requests`` sequential requests over 50 places in province 01 (the same places
whatever N): a bbox page of 100 trees (a 0.01° box, ~450 trees), the same page with a
``commune_code`` filter (pruned to one partition), with a ``province`` filter (pruned to one
partition; its 100 communes' codes in the query), an uncached z15 and an uncached z14 tile.
Printed: p50 and p90 in ms per case and layout, the ratio of each p50 to the one-province
figure, versions and the load average.

Usage::

    python bench/bench_national.py --provinces 1,3
    python bench/bench_national.py --provinces 1,10      # ~11 M trees: ~15 GB of disk, long

The cluster lives in a temporary folder and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.species import load_species  # noqa: E402
from smarttrees import schema  # noqa: E402
from smarttrees.cluster import Cluster  # noqa: E402
from smarttrees.database import connect  # noqa: E402
from smarttrees.partitioning import partition_trees  # noqa: E402

PROVINCE_DEG = 0.5
COMMUNE_DEG = 0.05
ORIGIN = (103.0, 23.0)  # the north-west corner of province 01; others go east, then south
PLACES = 50
TEMPLATE = "national_template"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def corner(index: int) -> tuple[float, float]:
    """The south-west corner of province ``index`` (0-based), five to a row."""
    return (ORIGIN[0] + (index % 5) * (PROVINCE_DEG + 0.1),
            ORIGIN[1] - (index // 5 + 1) * (PROVINCE_DEG + 0.1))


def generate(url: str, provinces: int, trees: int, seed: int = 2025) -> float:
    """Write ``provinces`` synthetic provinces into ``url``; return the seconds it took."""
    started = time.perf_counter()
    per_row = round(PROVINCE_DEG / COMMUNE_DEG)
    with connect(url) as conn:
        conn.execute("SELECT setseed(%s)", [seed / 10_000])
        for i in range(provinces):
            code = f"{i + 1:02d}"
            x0, y0 = corner(i)
            conn.execute(
                "INSERT INTO admin_units (level, code, name, unit_type, parent_code, valid_from, "
                "geom) SELECT 'commune', %(p)s || lpad(k::text, 3, '0'), "
                "'Xã ' || %(p)s || '-' || k, 'xã', %(p)s, '2025-07-01', ST_Multi(ST_MakeEnvelope("
                "%(x0)s + (k %% %(n)s) * %(d)s, %(y0)s + (k / %(n)s) * %(d)s, "
                "%(x0)s + (k %% %(n)s + 1) * %(d)s, %(y0)s + (k / %(n)s + 1) * %(d)s, 4326)) "
                "FROM generate_series(0, %(n)s * %(n)s - 1) k",
                {"p": code, "x0": x0, "y0": y0, "n": per_row, "d": COMMUNE_DEG})
            conn.execute(
                "INSERT INTO trees (tree_code, category, species_id, dbh_cm, commune_code, source,"
                " geom) SELECT 'P' || %(p)s || '-' || g, (ARRAY['urban', 'scattered', "
                "'plantation'])[1 + g %% 3], 1 + g %% 20, 10 + g %% 40, %(p)s || lpad(("
                "floor((x - %(x0)s) / %(d)s) + %(n)s * floor((y - %(y0)s) / %(d)s))::int::text, "
                "3, '0'), 'bench', ST_SetSRID(ST_MakePoint(x, y), 4326) FROM ("
                "SELECT g, %(x0)s + random() * %(w)s AS x, %(y0)s + random() * %(w)s AS y "
                "FROM generate_series(1, %(t)s) g) s",
                {"p": code, "x0": x0, "y0": y0, "n": per_row, "d": COMMUNE_DEG,
                 "w": PROVINCE_DEG * 0.99999, "t": trees})
            log(f"  province {code}: {trees:,} trees ({time.perf_counter() - started:.0f} s)")
    settle(url)
    return time.perf_counter() - started


def settle(url: str) -> None:
    """What a loader does after a bulk load: statistics, and the grid of the low-zoom tiles."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE smarttrees.trees")
        conn.execute("REFRESH MATERIALIZED VIEW smarttrees.tree_grid")
        conn.execute("REFRESH MATERIALIZED VIEW smarttrees.tree_grid_version")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2 ** z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return z, int(y), int((lon + 180) / 360 * n)


def places(seed: int = 7) -> list[tuple[float, float]]:
    """Points inside province 01, away from its edges: the same list for every run."""
    rng = random.Random(seed)
    x0, y0 = corner(0)
    return [(x0 + 0.05 + rng.random() * 0.4, y0 + 0.05 + rng.random() * 0.4)
            for _ in range(PLACES)]


def cases() -> dict[str, list[str]]:
    """The request paths of each case, one per place."""
    x0, y0 = corner(0)
    per_row = round(PROVINCE_DEG / COMMUNE_DEG)
    out: dict[str, list[str]] = {"items bbox": [], "items bbox+commune": [],
                                 "items bbox+province": [], "tile z15": [], "tile z14": []}
    for lon, lat in places():
        bbox = f"{lon:.5f},{lat:.5f},{lon + 0.01:.5f},{lat + 0.01:.5f}"
        k = int((lon - x0) / COMMUNE_DEG) + per_row * int((lat - y0) / COMMUNE_DEG)
        out["items bbox"].append(f"/collections/trees/items?bbox={bbox}&limit=100")
        out["items bbox+commune"].append(
            f"/collections/trees/items?bbox={bbox}&limit=100&commune_code=01{k:03d}")
        out["items bbox+province"].append(f"/collections/trees/items?bbox={bbox}&limit=100"
                                          "&province=01")
        for z in (15, 14):
            tz, ty, tx = tile_of(lon, lat, z)
            out[f"tile z{z}"].append(f"/collections/trees/tiles/WebMercatorQuad/{tz}/{ty}/{tx}")
    return out


@contextmanager
def serving(url: str) -> Iterator[str]:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.server import serve_database

    with serve_database(url, timeout=120, tile_cache_mb="0", pool_max_size="4") as base:
        yield base


def measure(url: str, requests: int) -> dict[str, dict[str, float]]:
    """p50 and p90 (ms) of each case, ``requests`` sequential requests each."""
    figures: dict[str, dict[str, float]] = {}
    with serving(url) as base, httpx.Client(base_url=base, timeout=120) as client:
        for name, paths in cases().items():
            for path in paths[:5]:  # warm the buffer cache and the connections alike
                client.get(path).raise_for_status()
            took = []
            for i in range(requests):
                started = time.perf_counter()
                client.get(paths[i % len(paths)]).raise_for_status()
                took.append((time.perf_counter() - started) * 1000)
            quantiles = statistics.quantiles(took, n=10)
            figures[name] = {"p50_ms": round(statistics.median(took), 1),
                             "p90_ms": round(quantiles[8], 1)}
    return figures


def versions(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
    return {"postgresql": str(pg[0] if pg else "?"), "postgis": str(postgis[0] if postgis else "?"),
            "python": sys.version.split()[0], "psycopg": psycopg.__version__}


def run(cluster: Cluster, counts: list[int], trees: int, requests: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    admin = cluster.url("postgres")
    for n in counts:
        name = f"national_{n}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # names made here, not input
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        url = cluster.url(name)
        log(f"{n} province(s): generating...")
        took = generate(url, n, trees)
        size = _size(url)
        log(f"{n} province(s): {n * trees:,} trees in {took:.0f} s, database {size}")
        results.append({"provinces": n, "layout": "one table", "load_average": _load(),
                        **{"cases": measure(url, requests)}})
        log(json.dumps(results[-1]))
        started = time.perf_counter()
        with connect(url) as conn:
            partition_trees(conn)
        settle(url)
        log(f"{n} province(s): partitioned in {time.perf_counter() - started:.0f} s")
        results.append({"provinces": n, "layout": "partitioned", "load_average": _load(),
                        **{"cases": measure(url, requests)}})
        log(json.dumps(results[-1]))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
    return results


def _size(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        return str(row.fetchone()[0])  # type: ignore[index]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(results: list[dict[str, object]], counts: list[int], trees: int) -> None:
    base = {r["layout"]: r["cases"] for r in results if r["provinces"] == counts[0]}
    print(f"\nitems and tiles p50 / p90 (ms), {trees:,} trees per province, tile cache off, "
          f"{PLACES} places in province 01")
    print("| provinces | layout | load avg | " + " | ".join(cases()) + " |")
    print("|---|---|---|" + "---|" * len(cases()))
    for r in results:
        figures: dict[str, dict[str, float]] = r["cases"]  # type: ignore[assignment]
        first: dict[str, dict[str, float]] = base[r["layout"]]  # type: ignore[index]
        cells = [f"{f['p50_ms']} / {f['p90_ms']} (×{f['p50_ms'] / first[c]['p50_ms']:.2f})"
                 for c, f in figures.items()]
        print(f"| {r['provinces']} | {r['layout']} | {r['load_average']} | "
              + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provinces", default="1,3", help="province counts, e.g. 1,3 or 1,10")
    parser.add_argument("--trees-per-province", type=int, default=1_130_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    try:
        counts = sorted({int(x) for x in args.provinces.split(",")})
    except ValueError:
        parser.error(f"--provinces: expected numbers separated by commas, got {args.provinces!r}")
    if not counts or counts[0] < 1 or counts[-1] > 20:
        parser.error("--provinces: between 1 and 20 provinces")
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-national-"))
    folder.chmod(0o755)
    cluster = Cluster(folder, dbname=TEMPLATE, extra_config={"fsync": "off"})
    try:
        cluster.start()
        schema.upgrade(cluster.url())
        with connect(cluster.url()) as conn:
            load_species(conn)
        print(json.dumps(versions(cluster.url())))
        results = run(cluster, counts, args.trees_per_province, args.requests)
        report(results, counts, args.trees_per_province)
    except (psycopg.Error, httpx.HTTPError, RuntimeError, OSError) as exc:
        print(f"bench_national: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        cluster.destroy()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

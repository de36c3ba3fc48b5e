"""Where an uncached trees tile's time goes: planner, picking, ST_AsMVT, Python, transfer.

Times CPU, not wall clock, so that a shared machine's load does not hide the answer: the
PostgreSQL backend's CPU (``/proc/<pid>/stat`` of the connection's backend, same machine) and
this process's, over repeated renders of the densest z14 and z15 tiles (as bench_tiles.py finds
them) by the server's own code (:func:`gis_api.tiles.render.render_trees`). Then the parts of the
statement: planning and execution time from ``EXPLAIN (ANALYZE)``, and the backend CPU of the
points tile as ST_AsMVT made it before ``gis_api.tiles.mvt`` (``tests/fixtures/
st_asmvt_points.sql``: the "before" of the same run), without its attributes or without
``tree_code`` (what ST_AsMVT's encoding of properties costs); then the statement the server
now runs (points as columns) and this process's CPU to encode its row. The bytes sent are
printed too (transfer on loopback is not measurable beside these).

Usage::

    .venv/bin/python bench/bench_tile_profile.py --url postgresql://...   # a full province
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import psycopg
from psycopg import AsyncConnection, sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tiles import densest_tile  # noqa: E402

from gis_api.tiles import render  # noqa: E402
from gis_api.tiles.grid import TileAddress, tile_origin  # noqa: E402
from gis_api.tiles.params import TreeFilters  # noqa: E402
from gis_api.tiles.tree_points import trees_layer  # noqa: E402
from smarttrees.settings import Settings  # noqa: E402

RUNS = 30
REFERENCE = ROOT / "tests" / "fixtures" / "st_asmvt_points.sql"
TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (a PostgreSQL backend on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def client_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def render_cost(conn: AsyncConnection, pid: int, tile: TileAddress,
                      settings: Settings, current: bool = True) -> tuple[int, float, float]:
    """Bytes, backend ms and client ms per render of the tile (tree_grid current or not)."""
    async with conn.transaction():
        body = await render.render_trees(conn, tile, TreeFilters(), settings, current)
    b0, c0 = backend_cpu(pid), client_cpu()
    for _ in range(RUNS):
        async with conn.transaction():
            await render.render_trees(conn, tile, TreeFilters(), settings, current)
    return len(body), (backend_cpu(pid) - b0) / RUNS * 1000, (client_cpu() - c0) / RUNS * 1000


async def statement_cost(conn: AsyncConnection, pid: int, text: str,
                         params: dict[str, object]) -> tuple[float, float, float]:
    """Planning and execution ms (EXPLAIN ANALYZE) and backend CPU ms of one statement."""
    query = sql.SQL(text).format(filters=sql.SQL(""))
    cur = await conn.execute(
        sql.SQL("EXPLAIN (ANALYZE, SUMMARY) ") + query, params, prepare=False
    )
    lines = [row[0] for row in await cur.fetchall()]
    planning = next(float(x.split()[2]) for x in lines if x.startswith("Planning Time"))
    execution = next(float(x.split()[2]) for x in lines if x.startswith("Execution Time"))
    b0 = backend_cpu(pid)
    for _ in range(RUNS):
        await (await conn.execute(query, params, prepare=False)).fetchone()
    return planning, execution, (backend_cpu(pid) - b0) / RUNS * 1000


async def columns_cost(conn: AsyncConnection, pid: int, tile: TileAddress,
                       settings: Settings) -> None:
    """The server's points statement (columns) and the Python CPU of encoding its row."""
    x0, y0, size = tile_origin(tile)
    cells = render.DENSE_GRID_CELLS
    params = {"z": tile.z, "x": tile.x, "y": tile.y, "margin": render.BUFFER / render.EXTENT,
              "buffer": render.BUFFER, "limit": settings.tile_max_features, "cells": cells,
              "x0": x0, "y0": y0, "size": size / cells, "west": x0, "north": y0 + size,
              "scale": render.EXTENT / size, "small": 0}  # 0: columns, whatever the count
    statement = render._point_zoom_statement((), False)
    b0, c0 = backend_cpu(pid), client_cpu()
    for _ in range(RUNS):
        row = await render._run_row(conn, statement, params)
    backend, fetch = backend_cpu(pid) - b0, client_cpu() - c0
    c0 = client_cpu()
    for _ in range(RUNS):
        body = trees_layer(row[2:])
    encode = client_cpu() - c0
    print(f"{'points as columns (now)':24} PostgreSQL CPU {backend / RUNS * 1000:5.1f} ms, Python: "
          f"fetch {fetch / RUNS * 1000:.1f} ms, encode {encode / RUNS * 1000:.1f} ms "
          f"({len(body):,} bytes)")


async def profile(url: str) -> None:
    settings = Settings(database_url=url)
    z14, n14 = densest_tile(url, 14)
    z15, n15 = densest_tile(url, 15)
    conn = await AsyncConnection.connect(url)
    pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[index]
    await conn.commit()
    print(f"load average {os.getloadavg()[0]:.1f}; {RUNS} renders each; CPU per render")
    for (z, x, y), n in ((z14, n14), (z15, n15)):
        tile = TileAddress(z, y, x)
        size, backend, client = await render_cost(conn, pid, tile, settings)
        print(f"{z}/{y}/{x} ({n:,} trees, {size:,} bytes): PostgreSQL {backend:.1f} ms, "
              f"Python {client:.1f} ms")
    z, x, y = z15
    has_view = await render._has_view(conn, render.POINT_TILES)  # 0035: z15 read from it
    await conn.commit()
    if has_view:
        size, backend, client = await render_cost(conn, pid, TileAddress(z, y, x), settings,
                                                  current=False)
        print(f"  the z15 tile above came from smarttrees.tree_point_tiles; rendered from the "
              f"trees (as while it is stale): {size:,} bytes, PostgreSQL {backend:.1f} ms, "
              f"Python {client:.1f} ms")
    await conn.set_autocommit(True)
    await conn.execute("SET max_parallel_workers_per_gather = 0")
    z, x, y = z15
    points = "".join(f"{line}\n" for line in REFERENCE.read_text().splitlines()
                     if not line.lstrip().startswith("--"))
    base = {"z": z, "x": x, "y": y, "margin": render.BUFFER / render.EXTENT,
            "buffer": render.BUFFER, "limit": settings.tile_max_features}
    without_attributes = points.replace(
        points[points.index("        SELECT p.id,") + len("        SELECT p.id,"):
               points.index("               ST_AsMVTGeom")], "\n")
    variants = {
        "ST_AsMVT (before)": points,
        "  without properties": without_attributes,
        "  without tree_code": points.replace("               p.tree_code,\n", ""),
    }
    print(f"z15 {z}/{y}/{x}, the parts of its statement:")
    for name, text in variants.items():
        planning, execution, cpu = await statement_cost(conn, pid, text, base)
        print(f"{name:24} planning {planning:5.2f} ms, execution {execution:6.1f} ms, "
              f"PostgreSQL CPU {cpu:5.1f} ms")
    await columns_cost(conn, pid, TileAddress(z, y, x), settings)
    z, x, y = z14
    x0, y0, size = tile_origin(TileAddress(z, y, x))
    cells = render.DENSE_GRID_CELLS
    grid = {"z": z, "x": x, "y": y, "cells": cells, "x0": x0, "y0": y0, "size": size / cells}
    planning, execution, cpu = await statement_cost(
        conn, pid, render._sql_text("tiles_trees_grid"), grid)
    print(f"z14 {z}/{y}/{x} grid counts over the trees ({cells}²): planning {planning:.2f} ms, "
          f"execution {execution:.1f} ms, PostgreSQL CPU {cpu:.1f} ms")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a database holding the full province")
    args = parser.parse_args()
    with psycopg.connect(args.url) as conn:
        versions = conn.execute("SELECT version(), postgis_lib_version()").fetchone()
    assert versions is not None
    print(f"{versions[0].split(' on ')[0]}, PostGIS {versions[1]}, psycopg {psycopg.__version__}")
    asyncio.run(profile(args.url))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - a benchmark ends with a line, not a traceback
        print(f"bench_tile_profile failed: {type(exc).__name__}: {exc}")
        sys.exit(1)

"""Vector tile benchmark: our app against tipg on the same full-scale trees table.

Measures, with wrk (bounded runs, 8 connections), the z14 and z15 tiles holding the most trees
(the densest town) and the z8 tile over the province centre: requests/s, p50, p99 and the tile
size in bytes, for
- our app with its in-process tile cache (the default),
- our app with the cache off (``SMARTTREES_TILE_CACHE_MB=0``: every request renders in PostGIS),
- tipg (installed by this script into bench/.venv-tipg).

Usage::

    .venv/bin/python bench/bench_tiles.py            # makes bench/out/province-full if missing
    .venv/bin/python bench/bench_tiles.py --url postgresql://...   # an existing full province

The managed cluster in bench/out/province-full is kept between runs (the generation takes a few
minutes) and stopped at the end; delete the folder to start afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.species import load_species  # noqa: E402
from etl.synthetic import ProvinceAlreadyLoaded, generate_province  # noqa: E402
from smarttrees import schema  # noqa: E402
from smarttrees.cluster import Cluster  # noqa: E402
from smarttrees.database import connect  # noqa: E402

OUT = ROOT / "bench" / "out"
TIPG_VENV = ROOT / "bench" / ".venv-tipg"
TIPG_VERSION = "1.6.1"
DURATION = "15s"
CONNECTIONS = 8


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- database -------------------------------------------------------------------------------


@contextmanager
def full_province(
    url: str | None, scale: str = "full", folder_name: str | None = None
) -> Iterator[str]:
    """URL of a database holding the province; made in a managed cluster if needed.

    The cluster lives in ``bench/out/<folder_name>`` (default ``province-<scale>``) and is kept
    between runs, so the province is generated once. Every benchmark script shares this.
    """
    if url:
        yield url
        return
    folder = OUT / (folder_name or f"province-{scale}")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    cluster = Cluster(folder, dbname="smarttrees")
    cluster.start()
    try:
        url = cluster.url()
        schema.upgrade(url)
        with connect(url) as conn:
            if not conn.execute("SELECT 1 FROM smarttrees.species LIMIT 1").fetchone():
                load_species(conn)
        try:
            started = time.perf_counter()
            log(f"generating the {scale} province...")
            generate_province(url, scale=scale, seed=2025)
            log(f"generated in {time.perf_counter() - started:.0f} s")
        except ProvinceAlreadyLoaded:
            log(f"{scale} province already loaded")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE smarttrees.trees")
        started = time.perf_counter()
        asyncio.run(refresh_grid(url))  # what a loader does after a bulk load
        log(f"tree_grid refreshed in {time.perf_counter() - started:.1f} s")
        yield url
    finally:
        cluster.stop()


async def refresh_grid(url: str) -> None:
    from psycopg import AsyncConnection

    from gis_api.tiles import refresh_tree_grid

    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await refresh_tree_grid(conn)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def densest_tile(url: str, z: int) -> tuple[tuple[int, int, int], int]:
    """The z-tile holding the most trees, and how many."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """
            SELECT floor((ST_X(geom) + 180) / 360 * 2 ^ %(z)s)::int AS x,
                   floor((1 - asinh(tan(radians(ST_Y(geom)))) / pi()) / 2 * 2 ^ %(z)s)::int AS y,
                   count(*)
            FROM smarttrees.trees GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1
            """,
            {"z": z},
        ).fetchone()
    assert row is not None
    return (z, row[0], row[1]), row[2]


def province_tile(url: str, z: int) -> tuple[tuple[int, int, int], int, int]:
    """The z-tile over the trees' centre, the trees in it and the trees in the whole table."""
    with psycopg.connect(url) as conn:
        lon, lat, total = conn.execute(
            "SELECT ST_X(c), ST_Y(c), n FROM (SELECT ST_Centroid(ST_Extent(geom)) c, count(*) n"
            " FROM smarttrees.trees) e"
        ).fetchone()
        tile = tile_of(lon, lat, z)
        inside = conn.execute(
            "SELECT count(*) FROM smarttrees.trees"
            " WHERE geom && ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)",
            [tile[0], tile[1], tile[2]],
        ).fetchone()[0]
    return tile, inside, total


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    cmd: list[str], env: dict[str, str], ready: str, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (in ``cwd``) until ``ready`` answers 200, then yield its process."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            try:
                if httpx.get(ready, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"{ready} not ready in 120 s")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def our_app(url: str, cache_mb: int, workers: int = 1) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        SMARTTREES_DATABASE_URL=url,
        SMARTTREES_PUBLIC_URL=base,
        SMARTTREES_TILE_CACHE_MB=str(cache_mb),
        SMARTTREES_POOL_MAX_SIZE=str(CONNECTIONS),
    )
    cmd = [
        str(ROOT / ".venv/bin/python"),
        "-m",
        "uvicorn",
        "gis_api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--workers",
        str(workers),
    ]
    with server(cmd, env, f"{base}/readyz"):
        yield base


def install_tipg() -> str:
    python = TIPG_VENV / "bin" / "python"
    if not python.exists():
        log(f"installing tipg {TIPG_VERSION} into {TIPG_VENV}...")
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"tipg=={TIPG_VERSION}", "uvicorn"],
            check=True,
        )
    return str(python)


@contextmanager
def tipg(url: str) -> Iterator[str]:
    python = install_tipg()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DATABASE_URL=url,
        TIPG_DB_SCHEMAS='["smarttrees"]',
        TIPG_DB_TABLES='["smarttrees.trees"]',
        TIPG_DB_MAX_CONN_SIZE=str(CONNECTIONS),
    )
    cmd = [
        python,
        "-m",
        "uvicorn",
        "tipg.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with server(cmd, env, f"{base}/collections"):
        yield base


def version_of(python: str, package: str) -> str:
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


# --- measuring ------------------------------------------------------------------------------


def wrk(url: str, duration: str = DURATION) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms), requests and errors of a bounded wrk run against one URL."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}", "--timeout", "60s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "errors": int(errors.group(1)) if errors else 0,
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def measure(name: str, url: str) -> dict[str, object]:
    first = time.perf_counter()
    response = httpx.get(url, timeout=600)
    cold_ms = (time.perf_counter() - first) * 1000
    response.raise_for_status()
    figures = wrk(url)
    result = {"server": name, "bytes": len(response.content), "first_ms": round(cold_ms),
              **figures, "load": round(os.getloadavg()[0], 1)}  # the machine is shared
    log(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database holding a full province (default: make one)")
    parser.add_argument("--skip-tipg", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:  # checked first: the province takes minutes to generate
        sys.exit("bench_tiles: wrk is not installed (.ci/system-packages.sh bench installs it)")
    with full_province(args.url) as url:
        dense, dense_n = densest_tile(url, 14)
        dense15, dense15_n = densest_tile(url, 15)
        z8, z8_n, total = province_tile(url, 8)
        log(f"densest z14 tile {dense}: {dense_n} trees; z8 tile {z8}: {z8_n} of {total} trees")
        tiles = {"z14 densest town": dense, "z15 densest town": dense15, "z8 province": z8}
        results: list[dict[str, object]] = []
        for label, cache_mb in (("ours (cache on)", 64), ("ours (cache off)", 0)):
            with our_app(url, cache_mb) as base:
                for what, (z, x, y) in tiles.items():
                    tile_url = f"{base}/collections/trees/tiles/WebMercatorQuad/{z}/{y}/{x}"
                    results.append({"tile": what, **measure(label, tile_url)})
        if not args.skip_tipg:
            with tipg(url) as base:
                for what, (z, x, y) in tiles.items():
                    tile_url = (
                        f"{base}/collections/smarttrees.trees/tiles/WebMercatorQuad/{z}/{x}/{y}"
                    )
                    results.append({"tile": what, **measure("tipg", tile_url)})
        with psycopg.connect(url) as conn:
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
            postgres = conn.execute("SHOW server_version").fetchone()[0]
    print(
        f"trees: {total}; densest z14 tile {dense[0]}/{dense[2]}/{dense[1]} holds {dense_n};"
        f" densest z15 tile {dense15[0]}/{dense15[2]}/{dense15[1]} holds {dense15_n};"
        f" z8 tile {z8[0]}/{z8[2]}/{z8[1]} holds {z8_n}"
    )
    print(
        f"PostgreSQL {postgres}, PostGIS {postgis}, wrk -t2 -c{CONNECTIONS} -d{DURATION};"
        f" tipg {version_of(str(TIPG_VENV / 'bin/python'), 'tipg') if not args.skip_tipg else '-'}"
    )
    print(
        f"{'tile':18} {'server':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'bytes':>9} {'1st ms':>7} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['tile']:18} {r['server']:18} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}"
            f" {r['bytes']:9d} {r['first_ms']:7d} {r['load']:5.1f}"
            + (f"  ({r['errors']} errors)" if r["errors"] else "")
        )


if __name__ == "__main__":
    main()

"""Raster benchmark: density COGs, zonal statistics beside rasterstats, PNG tiles.

On the full synthetic province (1.13 M trees, 92 communes, 4,000 stands), or the database given:

1. ``smarttrees raster density`` at 100 m and 10 m: seconds and the job's peak RSS (each in a
   fresh process), with the check that density × cell area adds up to the trees;
2. zonal statistics (mean, min, max, sum, count, std) of the 10 m surface over the communes and
   the stands: exactextract called alone (the file and a GeoDataFrame, whole zones), then
   ``etl.raster.zonal`` in one process (as it is, then with ``READ_AHEAD`` the other way: the
   next band read in a thread, or not) and over worker processes
   (``SMARTTREES_RASTER_WORKERS``): polygons per second and CPU seconds (worker processes
   included; the calling thread's beside: on free cores it is the critical path), and whether
   the figures are exactextract's own (relative 1e-9); a zonal job step by step (zones from
   PostGIS, reprojection, figures, the results' PostGIS table and CSV, with client and
   PostgreSQL backend CPU, rolled back); then the same
   zones and statistics with rasterstats, installed by this script into
   ``bench/.venv-rasterstats`` (or imported, if this Python has it), and how far apart the
   communes' means are (rasterstats counts whole cells whose centre is inside, exactextract
   the covered fraction of every cell);
3. the CPU of drawing 400 tiles of the registered 10 m surface in this process, read by
   rio-tiler and as windows of whole cells of the copy's levels (``copy_tile``), and whether
   both give the same cells; then PNG tiles at 8 concurrent requests: p50 and p95, read from
   the Web Mercator copy ``raster add`` writes (and the time that copy takes), beside the same
   tiles warped from the VN-2000 file itself (how rasters registered before the copies are
   served); the measured tiles are not in the server's tile cache (the warm-up takes others),
   and a second pass over them gives the cached figure.

Usage::

    .venv/bin/python bench/bench_raster.py                      # makes bench/out/province-full
    .venv/bin/python bench/bench_raster.py --url postgresql://...   # a database with the province
    .venv/bin/python bench/bench_raster.py --scale small        # a quick look (5,000 trees)
    .venv/bin/python bench/bench_raster.py --only tiles         # the 10 m surface and its tiles
    .venv/bin/python bench/bench_raster.py --only zonal         # ... and its zonal statistics
    .venv/bin/python bench/bench_raster.py --only density       # the 100 m and 10 m COGs
    .venv/bin/python bench/bench_raster.py --only zonal --rounds 5 --before DIR   # the goal

Every section reports "skipped: reason" rather than stopping; figures go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"
RASTERSTATS_VENV = ROOT / "bench" / ".venv-rasterstats"
RASTERSTATS_VERSION = "0.20.0"
CONCURRENCY = 8
TILE_REQUESTS = 400
STATS = ("mean", "min", "max", "sum", "count", "std")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def section(title: str, body: Callable[[], None]) -> None:
    print(f"\n## {title} (load average {load()} at the start)", flush=True)
    try:
        body()
    except Exception as exc:  # a bench reports and goes on; it never ends in a traceback
        print(f"skipped: {type(exc).__name__}: {exc}", flush=True)
    print(f"(load average {load()} at the end)", flush=True)


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def print_versions() -> None:
    import rasterio

    print(f"python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), "
          f"numpy {version('numpy')}, exactextract {version('exactextract')}, "
          f"rio-cogeo {version('rio-cogeo')}, rio-tiler {version('rio-tiler')}, "
          f"pyproj {version('pyproj')}")


# --- database -------------------------------------------------------------------------------


def province(url: str | None, scale: str) -> contextlib.AbstractContextManager[str]:
    """URL of a database with the province; generated in a managed cluster when not given."""
    from bench_tiles import full_province

    return full_province(url, scale=scale)


def counts(url: str) -> tuple[int, int, int]:
    from smarttrees.database import connect

    with connect(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM trees), (SELECT count(*) FROM communes), "
                           "(SELECT count(*) FROM stands)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# --- 1. density -----------------------------------------------------------------------------

DENSITY_JOB = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from etl.raster.density import density_surface
from smarttrees.database import connect
import rasterio
started = time.perf_counter()
with connect({url!r}) as conn:
    report = density_surface(conn, {resolution}, Path({out!r}))
seconds = time.perf_counter() - started
# VmHWM, not getrusage: Linux carries the forking parent's peak into ru_maxrss across exec.
rss = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM")) / 1024
with rasterio.open({out!r}) as ds:
    total = 0.0
    for _, window in ds.block_windows(1):
        total += float(ds.read(1, window=window, masked=True).filled(0).sum(dtype="float64"))
    cells = ds.width * ds.height
    overviews = ds.overviews(1)
print(json.dumps({{"seconds": seconds, "rss_mb": rss, "trees": report.trees,
                  "sum_trees": total * report.resolution ** 2 / 10000, "cells": cells,
                  "overviews": overviews, "size_mb": Path({out!r}).stat().st_size / 2**20}}))
"""


def density(url: str, resolution: int, out: Path) -> dict[str, Any]:
    job = DENSITY_JOB.format(root=str(ROOT), url=url, resolution=resolution, out=str(out))
    done = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"density {resolution:>3} m: {result['seconds']:.1f} s, peak RSS "
          f"{result['rss_mb']:.0f} MB, {result['cells']:,} cells, overviews "
          f"{result['overviews']}, {result['size_mb']:.1f} MB on disk; {result['trees']:,} "
          f"trees, density × cell area = {result['sum_trees']:,.1f}")
    return result


# --- 2. zonal statistics --------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU of this process and of its finished children (the zonal worker processes)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def zonal_plain(raster: Path, zones: Any) -> Any:
    """exactextract called as its README shows: the file, a GeoDataFrame, whole zones."""
    from exactextract import exact_extract

    ops = [{"std": "stdev"}.get(s, s) for s in STATS]
    frame = zones.frame.to_crs(crs_wkt(raster))
    result = exact_extract(str(raster), frame, ops, include_cols=["zone_code"], output="pandas")
    return result.rename(columns={"stdev": "std"})


def crs_wkt(raster: Path) -> str:
    import rasterio

    with rasterio.open(raster) as ds:
        return str(ds.crs.to_wkt())


def zonal_ours(url: str, raster: Path) -> dict[str, Any]:
    """exactextract alone, then ``etl.raster.zonal`` in one process and in worker processes."""
    import numpy as np

    from etl.raster import zonal
    from etl.raster.inputs import open_raster
    from etl.raster.zonal import zonal_statistics, zones_from_database
    from smarttrees.database import connect

    default = zonal.READ_AHEAD

    def ours(these: Any, workers: int, read_ahead: bool = default) -> Any:
        """One run as the command makes it: the raster opened afresh (GDAL's cache cold)."""
        zonal.READ_AHEAD = read_ahead
        try:
            with open_raster(raster) as source:
                return zonal_statistics(source, these, STATS, False, workers=workers)
        finally:
            zonal.READ_AHEAD = default

    figures: dict[str, Any] = {}
    workers = max(2, os.cpu_count() or 1)
    with connect(url) as conn:
        zones = {kind: zones_from_database(conn, kind) for kind in ("commune", "stand")}
        runs: list[tuple[str, Callable[[Any], Any]]] = [
            ("exactextract alone (whole zones, read from the file)",
             lambda these: zonal_plain(raster, these)),
            ("etl.raster.zonal, one process", lambda these: ours(these, 1)),
            (f"etl.raster.zonal, one process, {'no ' if default else ''}read-ahead thread",
             lambda these: ours(these, 1, read_ahead=not default)),
            (f"etl.raster.zonal, {workers} worker processes", lambda these: ours(these, workers)),
        ]
        for label, run in runs:
            total_polygons, total_seconds = 0, 0.0
            for kind, these in zones.items():
                started, cpu, own = time.perf_counter(), cpu_seconds(), time.thread_time()
                result = run(these)
                seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
                own = time.thread_time() - own
                if kind in figures:  # the same figures however the zones are cut or shared
                    same = np.allclose(figures[kind][list(STATS)].to_numpy(float),
                                       result[list(STATS)].to_numpy(float), equal_nan=True,
                                       rtol=1e-9, atol=0)
                    check = "same figures as exactextract alone" if same else "FIGURES DIFFER"
                else:
                    figures[kind], check = result, "the reference"
                total_polygons += len(result)
                total_seconds += seconds
                print(f"{label}, {len(result):,} {kind}s: {seconds:.2f} s, "
                      f"{len(result) / seconds:,.0f} polygons/s (CPU {cpu:.2f} s, of which "
                      f"the calling thread {own:.2f} s: {len(result) / cpu:,.0f} polygons per "
                      f"CPU second; {check}; load {load()})", flush=True)
            print(f"{label}, all {total_polygons:,} zones: {total_seconds:.2f} s, "
                  f"{total_polygons / total_seconds:,.0f} polygons/s", flush=True)
    return figures


FRESH_ZONAL = """
import os, resource, sys, time
from etl.raster.inputs import open_raster
from etl.raster.zonal import zonal_statistics, zones_from_database
from smarttrees.database import connect
url, raster, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
with connect(url) as conn:
    zones = [zones_from_database(conn, kind) for kind in ("commune", "stand")]
count, started, cpu = 0, time.perf_counter(), os.times()
faults = [resource.getrusage(who).ru_minflt for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN)]
for these in zones:
    with open_raster(raster) as source:
        count += len(zonal_statistics(source, these, {stats!r}, False, workers=workers))
seconds, after = time.perf_counter() - started, os.times()
faults = [resource.getrusage(who).ru_minflt - before for who, before in zip(
    (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN), faults)]
user, system = [after[i] + after[i + 2] - cpu[i] - cpu[i + 2] for i in (0, 1)]
print(f"{{count:,}} zones: {{seconds:.2f}} s, {{count / seconds:,.0f}} polygons/s "
      f"(CPU {{user + system:.2f}} s: user {{user:.2f}}, system {{system:.2f}}; "
      f"this process {{after[0] + after[1] - cpu[0] - cpu[1]:.2f}} s, workers "
      f"{{after[2] + after[3] - cpu[2] - cpu[3]:.2f}} s; minor page faults {{faults[0]:,}} "
      f"+ workers' {{faults[1]:,}})")
"""


def zonal_fresh(url: str, raster: Path, before: Path | None = None, rounds: int = 2) -> None:
    """The figures of a ``raster zonal`` run in a fresh process, with 1 and 2 workers in turn.

    A process that has run everything above carries its heap and GDAL's block cache into the
    forked workers (they were 30–40 % slower there); a user's command starts clean. ``rounds``
    rounds, alternating, each in its own process; the zones are read before the clock starts.
    With ``before`` (a checkout of other code, e.g. ``git archive main | tar -x -C DIR``), each
    run is followed by the same run of that code, so the two are compared in the same minutes.
    Then the spread of each (min / median / max of wall time, polygons/s and CPU).
    """
    code = FRESH_ZONAL.format(stats=list(STATS))
    trees = [("this tree", ROOT)] + ([(f"before ({before})", before.resolve())] if before else [])
    spread: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for round_ in range(1, rounds + 1):
        for workers in (1, 2):
            for label, tree in trees:
                result = subprocess.run(
                    [sys.executable, "-c", code, url, str(raster), str(workers)], cwd=tree,
                    capture_output=True, text=True, check=False,
                    env=dict(os.environ, PYTHONPATH=str(tree)))
                line = result.stdout.strip().splitlines()[-1:] or [result.stderr.strip()[-200:]]
                print(f"fresh process, {label}, {workers} worker(s), round {round_}: {line[0]}; "
                      f"load {load()}", flush=True)
                figures = FRESH_FIGURES.search(line[0])
                if figures:
                    seconds, rate, cpu = (float(g.replace(",", "")) for g in figures.groups())
                    spread.setdefault((label, workers), []).append((seconds, rate, cpu))
    for (label, workers), runs in spread.items():
        seconds, rate, cpu = (sorted(column) for column in zip(*runs, strict=True))
        print(f"fresh process, {label}, {workers} worker(s), {len(runs)} rounds: "
              f"{seconds[0]:.2f} / {statistics.median(seconds):.2f} / {seconds[-1]:.2f} s, "
              f"{rate[0]:,.0f} / {statistics.median(rate):,.0f} / {rate[-1]:,.0f} polygons/s, "
              f"CPU {cpu[0]:.2f} / {statistics.median(cpu):.2f} / {cpu[-1]:.2f} s "
              "(min / median / max)", flush=True)


FRESH_FIGURES = re.compile(r"zones: ([\d.]+) s, ([\d,]+) polygons/s \(CPU ([\d.]+) s")


def backend_cpu(conn: Any) -> float | None:
    """CPU seconds of the connection's PostgreSQL backend so far (None if /proc hides it)."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def zonal_job(url: str, raster: Path) -> None:
    """The rest of a ``raster zonal`` run beside the figures: zones in, results out.

    Reading the zones from PostGIS, reprojecting them to the raster's CRS, then the results'
    PostGIS table and CSV (``store`` and ``write_csv``, as ``run_zonal`` does), each with the
    client's and the PostgreSQL backend's CPU. Everything is rolled back: the shared database
    keeps no table.
    """
    from etl.raster.inputs import open_raster
    from etl.raster.zonal import store, write_csv, zonal_statistics, zones_from_database
    from smarttrees.database import connect

    def timed(label: str, conn: Any, step: Callable[[], Any]) -> Any:
        started, cpu, backend = time.perf_counter(), time.process_time(), backend_cpu(conn)
        result = step()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = backend_cpu(conn)
        server = "n/a" if backend is None or after is None else f"{after - backend:.2f} s"
        print(f"  {label}: {seconds:.2f} s (client CPU {cpu:.2f} s, PostgreSQL backend CPU "
              f"{server}; load {load()})", flush=True)
        return result

    with (tempfile.TemporaryDirectory() as tmp, connect(url) as conn,
          open_raster(raster) as source):
        wkt = source.crs.to_wkt()
        for kind in ("commune", "stand"):
            print(f"a zonal job over the {kind}s, step by step:")
            zones = timed(f"the {kind}s from PostGIS", conn,
                          lambda kind=kind: zones_from_database(conn, kind))
            timed("reprojected to the raster's CRS", conn,
                  lambda zones=zones: zones.frame.to_crs(wkt))
            result = timed("the figures (zonal_statistics, one process)", conn,
                           lambda zones=zones: zonal_statistics(source, zones, STATS, False,
                                                                workers=1))
            timed("their PostGIS table (store, rolled back after)", conn,
                  lambda zones=zones, result=result: store(conn, source, zones, result, STATS,
                                                           False))
            timed("their CSV", conn,
                  lambda result=result, kind=kind: write_csv(result, Path(tmp) / f"{kind}.csv"))
        conn.rollback()


RASTERSTATS_JOB = """
import json, sys, time
from rasterstats import zonal_stats
import rasterstats
zones = json.load(open(sys.argv[1]))
out = {}
for kind, features in zones.items():
    started, cpu = time.perf_counter(), time.process_time()
    stats = zonal_stats(features, sys.argv[2], stats="mean min max sum count std", nodata=-9999)
    out[kind] = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                 "means": [s["mean"] for s in stats]}
out["version"] = rasterstats.__version__
print(json.dumps(out))
"""


def rasterstats_python() -> str | None:
    """A Python with rasterstats: this one, or the bench venv (made on first use)."""
    try:
        import rasterstats  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    python = RASTERSTATS_VENV / "bin" / "python"
    if not python.exists():
        log(f"installing rasterstats {RASTERSTATS_VERSION} into {RASTERSTATS_VENV}...")
        subprocess.run([sys.executable, "-m", "venv", str(RASTERSTATS_VENV)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"rasterstats=={RASTERSTATS_VERSION}"],
            capture_output=True, text=True, check=False)
        if install.returncode != 0:
            print(f"rasterstats: not installed ({install.stderr.strip()[-200:]})")
            return None
    return str(python)


def zonal_rasterstats(url: str, raster: Path, ours: dict[str, Any]) -> None:
    import numpy as np
    import rasterio

    from etl.raster.zonal import zones_from_database
    from smarttrees.database import connect

    python = rasterstats_python()
    if python is None:
        return
    with rasterio.open(raster) as ds:
        crs_wkt = ds.crs.to_wkt()
    features: dict[str, list[dict[str, Any]]] = {}
    with connect(url) as conn:
        for kind in ("commune", "stand"):
            frame = zones_from_database(conn, kind).frame.to_crs(crs_wkt)
            features[kind] = json.loads(frame.to_json())["features"]
    with tempfile.TemporaryDirectory() as tmp:
        zones_path = Path(tmp) / "zones.json"
        zones_path.write_text(json.dumps(features))
        done = subprocess.run([python, "-c", RASTERSTATS_JOB, str(zones_path), str(raster)],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"rasterstats: failed ({done.stderr.strip()[-300:]})")
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    total_polygons = sum(len(features[k]) for k in features)
    total_seconds = sum(result[k]["seconds"] for k in features)
    for kind in features:
        n, seconds, cpu = len(features[kind]), result[kind]["seconds"], result[kind]["cpu"]
        print(f"rasterstats {result['version']}, {n:,} {kind}s: {seconds:.2f} s, "
              f"{n / seconds:,.0f} polygons/s (CPU {cpu:.2f} s: {n / cpu:,.0f} polygons per "
              "CPU second)")
    print(f"rasterstats, all {total_polygons:,} zones: {total_seconds:.2f} s, "
          f"{total_polygons / total_seconds:,.0f} polygons/s")
    theirs = np.array([np.nan if m is None else m for m in result["commune"]["means"]], float)
    mine = ours["commune"]["mean"].to_numpy(dtype=float)
    rel = np.nanmax(np.abs(theirs - mine) / np.maximum(np.abs(mine), 1e-9))
    print(f"communes' means, rasterstats vs exactextract: largest relative difference {rel:.2%}")


# --- 3. tiles -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiles_over(bbox: tuple[float, float, float, float], zooms: range) -> list[tuple[int, int, int]]:
    def tile(lon: float, lat: float, z: int) -> tuple[int, int]:
        n = 2**z
        return (int((lon + 180) / 360 * n),
                int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    found = []
    for z in zooms:
        x0, y0 = tile(bbox[0], bbox[3], z)
        x1, y1 = tile(bbox[2], bbox[1], z)
        found += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return found


async def fetch_all(base: str, name: str, tiles: list[tuple[int, int, int]]) -> list[float]:
    import httpx

    times: list[float] = []
    queue: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()
    for t in tiles:
        queue.put_nowait(t)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            z, x, y = queue.get_nowait()
            started = time.perf_counter()
            r = await client.get(f"{base}/collections/{name}/tiles/WebMercatorQuad/{z}/{y}/{x}.png")
            times.append(time.perf_counter() - started)
            if r.status_code not in (200, 404):
                raise RuntimeError(f"tile {z}/{y}/{x}: HTTP {r.status_code}")

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return times


def start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """A uvicorn process serving the app over ``url``, once it answers; and its base URL."""
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SMARTTREES_DATABASE_URL=url, SMARTTREES_PUBLIC_URL=base,
               PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "gis_api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env)
    for _ in range(120):
        if server.poll() is not None:
            raise RuntimeError("the server did not start (is the database migrated? "
                               "`smarttrees db upgrade`)")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError("the server did not answer /healthz within 60 s")


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    p50 = statistics.median(times) * 1000
    p95 = times[int(0.95 * (len(times) - 1))] * 1000
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"


def tile_cpu(record: Any, chosen: list[tuple[int, int, int]]) -> None:
    """CPU of drawing the tiles in this process, read by rio-tiler and as whole-cell windows.

    rio-tiler reads the copy as the server did before; ``gis_api.raster_tiles.copy_tile`` reads
    the window of the copy's level; both are encoded by ``stretched_png``.
    """
    import numpy as np
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    from gis_api.raster_tiles import copy_tile, stretched_png

    low, high = record.value_min or 0.0, record.value_max or 1.0
    copy = str(record.mercator_path)
    with Reader(copy) as reader:
        def rio_tiler(z: int, x: int, y: int) -> Any:
            try:
                return reader.tile(x, y, z, tilesize=256, indexes=1).array[0]
            except TileOutsideBounds:
                return None

        def window(z: int, x: int, y: int) -> Any:
            return copy_tile(copy, z, y, x)

        drawn: dict[str, list[Any]] = {}
        for label, read in (("rio-tiler", rio_tiler), ("whole-cell window", window)):
            for z, x, y in chosen[:20]:
                read(z, x, y)  # open the levels, warm GDAL's cache
            started = time.process_time()
            drawn[label] = []
            for z, x, y in chosen:
                band = read(z, x, y)
                if band is not None:
                    stretched_png(band, low, high, "greens")
                drawn[label].append(band)
            per_tile = (time.process_time() - started) / len(chosen) * 1000
            print(f"a tile drawn in this process ({label} + palette PNG), {len(chosen)} tiles "
                  f"z8–z13: {per_tile:.2f} ms CPU each (load {load()})")
    same = sum(
        a is not None and b is not None and bool((a.mask == np.ma.getmaskarray(b)).all())
        and bool((a.compressed() == b.compressed()).all())
        for a, b in zip(drawn["rio-tiler"], drawn["whole-cell window"], strict=True)
    )
    print(f"tiles with the same cells both ways: {same} of "
          f"{sum(a is not None for a in drawn['rio-tiler'])} drawn by rio-tiler")


def tiles(url: str, raster: Path) -> None:
    from etl.raster.registry import add_raster, remove_raster
    from smarttrees.database import connect

    fast, warped = "bench_density_10m", "bench_density_10m_warped"
    with (tempfile.TemporaryDirectory(dir=raster.parent) as copies,
          connect(url, autocommit=True) as conn):
        started = time.perf_counter()
        record = add_raster(conn, raster, fast, colormap="greens", replace=True,
                            copies=Path(copies))
        print(f"raster add with its Web Mercator copy: {time.perf_counter() - started:.1f} s, "
              f"copy {Path(record.mercator_path).stat().st_size / 1e6:.1f} MB")
        add_raster(conn, raster, warped, colormap="greens", replace=True, copies=Path(copies))
        # Served as a raster registered before the copies: warped from the file, every tile.
        conn.execute("UPDATE smarttrees.rasters SET mercator_path = NULL WHERE name = %s",
                     (warped,))
        every = tiles_over(record.bbox, range(8, 14))
        step = max(1, len(every) // TILE_REQUESTS)
        chosen = every[::step][:TILE_REQUESTS]
        tile_cpu(record, chosen)
        server, base = start_server(url)
        try:
            warm_up = [t for t in every[step // 2::step] if t not in chosen][:40]
            for name, label in ((warped, "warped from the VN-2000 file (before)"),
                                (fast, "from the Web Mercator copy (after)")):
                asyncio.run(fetch_all(base, name, warm_up))  # imports, GDAL caches
                times = asyncio.run(fetch_all(base, name, chosen))
                print(f"PNG tiles z8–z13 {label}, {len(times)} requests at {CONCURRENCY} "
                      f"concurrent (one server process): {percentiles(times)}")
            cached = asyncio.run(fetch_all(base, fast, chosen))
            print(f"the same tiles again, from the server's tile cache: {percentiles(cached)}")
        finally:
            server.terminate()
            server.wait(timeout=30)
            remove_raster(conn, fast)
            conn.execute("DELETE FROM smarttrees.rasters WHERE name = %s", (warped,))


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a database holding the province (default: generate one)")
    parser.add_argument("--scale", default="full", choices=("full", "small"))
    parser.add_argument("--before", type=Path,
                        help="a checkout of other code (say main before a change): its zonal "
                        "runs in a fresh process alternate with this tree's")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of the fresh-process zonal runs (each 1 and 2 workers)")
    parser.add_argument("--only", choices=("density", "zonal", "tiles"),
                        help="only the density COGs, or the 10 m surface and its zonal "
                        "statistics (beside rasterstats) or its tiles")
    args = parser.parse_args()
    print("# Raster benchmark")
    section("versions", print_versions)
    try:
        context = province(args.url, args.scale)
        url = context.__enter__()
    except Exception as exc:
        print(f"no database: {type(exc).__name__}: {exc}")
        return
    try:
        trees, communes, stands = counts(url)
        print(f"\nprovince: {trees:,} trees, {communes} communes, {stands:,} stands")
        with tempfile.TemporaryDirectory(dir=OUT if OUT.is_dir() else None) as tmp:
            coarse, fine = Path(tmp) / "density_100m.tif", Path(tmp) / "density_10m.tif"
            if args.only in ("zonal", "tiles"):
                section("density COG", lambda: density(url, 10, fine))
            else:
                section("density COGs",
                        lambda: (density(url, 100, coarse), density(url, 10, fine)))
            if args.only in (None, "zonal"):
                ours: dict[str, Any] = {}
                section("zonal statistics: exactextract",
                        lambda: ours.update(zonal_ours(url, fine)))
                section("zonal statistics in a fresh process, as the command runs them",
                        lambda: zonal_fresh(url, fine, args.before, args.rounds))
                section("zonal job: zones in, results out", lambda: zonal_job(url, fine))
                section("zonal statistics: rasterstats",
                        lambda: zonal_rasterstats(url, fine, ours))
            if args.only in (None, "tiles"):
                section("raster tiles", lambda: tiles(url, fine))
    finally:
        context.__exit__(None, None, None)


if __name__ == "__main__":
    main()

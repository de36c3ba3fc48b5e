"""Uncached trees tiles over HTTP: the whole cost of a request, beside a trivial route's.

Issue 17's tile goals are latencies at 8 concurrent requests (wrk) on two cores, where a p50 is
about 8 / throughput: every CPU millisecond of a request counts, PostgreSQL's, the server's
Python, the HTTP stack's and wrk's own. This script starts the server (uvicorn, one worker,
tile cache off, as ``bench_tiles.py``) from one or more checkouts of the code and runs wrk, in
alternation (round after round, so that a shared machine's load falls on every version alike),
on ``/healthz`` (the floor: the HTTP stack and wrk, no database), the densest z14 tile, the
densest z15 tile and that tile with a species filter (``z15-sp``: the tile's commonest species;
a filtered tile is always rendered from the trees). Beside req/s, p50 and p99 it prints the CPU
per request of the server process, of its PostgreSQL backends (``/proc/<pid>/stat``, the
backends found by the server's connections' ports) and of wrk, and the load average.

Usage::

    .venv/bin/python bench/bench_tile_http.py --url postgresql://…            # this tree
    .venv/bin/python bench/bench_tile_http.py --url … --code /tmp/before --code .   # alternated

``--code DIR`` is a checkout of the repository (``git worktree add /tmp/before <commit>``);
each server runs with that directory first on its path.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_tiles import CONNECTIONS, densest_tile, free_port, server, wrk  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def local_ports(pid: int, remote_port: int) -> set[int]:
    """Local ports of the process's TCP connections to ``remote_port`` (its database pool)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes and int(cols[2].rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def backends_of(url: str, pid: int) -> list[int]:
    """PostgreSQL backend pids serving the server process ``pid``."""
    with psycopg.connect(url) as conn:
        port = int(conn.info.port)
        ports = local_ports(pid, port)
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", [list(ports)]
        ).fetchall()
    return [r[0] for r in rows]


def commonest_species(url: str, tile: tuple[int, int, int]) -> int:
    """The species id most trees of tile (z, x, y) have."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT species_id FROM smarttrees.trees WHERE species_id IS NOT NULL"
            " AND geom && ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)"
            " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1", list(tile)).fetchone()
    return int(row[0]) if row else 1


def wrk_with_cpu(url: str, duration: str) -> tuple[dict[str, float], float]:
    """bench_tiles.wrk's figures for one URL, and wrk's own CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = wrk(url, duration)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return figures, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_code(code: Path, url: str, paths: dict[str, str], duration: str) -> None:
    """Start the server of one checkout and measure each path under wrk."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ, PYTHONPATH=str(code), SMARTTREES_DATABASE_URL=url,
        SMARTTREES_PUBLIC_URL=base, SMARTTREES_TILE_CACHE_MB="0",
        SMARTTREES_POOL_MAX_SIZE=str(CONNECTIONS), SMARTTREES_POOL_MIN_SIZE=str(CONNECTIONS),
    )
    cmd = [sys.executable, "-m", "uvicorn", "gis_api.app:create_app", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    with server(cmd, env, f"{base}/readyz", cwd=code) as proc:
        for what, path in paths.items():
            subprocess.run(["wrk", "-t1", "-c8", "-d2s", base + path], capture_output=True,
                           check=True)  # warm: every pooled connection opened and used
            backends = backends_of(url, proc.pid)
            s0, b0 = cpu_of(proc.pid), sum(map(cpu_of, backends))
            figures, wrk_cpu = wrk_with_cpu(base + path, duration)
            server_cpu = cpu_of(proc.pid) - s0
            backend_cpu = sum(map(cpu_of, backends)) - b0
            n = max(figures["requests"], 1)
            print(
                f"{code.name or str(code):16} {what:8} {figures['rps']:7.1f}"
                f" {figures['p50_ms']:7.1f} {figures['p99_ms']:7.1f}"
                f" {server_cpu / n * 1000:7.2f} {backend_cpu / n * 1000:7.2f}"
                f" {wrk_cpu / n * 1000:6.2f} {os.getloadavg()[0]:5.1f}"
                + (f"  ({figures['errors']} errors)" if figures["errors"] else ""),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a database holding the full province")
    parser.add_argument("--code", type=Path, action="append",
                        help="a checkout to serve from (repeat to alternate; default: this tree)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the checkouts")
    parser.add_argument("--duration", default="10s", help="wrk's -d for each measurement")
    parser.add_argument("--only", choices=("healthz", "z14", "z15", "z15-sp"), action="append",
                        help="measure only these (repeat)")
    args = parser.parse_args()
    codes = [c.resolve() for c in args.code or [ROOT]]
    z14, n14 = densest_tile(args.url, 14)
    z15, n15 = densest_tile(args.url, 15)
    tiles = "/collections/trees/tiles/WebMercatorQuad/{}/{}/{}"
    paths = {"healthz": "/healthz", "z14": tiles.format(z14[0], z14[2], z14[1]),
             "z15": tiles.format(z15[0], z15[2], z15[1])}
    if not args.only or "z15-sp" in args.only:
        paths["z15-sp"] = paths["z15"] + f"?species={commonest_species(args.url, z15)}"
    paths = {k: v for k, v in paths.items() if not args.only or k in args.only}
    with psycopg.connect(args.url) as conn:
        versions = conn.execute("SELECT version(), postgis_lib_version()").fetchone()
    assert versions is not None
    print(f"{versions[0].split(' on ')[0]}, PostGIS {versions[1]}; wrk -t2 -c{CONNECTIONS}"
          f" -d{args.duration}; one uvicorn worker, tile cache off")
    print(f"z14 {z14} holds {n14:,} trees; z15 {z15} holds {n15:,}"
          + (f"; z15-sp: {paths['z15-sp']}" if "z15-sp" in paths else ""))
    print("CPU columns: milliseconds per request (server process, its PostgreSQL backends, wrk)")
    print(f"{'code':16} {'path':8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'server':>7}"
          f" {'backend':>7} {'wrk':>6} {'load':>5}")
    for _ in range(args.rounds):
        for code in codes:
            run_code(code, args.url, paths, args.duration)
        time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - a benchmark ends with a line, not a traceback
        print(f"bench_tile_http failed: {type(exc).__name__}: {exc}")
        sys.exit(1)

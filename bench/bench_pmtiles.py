"""PMTiles benchmark: the province's tiles exported into one archive, and tiles read from it.

Measures, on the full province (bench/out/province-full, as bench_tiles.py makes it):

- ``smarttrees tiles export`` of the whole province, zoom 0–16 (the real command, in a process
  of its own: wall time, CPU of the process and of its PostgreSQL backends, tiles, archive
  size, peak RSS), with 4 connections and with 1;
- a field team's extract (``--bbox`` of the densest town, zoom 12–17) and its size;
- a tile read from the archive: in-process with the ``pmtiles`` package's reader (mmap), and
  over HTTP from the app's ``/tiles/archive.pmtiles`` as a PMTiles client does once it holds
  the directories (one range request for the tile's bytes), sequentially and with wrk at 8
  connections.

Usage::

    .venv/bin/python bench/bench_pmtiles.py            # makes the province if missing
    .venv/bin/python bench/bench_pmtiles.py --url postgresql://...
    .venv/bin/python bench/bench_pmtiles.py --url … --connections 4 --code /tmp/before --no-reads
        # the export of another checkout, then this one's, in one sitting

Figures are printed with the versions and the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import random
import re
import statistics
import subprocess
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
sys.path.insert(0, str(ROOT / "bench"))

from bench_tiles import _ms, densest_tile, free_port, full_province, server  # noqa: E402
from pmtiles.reader import MmapSource, Reader  # noqa: E402
from pmtiles.tile import (  # noqa: E402
    deserialize_directory,
    deserialize_header,
    find_tile,
    tileid_to_zxy,
    zxy_to_tileid,
)

SAMPLE = 500  # tiles read per reader
TEAM_BOX_DEG = 0.06  # side of a field team's area around the densest town, degrees


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float | None:
    """User + system CPU seconds of a process on this machine (None once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


class BackendCpu:
    """The CPU of the PostgreSQL backends of one application name, sampled until stopped.

    Backends end with their connections, so each one's CPU is read every half second and
    the last reading kept (up to half a second per backend is missed at its end).
    """

    def __init__(self, url: str, application: str) -> None:
        import threading

        self.url, self.application = url, application
        self.last: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.wait(0.5):
                pids = [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    [self.application])]
                for pid in pids:
                    cpu = _cpu_of(pid)
                    if cpu is not None:
                        self.last[pid] = cpu

    def stop(self) -> float:
        """Stop sampling; the CPU seconds of every backend seen."""
        self.done.set()
        self.thread.join()
        return sum(self.last.values())


def export(url: str, out: Path, *args: str, code: Path = ROOT) -> dict[str, object]:
    """Run ``smarttrees tiles export`` of ``code``; wall time, CPU (its own, its backends')."""
    application = f"bench_pmtiles {os.getpid()} {time.monotonic()}"
    env = dict(os.environ, SMARTTREES_DATABASE_URL=url, PYTHONPATH=str(code),
               PGAPPNAME=application)
    cmd = [sys.executable, "-m", "smarttrees", "tiles", "export", "--out", str(out), *args]
    before = load()
    backends = BackendCpu(url, application)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    backend_cpu = backends.stop()
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        return {"ok": False, "error": (stderr or stdout).strip().splitlines()[-1:]}
    tiles = re.search(r"([\d,]+) tiles", stdout)
    return {
        "ok": True,
        "seconds": seconds,
        "size": out.stat().st_size,
        "tiles": int(tiles.group(1).replace(",", "")) if tiles else -1,
        "peak_mib": usage.ru_maxrss / 1024,
        "cpu": f"CPU: export {usage.ru_utime + usage.ru_stime:.1f} s, "
               f"PostgreSQL {backend_cpu:.1f} s",
        "load": f"{before} → {load()}",
    }


def densest_town(url: str) -> tuple[float, float]:
    """Lon/lat of the centre of the z14 tile holding the most trees."""
    import morecantile

    (z, x, y), _ = densest_tile(url, 14)
    box = morecantile.tms.get("WebMercatorQuad").bounds(morecantile.Tile(x, y, z))
    return (box.left + box.right) / 2, (box.bottom + box.top) / 2


def tile_ranges(path: Path, sample: int) -> list[tuple[int, int, int, int, int]]:
    """(z, x, y, offset, length) of a random sample of the archive's tiles."""
    data = path.read_bytes()
    header = deserialize_header(data[:127])

    def entries(offset: int, length: int) -> Iterator[tuple[int, int, int]]:
        for e in deserialize_directory(data[offset:offset + length]):
            if e.run_length == 0:
                yield from entries(header["leaf_directory_offset"] + e.offset, e.length)
            else:
                yield e.tile_id, header["tile_data_offset"] + e.offset, e.length

    found = list(entries(header["root_offset"], header["root_length"]))
    random.seed(7)
    picked = random.sample(found, min(sample, len(found)))
    return [(*tileid_to_zxy(tid), off, n) for tid, off, n in picked]


def read_in_process(path: Path, tiles: list[tuple[int, int, int, int, int]]) -> list[float]:
    times = []
    with path.open("rb") as f:
        reader = Reader(MmapSource(f))
        for z, x, y, _, length in tiles:
            started = time.perf_counter()
            body = reader.get(z, x, y)
            times.append((time.perf_counter() - started) * 1000)
            assert body is not None and len(body) == length
    return times


def read_with_cached_directories(
    path: Path, tiles: list[tuple[int, int, int, int, int]]
) -> list[float]:
    """A tile read as a PMTiles client does it: directories parsed once and kept, then bytes."""
    with path.open("rb") as f:
        get = MmapSource(f)
        header = deserialize_header(get(0, 127))
        directories: dict[int, list] = {}

        def directory(offset: int, length: int) -> list:
            if offset not in directories:
                directories[offset] = deserialize_directory(get(offset, length))
            return directories[offset]

        def read(z: int, x: int, y: int) -> bytes | None:
            tile_id = zxy_to_tileid(z, x, y)
            offset, length = header["root_offset"], header["root_length"]
            for _ in range(4):
                entry = find_tile(directory(offset, length), tile_id)
                if entry is None:
                    return None
                if entry.run_length > 0:
                    return get(header["tile_data_offset"] + entry.offset, entry.length)
                offset = header["leaf_directory_offset"] + entry.offset
                length = entry.length
            return None

        for z, x, y, _, _ in tiles[:50]:  # the directories a client would have read already
            read(z, x, y)
        times = []
        for z, x, y, _, length in tiles:
            started = time.perf_counter()
            body = read(z, x, y)
            times.append((time.perf_counter() - started) * 1000)
            assert body is not None and len(body) == length
    return times


@contextmanager
def app_serving(url: str, archive: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SMARTTREES_DATABASE_URL=url, SMARTTREES_PUBLIC_URL=base,
               SMARTTREES_TILES_ARCHIVE=str(archive), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "uvicorn", "gis_api.app:create_app", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    with server(cmd, env, f"{base}/readyz"):
        yield base


def read_over_http(base: str, tiles: list[tuple[int, int, int, int, int]]) -> list[float]:
    times = []
    with httpx.Client(timeout=30) as client:
        for _, _, _, offset, length in tiles:
            started = time.perf_counter()
            r = client.get(f"{base}/tiles/archive.pmtiles",
                           headers={"Range": f"bytes={offset}-{offset + length - 1}"})
            times.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 206 and len(r.content) == length
    return times


def wrk_range(base: str, offset: int, length: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        f'wrk.headers["Range"] = "bytes={offset}-{offset + length - 1}"\n', encoding="utf-8"
    )
    try:
        out = subprocess.run(
            ["wrk", "-t2", "-c8", "-d10s", "--latency", "-s", str(script),
             f"{base}/tiles/archive.pmtiles"],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        script.unlink()
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
    }


def percentiles(times: list[float]) -> str:
    q = statistics.quantiles(times, n=100)
    return f"p50 {statistics.median(times):.2f} ms, p99 {q[98]:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database holding the full province (default: make one)")
    parser.add_argument("--maxzoom", type=int, default=16)
    parser.add_argument("--connections", default="4,1",
                        help="comma-separated connection counts to export with")
    parser.add_argument("--archive", type=Path,
                        help="read tiles from this archive; no export, no extract")
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="a checkout whose export to time too, before this one's (the "
                             "same sitting: before/after); may be repeated")
    parser.add_argument("--no-reads", action="store_true",
                        help="exports only: no extract, no reading of tiles")
    args = parser.parse_args()
    with full_province(args.url) as url, tempfile.TemporaryDirectory() as tmp:
        with psycopg.connect(url) as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]  # type: ignore[index]
            trees = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()[0]  # type: ignore[index]
        print(f"PostgreSQL {postgres}, PostGIS {postgis}, pmtiles (PyPI) "
              f"{importlib.metadata.version('pmtiles')}, psycopg {psycopg.__version__}, "
              f"Python {sys.version.split()[0]}; {trees:,} trees; {os.cpu_count()} cores")
        province = args.archive or Path(tmp) / "province.pmtiles"
        counts = [] if args.archive else [int(c) for c in args.connections.split(",")]
        for code in [*args.code, ROOT]:
            for n in counts:
                log(f"exporting z0-{args.maxzoom} with {n} connection(s), code of {code}...")
                r = export(url, province, "--maxzoom", str(args.maxzoom), "--connections",
                           str(n), code=code)
                if not r["ok"]:
                    print(f"export with {n} connections failed: {r['error']}")
                    continue
                print(f"export z0–{args.maxzoom}, {n} connection(s), {code}: "
                      f"{r['seconds']:.1f} s, {r['tiles']:,} tiles, {r['size'] / 1e6:.1f} MB, "
                      f"peak RSS {r['peak_mib']:.0f} MiB; {r['cpu']} ({r['load']})")
        if args.no_reads:
            return
        lon, lat = densest_town(url)
        half = TEAM_BOX_DEG / 2
        box = f"{lon - half:.5f},{lat - half:.5f},{lon + half:.5f},{lat + half:.5f}"
        team = Path(tmp) / "team.pmtiles"
        r = export(url, team, "--bbox", box, "--minzoom", "12", "--maxzoom", "17") if counts else {}
        if r.get("ok"):
            print(f"field extract {box}, z12–17: {r['seconds']:.1f} s, {r['tiles']:,} tiles, "
                  f"{r['size'] / 1e6:.2f} MB; {r['cpu']} ({r['load']})")
        if not province.exists():
            print("no archive to read tiles from")
            return
        tiles = tile_ranges(province, SAMPLE)
        print(f"tile read in process (pmtiles Reader.get, mmap: parses the directories each "
              f"time), {len(tiles)} random tiles: "
              f"{percentiles(read_in_process(province, tiles))} ({load()})")
        print(f"tile read in process, directories kept (as a PMTiles client), {len(tiles)} "
              f"random tiles: {percentiles(read_with_cached_directories(province, tiles))} "
              f"({load()})")
        with app_serving(url, province) as base:
            read_over_http(base, tiles[:50])  # warm up
            print(f"tile read over HTTP (one range request to /tiles/archive.pmtiles), "
                  f"{len(tiles)} random tiles one after another: "
                  f"{percentiles(read_over_http(base, tiles))} ({load()})")
            by_size = sorted(tiles, key=lambda t: t[4])
            for what, (z, x, y, offset, length) in (("median-size", by_size[len(by_size) // 2]),
                                                     ("largest sampled", by_size[-1])):
                w = wrk_range(base, offset, length)
                print(f"{what} tile {z}/{x}/{y} ({length:,} bytes) by range, wrk -c8: "
                      f"{w['rps']:.0f} req/s, p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms "
                      f"({load()})")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted")
    except Exception as exc:  # noqa: BLE001 - a benchmark ends with a line, not a traceback
        print(f"bench_pmtiles failed: {type(exc).__name__}: {exc}")
        sys.exit(1)

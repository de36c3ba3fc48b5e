"""IOC benchmark: load the 1.9 M-row document register and refresh the layers; the summary.

    .venv/bin/python bench/bench_ioc.py [--url URL] [--requests 200]

Without ``--url`` it makes a managed PostGIS in ``bench/out/ioc`` and generates the full
synthetic province there once (1.13 M trees, 1.9 M documents, 11,669 support cases). Then:

1. exports the generated register as the document-management system would (CSV, Vietnamese
   headers: ``Số ký hiệu, Ngày văn bản, Cơ quan gửi, Cơ quan nhận, Loại văn bản, Hình thức
   gửi``), empties ``documents`` and times ``smarttrees load documents FILE`` (the direct
   path: Arrow read, numpy checks, binary COPY; then the CONCURRENT refresh of the document
   layers), then the same file again (every row unchanged: one keyed MERGE), with the time
   of each step as the loader logs it;
2. starts the server (uvicorn, one worker) and times ``GET /api/ioc/summary``, then the z8 tile
   over the province centre and a page of items of the trees and of the IOC's tiled layers;
3. prints the full-scale summary.

Figures go to stdout; progress to stderr. Targets: load + refresh < 30 s, summary p50 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
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

OUT = ROOT / "bench" / "out"
EXPORT = """
COPY (
    SELECT d.doc_no AS "Số ký hiệu", to_char(d.sent_on, 'DD/MM/YYYY') AS "Ngày văn bản",
           s.code AS "Cơ quan gửi", r.code AS "Cơ quan nhận", d.doc_type AS "Loại văn bản",
           CASE WHEN d.electronic THEN 'Điện tử' ELSE 'Bưu chính' END AS "Hình thức gửi"
    FROM smarttrees.documents d
    JOIN smarttrees.agencies s ON s.id = d.agency_id
    JOIN smarttrees.agencies r ON r.id = d.receiver_id
    ORDER BY d.id
) TO STDOUT (FORMAT csv, HEADER true)
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def full_province(url: str | None) -> contextlib.AbstractContextManager[str]:
    """The full province in a cluster of its own (the register loads change it)."""
    from bench_tiles import full_province as shared

    return shared(url, folder_name="ioc")


def export_register(url: str, path: Path) -> int:
    """Write the documents as the source system exports them; return the row count."""
    with psycopg.connect(url) as conn, conn.cursor() as cur, path.open("wb") as handle:
        with cur.copy(EXPORT) as copy:
            for block in copy:
                handle.write(block)
        return int(cur.execute("SELECT count(*) FROM smarttrees.documents").fetchone()[0])


# What the loader logs at each step (etl.ioc_load), and the step's name here.
PHASES = {"read": r"read in ([\d.]+) s", "check": r"checked in ([\d.]+) s",
          "write": r"updated in ([\d.]+) s", "refresh": r"refreshed in ([\d.]+) s"}


def timed_load(url: str, path: Path) -> tuple[float, str, str]:
    """Run ``smarttrees load documents``: seconds, its summary line, and the time of each step."""
    env = dict(os.environ, SMARTTREES_DATABASE_URL=url)
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "smarttrees", "load", "documents", str(path),
                          "--from", "2025-01-01", "--to", "2025-09-30"],
                         capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if run.returncode:
        log(run.stderr)
    phases = []
    for name, pattern in PHASES.items():
        found = re.search(pattern, run.stderr)
        if found:
            phases.append(f"{name} {float(found.group(1)):.1f}")
    path_taken = "checked path" if "checked path" in run.stderr else "direct path"
    summary = run.stdout.strip().splitlines()[0] if run.stdout else run.stderr.strip()
    return seconds, summary, f"{path_taken}: " + ", ".join(phases) + " s"


def load_average() -> str:
    """The 1-minute load average: the machine is shared, so every figure carries it."""
    return f"{os.getloadavg()[0]:.1f}"


@contextmanager
def server(url: str) -> Iterator[str]:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.server import serve_database

    with serve_database(url) as base:
        yield base


def summary_timings(base: str, requests: int) -> list[float]:
    times = []
    with httpx.Client(timeout=60) as client:
        client.get(f"{base}/api/ioc/summary").raise_for_status()  # warm: pool, plans
        for _ in range(requests):
            started = time.perf_counter()
            client.get(f"{base}/api/ioc/summary").raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


TILED = ("trees", "documents_by_commune", "citizen_support_by_commune", "trees_by_commune")
CENTRE = (105.83, 21.59)  # Thái Nguyên city: the province's centre


def tile_timings(base: str, collection: str, requests: int) -> tuple[float, float, int]:
    """The z8 tile over the centre: first (rendered) ms, p50 of the cached ms, its bytes."""
    import morecantile

    tile = morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, 8)
    url = f"{base}/collections/{collection}/tiles/WebMercatorQuad/8/{tile.y}/{tile.x}"
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(requests + 1):
            started = time.perf_counter()
            response = client.get(url)
            response.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times[1:]), len(response.content)


def items_timing(base: str, collection: str, requests: int) -> float:
    """p50 ms of a page of a collection's items (100 features, with geometry)."""
    times = []
    with httpx.Client(timeout=60) as client:
        client.get(f"{base}/collections/{collection}/items").raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            client.get(f"{base}/collections/{collection}/items").raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database holding the full province (else made)")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with full_province(args.url) as url:
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version(), postgis_lib_version()").fetchone()
        register = OUT / "documents_register.csv"
        OUT.mkdir(parents=True, exist_ok=True)
        rows = export_register(url, register)
        size = register.stat().st_size / 1e6
        log(f"exported {rows:,} documents ({size:.0f} MB)")
        with psycopg.connect(url) as conn:
            conn.execute("TRUNCATE smarttrees.documents")
        load_before = load_average()
        first, first_out, first_phases = timed_load(url, register)
        again, again_out, again_phases = timed_load(url, register)
        load_after = load_average()
        with server(url) as base:
            times = summary_timings(base, args.requests)
            summary_load = load_average()
            tiles = {c: tile_timings(base, c, 50) for c in TILED}
            pages = {c: items_timing(base, c, 20) for c in TILED}
            tiles_load = load_average()
            summary = httpx.get(f"{base}/api/ioc/summary", timeout=60).json()
    print(f"Python {platform.python_version()}, psycopg {psycopg.__version__}, "
          f"{versions[0].split(' on ')[0]}, PostGIS {versions[1]}, {os.cpu_count()} cores")
    print(f"register: {rows:,} rows, {size:.0f} MB CSV; load average {load_before} before the "
          f"loads, {load_after} after")
    print(f"load + refresh, empty table:   {first:6.1f} s  ({first_out})  goal < 30 s")
    print(f"    {first_phases}")
    print(f"load + refresh, all unchanged: {again:6.1f} s  ({again_out})")
    print(f"    {again_phases}")
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"GET /api/ioc/summary ({len(times)} requests): p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"(goal p50 ≤ 50 ms; load average {summary_load})")
    print(f"z8 tile over the centre, and a page of 100 items (load average {tiles_load}):")
    for collection, (first_ms, cached_ms, size) in tiles.items():
        print(f"    {collection:28s} tile: first {first_ms:6.1f} ms, cached p50 "
              f"{cached_ms:5.1f} ms, {size:,} B; items p50 {pages[collection]:6.1f} ms")
    d, c, t = summary["documents"], summary["citizen_support"], summary["trees"]
    print(json.dumps({
        "documents": {k: d[k] for k in ("period", "total", "electronic",
                                        "courier_cost_saved_vnd")},
        "citizen_support": {k: c[k] for k in ("period", "people", "amount_vnd", "provinces")},
        "trees": {"total": t["total"], "by_category": t["by_category"],
                  "first_month": t["history"][0], "last_month": t["history"][-1]},
    }, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)

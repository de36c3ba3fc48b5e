"""Benchmark of the traceability documents: EUDR GeoJSON, bảng kê (PDF + XLSX), EPCIS 2.0.

Usage: .venv/bin/python bench/bench_trace.py [--scale full|small]

On a throwaway PostGIS holding a generated province, times the three documents of
(1) the province's largest transport load and (2) a load of 500 logs from 30 stands made for the
benchmark (the goal: all three in ≤ 2 s), then (3) the EPCIS export of the busiest windows of
custody events through the real command, with its peak memory (the goal: 100,000 events
streamed in ≤ 10 s with flat memory).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from barcodes import bangke as bk  # noqa: E402
from barcodes.epcis import Identifiers, item_keys, stream_document  # noqa: E402
from barcodes.eudr import eudr_document  # noqa: E402
from barcodes.origin import resolve  # noqa: E402
from smarttrees.database import with_search_path  # noqa: E402


def province(scale: str) -> tuple[Any, str]:
    from etl.species import load_species
    from etl.synthetic import generate_province
    from smarttrees import schema
    from smarttrees.cluster import Cluster
    from smarttrees.database import connect

    folder = Path(tempfile.mkdtemp(prefix="bench-trace-"))
    folder.chmod(0o755)
    cluster = Cluster(folder, dbname="bench", extra_config={"fsync": "off"})
    cluster.start()
    url = cluster.url()
    schema.upgrade(url)
    with connect(url) as conn:
        load_species(conn)
    started = time.perf_counter()
    generate_province(url, scale=scale, seed=2025)
    print(f"province generated ({scale}) in {time.perf_counter() - started:.0f} s")
    return cluster, url


def make_big_load(url: str, logs: int = 500, stands: int = 30) -> str:
    """A transport load of ``logs`` logs from ``stands`` stands (a mixed truck), its TR code."""
    from barcodes.codes import ItemType, make_code

    with psycopg.connect(url) as conn:
        picked = conn.execute(
            "WITH s AS (SELECT stand_id FROM smarttrees.timber_logs GROUP BY stand_id "
            "  HAVING count(*) >= %s ORDER BY stand_id LIMIT %s), "
            "r AS (SELECT g.id, row_number() OVER (PARTITION BY g.stand_id ORDER BY g.id) n "
            "  FROM smarttrees.timber_logs g JOIN s USING (stand_id)) "
            "SELECT id FROM r WHERE n <= %s ORDER BY id",
            [-(-logs // stands), stands, -(-logs // stands)],
        ).fetchall()
        ids = [r[0] for r in picked][:logs]
        [load_id] = conn.execute(
            "INSERT INTO smarttrees.transport_loads (load_code, fpl_number, vehicle_plate) "
            "VALUES ('BENCH', '99999/BKLS-BENCH-2025', '20C-999.99') RETURNING id"
        ).fetchone()  # type: ignore[misc]
        code = make_code(ItemType.TRANSPORT_LOAD, load_id)
        conn.execute("INSERT INTO smarttrees.tags (code, item_type, item_id) "
                     "VALUES (%s, 'transport_load', %s)", [code, load_id])
        conn.execute("UPDATE smarttrees.timber_logs SET load_id = %s WHERE id = ANY(%s)",
                     [load_id, ids])
        n_stands = conn.execute("SELECT count(DISTINCT stand_id) FROM smarttrees.timber_logs "
                                "WHERE load_id = %s", [load_id]).fetchone()[0]  # type: ignore[index]
    print(f"bench load {code}: {len(ids)} logs from {n_stands} stands")
    return code


async def documents(url: str, load: str) -> dict[str, float]:
    """Seconds of each document of ``load`` (each from a fresh query)."""
    times: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(url, options=with_search_path(url)) as conn:
        started = time.perf_counter()
        statement = await eudr_document(conn, await resolve(conn, [load]))
        times["EUDR GeoJSON"] = time.perf_counter() - started
        started = time.perf_counter()
        listing = await bk.bangke(conn, load)
        pdf, xlsx = bk.to_pdf(listing), bk.to_xlsx(listing)
        times["bảng kê PDF + XLSX"] = time.perf_counter() - started
        started = time.perf_counter()
        size = 0
        async for chunk in stream_document(conn, Identifiers(), keys=await item_keys(conn, [load])):
            size += len(chunk)
        times["EPCIS (the load and its logs)"] = time.perf_counter() - started
    print(f"  {load}: {statement.manifest['plots']} plots, {len(listing.rows)} logs, "
          f"{listing.volume_m3} m³; GeoJSON {sum(map(len, statement.parts)):,} B, "
          f"PDF {len(pdf):,} B, XLSX {len(xlsx):,} B, EPCIS {size:,} B")
    return times


def report(times: dict[str, float]) -> None:
    for name, seconds in times.items():
        print(f"    {name:<34} {seconds * 1000:8.0f} ms")
    total = sum(times.values())
    print(f"    {'all three':<34} {total * 1000:8.0f} ms  (goal ≤ 2,000 ms"
          f" {'✔' if total <= 2 else '✘'})")


def epcis_windows(url: str) -> None:
    """The EPCIS command over windows of growing size: time and peak memory of the process."""
    from tests.fixtures.cli import cli_env, run_cli

    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM smarttrees.scan_events").fetchone()[0]  # type: ignore[index]
        moments = [r[0] for r in conn.execute(
            "SELECT occurred_at FROM smarttrees.scan_events ORDER BY occurred_at").fetchall()]
    env = cli_env(SMARTTREES_DATABASE_URL=url)
    for want in (10_000, 100_000, total):
        want = min(want, total)
        since = moments[-want].isoformat()
        started = time.perf_counter()
        # GNU time reports the command's own peak (a child of this big process would inherit
        # its high-water mark).
        outcome = run_cli("trace", "epcis", "--since", since, env=env, timeout=600,
                          wrap=["/usr/bin/time", "-f", "maxrss_kb=%M"])
        seconds = time.perf_counter() - started
        if outcome.code != 0:
            print(f"  EPCIS since {since}: failed: {outcome.stderr.strip()[:300]}")
            continue
        events = outcome.stdout.count('"eventTimeZoneOffset"')
        peak = [line for line in outcome.stderr.splitlines() if line.startswith("maxrss_kb=")]
        rss = f"{int(peak[-1].split('=')[1]) / 1024:5.0f} MiB" if peak else "?"
        print(f"  EPCIS {events:>8,} events ({len(outcome.stdout) / 1e6:6.1f} MB) in "
              f"{seconds:6.2f} s = {events / seconds:8,.0f} /s (the whole command, start "
              f"included), peak RSS {rss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=["full", "small"])
    args = parser.parse_args()
    print(f"Python {platform.python_version()} · psycopg {version('psycopg')} · reportlab "
          f"{version('reportlab')} · openpyxl {version('openpyxl')} · shapely "
          f"{version('shapely')} · orjson {version('orjson')} · {platform.machine()}, "
          f"{__import__('os').cpu_count()} cores")
    cluster, url = province(args.scale)
    try:
        with psycopg.connect(url) as conn:
            print("PostgreSQL", conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
                  "· PostGIS", conn.execute("SELECT postgis_lib_version()").fetchone()[0])  # type: ignore[index]
            [largest] = conn.execute(
                "SELECT t.code FROM smarttrees.transport_loads lo JOIN smarttrees.tags t "
                "ON t.item_type = 'transport_load' AND t.item_id = lo.id ORDER BY (SELECT "
                "count(*) FROM smarttrees.timber_logs g WHERE g.load_id = lo.id) DESC LIMIT 1"
            ).fetchone()  # type: ignore[misc]
        print("the province's largest load:")
        report(asyncio.run(documents(url, largest)))
        big = make_big_load(url)
        print("a mixed load made for the benchmark (goal: 500 logs from 30 stands):")
        report(asyncio.run(documents(url, big)))
        print("EPCIS export of the busiest recent windows (smarttrees trace epcis --since …):")
        epcis_windows(url)
    finally:
        cluster.destroy()
        shutil.rmtree(cluster.pgdata.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

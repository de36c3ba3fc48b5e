"""Benchmark of the barcode work: label rendering, PDF sheets, photo decoding, scan ingestion.

Usage: .venv/bin/python bench/bench_barcodes.py [--scale full|small] [--batches 20]

Ingestion runs against a throwaway PostGIS holding a generated province (``full``: 1.13 M
trees, 50,000 timber logs, 1,200 seedling lots) through the HTTP endpoint of a running server,
in batches of 1,000 events with every custody check on: check characters, tag and item row
locks, the previous-event time, the province boundary, the stand harvest allowance and the
transport loads. Each event moves a different item, so every one is a real state change.
"""

from __future__ import annotations

import argparse
import io
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from barcodes.codes import ItemType, make_code  # noqa: E402
from barcodes.decode import decode_image  # noqa: E402
from barcodes.labels import LabelInfo, render_label  # noqa: E402
from barcodes.sheets import Grid, render_sheet  # noqa: E402


def timed(label: str, count: int, run: Any) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {count:>7,} in {seconds:7.2f} s = {count / seconds:9,.0f} /s")
    return seconds


def labels(n: int) -> list[LabelInfo]:
    return [
        LabelInfo(
            make_code(ItemType.TIMBER_LOG, i),
            "Keo lai (Acacia mangium × auriculiformis)",
            "ST-90017-0042 · Xã Phú Đô",
            date(2026, 3, 1),
        )
        for i in range(1, n + 1)
    ]


def bench_rendering() -> None:
    sample = labels(300)
    timed(
        "labels rendered, SVG (Code 128)",
        len(sample),
        lambda: [render_label(i, "svg") for i in sample],
    )
    timed(
        "labels rendered, PNG 300 dpi (Code 128)",
        len(sample),
        lambda: [render_label(i, "png") for i in sample],
    )
    timed(
        "labels rendered, PNG GS1-128",
        len(sample),
        lambda: [render_label(i, "png", "8934567") for i in sample],
    )
    thousand = labels(1000)
    out = io.BytesIO()
    seconds = timed(
        "labels on A4 PDF sheets (3x8)", 1000, lambda: render_sheet(thousand, out, Grid(3, 8))
    )
    print(
        f"  → a 1,000-label PDF: {seconds:.2f} s, {len(out.getvalue()) / 1e6:.1f} MB, "
        f"{-(-1000 // 24)} pages (goal < 10 s)"
    )


def bench_decoding() -> None:
    from tests.test_barcodes_decode import phone_photo

    photos = [
        phone_photo(
            [render_label(i, "png") for i in labels(3)],
            angle=7,
            blur=1.0,
            contrast=0.5,
            noise=25,
            seed=n,
        )
        for n in range(20)
    ]
    found: list[int] = []
    timed(
        "phone photos decoded (3 labels each)",
        len(photos),
        lambda: found.extend(len(decode_image(p)) for p in photos),
    )
    print(f"  → codes read: {sum(found)} of {3 * len(photos)}")


def province(scale: str) -> tuple[Any, str]:
    from etl.species import load_species
    from etl.synthetic import generate_province
    from smarttrees import schema
    from smarttrees.cluster import Cluster
    from smarttrees.database import connect

    folder = Path(tempfile.mkdtemp(prefix="bench-barcodes-"))
    folder.chmod(0o755)
    cluster = Cluster(
        folder, dbname="bench", extra_config={"fsync": "off", "shared_buffers": "1GB"}
    )
    cluster.start()
    url = cluster.url()
    schema.upgrade(url)
    with connect(url) as conn:
        load_species(conn)
    started = time.perf_counter()
    generate_province(url, scale=scale, seed=2025)
    print(f"province generated ({scale}) in {time.perf_counter() - started:.0f} s")
    return cluster, url


def plan_events(url: str, batches: int) -> tuple[list[list[dict[str, Any]]], str]:
    """Batches of 1,000 events: half logs leaving their stand, a quarter loaded, a quarter
    inspections of tagged trees; each event moves a different item."""
    from barcodes.tags import issue_tags
    from smarttrees import accounts
    from smarttrees.database import connect

    with connect(url) as conn:
        felled = conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM smarttrees.timber_logs "
            "WHERE status = 'felled' ORDER BY id LIMIT %s",
            [500 * batches],
        ).fetchall()
        landed = conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM smarttrees.timber_logs "
            "WHERE status = 'at_landing' ORDER BY id LIMIT %s",
            [250 * batches],
        ).fetchall()
        # Half the events move logs out of their stand, a quarter load them (as far as the
        # province has logs); tree inspections fill each batch up to 1,000.
        n_land, n_load = len(felled) // batches, len(landed) // batches
        n_tree = 1000 - n_land - n_load
        trees = conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM smarttrees.trees ORDER BY id LIMIT %s",
            [n_tree * batches],
        ).fetchall()
        started = time.perf_counter()
        log_tags = issue_tags(conn, ItemType.TIMBER_LOG, [r[0] for r in felled + landed])
        tree_tags = issue_tags(conn, ItemType.TREE, [r[0] for r in trees])
        print(
            f"tags issued: {len(log_tags) + len(tree_tags):,} "
            f"in {time.perf_counter() - started:.1f} s; per batch: {n_land} at_landing, "
            f"{n_load} loaded, {n_tree} inspected"
        )
        accounts.create_user(conn, "bench-field", "field")
        token = accounts.issue_token(conn, "bench-field")
    t0 = datetime.now(UTC) - timedelta(days=1)
    plan: list[list[dict[str, Any]]] = []
    n = 0
    for b in range(batches):
        batch = []
        rows = (
            [("at_landing", r, log_tags) for r in felled[b * n_land : (b + 1) * n_land]]
            + [("loaded", r, log_tags) for r in landed[b * n_load : (b + 1) * n_load]]
            + [("inspected", r, tree_tags) for r in trees[b * n_tree : (b + 1) * n_tree]]
        )
        for k, (kind, (item_id, lon, lat), tags) in enumerate(rows):
            n += 1
            event = {
                "device_id": f"bench-{k % 40}",
                "client_event_id": f"e{n}",
                "code": tags[item_id],
                "event_type": kind,
                "occurred_at": (t0 + timedelta(seconds=n)).isoformat(),
                "location": {"type": "Point", "coordinates": [lon, lat]},
            }
            if kind == "loaded":
                event["fpl_number"] = f"BK-2026-{n // 25:05d}"
            batch.append(event)
        plan.append(batch)
    return plan, token


def bench_ingest(scale: str, batches: int) -> None:
    from tests.fixtures.server import serve_database

    cluster, url = province(scale)
    try:
        plan, token = plan_events(url, batches)
        with psycopg.connect(url) as conn:
            print(
                "PostgreSQL",
                conn.execute("SHOW server_version").fetchone()[0],
                "· PostGIS",
                conn.execute("SELECT postgis_lib_version()").fetchone()[0],
            )
        with (
            serve_database(url, timeout=120) as base,
            httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300
            ) as client,
        ):
            client.post("/api/scans", json={"events": plan[0][:10]})  # warm the pool and caches
            times = []
            for batch in plan:
                started = time.perf_counter()
                response = client.post("/api/scans", json={"events": batch})
                times.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"batch refused: {response.status_code} {response.text[:500]}")
            total = sum(len(b) for b in plan)
            print(
                f"{'scan events ingested (HTTP, batches of 1,000)':<44} {total:>7,} in "
                f"{sum(times):7.2f} s = {total / sum(times):9,.0f} /s (goal ≥ 2,000/s)"
            )
            print(
                f"  → per batch: median {sorted(times)[len(times) // 2] * 1000:.0f} ms, "
                f"slowest {max(times) * 1000:.0f} ms"
            )
            started = time.perf_counter()
            again = client.post("/api/scans", json={"events": plan[-1]})
            print(
                "  → replay of a recorded batch (idempotent): "
                f"{(time.perf_counter() - started) * 1000:.0f} ms, "
                f"status {again.status_code}"
            )
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM smarttrees.scan_events").fetchone()[0]
            print(f"  → scan_events rows: {stored:,} for {total:,} distinct events sent")
    finally:
        cluster.destroy()
        shutil.rmtree(cluster.pgdata.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=["full", "small"])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-render", action="store_true")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()} · python-barcode {version('python-barcode')} · "
        f"zxing-cpp {version('zxing-cpp')} · reportlab {version('reportlab')} · "
        f"qrcode {version('qrcode')} · Pillow {version('pillow')} · psycopg {version('psycopg')} · "
        f"{platform.machine()}, {__import__('os').cpu_count()} cores"
    )
    if not args.skip_render:
        bench_rendering()
        bench_decoding()
    if not args.skip_ingest:
        bench_ingest(args.scale, args.batches)


if __name__ == "__main__":
    main()

"""Field app: 10,000 events queued on a phone (IndexedDB) synced to the server, timed and checked.

Makes a throwaway PostGIS with the generated province, starts the server, opens ``/field/`` in
Debian's headless Chromium, puts the events of :func:`bench_barcodes.plan_events` (logs leaving
their stand, logs loaded, tree inspections; each event a different item) into the page's queue
and times the page's own sync (batches of 200 to ``POST /api/scans``) until the queue is empty.
Then counts what the database holds: duplicates, and events recorded on another item than the
one the phone scanned.

    .venv/bin/python bench/bench_field_sync.py                  # 10,000 events, small province
    .venv/bin/python bench/bench_field_sync.py --events 2000
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

CHROMIUM = "/usr/bin/chromium"


def one_phone(planned: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` events of one phone: the planned ones, then inspections again (a small
    province has fewer items than events), each with its own id and a later time."""
    events = [dict(e, device_id="bench-phone") for e in planned[:count]]
    again = [e for e in planned if e["event_type"] == "inspected"]
    t0 = max(datetime.fromisoformat(e["occurred_at"]) for e in planned)
    for i in range(count - len(events)):
        event = dict(again[i % len(again)], device_id="bench-phone", client_event_id=f"r{i}")
        event["occurred_at"] = (t0 + timedelta(seconds=i + 1)).isoformat()
        events.append(event)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--scale", default="small", choices=["small", "full"])
    args = parser.parse_args()

    from bench_barcodes import plan_events, province
    from playwright.sync_api import sync_playwright

    from tests.fixtures.server import serve_database
    from tests.test_webmap_browser import ARGS

    cluster, url = province(args.scale)
    try:
        plan, token = plan_events(url, max(1, args.events // 1000))
        events = one_phone([e for batch in plan for e in batch], args.events)
        device = events[0]["device_id"]
        with psycopg.connect(url) as conn:
            versions = (
                conn.execute("SHOW server_version").fetchone()[0],
                conn.execute("SELECT postgis_lib_version()").fetchone()[0],
            )
        with serve_database(url, timeout=120) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            playwright_version = importlib.metadata.version("playwright")
            print(
                f"Chromium {browser.version} · Playwright {playwright_version}"
                f" · PostgreSQL {versions[0]} · PostGIS {versions[1]}"
            )
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(f"{base}/field/")
            page.evaluate("t => localStorage.setItem('smarttrees.field.token', t)", token)
            page.reload()
            page.wait_for_function("window.smarttreesField && window.smarttreesField.ready")
            started = time.perf_counter()
            page.evaluate("events => smarttreesField.enqueue(events)", events)
            page.wait_for_function(
                "document.getElementById('queue-count').textContent === '0'",
                timeout=600_000,
                polling=200,
            )
            took = time.perf_counter() - started
            browser.close()
        with psycopg.connect(url) as conn:
            stored, distinct, elsewhere = conn.execute(
                "SELECT count(*), count(DISTINCT client_event_id), "
                "  count(*) FILTER (WHERE t.code <> sent.code) "
                "FROM smarttrees.scan_events e "
                "JOIN smarttrees.tags t ON t.item_type = e.item_type AND t.item_id = e.item_id "
                "JOIN unnest(%s::text[], %s::text[]) AS sent(id, code) "
                "  ON sent.id = e.client_event_id "
                "WHERE e.device_id = %s",
                [[e["client_event_id"] for e in events], [e["code"] for e in events], device],
            ).fetchone()
        print(
            f"{len(events):,} queued events synced in {took:.1f} s "
            f"({len(events) / took:,.0f} /s; goal ≤ 30 s)"
        )
        print(
            f"  → stored {stored:,}, duplicates {stored - distinct}, "
            f"on another item {elsewhere}, missing {len(events) - distinct}"
        )
    finally:
        cluster.destroy()
        shutil.rmtree(cluster.pgdata.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

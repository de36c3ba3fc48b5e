"""The server's Python CPU per request: the bbox page and the densest tiles, through the app.

Drives the whole ASGI app (middleware, routes, pool, psycopg) in this process with raw ASGI
messages on uvloop, as uvicorn would, and times this process's CPU (``time.process_time``) over
repeated requests: what one request costs the server's Python, whatever the machine's load
(wall-clock figures are bench_api.py's and bench_tiles.py's). The tile cache is off, so every
tile is rendered; the cases are bench_api's bbox page and bench_tiles' densest z14 and z15 tiles.

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_request_cpu.py --url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import densest_bbox  # noqa: E402
from bench_tiles import densest_tile  # noqa: E402

REQUESTS = 300


async def _get(app: Any, path: str, query: str) -> tuple[int, int]:
    """Status and body size of one GET through the ASGI app."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {},
    }
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays until the answer is complete
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], len(body)


async def measure(cases: dict[str, tuple[str, str]], requests: int) -> None:
    from gis_api.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        for name, (path, query) in cases.items():
            for _ in range(20):  # warm: the pool, psycopg's prepared statements
                status, size = await _get(app, path, query)
            if status != 200:
                print(f"{name}: HTTP {status}")
                continue
            started = time.process_time()
            for _ in range(requests):
                await _get(app, path, query)
            cpu = (time.process_time() - started) / requests * 1000
            print(f"{name:34} {cpu:6.2f} ms of Python CPU a request ({size:,} bytes); "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a database holding the full province")
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args()
    os.environ.update(SMARTTREES_DATABASE_URL=args.url, SMARTTREES_TILE_CACHE_MB="0",
                      SMARTTREES_PUBLIC_URL="http://127.0.0.1")
    box, n = densest_bbox(args.url)
    cases = {f"bbox page ({n} trees)": (
        "/collections/trees/items", urlencode({"bbox": ",".join(map(str, box)), "limit": 1000}))}
    for z in (14, 15):
        (z, x, y), trees = densest_tile(args.url, z)
        cases[f"z{z} densest tile ({trees:,} trees)"] = (
            f"/collections/trees/tiles/WebMercatorQuad/{z}/{y}/{x}", "")
    import uvloop

    uvloop.run(measure(cases, args.requests))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - a benchmark ends with a line, not a traceback
        print(f"bench_request_cpu failed: {type(exc).__name__}: {exc}")
        sys.exit(1)

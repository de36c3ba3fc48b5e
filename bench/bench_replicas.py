"""Replica scaling benchmark: one primary and two streaming replicas against one server alone.

One synthetic province (``--trees``, 1,130,000 by default, as in bench_national.py) in a managed
cluster; two replicas made with ``smarttrees.replication.create_replica`` (pg_basebackup -R,
as ``smarttrees db replica create`` does). The same server (``--workers`` processes, tile cache
off, 8 connections per process) is run twice: on the primary alone, then with
``SMARTTREES_REPLICA_URLS`` naming both replicas. wrk (8 connections, bounded runs) measures a
bbox page of 100 trees and an uncached z15 and z14 tile: requests/s, p50, p99, and the share
of reads each database served (from ``/readyz``).

Everything runs on this one machine, so the replicas share its cores with the primary, the
server and wrk: the figures show the cost of the routing and replication, not the gain of more
machines (see the model in bench/README.md).

Usage::

    python bench/bench_replicas.py                    # 1,130,000 trees
    python bench/bench_replicas.py --trees 300000 --duration 10s
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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

from bench_national import cases, generate, versions  # noqa: E402

from etl.species import load_species  # noqa: E402
from smarttrees import schema  # noqa: E402
from smarttrees.cluster import Cluster  # noqa: E402
from smarttrees.database import connect  # noqa: E402
from smarttrees.replication import create_replica, primary_lsn, wait_for_replay  # noqa: E402

CONNECTIONS = 8


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def serving(url: str, replicas: list[str], workers: int) -> Iterator[str]:
    from tests.fixtures.server import _wait_ready, free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SMARTTREES_DATABASE_URL=url, SMARTTREES_PUBLIC_URL=base,
               SMARTTREES_TILE_CACHE_MB="0", SMARTTREES_POOL_MAX_SIZE=str(CONNECTIONS),
               SMARTTREES_REPLICA_URLS=",".join(replicas), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "uvicorn", "gis_api.app:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
           "--no-access-log", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        _wait_ready(base, proc, 120)
        time.sleep(2)  # every worker up and its replicas checked once
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(url: str, duration: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and non-2xx answers of one bounded wrk run."""
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}", "--timeout", "60s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(\w+)", out)
        if match is None:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else float("nan"), "p50_ms": ms("50"),
            "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0}


def measure(base: str, duration: str) -> dict[str, dict[str, float]]:
    figures = {}
    for name, paths in cases().items():
        if name == "items bbox+commune":
            continue
        url = base + paths[0]
        httpx.get(url, timeout=60).raise_for_status()
        figures[name] = wrk(url, duration)
        log(f"  {name}: {json.dumps(figures[name])}")
    return figures


def reads_served(base: str) -> dict[str, object]:
    body = httpx.get(f"{base}/readyz", timeout=10).json()
    reads = body.get("reads")
    if not reads:
        return {}
    return {"primary": reads["primary_reads"],
            **{r["name"]: r["reads"] for r in reads["replicas"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=1_130_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", default="15s", help="of each wrk run, e.g. 15s")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_replicas: wrk is not installed (.ci/system-packages.sh bench)",
              file=sys.stderr)
        sys.exit(1)
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-replicas-bench-"))
    folder.chmod(0o755)
    primary = Cluster(folder, dbname="smarttrees", extra_config={"fsync": "off"})
    replicas: list[Cluster] = []
    try:
        primary.start()
        schema.upgrade(primary.url())
        with connect(primary.url()) as conn:
            load_species(conn)
        print(json.dumps({**versions(primary.url()), "wrk_connections": CONNECTIONS,
                          "workers": args.workers}))
        log(f"generating {args.trees:,} trees...")
        generate(primary.url(), 1, args.trees)
        started = time.perf_counter()
        replicas = [create_replica(primary, name) for name in ("r1", "r2")]
        lsn = primary_lsn(primary.url())
        for replica in replicas:
            wait_for_replay(replica.url(), lsn or "0/0", 300)
        log(f"two replicas made in {time.perf_counter() - started:.0f} s")
        results = {}
        for label, urls in (("one server", []), ("primary + 2 replicas",
                                                 [r.url() for r in replicas])):
            log(f"{label} (load average {os.getloadavg()[0]:.1f}):")
            with serving(primary.url(), urls, args.workers) as base:
                results[label] = {"load_average": round(os.getloadavg()[0], 1),
                                  "cases": measure(base, args.duration),
                                  "reads_served": reads_served(base)}
        report(results)
    except (psycopg.Error, httpx.HTTPError, RuntimeError, OSError,
            subprocess.CalledProcessError) as exc:
        print(f"bench_replicas: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        for replica in replicas:
            replica.stop()
        primary.destroy()
        shutil.rmtree(folder, ignore_errors=True)


def report(results: dict[str, dict[str, object]]) -> None:
    print("\n| setup | load avg | case | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    alone: dict[str, dict[str, float]] = results["one server"]["cases"]  # type: ignore[assignment]
    for label, result in results.items():
        figures: dict[str, dict[str, float]] = result["cases"]  # type: ignore[assignment]
        for case, f in figures.items():
            ratio = f["rps"] / alone[case]["rps"]
            print(f"| {label} | {result['load_average']} | {case} | {f['rps']:.0f} (×{ratio:.2f})"
                  f" | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['non_2xx']:.0f} |")
    print("\nreads served:", json.dumps({k: v["reads_served"] for k, v in results.items()}))


if __name__ == "__main__":
    main()

"""Tree-care benchmark: the due list, a storm's damage batch, and inspections in batches.

On the full province (1.13 M trees; made once in ``bench/out/province-full``, shared with the
other benchmarks), in a scratch copy of its database (dropped at the end):

1. inspections of 20 % of the trees (226,000), recorded in batches of 10,000 through
   ``smarttrees.care.inspections.record_inspections`` — what ``POST /api/care/inspections``
   and ``smarttrees care inspect`` run: checks, TRAQ rating, insert, risk and next due date,
   the re-measured diameter of half of them written to the trees (history trigger). Each
   batch's time is the "risk and due-date update after 10,000 inspections" (goal ≤ 5 s);
2. the due list (``smarttrees.care.due.due_list``, as ``GET /api/care/due`` and
   ``smarttrees care due``): the whole province, one commune, the high and extreme risks, a
   commune and a risk; p50 and p95 of 30 runs each (goal p50 ≤ 100 ms);
3. 1,000 damage reports in one batch (``record_damage``, as ``POST /api/care/storms/{id}/damage``),
   at random trees' positions, half naming the tree; 5 batches (goal ≤ 1 s each).

Usage::

    .venv/bin/python bench/bench_care.py                       # makes the full province once
    .venv/bin/python bench/bench_care.py --url postgresql://…  # a database holding a province
    .venv/bin/python bench/bench_care.py --scale small         # a quick run on 5,000 trees
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 10_000
SHARE = 0.20
FAILURE = ("improbable", "possible", "probable", "imminent")
IMPACT = ("very_low", "low", "medium", "high")
CONSEQUENCES = ("negligible", "minor", "significant", "severe")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def scratch_copy(url: str, name: str = "care_bench") -> str:
    """A copy of the province's database to write into (the template must be idle)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    source = params.get("dbname", "smarttrees")
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return make_conninfo(url, dbname=name)


def drop(url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def connection(url: str) -> Any:
    from smarttrees.database import with_search_path

    return await psycopg.AsyncConnection.connect(url, options=with_search_path(url))


def inspection(code: str, rng: random.Random, today: date) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tree_code": code, "inspector": "bench",
        "inspected_on": (today - timedelta(days=rng.randrange(0, 6 * 365))).isoformat(),
        # Most trees are sound: low likelihoods weigh more.
        "likelihood_failure": rng.choices(FAILURE, (60, 25, 10, 5))[0],
        "likelihood_impact": rng.choices(IMPACT, (30, 30, 25, 15))[0],
        "consequences": rng.choice(CONSEQUENCES),
        "defects": rng.sample(["dead_wood", "crack", "decay", "lean"], rng.randrange(0, 3)),
    }
    if rng.random() < 0.5:
        doc["dbh_cm"] = round(rng.uniform(8, 90), 1)
    return doc


async def inspections(url: str, rng: random.Random) -> list[float]:
    from smarttrees.care.inspections import parse_inspections, record_inspections
    from smarttrees.settings import Settings

    cycle = Settings().care_cycle_months
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()[0]
        codes = [r[0] for r in conn.execute(
            "SELECT tree_code FROM smarttrees.trees TABLESAMPLE BERNOULLI (%s) REPEATABLE (19)",
            [SHARE * 100])]
    log(f"inspecting {len(codes):,} of {total:,} trees in batches of {BATCH:,}...")
    today = date.today()
    times = []
    conn = await connection(url)
    async with conn:
        for start in range(0, len(codes), BATCH):
            batch = parse_inspections([inspection(c, rng, today)
                                       for c in codes[start:start + BATCH]])
            began = time.perf_counter()
            await record_inspections(conn, batch, cycle, "bench")
            times.append(time.perf_counter() - began)
            await conn.commit()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("VACUUM ANALYZE smarttrees.care_tree_status")
        c.execute("VACUUM ANALYZE smarttrees.care_inspections")
    return times


async def due_lists(url: str, runs: int = 30) -> dict[str, dict[str, float]]:
    from smarttrees.care.due import DueFilter, due_list

    with psycopg.connect(url) as conn:
        commune = conn.execute(
            "SELECT commune_code FROM smarttrees.care_tree_status GROUP BY 1 "
            "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    today = date.today()
    cases = {
        "whole province": DueFilter(today),
        f"commune {commune}": DueFilter(today, commune),
        "risk high+extreme": DueFilter(today, risks=("high", "extreme")),
        f"commune {commune} + risk high": DueFilter(today, commune, ("high",)),
    }
    out = {}
    conn = await connection(url)
    async with conn:
        for name, what in cases.items():
            await due_list(conn, what)  # warm
            times, total = [], 0
            for _ in range(runs):
                began = time.perf_counter()
                doc = await due_list(conn, what)
                times.append(time.perf_counter() - began)
                total = doc["total"]
            times.sort()
            out[name] = {"p50": statistics.median(times), "p95": times[int(len(times) * 0.95)],
                         "due": total}
    return out


async def damage_batches(url: str, rng: random.Random, batches: int = 5) -> list[float]:
    from smarttrees.accounts import Principal
    from smarttrees.care.storms import create_storm, parse_damage, parse_storm, record_damage

    with psycopg.connect(url) as conn:
        trees = conn.execute(
            "SELECT tree_code, ST_X(geom), ST_Y(geom) FROM smarttrees.trees "
            "ORDER BY md5(id::text) LIMIT %s", [batches * 1000]).fetchall()
    batches = min(batches, len(trees) // 1000)
    conn = await connection(url)
    times = []
    async with conn:
        storm = await create_storm(conn, parse_storm({"name": "bench storm",
                                                      "started_on": "2026-09-06"}),
                                   Principal(0, "bench", "admin"))
        seen = datetime.now(UTC) - timedelta(hours=1)
        for b in range(batches):
            rows = []
            for i, (code, lon, lat) in enumerate(trees[b * 1000:(b + 1) * 1000]):
                doc: dict[str, Any] = {
                    "device_id": f"phone-{i % 40}", "client_event_id": f"b{b}-{i}",
                    "damage": rng.choice(("fallen", "broken", "leaning", "uprooted")),
                    "blocks_road": rng.random() < 0.2, "hazard_to_people": rng.random() < 0.05,
                    "observed_at": seen.isoformat(),
                    "location": {"type": "Point", "coordinates": [lon, lat]}}
                if i % 2 == 0:
                    doc["tree_code"] = code
                rows.append(doc)
            began = time.perf_counter()
            records = parse_damage(rows)
            await record_damage(conn, storm, records, "bench")
            times.append(time.perf_counter() - began)
    return times


def versions(url: str) -> str:
    import platform

    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    return (f"Python {platform.python_version()}, psycopg {psycopg.__version__}, "
            f"PostgreSQL {pg}, PostGIS {postgis}")


def report(times: list[float], due: dict[str, dict[str, float]], damage: list[float],
           url: str, loads: dict[str, str]) -> None:
    print(f"tree care benchmark — {versions(url)}")
    print(f"inspections: {len(times)} batches of {BATCH:,}: median "
          f"{statistics.median(times):.2f} s, max {max(times):.2f} s (goal ≤ 5 s); "
          f"load average {loads['inspections']}")
    print(f"due list (30 runs each; load average {loads['due']}):")
    for name, d in due.items():
        print(f"  {name:<32} p50 {d['p50'] * 1000:7.1f} ms  p95 {d['p95'] * 1000:7.1f} ms  "
              f"({int(d['due']):,} trees due)  goal p50 ≤ 100 ms")
    print(f"damage: {len(damage)} batches of 1,000: median {statistics.median(damage):.2f} s, "
          f"max {max(damage):.2f} s (goal ≤ 1 s); load average {loads['damage']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database holding a province (default: make one)")
    parser.add_argument("--scale", default="full", choices=("small", "full"))
    args = parser.parse_args()
    from bench_tiles import full_province

    rng = random.Random(19)
    with full_province(args.url, scale=args.scale) as province:
        url = scratch_copy(province)
        try:
            loads = {}
            times = asyncio.run(inspections(url, rng))
            loads["inspections"] = load()
            log("due lists...")
            due = asyncio.run(due_lists(url))
            loads["due"] = load()
            log("damage batches...")
            damage = asyncio.run(damage_batches(url, rng))
            loads["damage"] = load()
            report(times, due, damage, url, loads)
        finally:
            drop(url)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a benchmark reports, it does not end in a traceback
        print(f"bench_care: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)

"""Field teams: the custody→team trigger on the generator's scan load, and ``GET /field/team``.

Makes a throwaway PostGIS with the generated province (full scale: 223,353 custody scans), then

1. **the trigger** (migration 0025, ``scan_events_team_items``): the generator's scans are
   copied back into ``smarttrees.scan_events`` as the generator does (one COPY, secondary
   indexes set aside, in a transaction rolled back afterwards), with the trigger disabled (the
   anchor), enabled with no teams (a province that does not use them), and enabled with teams
   (ten teams over the communes, the generator's account a member of one: every item issued,
   every dispatch handed over): the median of ``--repeat`` runs each, interleaved;
2. **the team's items**: a team holding ``--items`` items (lots and logs with their events);
   the traces of 2,000 of them made item by item (:func:`barcodes.trace.trace`, what the route
   did before: three statements each) and in one go (:func:`barcodes.trace.traces`, what it does
   now), in process; then every page of ``GET /field/team`` over HTTP, timed.

The load average is printed with every figure (the machine is shared).

    .venv/bin/python bench/bench_field_teams.py                 # full province, 20,000 items
    .venv/bin/python bench/bench_field_teams.py --scale small --items 3000
    .venv/bin/python bench/bench_field_teams.py --url postgresql://…   # an existing province
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

TRIGGER = "scan_events_team_items"


def load() -> str:
    """The 1-minute load average, as printed beside each figure."""
    return f"load {os.getloadavg()[0]:.1f}"


def copy_scans(url: str, rows: bytes, columns: str, variant: str) -> float:
    """Seconds to COPY ``rows`` into an emptied scan_events as the generator does; rolled back."""
    from etl import bulk

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE smarttrees.scan_events, smarttrees.team_items")
        bulk.set_aside(cur, ["smarttrees.scan_events"])
        if variant == "trigger off":
            cur.execute(f"ALTER TABLE smarttrees.scan_events DISABLE TRIGGER {TRIGGER}")
        if variant == "teams":
            cur.execute(
                "INSERT INTO smarttrees.teams (name, area) "
                "SELECT 'bench-' || g, ST_Multi(ST_Union(geom)) FROM ("
                "  SELECT ntile(10) OVER (ORDER BY code) AS g, geom FROM smarttrees.communes) c "
                "GROUP BY g"
            )
            cur.execute(
                "INSERT INTO smarttrees.users (username, role, team_id) "
                "SELECT 'smarttrees generate', 'field', min(id) FROM smarttrees.teams "
                "ON CONFLICT (username) DO UPDATE SET team_id = excluded.team_id"
            )
        # The trigger function's own time, as PostgreSQL counts it: steadier than the COPY's
        # wall time on a shared machine.
        cur.execute("SET LOCAL track_functions = 'pl'")
        started = time.perf_counter()
        with cur.copy(f"COPY smarttrees.scan_events ({columns}) FROM STDIN") as copy:
            copy.write(rows)
        took = time.perf_counter() - started
        issued = cur.execute("SELECT count(*) FROM smarttrees.team_items").fetchone()
        own = cur.execute(
            "SELECT coalesce(sum(total_time), 0) FROM pg_stat_xact_user_functions "
            "WHERE funcname = 'team_items_from_scans'"
        ).fetchone()
        conn.rollback()
    print(f"    {variant:<12} {took:6.2f} s, of which the trigger {own[0] / 1000:5.2f} s "
          f"({issued[0]:,} items issued; {load()})")
    return took


def bench_trigger(url: str, repeat: int) -> None:
    from etl.synthetic.custody import COLUMNS

    columns = ", ".join(COLUMNS)
    out = io.BytesIO()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            f"COPY (SELECT {columns} FROM smarttrees.scan_events ORDER BY id) TO STDOUT"
        ) as copy:
            for chunk in copy:
                out.write(chunk)
        (count,) = cur.execute("SELECT count(*) FROM smarttrees.scan_events").fetchone()
    rows = out.getvalue()
    print(f"trigger {TRIGGER}: COPY of the generator's {count:,} scans ({len(rows) / 1e6:.0f} MB)")
    variants = ("trigger off", "no teams", "teams")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeat):
        for variant in variants:
            times[variant].append(copy_scans(url, rows, columns, variant))
    anchor = statistics.median(times["trigger off"])
    for variant in variants:
        median = statistics.median(times[variant])
        print(f"  median {variant:<12} {median:6.2f} s  ({median / anchor - 1:+.0%} on the anchor)")


def a_team(url: str, items: int) -> tuple[str, list[tuple[str, str, int]]]:
    """A team holding ``items`` tagged lots and logs, a member's token, and the items."""
    from barcodes.tags import issue_tags
    from smarttrees import accounts, teams
    from smarttrees.database import connect

    with connect(url) as conn:
        lots = [r[0] for r in conn.execute(
            "SELECT id FROM smarttrees.seedling_lots ORDER BY id LIMIT %s", [items]).fetchall()]
        logs = [r[0] for r in conn.execute(
            "SELECT id FROM smarttrees.timber_logs ORDER BY id LIMIT %s",
            [items - len(lots)]).fetchall()]
        codes = list(issue_tags(conn, "seedling_lot", lots).values())
        codes += issue_tags(conn, "timber_log", logs).values()
        name = f"bench-holding-{os.getpid()}"  # a new team each run, over --url too
        team = teams.create_team(conn, name)
        accounts.create_user(conn, name, "field")
        teams.add_members(conn, name, [name])
        teams.issue(conn, name, codes)
        token = accounts.issue_token(conn, name)
        tagged = conn.execute(
            "SELECT g.code, g.item_type, g.item_id FROM smarttrees.team_items i "
            "JOIN smarttrees.tags g USING (item_type, item_id) WHERE i.team_id = %s "
            "ORDER BY i.item_type, i.item_id", [team]
        ).fetchall()
        (events,) = conn.execute(
            "SELECT count(*) FROM smarttrees.scan_events e JOIN smarttrees.team_items i "
            "USING (item_type, item_id) WHERE i.team_id = %s", [team]).fetchone()
    print(f"team holding {len(tagged):,} items ({len(lots):,} lots, {len(logs):,} logs; "
          f"{events:,} events)")
    return token, [(c, t, int(i)) for c, t, i in tagged]


async def in_process(url: str, tagged: list[tuple[str, str, int]]) -> None:
    from barcodes.codes import parse
    from barcodes.trace import trace, traces

    async with await psycopg.AsyncConnection.connect(url) as conn:
        started = time.perf_counter()
        one_by_one = [await trace(conn, parse(code)) for code, _, _ in tagged]
        before = time.perf_counter() - started
        started = time.perf_counter()
        together = await traces(conn, tagged)
        after = time.perf_counter() - started
    assert one_by_one == together, "traces() differs from trace()"
    print(f"  {len(tagged):,} traces item by item (before) {before:6.2f} s ({load()})")
    print(f"  {len(tagged):,} traces in one go (now)        {after:6.2f} s ({load()})")


def over_http(url: str, token: str, total: int) -> None:
    from tests.fixtures.server import serve_database

    headers = {"Authorization": f"Bearer {token}"}
    with serve_database(url, timeout=120) as base, httpx.Client(timeout=120) as client:
        client.get(f"{base}/field/team", params={"limit": 1}, headers=headers)  # warm
        for limit in (1000, 2000, 5000):
            got, pages, slowest, after = 0, 0, 0.0, None
            started = time.perf_counter()
            while True:
                params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
                page_started = time.perf_counter()
                answer = client.get(f"{base}/field/team", params=params, headers=headers)
                slowest = max(slowest, time.perf_counter() - page_started)
                answer.raise_for_status()
                doc = answer.json()
                got += len(doc["items"])
                pages += 1
                after = doc["next"]
                if after is None:
                    break
            took = time.perf_counter() - started
            print(f"  GET /field/team limit={limit}: {got:,} of {total:,} items in {pages} pages, "
                  f"{took:.2f} s, slowest page {slowest:.2f} s ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=["small", "full"])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="an existing database with a generated province")
    args = parser.parse_args()

    from bench_barcodes import province

    cluster, url = (None, args.url) if args.url else province(args.scale)
    try:
        with psycopg.connect(url) as conn:
            versions = (conn.execute("SHOW server_version").fetchone()[0],
                        conn.execute("SELECT postgis_lib_version()").fetchone()[0])
        print(f"PostgreSQL {versions[0]} · PostGIS {versions[1]} · psycopg "
              f"{psycopg.__version__} · Python {sys.version.split()[0]} · {load()}")
        bench_trigger(url, args.repeat)
        token, tagged = a_team(url, args.items)
        asyncio.run(in_process(url, tagged[:2000]))
        over_http(url, token, len(tagged))
    except Exception as exc:  # a bench prints what failed, never a traceback
        print(f"bench failed: {type(exc).__name__}: {exc}")
        sys.exit(1)
    finally:
        if cluster is not None:
            cluster.destroy()
            shutil.rmtree(cluster.pgdata.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

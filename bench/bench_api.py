"""OGC API Features benchmark: our app, stock pygeoapi and tipg on the same full-scale trees.

Measures with wrk (bounded runs, 8 connections) on loopback:
- a bbox page of ~400 trees in the densest town (limit 1000, so the page holds them all),
- one tree by id,
- the first page with no filter (limit 100),
- a CQL2 species filter in a bbox (a town-sized bbox, the commonest species there),
and prints requests/s, p50 and p99 of each, plus the floor: our bbox query run straight in
PostgreSQL by pgbench with the same 8 connections.

Stock pygeoapi (its PostgreSQL provider) and tipg are installed by this script into
bench/.venv-pygeoapi and bench/.venv-tipg. The full province comes from bench_tiles'
``full_province`` (the managed cluster in bench/out/province-full, kept between runs).

Usage::

    .venv/bin/python bench/bench_api.py                 # all three servers
    .venv/bin/python bench/bench_api.py --only ours     # just our app
    .venv/bin/python bench/bench_api.py --url postgresql://...   # an existing full province

Tile cases live in bench_tiles.py; both share the helpers there (servers, wrk, versions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlparse

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tiles import (  # noqa: E402
    CONNECTIONS,
    DURATION,
    OUT,
    ROOT,
    TIPG_VENV,
    free_port,
    full_province,
    log,
    measure,
    our_app,
    server,
    tipg,
    version_of,
)

PYGEOAPI_VENV = ROOT / "bench" / ".venv-pygeoapi"
PYGEOAPI_VERSION = "0.21.0"
TARGET_PAGE = 400


# --- the cases ------------------------------------------------------------------------------


def densest_bbox(url: str, target: int = TARGET_PAGE) -> tuple[list[float], int]:
    """A square bbox in the densest part of the province holding about ``target`` trees."""
    with psycopg.connect(url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Collect(geom)) c, count(*) n "
            "FROM smarttrees.trees GROUP BY ST_SnapToGrid(geom, 0.01) ORDER BY n DESC LIMIT 1) d"
        ).fetchone()
        low, high = 0.0001, 0.05
        for _ in range(25):  # bisect the half-width until the count is close to the target
            half = (low + high) / 2
            box = [lon - half, lat - half, lon + half, lat + half]
            n = conn.execute(
                "SELECT count(*) FROM smarttrees.trees "
                "WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)", box
            ).fetchone()[0]
            if abs(n - target) <= target * 0.05:
                break
            low, high = (half, high) if n < target else (low, half)
    return [round(v, 6) for v in box], n


def town_species(url: str, box: list[float]) -> tuple[list[float], int, int]:
    """A bbox four times wider than ``box``, its commonest species, and the trees matching."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = (box[2] - box[0]) * 2
    town = [round(v, 6) for v in (cx - half, cy - half, cx + half, cy + half)]
    with psycopg.connect(url) as conn:
        species, n = conn.execute(
            "SELECT species_id, count(*) FROM smarttrees.trees "
            "WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) AND species_id IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 1", town
        ).fetchone()
    return town, species, n


def cases(url: str) -> tuple[dict[str, dict[str, str]], dict[str, object]]:
    """Query string per case (collection path added per server) and what they select."""
    box, in_box = densest_bbox(url)
    town, species, matching = town_species(url, box)
    with psycopg.connect(url) as conn:
        some_id = conn.execute(
            "SELECT id FROM smarttrees.trees ORDER BY id OFFSET 500000 LIMIT 1"
        ).fetchone()[0]
    bbox = ",".join(map(str, box))
    found = {"bbox": box, "trees_in_bbox": in_box, "town": town, "species_id": species,
             "species_in_town": matching, "tree_id": some_id}
    return {
        "bbox page": {"path": "/items", "query": urlencode({"bbox": bbox, "limit": 1000})},
        "one tree": {"path": f"/items/{some_id}", "query": ""},
        "first page": {"path": "/items", "query": urlencode({"limit": 100})},
        "cql2 species in bbox": {"path": "/items", "query": urlencode({
            # cql2-text is every server's default; stock pygeoapi 0.21 refuses the
            # filter-lang value "cql2-text" itself.
            "bbox": ",".join(map(str, town)), "filter": f"species_id={species}",
            "limit": 1000})},
    }, found


# --- stock pygeoapi ---------------------------------------------------------------------------


def install_pygeoapi() -> str:
    python = PYGEOAPI_VENV / "bin" / "python"
    if not python.exists():
        log(f"installing pygeoapi {PYGEOAPI_VERSION} into {PYGEOAPI_VENV}...")
        subprocess.run([sys.executable, "-m", "venv", str(PYGEOAPI_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"pygeoapi=={PYGEOAPI_VERSION}",
             "sqlalchemy", "geoalchemy2", "psycopg2-binary", "uvicorn", "starlette"],
            check=True,
        )
    return str(python)


def pygeoapi_config(url: str, base: str) -> str:
    """A pygeoapi YAML configuration serving smarttrees.trees with the stock provider."""
    u = urlparse(url)
    port = urlparse(base).port
    return f"""
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: {base}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US]
  limits: {{default_items: 10, max_items: 10000}}
  map: {{url: '', attribution: ''}}
logging: {{level: ERROR}}
metadata:
  identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme,
                    terms_of_service: '', url: {base}}}
  license: {{name: CC-BY 4.0, url: 'https://creativecommons.org/licenses/by/4.0/'}}
  provider: {{name: bench, url: {base}}}
  contact: {{name: bench}}
resources:
  trees:
    type: collection
    title: trees
    description: trees
    keywords: [trees]
    extents:
      spatial: {{bbox: [-180, -90, 180, 90], crs: 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'}}
    providers:
      - type: feature
        name: PostgreSQL
        data: {{host: {u.hostname}, port: {u.port}, dbname: {u.path.lstrip('/')},
                user: {u.username}, password: '{u.password or ''}',
                search_path: [smarttrees, public]}}
        id_field: id
        table: trees
        geom_field: geom
"""


@contextmanager
def stock_pygeoapi(url: str) -> Iterator[str]:
    python = install_pygeoapi()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    folder = Path(tempfile.mkdtemp(prefix="bench-pygeoapi-", dir=OUT))
    config, openapi = folder / "config.yml", folder / "openapi.yml"
    config.write_text(pygeoapi_config(url, base))
    env = dict(os.environ, PYGEOAPI_CONFIG=str(config), PYGEOAPI_OPENAPI=str(openapi))
    subprocess.run(
        [str(PYGEOAPI_VENV / "bin" / "pygeoapi"), "openapi", "generate", str(config),
         "--output-file", str(openapi)],
        check=True, env=env, capture_output=True,
    )
    cmd = [python, "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    with server(cmd, env, f"{base}/collections/trees"):
        yield base


# --- the floor -------------------------------------------------------------------------------


def pgbench_floor(url: str, box: list[float], page: str = "page_text_sql") -> float:
    """Transactions/s of our bbox page statement run straight in PostgreSQL (pgbench).

    ``page`` names the :mod:`gis_api.features` function making the statement: the one the
    server runs (``page_text_sql``, the page as one value) or the older rows statement
    (``page_sql``, one row per feature), to compare the two.
    """
    from gis_api import features
    from gis_api.collections import TREES
    from gis_api.items_params import ItemsQuery
    from smarttrees.cluster import find_postgres

    query = ItemsQuery(TREES, limit=1000, bbox=tuple(box))  # type: ignore[arg-type]
    statement, params = getattr(features, page)(query)
    with psycopg.connect(url) as conn:
        text = psycopg.ClientCursor(conn).mogrify(statement, params)
    script = OUT / f"bench_api_bbox_{page}.sql"
    script.write_text(text.replace("\n", " ") + ";\n")
    out = subprocess.run(
        [find_postgres().program("pgbench"), "-n", "-M", "prepared", f"-c{CONNECTIONS}", "-j2",
         f"-T{int(DURATION.rstrip('s'))}", "-f", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]


# --- main -------------------------------------------------------------------------------------


SERVERS = {
    "ours": (lambda url: our_app(url, 64), "/collections/trees"),
    # the same app with one process per core, as `smarttrees serve --workers 2` runs it
    "ours-2w": (lambda url: our_app(url, 64, workers=2), "/collections/trees"),
    "pygeoapi": (stock_pygeoapi, "/collections/trees"),
    "tipg": (tipg, "/collections/smarttrees.trees"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database holding a full province (default: make one)")
    parser.add_argument("--only", action="append", choices=list(SERVERS),
                        help="measure only these servers (repeatable)")
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    OUT.mkdir(parents=True, exist_ok=True)  # the pgbench script is written there, even with --url
    with full_province(args.url) as url:
        queries, found = cases(url)
        log(json.dumps(found))
        floor = pgbench_floor(url, found["bbox"])  # type: ignore[arg-type]
        log(f"pgbench floor, bbox page statement: {floor:.0f} tps")
        rows_floor = pgbench_floor(url, found["bbox"], "page_sql")  # type: ignore[arg-type]
        log(f"pgbench floor, bbox rows statement: {rows_floor:.0f} tps")
        for name in args.only or [s for s in SERVERS if s != "ours-2w"]:
            start, collection = SERVERS[name]
            with start(url) as base:
                for case, q in queries.items():
                    query = f"?{q['query']}" if q["query"] else ""
                    target = f"{base}{collection}{q['path']}{query}"
                    results.append({"case": case, **measure(name, target)})
        with psycopg.connect(url) as conn:
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
            postgres = conn.execute("SHOW server_version").fetchone()[0]
            total = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()[0]
    report(results, found, (floor, rows_floor), total, postgres, postgis,
           args.only or list(SERVERS))


def report(results: list[dict[str, object]], found: dict[str, object],
           floors: tuple[float, float], total: int, postgres: str, postgis: str,
           servers: list[str]) -> None:
    versions = [f"PostgreSQL {postgres}", f"PostGIS {postgis}",
                f"wrk -t2 -c{CONNECTIONS} -d{DURATION}"]
    if "pygeoapi" in servers:
        stock = version_of(str(PYGEOAPI_VENV / "bin/python"), "pygeoapi")
        versions.append(f"stock pygeoapi {stock}")
    if "tipg" in servers:
        versions.append(f"tipg {version_of(str(TIPG_VENV / 'bin/python'), 'tipg')}")
    print(f"trees: {total}; bbox {found['bbox']} holds {found['trees_in_bbox']}; species "
          f"{found['species_id']} in {found['town']}: {found['species_in_town']}")
    print(", ".join(versions))
    floor, rows_floor = floors
    print(f"load average {os.getloadavg()[0]:.1f} at the end (the machine is shared)")
    print(f"floor: the bbox page statement in pgbench: {floor:.0f} queries/s (the page as one"
          f" value, as the server runs it; one row per feature: {rows_floor:.0f} queries/s)")
    print(f"{'case':22} {'server':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>9}"
          f" {'load':>5}")
    for r in results:
        errors = f"  ({r['errors']} errors)" if r["errors"] else ""
        share = f"  ({r['rps'] / floor:.0%} of the floor)" if r["case"] == "bbox page" else ""
        print(f"{r['case']:22} {r['server']:10} {r['rps']:8.1f} {r['p50_ms']:8.1f} "
              f"{r['p99_ms']:8.1f} {r['bytes']:9d} {r['load']:5.1f}{errors}{share}")


if __name__ == "__main__":
    main()

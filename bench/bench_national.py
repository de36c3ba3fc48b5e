"""National layout benchmark: items and tile latency as the inventory grows from 1 to N provinces.

For each province count in ``--provinces`` (e.g. ``1,3`` here, ``1,10`` for the issue's 11 M
trees), a database gets that many synthetic provinces side by side — each 0.5° × 0.5°, 100
communes of 0.05° with their province as ``parent_code``, ``--trees-per-province`` trees at
random positions (1,130,000 by default, Thái Nguyên's count; each province from its own seed, so
province 01 is the same rows whatever N) written through the trees table's triggers like any
load — and a copy of it is partitioned by ``partition_trees`` (what ``smarttrees db
partition-trees`` runs: the path a department takes from one table to the national layout).
Each database is then measured with our server (tile cache off, one worker).

Cases, each ``--requests`` sequential requests over 50 places in province 01 (the same places,
boxes and tiles whatever N and layout), after one warm-up request per place: a bbox page of 100
trees (a 0.01° box, ~450 trees), the same page with a ``commune_code`` filter (pruned to one
partition), with a ``province`` filter (pruned to one partition; its 100 communes' codes in the
query), an uncached z15 and an uncached z14 tile. Printed: p50 and p90 in ms per case and
layout, the ratio of each p50 to the one-province figure, then the seconds of wall time and of
CPU (the server's Python process and PostgreSQL's processes) each case took, whether both
layouts gave the same answers, versions and the load average.

Generation and measurement can run apart: ``--keep DIR`` keeps the cluster and its databases in
DIR (with ``manifest.json``) and ``--generate-only`` skips the measurement; ``--reuse DIR`` only
measures what a ``--keep`` run left there.

Usage::

    python bench/bench_national.py --provinces 1,3
    python bench/bench_national.py --provinces 1,10      # ~11 M trees: 16 GB of disk, ~10 min
    python bench/bench_national.py --provinces 1,10 --keep /data/national --generate-only
    python bench/bench_national.py --reuse /data/national      # measure only, minutes

Without ``--keep`` the cluster lives in a temporary folder and is removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from etl.merge import drop_indexes_for_bulk, rebuild_indexes  # noqa: E402
from etl.species import load_species  # noqa: E402
from smarttrees import schema  # noqa: E402
from smarttrees.cluster import Cluster, ClusterError  # noqa: E402
from smarttrees.database import connect  # noqa: E402
from smarttrees.partitioning import partition_trees  # noqa: E402

PROVINCE_DEG = 0.5
COMMUNE_DEG = 0.05
ORIGIN = (103.0, 23.0)  # the north-west corner of province 01; others go east, then south
PLACES = 50
SEED = 2025
TEMPLATE = "national_template"
LAYOUTS = ("one table", "partitioned")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class BenchError(Exception):
    """A reason to stop that the user can act on (said in one line, no traceback)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def corner(index: int) -> tuple[float, float]:
    """The south-west corner of province ``index`` (0-based), five to a row."""
    return (ORIGIN[0] + (index % 5) * (PROVINCE_DEG + 0.1),
            ORIGIN[1] - (index // 5 + 1) * (PROVINCE_DEG + 0.1))


def database_name(provinces: int, layout: str) -> str:
    return f"national_{provinces}_{'partitioned' if layout == 'partitioned' else 'table'}"


# -- generation ------------------------------------------------------------------------------


def add_provinces(url: str, first: int, last: int, trees: int) -> None:
    """Write provinces ``first`` … ``last`` (0-based, inclusive) into ``url``, one transaction.

    As a department's bulk load does (``etl.merge``): when the new trees outnumber those in
    the table, its secondary indexes and foreign keys (and the history's) are set aside and
    built once after the rows; so both layouts are measured with indexes built in bulk.
    """
    per_row = round(PROVINCE_DEG / COMMUNE_DEG)
    started = time.perf_counter()
    with connect(url) as conn:
        restore = drop_indexes_for_bulk(conn, good_rows=(last - first + 1) * trees)
        for i in range(first, last + 1):
            code = f"{i + 1:02d}"
            x0, y0 = corner(i)
            # Each province its own seed: province 01 is the same rows in every database.
            conn.execute("SELECT setseed(%s)", [(SEED + i) / 10_000])
            conn.execute(
                "INSERT INTO admin_units (level, code, name, unit_type, parent_code, valid_from, "
                "geom) SELECT 'commune', %(p)s || lpad(k::text, 3, '0'), "
                "'Xã ' || %(p)s || '-' || k, 'xã', %(p)s, '2025-07-01', ST_Multi(ST_MakeEnvelope("
                "%(x0)s + (k %% %(n)s) * %(d)s, %(y0)s + (k / %(n)s) * %(d)s, "
                "%(x0)s + (k %% %(n)s + 1) * %(d)s, %(y0)s + (k / %(n)s + 1) * %(d)s, 4326)) "
                "FROM generate_series(0, %(n)s * %(n)s - 1) k",
                {"p": code, "x0": x0, "y0": y0, "n": per_row, "d": COMMUNE_DEG})
            conn.execute(
                "INSERT INTO trees (tree_code, category, species_id, dbh_cm, commune_code, source,"
                " geom) SELECT 'P' || %(p)s || '-' || g, (ARRAY['urban', 'scattered', "
                "'plantation'])[1 + g %% 3], 1 + g %% 20, 10 + g %% 40, %(p)s || lpad(("
                "floor((x - %(x0)s) / %(d)s) + %(n)s * floor((y - %(y0)s) / %(d)s))::int::text, "
                "3, '0'), 'bench', ST_SetSRID(ST_MakePoint(x, y), 4326) FROM ("
                "SELECT g, %(x0)s + random() * %(w)s AS x, %(y0)s + random() * %(w)s AS y "
                "FROM generate_series(1, %(t)s) g) s",
                {"p": code, "x0": x0, "y0": y0, "n": per_row, "d": COMMUNE_DEG,
                 "w": PROVINCE_DEG * 0.99999, "t": trees})
            log(f"  province {code}: {trees:,} trees ({time.perf_counter() - started:.0f} s)")
        if restore:
            rebuild_indexes(conn, restore)
            log(f"  indexes and keys built once ({time.perf_counter() - started:.0f} s)")


def settle(url: str, grid: bool = True) -> None:
    """What a loader does after a bulk load: statistics, and the grid of the low-zoom tiles."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE smarttrees.trees")
        if grid:
            conn.execute("REFRESH MATERIALIZED VIEW smarttrees.tree_grid")
            conn.execute("REFRESH MATERIALIZED VIEW smarttrees.tree_grid_version")


def copy_database(admin: str, source: str, target: str) -> None:
    """``target`` as a file copy of ``source`` (which must have no connections)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        newer = int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 150000  # type: ignore[index]
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
            sql.Identifier(target), sql.Identifier(source),
            # WAL_LOG (15's default) writes the whole database through the WAL: minutes here.
            sql.SQL(" STRATEGY = FILE_COPY" if newer else "")))


@dataclass
class Kept:
    """The manifest of a ``--keep`` folder: what was generated, and how long each step took."""

    folder: Path
    trees_per_province: int
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, object]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def cluster_folder(self) -> Path:
        return self.folder / "cluster"

    def save(self) -> None:
        """Write the manifest (atomically: a half-written file is never read)."""
        body = {"format": MANIFEST_FORMAT, "trees_per_province": self.trees_per_province,
                "seed": SEED, "versions": self.versions, "databases": self.databases,
                "steps": self.steps}
        partial = self.folder / (MANIFEST + ".partial")
        partial.write_text(json.dumps(body, indent=2) + "\n")
        partial.replace(self.folder / MANIFEST)

    @contextmanager
    def timed(self, what: str, cluster: Cluster) -> Iterator[None]:
        """Record the step's wall seconds, this process's and PostgreSQL's CPU seconds."""
        wall, client, server = time.perf_counter(), time.process_time(), cluster_cpu(cluster)
        yield
        took = {"wall_s": round(time.perf_counter() - wall, 1),
                "client_cpu_s": round(time.process_time() - client, 1),
                "pg_cpu_s": round(cluster_cpu(cluster) - server, 1)}
        self.steps.append({"step": what, **took, "load_average": _load(),
                           "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        log(f"{what}: {took['wall_s']:.0f} s, CPU {took['client_cpu_s']:.1f} s here and "
            f"{took['pg_cpu_s']:.1f} s in PostgreSQL (load average {_load()})")
        self.save()


def generate_all(cluster: Cluster, kept: Kept, counts: list[int]) -> None:
    """One database per province count and layout; each count grows from the one before."""
    admin = cluster.url("postgres")
    trees = kept.trees_per_province
    previous = 0
    for n in counts:
        table = database_name(n, "one table")
        with kept.timed(f"{n} province(s), one table: provinces {previous + 1}-{n} written",
                        cluster):
            # Provinces 1…previous are in the smaller count's database already: copy, then add.
            copy_database(admin, database_name(previous, "one table") if previous else TEMPLATE,
                          table)
            add_provinces(cluster.url(table), previous, n - 1, trees)
        with kept.timed(f"{n} province(s), one table: VACUUM ANALYZE, tile grid", cluster):
            settle(cluster.url(table))
        kept.databases[table] = {"provinces": n, "layout": "one table", "trees": n * trees,
                                 "size": _size(cluster.url(table)), "complete": True}
        kept.save()

        part = database_name(n, "partitioned")
        with kept.timed(f"{n} province(s): copy for the partitioned layout", cluster):
            copy_database(admin, table, part)
        with (kept.timed(f"{n} province(s), partitioned: partition_trees", cluster),
              connect(cluster.url(part)) as conn):
            partition_trees(conn)
        with kept.timed(f"{n} province(s), partitioned: VACUUM ANALYZE", cluster):
            settle(cluster.url(part), grid=False)  # partition_trees made the grid again already
        kept.databases[part] = {"provinces": n, "layout": "partitioned", "trees": n * trees,
                                "size": _size(cluster.url(part)), "complete": True}
        kept.save()
        previous = n


def set_up(cluster: Cluster) -> None:
    """Start a new cluster with the schema and the species list: the template of each count."""
    cluster.start()
    schema.upgrade(cluster.url())
    with connect(cluster.url()) as conn:
        load_species(conn)


# -- the kept folder ---------------------------------------------------------------------------


def prepare_keep(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        raise BenchError(f"--keep {folder}: the folder exists and is not empty; choose a new "
                         "folder (or --reuse it if a --keep run made it)")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)


def read_kept(folder: Path, counts: list[int] | None) -> tuple[Kept, list[int]]:
    """The manifest of ``folder`` and the province counts to measure (all kept by default).

    Raises
    ------
    BenchError
        The folder, its manifest or its cluster is missing, or a database is not complete.

    """
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BenchError(f"--reuse {folder}: no such folder (make it with --keep {folder})")
    if not path.is_file():
        raise BenchError(f"--reuse {folder}: no {MANIFEST} there: not a folder made by --keep, "
                         "or its generation stopped as it began")
    try:
        body = json.loads(path.read_text())
        databases = dict(body["databases"])
        kept = Kept(folder, int(body["trees_per_province"]), databases, list(body["steps"]),
                    dict(body.get("versions", {})))
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(
            f"--reuse {folder}: {path} is not a manifest of this script ({exc})") from None
    if body.get("format") != MANIFEST_FORMAT:
        raise BenchError(f"--reuse {folder}: {path} has format {body.get('format')!r}, this "
                         f"script reads {MANIFEST_FORMAT}")
    complete = {(int(d["provinces"]), str(d["layout"])) for d in databases.values()
                if d.get("complete")}
    available = sorted({n for n, _ in complete})
    wanted = counts or available
    missing = [f"{n} province(s) {layout}" for n in wanted for layout in LAYOUTS
               if (n, layout) not in complete]
    if not wanted or missing:
        raise BenchError(f"--reuse {folder}: incomplete: "
                         f"{', '.join(missing) or 'no database'} not generated (complete: "
                         f"{', '.join(f'{n} {lay}' for n, lay in sorted(complete)) or 'none'})")
    if not (kept.cluster_folder / "pgdata" / "PG_VERSION").is_file():
        raise BenchError(f"--reuse {folder}: no PostgreSQL cluster in {kept.cluster_folder}")
    return kept, wanted


def check_kept(cluster: Cluster, kept: Kept, counts: list[int]) -> None:
    """Each database to measure is there with the trees the manifest says."""
    for n in counts:
        for layout in LAYOUTS:
            name = database_name(n, layout)
            expected = kept.databases[name]["trees"]
            try:
                with psycopg.connect(cluster.url(name), connect_timeout=10) as conn:
                    row = conn.execute("SELECT n FROM smarttrees.row_counts "
                                       "WHERE table_name = 'trees'").fetchone()
            except psycopg.OperationalError as exc:
                raise BenchError(f"--reuse {kept.folder}: database {name} cannot be opened "
                                 f"({str(exc).strip().splitlines()[-1]})") from None
            if not row or row[0] != expected:
                raise BenchError(f"--reuse {kept.folder}: database {name} holds "
                                 f"{row[0] if row else 'no count of'} trees, the manifest says "
                                 f"{expected}")


# -- measurement -------------------------------------------------------------------------------


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2 ** z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return z, int(y), int((lon + 180) / 360 * n)


def places(seed: int = 7) -> list[tuple[float, float]]:
    """Points inside province 01, away from its edges: the same list for every run."""
    rng = random.Random(seed)
    x0, y0 = corner(0)
    return [(x0 + 0.05 + rng.random() * 0.4, y0 + 0.05 + rng.random() * 0.4)
            for _ in range(PLACES)]


def cases() -> dict[str, list[str]]:
    """The request paths of each case, one per place."""
    x0, y0 = corner(0)
    per_row = round(PROVINCE_DEG / COMMUNE_DEG)
    out: dict[str, list[str]] = {"items bbox": [], "items bbox+commune": [],
                                 "items bbox+province": [], "tile z15": [], "tile z14": []}
    for lon, lat in places():
        bbox = f"{lon:.5f},{lat:.5f},{lon + 0.01:.5f},{lat + 0.01:.5f}"
        k = int((lon - x0) / COMMUNE_DEG) + per_row * int((lat - y0) / COMMUNE_DEG)
        out["items bbox"].append(f"/collections/trees/items?bbox={bbox}&limit=100")
        out["items bbox+commune"].append(
            f"/collections/trees/items?bbox={bbox}&limit=100&commune_code=01{k:03d}")
        out["items bbox+province"].append(f"/collections/trees/items?bbox={bbox}&limit=100"
                                          "&province=01")
        for z in (15, 14):
            tz, ty, tx = tile_of(lon, lat, z)
            out[f"tile z{z}"].append(f"/collections/trees/tiles/WebMercatorQuad/{tz}/{ty}/{tx}")
    return out


@contextmanager
def serving(url: str) -> Iterator[str]:
    from tests.fixtures.server import serve_database

    with serve_database(url, timeout=120, tile_cache_mb="0", pool_max_size="4") as base:
        yield base


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of process ``pid`` (with its reaped children's when ``children``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def _children(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                out.append(int(entry.name))
    return out


def cluster_cpu(cluster: Cluster) -> float:
    """CPU seconds of the cluster's processes so far: postmaster, backends, those that ended."""
    try:
        postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not started yet
        return 0.0
    return _proc_cpu(postmaster, children=True) + sum(_proc_cpu(p) for p in _children(postmaster))


def app_cpu() -> float:
    """CPU seconds of the servers this process started (the app under test)."""
    return sum(_proc_cpu(p, children=True) for p in _children(os.getpid()))


def answer(response: httpx.Response) -> bytes:
    """What a user reads in a response: a page's features; a tile's features in each layer,
    as a set (a point tile lists its trees in the order of the plan, which may differ)."""
    if response.headers.get("content-type", "").startswith("application/vnd.mapbox"):
        layers = mapbox_vector_tile.decode(response.content)
        return json.dumps({name: sorted(json.dumps(f, sort_keys=True) for f in layer["features"])
                           for name, layer in sorted(layers.items())}).encode()
    return json.dumps(response.json().get("features"), sort_keys=True).encode()


Figures = dict[str, dict[str, Any]]  # case -> p50_ms, p90_ms, wall_s, …, answers


@dataclass(frozen=True)
class Measured:
    """The figures of one database (province count and layout)."""

    provinces: int
    layout: str
    load_average: str
    cases: Figures


@dataclass
class Samples:
    """What the timed requests of one case on one database gave, over all rounds."""

    took_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    app_cpu_s: float = 0.0
    pg_cpu_s: float = 0.0
    answers: set[str] = field(default_factory=set)

    def figures(self) -> dict[str, Any]:
        quantiles = statistics.quantiles(self.took_ms, n=10)
        return {"p50_ms": round(statistics.median(self.took_ms), 1),
                "p90_ms": round(quantiles[8], 1), "wall_s": round(self.wall_s, 2),
                "client_cpu_s": round(self.client_cpu_s, 2),
                "app_cpu_s": round(self.app_cpu_s, 2), "pg_cpu_s": round(self.pg_cpu_s, 2),
                "answers": ",".join(sorted(self.answers))}


def measure(cluster: Cluster, name: str, requests: int, into: dict[str, Samples]) -> None:
    """``requests`` sequential timed requests of each case on database ``name``, with their
    CPU seconds, added to ``into``; every place is requested once untimed first."""
    with serving(cluster.url(name)) as base, httpx.Client(base_url=base, timeout=120) as client:
        for case, paths in cases().items():
            samples = into.setdefault(case, Samples())
            digest = hashlib.sha256()
            for path in paths:  # every place once: its pages in the buffer cache, plans made
                response = client.get(path)
                response.raise_for_status()
                digest.update(answer(response))
            samples.answers.add(digest.hexdigest()[:16])
            cpu = (time.process_time(), app_cpu(), cluster_cpu(cluster))
            wall = time.perf_counter()
            for i in range(requests):
                started = time.perf_counter()
                client.get(paths[i % len(paths)]).raise_for_status()
                samples.took_ms.append((time.perf_counter() - started) * 1000)
            samples.wall_s += time.perf_counter() - wall
            samples.client_cpu_s += time.process_time() - cpu[0]
            samples.app_cpu_s += app_cpu() - cpu[1]
            samples.pg_cpu_s += cluster_cpu(cluster) - cpu[2]


def measure_all(cluster: Cluster, counts: list[int], requests: int,
                rounds: int) -> list[Measured]:
    """Each database measured in ``rounds`` rounds, every other one in the reverse order (a
    load that drifts weighs on all alike); ``requests`` timed requests per case in all."""
    order = [(n, layout) for n in counts for layout in LAYOUTS]
    samples: dict[tuple[int, str], dict[str, Samples]] = {key: {} for key in order}
    loads: dict[tuple[int, str], list[float]] = {key: [] for key in order}
    for r in range(rounds):
        share = requests // rounds + (1 if r < requests % rounds else 0)
        for n, layout in order if r % 2 == 0 else reversed(order):
            name = database_name(n, layout)
            loads[(n, layout)].append(os.getloadavg()[0])
            log(f"round {r + 1}/{rounds}: {name}, {share} requests per case "
                f"(load average {_load()})")
            measure(cluster, name, share, samples[(n, layout)])
    results = []
    for n, layout in order:
        low, high = min(loads[(n, layout)]), max(loads[(n, layout)])
        results.append(Measured(n, layout, f"{low:.1f}" if low == high else f"{low:.1f}–{high:.1f}",
                                {c: s.figures() for c, s in samples[(n, layout)].items()}))
        log(json.dumps(results[-1].__dict__))
    return results


def versions(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
    return {"postgresql": str(pg[0] if pg else "?"), "postgis": str(postgis[0] if postgis else "?"),
            "python": sys.version.split()[0], "psycopg": psycopg.__version__}


def _size(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        return str(row.fetchone()[0])  # type: ignore[index]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(results: list[Measured], trees: int, requests: int, rounds: int) -> None:
    first_count = min(r.provinces for r in results)
    base = {r.layout: r.cases for r in results if r.provinces == first_count}
    names = list(cases())
    print(f"\nitems and tiles p50 / p90 (ms), {trees:,} trees per province, tile cache off, "
          f"{requests} timed requests per case ({rounds} rounds) over {PLACES} places in "
          "province 01")
    print("| provinces | layout | load avg | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in results:
        first = base[r.layout]
        cells = [f"{f['p50_ms']} / {f['p90_ms']} (×{f['p50_ms'] / first[c]['p50_ms']:.2f})"
                 for c, f in r.cases.items()]
        print(f"| {r.provinces} | {r.layout} | {r.load_average} | " + " | ".join(cells) + " |")
    print(f"\nseconds per case ({requests} timed requests): wall / bench client CPU / "
          "server (Python) CPU / PostgreSQL CPU")
    print("| provinces | layout | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in results:
        print(f"| {r.provinces} | {r.layout} | " + " | ".join(
            f"{f['wall_s']} / {f['client_cpu_s']} / {f['app_cpu_s']} / {f['pg_cpu_s']}"
            for f in r.cases.values()) + " |")
    print("\nsame answers (features of each page and of each tile; province 01 is the same "
          "rows in every database):")
    for c in names:
        answers = {a for r in results for a in r.cases[c]["answers"].split(",")}
        print(f"  {c}: " + ("one answer in every database and round" if len(answers) == 1 else
                            "DIFFERENT answers: " + "; ".join(
                                f"{r.provinces} {r.layout} {r.cases[c]['answers']}"
                                for r in results)))


# -- command line ------------------------------------------------------------------------------


def parse_counts(parser: argparse.ArgumentParser, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        counts = sorted({int(x) for x in text.split(",")})
    except ValueError:
        parser.error(f"--provinces: expected numbers separated by commas, got {text!r}")
    if not counts or counts[0] < 1 or counts[-1] > 20:
        parser.error("--provinces: between 1 and 20 provinces")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provinces", help="province counts, e.g. 1,3 or 1,10 (default 1,3; "
                        "with --reuse, every count kept)")
    parser.add_argument("--trees-per-province", type=int, default=1_130_000)
    parser.add_argument("--requests", type=int, default=200,
                        help="timed requests per case and database, over all rounds")
    parser.add_argument("--rounds", type=int, default=2,
                        help="measure every database this many times, alternating the order")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", type=Path, metavar="DIR",
                       help="generate into DIR (new or empty) and keep it, with manifest.json")
    where.add_argument("--reuse", type=Path, metavar="DIR",
                       help="measure what a --keep run left in DIR; generate nothing")
    parser.add_argument("--generate-only", action="store_true",
                        help="with --keep: generate, do not measure")
    args = parser.parse_args()
    counts = parse_counts(parser, args.provinces)
    if args.generate_only and not args.keep:
        parser.error("--generate-only needs --keep DIR (else the data would be thrown away)")
    if args.rounds < 1 or args.requests < 2 * args.rounds:
        parser.error("--rounds at least 1, --requests at least 2 per round")
    try:
        if args.reuse:
            reuse(args.reuse.resolve(), counts, args.requests, args.rounds)
        else:
            fresh(args.keep.resolve() if args.keep else None, counts or [1, 3],
                  args.trees_per_province, args.requests, args.rounds, args.generate_only)
    except BenchError as exc:
        print(f"bench_national: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bench_national: interrupted (a --keep folder keeps what was complete)",
              file=sys.stderr)
        sys.exit(130)
    except (psycopg.Error, httpx.HTTPError, ClusterError, RuntimeError, OSError) as exc:
        print(f"bench_national: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)


def fresh(keep: Path | None, counts: list[int], trees: int, requests: int, rounds: int,
          generate_only: bool) -> None:
    """Generate (into ``keep``, or a temporary folder removed at the end), then measure."""
    if keep:
        prepare_keep(keep)
    folder = keep or Path(tempfile.mkdtemp(prefix="smarttrees-national-"))
    folder.chmod(0o755)
    kept = Kept(folder, trees)
    cluster = Cluster(kept.cluster_folder, dbname=TEMPLATE, extra_config={"fsync": "off"})
    try:
        with kept.timed("cluster, schema and species", cluster):
            set_up(cluster)
        kept.versions = versions(cluster.url())
        print(json.dumps(kept.versions))
        generate_all(cluster, kept, counts)
        log(f"generated in {folder}: " + ", ".join(
            f"{name} {d['size']}" for name, d in kept.databases.items()))
        if not generate_only:
            report(measure_all(cluster, counts, requests, rounds), trees, requests, rounds)
    finally:
        if keep:
            cluster.stop()
            log(f"kept in {keep}: measure with `python bench/bench_national.py --reuse {keep}`")
        else:
            cluster.destroy()
            shutil.rmtree(folder, ignore_errors=True)


def reuse(folder: Path, counts: list[int] | None, requests: int, rounds: int) -> None:
    """Measure the databases a ``--keep`` run left in ``folder``."""
    kept, wanted = read_kept(folder, counts)
    cluster = Cluster(kept.cluster_folder, dbname=TEMPLATE)
    was_running = cluster.is_running()
    try:
        cluster.start()
        check_kept(cluster, kept, wanted)
        print(json.dumps({**versions(cluster.url()), "data": str(folder)}))
        print("generation (from the manifest): " + "; ".join(
            f"{s['step']} {s.get('wall_s', s.get('seconds'))} s"
            + (f" (PostgreSQL CPU {s['pg_cpu_s']} s)" if "pg_cpu_s" in s else "")
            for s in kept.steps))
        report(measure_all(cluster, wanted, requests, rounds), kept.trees_per_province, requests,
               rounds)
    finally:
        if not was_running:
            cluster.stop()


if __name__ == "__main__":
    main()

"""Benchmark: the keys and indexes of a first load, rebuilt as before and as now, alternated.

Run: .venv/bin/python bench/bench_first_load_indexes.py [--rows 1130000] [--rounds 3]
(from a worktree: /work/main/.venv/bin/python bench/bench_first_load_indexes.py)

A whole first load (`bench_load.py`) varies by ±30 % on a shared machine, mostly in its COPY;
this times only the step that changed, on one database holding the survey (loaded once by
``smarttrees load trees``), each round both ways:

  before  one transaction: every key, index and foreign key of ``trees`` and ``tree_history``
          dropped and rebuilt, ``trees_category_idx`` included (dropped by migration 0030),
          then ANALYZE at the load's statistics target (10); rolled back;
  now     keys and foreign keys rebuilt in the transaction, the secondary indexes recorded
          and the transaction committed, then built in two sessions (``etl.bulk``), and ANALYZE.

It prints each figure with the server's CPU seconds (every backend and parallel worker) and the
load average, then the medians and their ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import bench_load  # noqa: E402

from etl import bulk  # noqa: E402
from etl.admin import load_admin  # noqa: E402
from etl.species import load_species  # noqa: E402
from etl.trees import load_trees  # noqa: E402
from smarttrees import schema  # noqa: E402
from smarttrees.cluster import Cluster  # noqa: E402
from smarttrees.database import connect  # noqa: E402

TABLES = ["smarttrees.trees", "smarttrees.tree_history"]
CATEGORY = "CREATE INDEX trees_category_idx ON smarttrees.trees USING btree (category)"


def before(url: str) -> None:
    """Today's rebuild before migration 0030, in one transaction, rolled back."""
    with connect(url) as conn:
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute("SET LOCAL default_statistics_target = 10")
        restore = bulk.set_aside(conn, TABLES, keys=True)
        keys, indexes = bulk.guards_and_deferrable(restore)
        foreign = [d for d in keys if "FOREIGN KEY" in d]
        keys = [d for d in keys if d not in foreign]
        bulk.rebuild(conn, [*keys, *sorted([*indexes, CATEGORY]), *foreign], analyse=TABLES)
        conn.rollback()


def now(url: str) -> None:
    """Keys and foreign keys, commit, then the secondary indexes in two sessions."""
    with connect(url) as conn:
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        restore = bulk.set_aside(conn, TABLES, keys=True)
        guards, deferred = bulk.guards_and_deferrable(restore)
        bulk.rebuild(conn, guards)
        bulk.defer(conn, deferred)
    bulk.build_deferred(url)


def timed(what: str, step: object, url: str) -> tuple[float, float]:
    """Run one way; print and return its wall and server CPU seconds."""
    load = os.getloadavg()[0]
    cpu = bench_load.server_cpu()
    start = time.perf_counter()
    step(url)  # type: ignore[operator]
    wall = time.perf_counter() - start
    server = bench_load.server_cpu() - cpu
    print(f"  {what:7s} {wall:6.2f} s   server CPU {server:6.2f} s   load {load:.1f}", flush=True)
    return wall, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_130_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-bench-indexes-"))
    folder.chmod(0o755)
    cluster = Cluster(folder / "db", dbname="bench")
    (folder / "db").mkdir()
    (folder / "db").chmod(0o755)
    try:
        csv_path = folder / "survey.csv"
        bench_load.write_csv(csv_path, args.rows)
        cluster.start()
        bench_load.SERVER["pgdata"] = cluster.pgdata
        url = cluster.url()
        schema.upgrade(url)
        with connect(url) as conn:
            load_species(conn)
        if bench_load.COMMUNES.exists():
            load_admin(url, bench_load.COMMUNES, level="commune", valid_from=dt.date(2025, 7, 1))
        loaded = load_trees(url, [csv_path]).files[0].inserted
        with connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")
            pg = conn.execute("SHOW server_version").fetchone()[0]
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        print(f"{loaded:,} trees loaded; PostgreSQL {pg}, PostGIS {postgis}; "
              f"lanes {bulk.LANES}, {bulk.LANE_SETTINGS}")
        figures: dict[str, list[tuple[float, float]]] = {"before": [], "now": []}
        for n in range(1, args.rounds + 1):
            print(f"round {n}")
            for what, step in (("before", before), ("now", now)):
                figures[what].append(timed(what, step, url))
                with connect(url, autocommit=True) as conn:
                    conn.execute("CHECKPOINT")
        medians = {what: (statistics.median(w for w, _ in f), statistics.median(c for _, c in f))
                   for what, f in figures.items()}
        for what, (wall, cpu) in medians.items():
            print(f"median {what:7s} {wall:6.2f} s   server CPU {cpu:6.2f} s")
        print(f"now / before: {medians['now'][0] / medians['before'][0]:.2f} (wall), "
              f"{medians['now'][1] / medians['before'][1]:.2f} (server CPU)")
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

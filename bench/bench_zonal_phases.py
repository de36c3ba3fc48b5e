"""Where a fresh zonal process spends its time: each phase's wall and CPU, parent and worker.

Runs the goal's job (``zonal_statistics`` over the 92 communes, then the 4,000 stands, as
``bench_raster.py``'s "fresh process" lines do: zones read before the clock) in a fresh Python
per round, with the functions of ``etl.raster.zonal`` and ``etl.raster.interior`` wrapped so
each call records its start, end and CPU, in the parent and in the forked worker (the worker
writes its records to a file before it exits). Prints, per round, the total, each process's
timeline (phase, start after the clock, wall, CPU), and after all rounds the spread of each
phase (min / median / max).

Usage::

    .venv/bin/python bench/bench_zonal_phases.py --url postgresql://...   # makes the 10 m surface
    .venv/bin/python bench/bench_zonal_phases.py --url postgresql://... --raster density_10m.tif
    .venv/bin/python bench/bench_zonal_phases.py ... --rounds 5 --before /tmp/before --quiet
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOB = r"""
import functools, json, os, sys, time
t_import = time.perf_counter()
from etl.raster import interior, zonal
from etl.raster.inputs import open_raster
from etl.raster.zonal import zones_from_database
from smarttrees.database import connect
url, raster, workers, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for setting in sys.argv[5:]:  # NAME=VALUE: a constant of etl.raster.zonal, for a trial
    name, value = setting.split("=", 1)
    setattr(zonal, name, type(getattr(zonal, name))(value))
events = []
depth = [0]
import resource
def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt
def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0, c0, (s0, f0) = time.perf_counter(), time.process_time(), usage()
        depth[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            depth[0] -= 1
            s1, f1 = usage()
            events.append((os.getpid(), name, depth[0], t0, time.perf_counter(),
                           time.process_time() - c0, s1 - s0, f1 - f0))
    return wrapper
def dump():
    with open(f"{out}/{os.getpid()}.json", "w") as handle:
        json.dump(events, handle)
for name in ("zonal_statistics", "_extract_parallel", "_summarise_parts", "_plan_read",
             "_buffer", "_read", "_prepare", "_finish", "_extract", "spatial_parts",
             "_part_count", "require_overlap", "_zone_cells", "worker_count"):
    if hasattr(zonal, name):
        setattr(zonal, name, timed(name, getattr(zonal, name)))
for name in ("split_zones", "tile_figures", "pool"):
    setattr(interior, name, timed(name, getattr(interior, name)))
part = zonal._extract_part
def child(*args, **kwargs):
    events.clear()  # the parent's, inherited
    events.append((os.getpid(), "worker start", 0, time.perf_counter(), time.perf_counter(), 0,
                   0, 0))
    try:
        timed("_extract_part", part)(*args, **kwargs)
    finally:
        dump()
zonal._extract_part = child
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
Connection.recv = timed("recv", Connection.recv)
BaseProcess.start = timed("fork", BaseProcess.start)
BaseProcess.join = timed("join", BaseProcess.join)
import geopandas
geopandas.GeoDataFrame.to_crs = timed("to_crs", geopandas.GeoDataFrame.to_crs)
with connect(url) as conn:
    zones = [zones_from_database(conn, kind) for kind in ("commune", "stand")]
start = time.perf_counter()
cpu = os.times()
events.append((os.getpid(), "clock", 0, start, start, 0, 0, 0))
for these in zones:
    t0, c0 = time.perf_counter(), time.process_time()
    with open_raster(raster) as source:
        events.append((os.getpid(), "open_raster", 0, t0, time.perf_counter(),
                       time.process_time() - c0, 0, 0))
        zonal.zonal_statistics(source, these, ("mean", "min", "max", "sum", "count", "std"),
                               False, workers=workers)
end = time.perf_counter()
after = os.times()
events.append((os.getpid(), "end", 0, end, end,
               after[0] + after[1] + after[2] + after[3] - sum(cpu[:4]), 0, 0))
dump()
print(json.dumps({"seconds": end - start, "start": start,
                  "user": after[0] + after[2] - cpu[0] - cpu[2],
                  "system": after[1] + after[3] - cpu[1] - cpu[3]}))
"""


def one_round(url: str, raster: str, workers: int, tree: Path, settings: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", JOB, url, raster, str(workers), out,
                               *settings],
                              capture_output=True, text=True, check=False, cwd=tree,
                              env=dict(os.environ, PYTHONPATH=str(tree)))
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-500:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        events = []
        for path in Path(out).glob("*.json"):
            events += json.loads(path.read_text())
    result["events"] = events
    return result


def report_round(label: str, k: int, r: dict, quiet: bool, depth_shown: int,
                 per_phase: dict[tuple[str, str], list[tuple[float, ...]]]) -> None:
    """One round's line, its calls' timeline (fork, each process's parts, the end)."""
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{label}, round {k}: {r['seconds']:.3f} s, {4092 / r['seconds']:,.0f} polygons/s, "
          f"CPU user {r['user']:.2f} + system {r['system']:.2f} s; load {load}", flush=True)
    parent = next(e[0] for e in r["events"] if e[1] == "clock")
    calls = sorted(e for e in r["events"] if e[1] == "zonal_statistics")
    own = sorted(e for e in r["events"] if e[1] == "_summarise_parts" and e[0] == parent)
    theirs = sorted((e for e in r["events"] if e[1] == "_extract_part"), key=lambda e: e[3])
    for call, mine, worker in zip(calls, own, theirs, strict=False):
        print(f"  call at {call[3] - r['start']:.3f} s: {call[4] - call[3]:.3f} s; fork "
              f"after {worker[3] - call[3]:.3f} s; parent's parts done at "
              f"{mine[4] - call[3]:.3f} s ({mine[5]:.3f} s CPU), worker's at "
              f"{worker[4] - call[3]:.3f} s ({worker[5]:.3f} s CPU); the call ends "
              f"{call[4] - max(mine[4], worker[4]):.3f} s after both")
    for e in sorted(r["events"], key=lambda e: e[3]):
        pid, name, depth, t0, t1, cpu, system, faults = e
        who = "parent" if pid == parent else "worker"
        per_phase[(who, name)].append((t1 - t0, cpu, system, faults))
        if not quiet and depth <= depth_shown:
            print(f"  {who:6} {'  ' * depth}{name:<22} at {t0 - r['start']:7.3f} s: "
                  f"{t1 - t0:.3f} s wall, {cpu:.3f} s CPU (system {system:.3f} s, "
                  f"{faults:,} page faults)")


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--raster", type=Path,
                        help="the 10 m surface (default: made from the database first)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--before", type=Path,
                        help="other code (git archive main | tar -x -C DIR): its rounds "
                        "alternate with this tree's")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a constant of etl.raster.zonal for the trial (PARTS_PER_WORKER=4)")
    parser.add_argument("--depth", type=int, default=2, help="nesting shown per round")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            raster = args.raster or density_10m(args.url, Path(tmp) / "density_10m.tif")
            run_rounds(args, str(raster))
    except Exception as exc:  # a bench reports and stops; it never ends in a traceback
        print(f"stopped: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)


def density_10m(url: str, out: Path) -> Path:
    """The province's 10 m density surface, as ``bench_raster.py`` makes it."""
    sys.path.insert(0, str(ROOT))
    from etl.raster.density import density_surface
    from smarttrees.database import connect

    with connect(url) as conn:
        density_surface(conn, 10, out)
    print(f"the 10 m density surface: {out}", flush=True)
    return out


def run_rounds(args: argparse.Namespace, raster: str) -> None:
    """``args.rounds`` rounds of each tree, alternating, then the spread and the phases."""
    trees = [("this tree", ROOT)] + ([(f"before ({args.before})", args.before.resolve())]
                                     if args.before else [])
    per_phase: dict[str, dict[tuple[str, str], list[tuple[float, ...]]]] = {
        label: defaultdict(list) for label, _ in trees}
    totals: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in trees}
    for k in range(1, args.rounds + 1):
        for label, tree in trees:
            r = one_round(args.url, raster, args.workers, tree, args.set)
            totals[label].append((r["seconds"], r["user"] + r["system"]))
            report_round(label, k, r, args.quiet, args.depth, per_phase[label])
    print(f"\n{args.workers} worker(s), 4,092 zones, min / median / max over {args.rounds} rounds:")
    for label, _ in trees:
        seconds, cpu = ([t[i] for t in totals[label]] for i in (0, 1))
        rates = sorted(4092 / s for s in seconds)
        print(f"  {label}: {spread(seconds)} s, {rates[0]:,.0f} / "
              f"{statistics.median(rates):,.0f} / {rates[-1]:,.0f} polygons/s, CPU {spread(cpu)} s")
    for label, _ in trees:
        print(f"\n{label}: each phase, summed per round (wall min / median / max, CPU median):")
        for (who, name), values in sorted(per_phase[label].items()):
            n = len(values) // args.rounds or 1
            walls = [sum(v[0] for v in values[i:i + n]) for i in range(0, len(values), n)]
            cpus = [sum(v[1] for v in values[i:i + n]) for i in range(0, len(values), n)]
            system = [sum(v[2] for v in values[i:i + n]) for i in range(0, len(values), n)]
            faults = [sum(v[3] for v in values[i:i + n]) for i in range(0, len(values), n)]
            print(f"  {who:6} {name:<22} x{n}: {spread(walls)} s, CPU "
                  f"{statistics.median(cpus):.3f} s (system {spread(system)} s, page faults "
                  f"{statistics.median(faults):,.0f})")


if __name__ == "__main__":
    main()

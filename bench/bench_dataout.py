"""Data-out benchmark: backups, restores and exports of the full province, beside the anchors.

- `smarttrees db backup` (pg_dump -Fd -j2 in the snapshot it checksums, plus the manifest)
  against `pg_dump -Fd -j2` run by hand; `smarttrees db restore` (scratch database, verified,
  renamed) against `pg_restore -j2` into an empty database by hand. Times and sizes.
- `smarttrees export trees` to GeoPackage and FlatGeobuf against `ogr2ogr` from the same table
  to the same format: time and peak RSS of each process.

The full province comes from bench_tiles' ``full_province`` (bench/out/province-full). ogr2ogr
comes from Debian's gdal-bin, installed by this script when run as root.

Usage::

    .venv/bin/python bench/bench_dataout.py [--url postgresql://…]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tiles import OUT, full_province, log  # noqa: E402

PYTHON = sys.executable


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; its wall time in seconds and its peak RSS in MB."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {stderr.strip()[-300:]}")
    return seconds, usage.ru_maxrss / 1024


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def ensure_ogr2ogr() -> bool:
    if shutil.which("ogr2ogr"):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing gdal-bin for ogr2ogr...")
        subprocess.run(["apt-get", "install", "-y", "-qq", "gdal-bin"], check=False,
                       stdout=subprocess.DEVNULL)
    if not shutil.which("ogr2ogr"):
        print("ogr2ogr is missing: apt-get install gdal-bin (export anchors skipped)")
        return False
    return True


def fresh_database(url: str, name: str) -> str:
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def drop_database(url: str, name: str) -> None:
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backups(url: str, work: Path) -> None:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    ours_s, _ = run([PYTHON, "-m", "smarttrees", "db", "backup", "--out", str(work / "ours")], env)
    (made,) = (work / "ours").glob("smarttrees-*")
    hand_s, _ = run(["pg_dump", "-Fd", "-j2", "--compress=6", "-f", str(work / "hand"), url])
    print(f"backup   smarttrees db backup  {ours_s:6.1f} s  {size_mb(made):7.0f} MB")
    print(f"backup   pg_dump -Fd -j2       {hand_s:6.1f} s  {size_mb(work / 'hand'):7.0f} MB")

    target = psycopg.conninfo.make_conninfo(url, dbname="bench_restored")
    drop_database(url, "bench_restored")
    ours_r, _ = run([PYTHON, "-m", "smarttrees", "db", "restore", str(made)],
                    {**os.environ, "SMARTTREES_DATABASE_URL": target})
    hand_url = fresh_database(url, "bench_restored_hand")
    hand_r, _ = run(["pg_restore", "-j2", "--no-owner", "-d", hand_url, str(work / "hand")])
    print(f"restore  smarttrees db restore {ours_r:6.1f} s  (verified against the manifest)")
    print(f"restore  pg_restore -j2        {hand_r:6.1f} s")
    drop_database(url, "bench_restored")
    drop_database(url, "bench_restored_hand")


def exports(url: str, work: Path, with_ogr: bool) -> None:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    pg = url.replace("postgresql://", "")
    user_host, dbname = pg.rsplit("/", 1)
    user, host_port = user_host.split("@")
    host, port = host_port.split(":")
    ogr_pg = f"PG:host={host} port={port} user={user} dbname={dbname} tables=smarttrees.trees"
    for fmt, driver in (("gpkg", "GPKG"), ("fgb", "FlatGeobuf")):
        out = work / f"trees.{fmt}"
        command = [PYTHON, "-m", "smarttrees", "export", "trees", "--out", str(out)]
        ours, ours_rss = run(command, env)
        line = f"export   trees → {fmt:5} ours {ours:5.1f} s  {ours_rss:5.0f} MB peak"
        if with_ogr:
            ogr_out = work / f"ogr_trees.{fmt}"
            ogr, ogr_rss = run(["ogr2ogr", "-f", driver, str(ogr_out), ogr_pg])
            line += f" | ogr2ogr {ogr:5.1f} s  {ogr_rss:5.0f} MB peak | ratio {ours / ogr:.2f}"
        print(line)


def versions(url: str) -> None:
    import adbc_driver_postgresql
    import pyogrio

    with psycopg.connect(url) as conn:
        pgv = conn.execute("SELECT version()").fetchone()[0].split(",")[0]
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    ogr = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True, check=False)
    print(f"versions: {pgv}, PostGIS {postgis}, pyogrio {pyogrio.__version__} (GDAL "
          f"{pyogrio.__gdal_version_string__}), adbc-driver-postgresql "
          f"{adbc_driver_postgresql.__version__}, {ogr.stdout.strip() or 'no ogr2ogr'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing database holding the full province")
    args = parser.parse_args()
    with_ogr = ensure_ogr2ogr()
    OUT.mkdir(parents=True, exist_ok=True)
    with full_province(args.url) as url, tempfile.TemporaryDirectory(dir=OUT) as tmp:
        work = Path(tmp)
        with psycopg.connect(url) as conn:
            trees = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()[0]
        print(f"database: {trees:,} trees; load average {os.getloadavg()[0]:.1f}")
        versions(url)
        backups(url, work)
        exports(url, work, with_ogr)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, psycopg.Error, OSError) as exc:
        print(f"bench_dataout: {exc}", file=sys.stderr)
        sys.exit(1)

"""Benchmark: `smarttrees load trees` against GDAL's ogr2ogr on one synthetic survey CSV.

Run: .venv/bin/python bench/bench_load.py [--rows 1130000] [--rounds 3] [--keep]
(from a worktree: /work/main/.venv/bin/python bench/bench_load.py; this checkout is the one timed)

Makes a deterministic survey CSV (Vietnamese headers, WGS 84 lon/lat), starts a throwaway
PostGIS cluster in a temporary folder, migrates it, loads the species catalogue and (when
../shared/data is there, unless --no-communes) the province's 92 communes of 2025, so that each
tree is given its commune as in production; then in each round times, in this order,
each load into its own fresh copy of the migrated database:
  1. ogr2ogr -f PostgreSQL … --config PG_USE_COPY YES (its default GIST index included)
  2. smarttrees load trees (full validation, species resolution, history) on an empty table
  3. the same load again, file unchanged (nothing to write)
  4. the survey with one tree in a hundred changed (11,300 updates with their history)
then loads once the CSV again and each other input (--formats): the survey with decimal commas
and ";", as a GeoPackage (with ogr2ogr on it beside) and its first 1,000,000 rows as XLSX
(--xlsx-rows), each compared with that CSV load (the machine's load moves between rounds);
and prints every time and the peak RSS of each child (from /usr/bin/time -v), then the medians
and their ratio. Between steps the loaded database is vacuumed and checkpointed, so each step
starts on a quiet server; single runs of either tool vary by ±15 % on this machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The 2025 communes from the shared reference data, when it sits beside the repository.
COMMUNES = REPO.parent / "shared" / "data" / "admin" / "communes_2025_approx.geojson"
sys.path.insert(0, str(REPO))

import geopandas as gpd  # noqa: E402
import numpy  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow  # noqa: E402

from etl.admin import load_admin  # noqa: E402
from etl.species import load_species  # noqa: E402
from smarttrees.cluster import Cluster  # noqa: E402
from smarttrees.database import connect  # noqa: E402
from tests.fixtures.survey_writer import make_survey, write_survey  # noqa: E402

# The cluster whose server CPU time is counted (set once it is started), and the checkout timed.
SERVER: dict[str, Path] = {}
CPU: dict[str, float] = {"client": 0.0, "server": 0.0}   # of the last timed command
_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu() -> float:
    """CPU seconds of the benchmark's PostgreSQL so far: the postmaster, its live children, and
    the children it has reaped (backends that ended: the kernel adds theirs to its own)."""
    pgdata = SERVER.get("pgdata")
    if pgdata is None:
        return 0.0
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry.name), int(fields[1])
            if pid == postmaster:
                total += sum(int(f) for f in fields[11:15])   # utime stime cutime cstime
            elif ppid == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a command under /usr/bin/time -v: (seconds, peak RSS in kB, stdout).

    Its CPU seconds (user + system) and the server's during it are left in :data:`CPU`.
    """
    server_before = server_cpu()
    start = time.perf_counter()
    # Run from the timed checkout: `python -m` puts the working folder first on the path.
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                          env=env, check=False, cwd=SERVER.get("code"))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    CPU["server"] = server_cpu() - server_before
    CPU["client"] = sum(float(m) for m in re.findall(
        r"(?:User|System) time \(seconds\): ([0-9.]+)", proc.stderr))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    phases = r"DEBUG etl\.(?:trees|direct|merge|bulk): (?:direct: )?(.*)"
    for phase in re.findall(phases, proc.stderr):
        print(f"      {phase}")
    return elapsed, rss, proc.stdout


def quiesce(url: str) -> None:
    """Let the server settle after a load into ``url``, so the next step does not pay for it.

    Without this, autovacuum visits the table just loaded and a checkpoint writes it out while
    the next timed step runs.
    """
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def line(what: str, seconds: float, rss_kb: int) -> None:
    """One timed step: wall time, CPU seconds of the command and of the server, RSS, load."""
    load = os.getloadavg()[0]
    print(f"{what:40s} {seconds:7.2f} s   cpu {CPU['client']:6.2f} s + server "
          f"{CPU['server']:6.2f} s   peak RSS {rss_kb / 1024:6.0f} MB   load {load:.1f}",
          flush=True)


def write_csv(path: Path, rows: int) -> None:
    step = 200_000
    for start in range(0, rows, step):
        frame = make_survey(min(step, rows - start), start=start + 1, seed=start + 1)
        if start == 0:
            write_survey(frame, path)
        else:
            with path.open("a", encoding="utf-8", newline="") as handle:
                frame.to_csv(handle, index=False, header=False)


def write_changed(path: Path, changed: Path, offset: int = 0) -> None:
    """The survey again with one tree in a hundred 0.5 m taller (column 5: "Chiều cao (m)"):
    rows ``offset``, ``offset`` + 100, … of the file."""
    with path.open(encoding="utf-8", newline="") as src, \
            changed.open("w", encoding="utf-8", newline="") as out:
        rows = csv.reader(src)
        writer = csv.writer(out)
        writer.writerow(next(rows))
        for i, row in enumerate(rows):
            if i % 100 == offset:
                row[4] = f"{float(row[4]) + 0.5:.1f}"
            writer.writerow(row)


NUMBER_HEADERS = ["Đường kính (cm)", "Chiều cao (m)", "Đường kính tán (m)", "Kinh độ", "Vĩ độ"]


def chunks(csv_path: Path, rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The survey's rows as text frames of 200,000 (the first ``rows`` only, when given)."""
    yield from pd.read_csv(csv_path, dtype=str, keep_default_na=False, chunksize=200_000,
                           nrows=rows)


def write_decimal_commas(csv_path: Path, out: Path) -> None:
    """The survey as a Vietnamese spreadsheet exports it: ``;`` between cells, "8,6"."""
    for i, frame in enumerate(chunks(csv_path)):
        for column in NUMBER_HEADERS:
            frame[column] = frame[column].str.replace(".", ",", regex=False)
        frame.to_csv(out, sep=";", index=False, header=i == 0, mode="w" if i == 0 else "a")


def write_geopackage(csv_path: Path, out: Path) -> None:
    """The survey as a GeoPackage layer of points (WGS 84), the coordinates as geometry."""
    for i, frame in enumerate(chunks(csv_path)):
        points = gpd.points_from_xy(frame.pop("Kinh độ").astype(float),
                                    frame.pop("Vĩ độ").astype(float))
        for column in NUMBER_HEADERS[:3]:
            frame[column] = frame[column].astype(float)
        gdf = gpd.GeoDataFrame(frame, geometry=points, crs="EPSG:4326")
        gdf.to_file(out, layer="trees", driver="GPKG", engine="pyogrio",
                    mode="w" if i == 0 else "a")


XLSX_PARTS = {
    "[Content_Types].xml":
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
        '"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName='
        '"/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels":
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
        'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target='
        '"xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml":
        '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.'
        'org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships"><sheets><sheet name="Khao sat" sheetId="1" '
        'r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels":
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
        'schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target='
        '"worksheets/sheet1.xml"/></Relationships>',
}


def write_xlsx(csv_path: Path, out: Path, rows: int) -> None:
    """The survey's first ``rows`` rows as one XLSX sheet, numbers as numbers.

    Written as the format's zipped XML, streamed (inline strings): openpyxl takes a quarter of
    an hour for a million rows on this machine.
    """
    from xml.sax.saxutils import escape

    letters = [chr(ord("A") + i) for i in range(26)]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as book:
        for name, text in XLSX_PARTS.items():
            book.writestr(name, text)
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8") as sheet:
            sheet.write('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://'
                        'schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')

            def row(number: int, values: list[str], numbers: set[int]) -> str:
                cells = "".join(
                    f'<c r="{letters[j]}{number}"><v>{v}</v></c>' if j in numbers and v else
                    f'<c r="{letters[j]}{number}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
                    for j, v in enumerate(values) if v != "")
                return f'<row r="{number}">{cells}</row>'

            number = 1
            for i, frame in enumerate(chunks(csv_path, rows)):
                numbers = {frame.columns.get_loc(c) for c in NUMBER_HEADERS}
                if i == 0:
                    sheet.write(row(number, list(frame.columns), set()))
                for values in frame.itertuples(index=False):
                    number += 1
                    sheet.write(row(number, list(values), numbers))
            sheet.write("</sheetData></worksheet>")


def fresh(url: str, name: str) -> str:
    """A fresh copy of the migrated database (species, communes), by name."""
    server = url.rsplit("/", 1)[0]
    with connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE bench")
    return f"{server}/{name}"


def drop(url: str) -> None:
    server, name = url.rsplit("/", 1)
    with connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")


def formats_round(cluster: Cluster, url: str, inputs: dict[str, Path],
                  cli: list[str]) -> dict[str, tuple[float, int]]:
    """Our first load of each other input (and ogr2ogr on the GeoPackage): seconds, peak RSS.

    The CSV is loaded first again (case ``CSV``), so that each input is compared with a CSV
    load at the same moment of the shared machine.
    """
    out: dict[str, tuple[float, int]] = {}
    for case, path in inputs.items():
        ours = fresh(url, "bench_format")
        quiesce(url)
        # The load as ogr2ogr does it: without the carbon recomputation that follows it.
        env = {**os.environ, "SMARTTREES_DATABASE_URL": ours,
               "SMARTTREES_CARBON_AFTER_LOAD": "false"}
        seconds, rss, stdout = timed([*cli, "-vv", "load", "trees", str(path)], env)
        line(f"{case}: smarttrees load trees", seconds, rss)
        print("   ", stdout.strip().splitlines()[0])
        out[case] = (seconds, rss)
        drop(ours)
        if case == "GeoPackage":
            ogr = fresh(url, "bench_format_ogr")
            pg_conn = (f"PG:host=127.0.0.1 port={cluster.port} user=smarttrees "
                       "dbname=bench_format_ogr")
            seconds, rss, _ = timed(["ogr2ogr", "-f", "PostgreSQL", pg_conn, str(path),
                                     "-nln", "public.ogr_trees", "-gt", "65536",
                                     "--config", "PG_USE_COPY", "YES"])
            line("GeoPackage: ogr2ogr (COPY + GIST index)", seconds, rss)
            out["GeoPackage, ogr2ogr"] = (seconds, rss)
            drop(ogr)
    return out


def in_checkout(url: str, statement: str) -> str:
    """Run Python ``statement`` with the timed checkout's code (PYTHONPATH), ``url`` bound."""
    done = subprocess.run([sys.executable, "-c", f"url = {url!r}\n{statement}"],
                          capture_output=True, text=True, check=False, cwd=SERVER.get("code"))
    if done.returncode != 0:
        sys.exit(f"failed in the timed checkout: {statement}\n{done.stderr}")
    return done.stdout.strip()


def one_round(cluster: Cluster, url: str, csv_path: Path, cli: list[str],
              n: int, carbon: bool = False) -> tuple[float, float, float, float, int]:
    """ogr2ogr, our load, our reload and our load of the changed survey.

    ogr2ogr and our first load each go into a fresh copy of the migrated database. Returns the
    four times and our peak RSS (kB).
    """
    databases = {tool: f"bench_{tool}_{n}" for tool in ("ogr", "ours")}
    server = url.rsplit("/", 1)[0]
    with connect(f"{server}/postgres", autocommit=True) as conn:
        for name in databases.values():
            conn.execute(f"CREATE DATABASE {name} TEMPLATE bench")
    try:
        pg_conn = f"PG:host=127.0.0.1 port={cluster.port} user=smarttrees dbname={databases['ogr']}"
        ours = f"{server}/{databases['ours']}"
        quiesce(url)
        ogr_s, ogr_rss, _ = timed([
            "ogr2ogr", "-f", "PostgreSQL", pg_conn, str(csv_path), "-nln", "public.ogr_trees",
            "-oo", "X_POSSIBLE_NAMES=Kinh độ", "-oo", "Y_POSSIBLE_NAMES=Vĩ độ",
            "-oo", "KEEP_GEOM_COLUMNS=NO", "-a_srs", "EPSG:4326", "-gt", "65536",
            "--config", "PG_USE_COPY", "YES",
        ])
        line(f"{n}. ogr2ogr (COPY + GIST index)", ogr_s, ogr_rss)
        quiesce(f"{server}/{databases['ogr']}")
        # The load as ogr2ogr does it: without the carbon recomputation that follows it.
        env = {**os.environ, "SMARTTREES_DATABASE_URL": ours,
               "SMARTTREES_CARBON_AFTER_LOAD": "false"}
        ours_s, ours_rss, out = timed([*cli, "-vv", "load", "trees", str(csv_path)], env)
        line(f"{n}. smarttrees load trees (first)", ours_s, ours_rss)
        print("   ", out.strip().splitlines()[0])
        quiesce(ours)
        again_s, again_rss, out = timed([*cli, "-vv", "load", "trees", str(csv_path)], env)
        line(f"{n}. smarttrees load trees (unchanged)", again_s, again_rss)
        print("   ", out.strip().splitlines()[0])
        quiesce(ours)
        changed_s, changed_rss, out = timed(
            [*cli, "-vv", "load", "trees", str(csv_path.with_name("changed.csv"))], env)
        line(f"{n}. smarttrees load trees (1 % changed)", changed_s, changed_rss)
        print("   ", out.strip().splitlines()[0])
        if carbon and n == 1:
            # Carbon after load on: first brought up to date (not timed), then another 1 %.
            quiesce(ours)
            done = in_checkout(ours, "from smarttrees import carbon, database\n"
                                     "with database.connect(url) as conn:\n"
                                     "    print(carbon.refresh(conn) or 0)")
            print(f"    carbon brought up to date before the next step in {float(done):.2f} s")
            quiesce(ours)
            on = {**env, "SMARTTREES_CARBON_AFTER_LOAD": "true"}
            carbon_s, _, out = timed(
                [*cli, "-vv", "load", "trees", str(csv_path.with_name("changed2.csv"))], on)
            line(f"{n}. the next 1 % changed, carbon after load", carbon_s, changed_rss)
            print("   ", " / ".join(out.strip().splitlines()))
    finally:
        with connect(f"{server}/postgres", autocommit=True) as conn:
            for name in databases.values():
                conn.execute(f"DROP DATABASE IF EXISTS {name}")
    return ogr_s, ours_s, again_s, changed_s, max(ours_rss, again_rss, changed_rss)


def git_head(folder: Path) -> str:
    """The commit a checkout is at (and whether it has uncommitted changes)."""
    head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "-uno"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"{head or '?'}{' (modified)' if dirty else ''}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_130_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the three timed steps; medians are compared")
    parser.add_argument("--no-communes", action="store_true",
                        help=f"do not load the province's communes ({COMMUNES.name})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--formats", default="decimal,gpkg,xlsx",
                        help="other inputs loaded once after the rounds (decimal, gpkg, xlsx; "
                             "'' for none)")
    parser.add_argument("--xlsx-rows", type=int, default=1_000_000,
                        help="rows of the XLSX case (a sheet holds at most 1,048,576)")
    parser.add_argument("--carbon", action="store_true",
                        help="in round 1, also load a second 1 %% change with "
                             "SMARTTREES_CARBON_AFTER_LOAD on (the carbon refreshed before it)")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="the checkout whose `smarttrees` is timed (default this one), "
                             "e.g. /work/main for a before/after in one sitting")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="smarttrees-bench-load-"))
    folder.chmod(0o755)
    csv_path = folder / "survey.csv"
    t = time.perf_counter()
    write_csv(csv_path, args.rows)
    write_changed(csv_path, csv_path.with_name("changed.csv"))
    if args.carbon:  # the first change kept, another tree in a hundred changed
        write_changed(csv_path.with_name("changed.csv"), csv_path.with_name("changed2.csv"),
                      offset=50)
    print(f"survey: {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB "
          f"(written in {time.perf_counter() - t:.1f} s)")

    cluster = Cluster(folder / "db", dbname="bench")
    (folder / "db").mkdir()
    (folder / "db").chmod(0o755)
    try:
        cluster.start()
        SERVER["pgdata"] = cluster.pgdata
        url = cluster.url()
        # This checkout's code (a worktree has no .venv of its own), or --code's: the
        # interpreter running the benchmark, with that checkout first on the path. Its own
        # migrations make the database.
        code = SERVER["code"] = args.code.resolve()
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code),
                                                                 os.environ.get("PYTHONPATH")]))
        in_checkout(url, "from smarttrees import schema\nschema.upgrade(url)")
        with connect(url) as conn:
            load_species(conn)
            pg = conn.execute("SHOW server_version").fetchone()[0]
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        if COMMUNES.exists() and not args.no_communes:
            # Each loaded tree is then given its commune, as in the province's own database.
            added = load_admin(url, COMMUNES, level="commune", valid_from=dt.date(2025, 7, 1))
            print(f"communes in force: {added.inserted} ({COMMUNES.name})")
        else:
            print("communes in force: none (no commune is assigned)")
        gdal = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout
        print(f"versions: {gdal.strip()}; PostgreSQL {pg}; PostGIS {postgis}; "
              f"Python {sys.version.split()[0]}; pyarrow {pyarrow.__version__}; "
              f"numpy {numpy.__version__}; load average {os.getloadavg()[0]:.1f}")

        cli = [sys.executable, "-m", "smarttrees"]
        print(f"timed: {code} at {git_head(code)}")
        rounds = [one_round(cluster, url, csv_path, cli, i, args.carbon)
                  for i in range(1, args.rounds + 1)]
        ogr_s, ours_s, again_s, changed_s = (statistics.median(r[k] for r in rounds)
                                             for k in range(4))
        peak = max(r[4] for r in rounds)
        wanted = [f for f in args.formats.split(",") if f]
        inputs: dict[str, Path] = {}
        makers = {
            "decimal": ("CSV with decimal commas and ;", "survey_thap_phan.csv",
                        write_decimal_commas),
            "gpkg": ("GeoPackage", "survey.gpkg", write_geopackage),
            "xlsx": (f"XLSX, {args.xlsx_rows:,} rows", "survey.xlsx",
                     lambda src, out: write_xlsx(src, out, args.xlsx_rows)),
        }
        for key in wanted:
            label, name, make = makers[key]
            t = time.perf_counter()
            make(csv_path, folder / name)
            print(f"{label}: written in {time.perf_counter() - t:.1f} s "
                  f"({(folder / name).stat().st_size / 1e6:.0f} MB)", flush=True)
            inputs[label] = folder / name
        others = formats_round(cluster, url, {"CSV": csv_path, **inputs}, cli) if inputs else {}
        print(f"medians of {args.rounds} rounds: ogr2ogr {ogr_s:.2f} s, ours {ours_s:.2f} s, "
              f"unchanged {again_s:.2f} s, 1 % changed {changed_s:.2f} s")
        print(f"ratio ours/ogr2ogr: {ours_s / ogr_s:.2f} (issue 11: <= 0.6); "
              f"first/unchanged: {ours_s / again_s:.1f}x (goal >= 3); "
              f"1 % changed/unchanged: {changed_s / again_s:.1f}x (goal <= 3); "
              f"peak {peak / 1024:.0f} MB (goal < 1536)")
        beside = others.get("CSV", (ours_s, 0))[0]
        for case, (seconds, rss) in others.items():
            print(f"{case}: {seconds:.2f} s, {seconds / beside:.2f}x the CSV loaded beside it "
                  f"({seconds / ours_s:.2f}x the rounds' median; goal <= 1.5), "
                  f"peak {rss / 1024:.0f} MB")
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Load tree surveys: read, stage, check, report, merge — all in one transaction.

>>> from etl.trees import LoadOptions, load_trees       # doctest: +SKIP
>>> load_trees(url, [Path("survey.csv")], LoadOptions(crs="vn2000-thai-nguyen"))  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import getpass
import hashlib
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import shapely

from etl import (
    arrow_readers,
    attributes,
    bulk,
    csv_prefetch,
    digests,
    direct,
    mapping_rows,
    merge,
    report,
    runs,
    stage,
    validate,
)
from etl import crs as crsmod
from etl.errors import InputError
from etl.mappings import Mapping, load_mapping
from etl.readers import Table, open_table
from smarttrees import territory
from smarttrees.database import connect

log = logging.getLogger(__name__)


@dataclass
class LoadOptions:
    """How to load: the options of ``smarttrees load trees``."""

    mapping: str | Path | None = None
    crs: str | None = None
    encoding: str | None = None
    dry_run: bool = False
    strict: bool = False
    rejects: Path | None = None
    source_name: str | None = None
    actor: str | None = None
    layer: str | None = None


@dataclass
class FileResult:
    """Counts for one input file."""

    path: Path
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    rejects_path: Path | None = None
    source_crs: str = ""
    all_outside: str | None = None   # the line saying every position is outside the territory
    skipped: int = 0        # of the unchanged, rows known by their digest and not checked again
    left_out: int = 0       # rows the mapping's skip rule leaves out (not counted in rows)


@dataclass
class LoadResult:
    """Counts for a whole run; ``written`` is false for a dry run or a strict refusal."""

    files: list[FileResult] = field(default_factory=list)
    written: bool = False

    def total(self, name: str) -> int:
        """Sum of one count over the files."""
        return sum(getattr(f, name) for f in self.files)


Progress = Callable[[str, int, int], None]   # phase, done, total


def load_trees(url: str | None, paths: list[Path], options: LoadOptions | None = None,
               progress: Progress | None = None) -> LoadResult:
    """Load survey files into ``smarttrees.trees``; all or nothing.

    Parameters
    ----------
    url:
        Database URL; ``None`` for the configured one.
    paths:
        Input files (CSV, XLSX, GeoJSON, GPKG, SHP, FGB).
    options:
        Mapping, CRS, encoding, dry run, strict mode, rejects path.
    progress:
        Called with (phase, done, total) as work advances.

    Returns
    -------
    LoadResult
        Inserted, updated, unchanged and refused counts per file.

    Raises
    ------
    InputError
        A file cannot be loaded at all (empty, unreadable, missing columns…); nothing is written.

    Notes
    -----
    Every file is read into Arrow and checked batch by batch (``etl.direct``): each bad row
    with all its problems goes to the rejects file, the good rows are written in the same
    pass, straight into ``trees`` when the inventory is empty, else merged into it.

    """
    start = time.perf_counter()
    options = options or LoadOptions()
    mapping = load_mapping(options.mapping)
    # One workbook's sheet is read once, when opened, and kept for its rows; several are each
    # read again when their rows are (one held at a time).
    opened = [mapping_rows.derive(
        open_table(p, options.encoding, options.layer, scan=False, keep_sheet=len(paths) == 1),
        mapping) for p in paths]
    tables = [t for t, _ in opened]
    derived = [m for _, m in opened]
    for table in tables:
        direct.readable(table)
    result = LoadResult()
    deferred = False
    trees_after: int | None = None    # counted by the merge; else by the run record
    with connect(url) as conn:
        if not options.dry_run and bulk.deferred(conn):
            # Indexes an earlier first load committed without and did not build (killed
            # meanwhile): built first, by their own sessions.
            bulk.build_deferred(url)
        conn.execute("SET LOCAL application_name = 'smarttrees-load'")
        # The one transaction that need not wait for its commit to reach the disk: a power cut
        # loses the whole run, which is repeated; every other write commits synchronously.
        conn.execute("SET LOCAL synchronous_commit = off")
        # Staged rows live in temporary tables; with the default 8 MB of local buffers every page
        # of them goes to disk and back. Only takes effect before the session's first temp table.
        conn.execute("SET temp_buffers = '512MB'")
        # The staged tables need row counts and rough distributions, not fine histograms.
        conn.execute("SET LOCAL default_statistics_target = 10")
        # Grouping the whole run by code and by spot must stay in memory (a million codes
        # outgrow the default hash memory and spill to disk), and so must the index rebuilds.
        conn.execute("SET LOCAL work_mem = '512MB'")
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute(validate.CREATE_SHARED)
        plans = [_plan(conn, file_no, table, file_mapping, options)
                 for file_no, (table, file_mapping) in enumerate(zip(tables, derived, strict=True))]
        actor = options.actor or f"load:{getpass.getuser()}"
        file_digests = [(t.path.name, runs.file_digest(t.path)) for t in tables]
        print_ = runs.fingerprint(conn, file_digests, options, repr(mapping))
        earlier = runs.previous_clean_run(conn, print_)
        if earlier is not None:
            # The same bytes were loaded cleanly and no tree changed since: nothing can change.
            csv_prefetch.release()       # its lines are not needed
            result.files = [FileResult(t.path, rows=f["rows"], unchanged=f["rows"] - f["refused"],
                                       source_crs=f.get("source_crs", ""))
                            for t, f in zip(tables, earlier["files"], strict=True)]
            if not options.dry_run:
                runs.record(conn, print_, _files_record(result, file_digests), actor, skipped=True)
            result.written = not options.dry_run
            return result
        csv_prefetch.split_now()           # the lines are needed: split while the rest opens
        species = validate.SpeciesIndex.from_db(conn)
        files = _inputs(conn, plans, tables, options, species, progress)
        if not options.dry_run and direct.claim_empty_inventory(conn):
            deferred = _load_into_empty(conn, files, tables, options, actor, progress, result)
        else:
            trees_after = _merge(conn, files, tables, options, actor, progress, result)
        if result.written:
            runs.record(conn, print_, _files_record(result, file_digests), actor, skipped=False,
                        trees_after=trees_after)
        else:
            conn.rollback()
    log.debug("whole load, commit included, in %.2f s", time.perf_counter() - start)
    if result.written and deferred:
        # The secondary indexes a load into an empty inventory left past its commit.
        built = bulk.build_deferred(url)
        if built:
            log.debug("%d indexes built after the commit, load done in %.2f s", built,
                      time.perf_counter() - start)
    return result


def _inputs(conn: psycopg.Connection, plans: list[validate.FilePlan], tables: list[Table],
            options: LoadOptions, species: validate.SpeciesIndex,
            progress: Progress | None) -> list[direct.FileInput]:
    """Each file's batches and checker, and the staging table of its refused rows' cells."""
    lookups = direct.Lookups(plans[0].mapping, species)
    communes = direct.Communes(conn)
    reference = conn.execute(runs.REFERENCE_DIGEST).fetchone()
    files = []
    for plan, table in zip(plans, tables, strict=True):
        read = arrow_readers.vector_plan(plan) if table.kind == "vector" else plan
        stage.create_raw(conn, plan.file_no, len(table.headers))
        tick = _ticker(progress, f"loading {plan.name}", table.size)
        files.append(direct.FileInput(
            read, direct.Checker(read, lookups, communes), direct.batches(table, read, tick),
            options.source_name or plan.name, len(table.headers),
            context=_row_context(read, reference), table=table, tick=tick))
    return files


def _load_into_empty(conn: psycopg.Connection, files: list[direct.FileInput],
                     tables: list[Table], options: LoadOptions, actor: str,
                     progress: Progress | None, result: LoadResult) -> bool:
    """Write the good rows straight into the empty inventory; report the refused ones.

    True when indexes are left to build after the commit (:func:`etl.direct.load_into_empty`).
    """
    log.debug("direct: ready to copy")
    deferred = direct.load_into_empty(
        conn, files, actor, (lambda name: progress(name, 0, 0)) if progress else None)
    refused = sum(f.refused for f in files)
    write = not (options.strict and refused)
    for f, table in zip(files, tables, strict=True):
        res = _counted(conn, f.plan, table, options, len(files), f.rows, f.refused,
                       good_staged=False)
        res.inserted = f.rows - f.refused if write else 0
        res.unchanged = 0 if write else f.rows - f.refused
        result.files.append(res)
    result.written = write
    return deferred


def _merge(conn: psycopg.Connection, files: list[direct.FileInput], tables: list[Table],
           options: LoadOptions, actor: str, progress: Progress | None,
           result: LoadResult) -> int | None:
    """Stage the rows not known unchanged, check them across rows and merge the good ones.

    Returns the trees in the inventory once merged (None when nothing is written): those the
    scan of the stored digests counted, and those inserted.
    """
    lap = _laps()
    # The server gathers the stored digests (a scan of every tree) while this process reads
    # and digests the files' lines; the fetch waits on the socket and the digests are numpy,
    # so both threads run at once. The main thread leaves the connection alone meanwhile.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fetched = pool.submit(digests.stored_digests, conn)
        for f in files:
            f.digest_lines()
        if not fetched.done():
            # pyarrow imports pandas at its first conversion of Python values, which the
            # checks of the new rows make (0.25 s of CPU): while the server still scans,
            # that wait is free.
            importlib.import_module("pandas")
        stored, trees_before = fetched.result()
    lap("stored digests fetched, lines digested")
    for f in files:
        f.stored = stored
        direct.stage_checked(conn, f)
    direct.repeats_beside_unchanged(conn, files)
    log.debug("direct: %d rows known unchanged by their digest", sum(f.skipped for f in files))
    lap("rows read, checked and staged")
    conn.execute("ANALYZE load_checked")
    validate.cross_checks(conn)
    lap("checks across rows")
    for f, table in zip(files, tables, strict=True):
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE cardinality(problems) > 0) "
            "FROM load_checked WHERE file_no = %s", (f.plan.file_no,)).fetchone()
        assert row is not None
        res = _counted(conn, f.plan, table, options, len(files), int(row[0]) + f.skipped,
                       int(row[1]), skipped=f.skipped)
        result.files.append(res)
    refused = result.total("refused")
    write = not options.dry_run and not (options.strict and refused)
    good = sum(r.rows - r.refused for r in result.files) - sum(f.skipped for f in files)
    dropped = merge.drop_indexes_for_bulk(conn, good) if write else []
    for f, res in zip(files, result.files, strict=True):
        if progress:
            progress("writing", 0, 0)
        if write:
            merge.set_provenance(conn, actor, options.source_name or f.plan.name)
        res.inserted, res.updated = merge.merge_file(conn, f.plan.file_no, dry_run=not write)
        if options.strict and refused:
            res.inserted = res.updated = 0
        res.unchanged = res.rows - res.refused - res.inserted - res.updated
    lap("merged")
    merge.rebuild_indexes(conn, dropped)
    result.written = write
    return trees_before + result.total("inserted") if write else None


def _files_record(result: LoadResult, digests: list[tuple[str, str]]) -> list[dict[str, object]]:
    return [{"name": name, "sha256": sha, "rows": f.rows, "inserted": f.inserted,
             "updated": f.updated, "unchanged": f.unchanged, "refused": f.refused,
             "source_crs": f.source_crs}
            for f, (name, sha) in zip(result.files, digests, strict=True)]


def _plan(conn: psycopg.Connection, file_no: int, table: Table, mapping: Mapping,
          options: LoadOptions) -> validate.FilePlan:
    """Which columns feed which fields, in which CRS; refuses a file missing a needed column."""
    columns, mapping = mapping.for_headers(table.headers, table.path)
    source_crs = _source_crs(table, columns, mapping, options)
    _require(table, columns, mapping)
    dropped = [h for i, h in enumerate(table.headers)
               if i not in columns.values() and attributes.personal(h)]
    if dropped:
        log.warning("%s: not kept, as they name personal data: %s", table.path.name,
                    ", ".join(repr(h) for h in dropped))
    plan = validate.FilePlan(file_no, table.path.name, table.headers, columns, mapping,
                             crsmod.label(source_crs), territory.current(conn), crs=source_crs,
                             extra=attributes.extra_columns(table.headers, columns.values(),
                                                            mapping.exclude))
    conn.execute("INSERT INTO load_files VALUES (%s, %s, %s, %s)",
                 (file_no, plan.name, plan.label("tree_code"), plan.position_label))
    return plan


def _row_context(plan: validate.FilePlan, reference: object) -> int:
    """The seed of a file's row digests: all a row's check depends on besides its cells."""
    return digests.context_digest(plan.headers, sorted(plan.columns.items()), repr(plan.mapping),
                                  plan.source_crs, plan.crs.to_wkt(),
                                  hashlib.sha256(shapely.to_wkb(plan.territory.geometry)).hexdigest(),
                                  reference)


def _source_crs(table: Table, columns: dict[str, int], mapping: Mapping,
                options: LoadOptions) -> crsmod.CRS:
    if options.crs:
        return crsmod.resolve(options.crs)
    if table.kind == "vector":
        if table.crs is None:
            what = "has no .prj file" if table.path.suffix.lower() == ".shp" else "declares no CRS"
            raise InputError(table.path, f"{what}: its coordinate system is unknown; "
                             "give it with --crs (e.g. --crs vn2000-thai-nguyen)")
        return table.crs
    if mapping.crs:
        return crsmod.resolve(mapping.crs)
    if "x" in columns and "y" in columns and not ("lon" in columns and "lat" in columns):
        raise InputError(table.path, "has projected X/Y columns but no CRS: give it with --crs "
                         "(e.g. --crs vn2000-thai-nguyen, vn2000-utm48, utm48)")
    return crsmod.resolve(4326)


def _require(table: Table, columns: dict[str, int], mapping: Mapping) -> None:
    """Refuse the whole file when a required column is absent, naming what was looked for."""
    needed = [("tree_code",), ("species",)]
    for (name,) in needed:
        if name not in columns and name not in mapping.fixed:
            aliases = mapping.fields[name].columns if name in mapping.fields else ()
            raise InputError(
                table.path,
                f"no column for {name.replace('_', ' ')}: expected one of "
                f"{', '.join(repr(a) for a in aliases[:5])}…; the file has "
                f"{', '.join(repr(h) for h in table.headers)} (or give a --mapping)",
                row=1)
    has_position = table.kind == "vector" or ("lon" in columns and "lat" in columns) or (
        "x" in columns and "y" in columns)
    if not has_position:
        raise InputError(
            table.path, "no coordinates: expected longitude/latitude columns (Kinh độ/Vĩ độ, "
            f"lon/lat) or X/Y; the file has {', '.join(repr(h) for h in table.headers)}", row=1)


def _counted(conn: psycopg.Connection, plan: validate.FilePlan, table: Table,
             options: LoadOptions, files: int, rows: int, refused: int, *, skipped: int = 0,
             good_staged: bool = True) -> FileResult:
    """A file's counts, its rejects file written (``skipped``: rows known unchanged, not staged).

    ``good_staged`` false: the good rows are not in ``load_checked`` (written straight into an
    empty inventory), so the territory line is only looked for when every row was refused.
    """
    left_out = table.derivation.left_out if table.derivation is not None else 0
    res = FileResult(table.path, rows=rows, refused=refused, source_crs=plan.source_crs,
                     skipped=skipped, left_out=left_out)
    if res.rows == 0:
        after = f" once the mapping's skip rule left out {left_out}" if left_out else ""
        raise InputError(table.path, "has a header but no data rows" + after)
    if res.refused:
        if options.rejects is None:
            target = report.default_path(table.path)
        elif files == 1:
            target = options.rejects
        else:
            target = options.rejects / report.default_path(table.path).name
        report.write_rejects(conn, plan.file_no, table.headers, target)
        res.rejects_path = target
        res.all_outside = _all_outside(conn, plan) if good_staged or rows == refused else None
    return res


# Rows inside, and the count and extent of those refused as outside (from their messages).
OUTSIDE = """
SELECT count(*) FILTER (WHERE c.geom IS NOT NULL), count(o.m),
       min(o.m[1]::float8), min(o.m[2]::float8), max(o.m[1]::float8), max(o.m[2]::float8)
FROM load_checked c LEFT JOIN LATERAL (
    SELECT regexp_match(p, ': (-?[0-9.]+), (-?[0-9.]+) is outside the territory') AS m
    FROM unnest(c.problems) p WHERE p LIKE '%%is outside the territory%%' LIMIT 1) o ON true
WHERE c.file_no = %s
"""


def _all_outside(conn: psycopg.Connection, plan: validate.FilePlan) -> str | None:
    """One line naming the territory and the file's extent when no position of it is inside."""
    row = conn.execute(OUTSIDE, (plan.file_no,)).fetchone()
    if row is None or row[0] or not row[1]:
        return None
    return territory.outside_line(plan.territory, plan.name, row[1],
                                  (row[2], row[3], row[4], row[5]))


def _laps() -> Callable[[str], None]:
    """A debug log of the seconds each step took since the previous one."""
    last = [time.perf_counter()]

    def lap(what: str) -> None:
        now = time.perf_counter()
        log.debug("%s in %.2f s", what, now - last[0])
        last[0] = now

    return lap


def _ticker(progress: Progress | None, phase: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        progress(phase, done, total)

    return tick

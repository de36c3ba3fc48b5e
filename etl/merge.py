"""The write: checked rows into ``smarttrees.trees``, touching only what changed.

Changed rows are updated, new codes inserted, identical rows left alone (no new row version,
no history); the whole run is one transaction, so it is all or nothing. History rows say who
(``smarttrees.actor``) and from which file (``smarttrees.source``), both set for the
transaction only: the insert trigger of 0001_core writes those of new trees, and the update
of changed trees writes theirs in the same statement (the update trigger, told so, leaves
them alone: migration 0027).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import psycopg

from etl import bulk

log = logging.getLogger(__name__)

# The columns a survey sets; source and source_crs follow a change but are no change by themselves.
COMPARED = ("category", "species_id", "dbh_cm", "height_m", "crown_m", "condition", "planted_on",
            "commune_code", "geom", "attributes")
_OLD = ", ".join(f"t.{c}" for c in COMPARED)
_STAGED = ", ".join(f"c.{c}" for c in COMPARED)

_CHANGED = f"({_OLD}) IS DISTINCT FROM ({_STAGED})"
# A good row has no problems. Written as an equality, not cardinality(…) = 0: ANALYZE then
# knows nearly every row is good, and the planner joins them by hash, not by a million probes.
_GOOD = "c.file_no = %(file_no)s AND c.problems = '{}'"

# New codes: a plain INSERT (no speculative insertion); a code inserted meanwhile by another
# session fails the load as a whole, which is then simply run again.
INSERT_NEW = f"""
INSERT INTO smarttrees.trees (tree_code, {", ".join(COMPARED)}, source, source_crs, load_digest)
SELECT c.tree_code, {_STAGED}, c.source, c.source_crs, c.load_digest
FROM load_checked c
WHERE {_GOOD} AND NOT EXISTS (SELECT 1 FROM smarttrees.trees t WHERE t.tree_code = c.tree_code)
"""

# Known codes, in one pass over the join: rows that differ are updated (new row version and
# history), and trees the file leaves as they are but whose digest differs (written another
# way, or before digests were kept) only take the row's digest, so the next reload skips the row
# (the history trigger compares trees without their digests and records nothing). Returns the
# count of changed trees, of digests refreshed, and whether every good staged row has its tree:
# then no code is new and the search for new codes (INSERT_NEW, 11,300 probes of the code
# index after the update, 0.1-0.25 s) is not made.
#
# The changed trees' history rows are written here, in the same statement, as the update
# trigger of 0007/0027 would write them: each column the update can change that differs,
# {"old": …, "new": …} in JSON, the position as lon/lat rounded to 7 decimals (the history's
# form of a tree, 0023). Old values come from the join, new ones as stored (RETURNING); the
# trigger is told to leave these rows alone (:func:`merge_file`). The subquery that builds them
# is kept whole (OFFSET 0): pulled up, its test ``changes <> '{}'`` built every row's JSON a
# second time.
_KEEP_UNLESS_CHANGED = ("source", "source_crs")
_HISTORY_COLUMNS = tuple(c for c in (*COMPARED, *_KEEP_UNLESS_CHANGED) if c != "geom")
_POSITION = (("lon", "ST_X"), ("lat", "ST_Y"))


def _history_changes() -> str:
    """The ``changes`` object of a ``written`` row: {field: {"old", "new"}} of what differs.

    Compared as stored, turned into JSON only where they differ (two fields of thirteen, most
    often), one object per field concatenated: building every field's JSON, or aggregating the
    fields row by row, took most of the statement's time.
    """
    fields = [(c, f"w.old_{c}", f"w.{c}") for c in _HISTORY_COLUMNS]
    fields += [(key, f"round({f}(w.old_geom)::numeric, 7)", f"round({f}(w.geom)::numeric, 7)")
               for key, f in _POSITION]
    return "\n           || ".join(
        f"CASE WHEN {old} IS DISTINCT FROM {new} THEN jsonb_build_object('{key}', "
        f"jsonb_build_object('old', to_jsonb({old}), 'new', to_jsonb({new}))) ELSE '{{}}' END"
        for key, old, new in fields)


UPDATE_CHANGED = f"""
WITH hit AS MATERIALIZED (
    SELECT t.id, {", ".join(f"c.{col}" for col in (*COMPARED, *_KEEP_UNLESS_CHANGED,
                                                     "load_digest"))},
           {", ".join(f"t.{col} AS old_{col}" for col in (*_HISTORY_COLUMNS, "geom"))},
           {_CHANGED} AS changed,
           {_CHANGED} OR (c.load_digest IS NOT NULL
                          AND t.load_digest IS DISTINCT FROM c.load_digest) AS write
    FROM load_checked c JOIN smarttrees.trees t ON t.tree_code = c.tree_code
    WHERE {_GOOD}
), written AS (
    UPDATE smarttrees.trees t
    SET {", ".join(f"{col} = h.{col}" for col in COMPARED)},
        {", ".join(f"{col} = CASE WHEN h.changed THEN h.{col} ELSE t.{col} END"
                   for col in _KEEP_UNLESS_CHANGED)},
        load_digest = h.load_digest,
        updated_at = CASE WHEN h.changed THEN now() ELSE t.updated_at END
    FROM hit h
    WHERE t.id = h.id AND h.write
    RETURNING h.changed, t.id, t.tree_code,
              {", ".join(f"t.{col}" for col in (*_HISTORY_COLUMNS, "geom"))},
              {", ".join(f"h.old_{col}" for col in (*_HISTORY_COLUMNS, "geom"))}
), history AS (
    INSERT INTO smarttrees.tree_history (tree_id, tree_code, change, actor, source, changes)
    SELECT id, tree_code, 'update', current_setting('smarttrees.actor', true),
           coalesce(nullif(current_setting('smarttrees.source', true), ''), source), changes
    FROM (SELECT w.id, w.tree_code, w.source, {_history_changes()} AS changes
          FROM written w WHERE w.changed OFFSET 0) d
    WHERE changes <> '{{}}'
)
SELECT count(*) FILTER (WHERE changed), count(*) FILTER (WHERE NOT changed),
       (SELECT count(*) FROM hit)
       = (SELECT count(*) FROM load_checked c WHERE {_GOOD})
FROM written
"""
# Tells the update trigger (0027) that the next statement writes its own history, then that
# the statements after it do not.
_HISTORY_BY_LOADER = ("SELECT set_config('smarttrees.history_written_by', txid_current()::text, "
                      "true)")
_HISTORY_BY_TRIGGER = "SELECT set_config('smarttrees.history_written_by', '', true)"

# What the merge would do, without doing it (for --dry-run).
PREVIEW = f"""
SELECT count(*) FILTER (WHERE t.id IS NULL),
       count(*) FILTER (WHERE t.id IS NOT NULL AND {_CHANGED})
FROM load_checked c LEFT JOIN smarttrees.trees t USING (tree_code)
WHERE c.file_no = %(file_no)s AND c.problems = '{{}}'
"""


def set_provenance(conn: psycopg.Connection, actor: str, source: str) -> None:
    """Who and where from, for the history triggers, for this transaction only."""
    conn.execute("SELECT set_config('smarttrees.actor', %s, true), "
                 "set_config('smarttrees.source', %s, true)", (actor, source))


def merge_file(conn: psycopg.Connection, file_no: int, *, dry_run: bool) -> tuple[int, int]:
    """Write one file's good rows; return (inserted, updated)."""
    params = {"file_no": file_no}
    if dry_run:
        row = conn.execute(PREVIEW, params).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
    start = time.perf_counter()
    with _index_friendly(conn):
        conn.execute(_HISTORY_BY_LOADER)
        row = conn.execute(UPDATE_CHANGED, params).fetchone()
        conn.execute(_HISTORY_BY_TRIGGER)
        assert row is not None
        updated, refreshed, all_known = int(row[0]), int(row[1]), bool(row[2])
        log.debug("%d trees updated (with their history), %d digests refreshed, in %.2f s",
                  updated, refreshed, time.perf_counter() - start)
        inserted = 0 if all_known else conn.execute(INSERT_NEW, params).rowcount
    log.debug("%d trees inserted; merge in %.2f s", inserted, time.perf_counter() - start)
    return inserted, updated


# The planner's default cost of a random page (4, a spinning disk's) made it join the few
# thousand staged rows of a resubmitted survey to the whole inventory by hashing every tree,
# twice: 2.1 s of the 11,300-tree update against 0.5 s through the code and id indexes. The
# tables are on SSD and mostly cached; a large merge still takes the hash join.
_MERGE_PLANNER = {"random_page_cost": "1.1"}


@contextlib.contextmanager
def _index_friendly(conn: psycopg.Connection) -> Iterator[None]:
    """Planner costs of :data:`_MERGE_PLANNER` for the statements inside, then the former ones."""
    names = list(_MERGE_PLANNER)
    before = conn.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)),
                          names).fetchone()
    assert before is not None
    _set(conn, _MERGE_PLANNER)
    yield
    # Not on an error: the transaction is then rolled back, and the settings with it.
    _set(conn, dict(zip(names, before, strict=True)))


def _set(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


BULK_MIN_ROWS = 50_000


def drop_indexes_for_bulk(conn: psycopg.Connection, good_rows: int | None, *,
                          keys: bool = False) -> list[str]:
    """Set aside trees' indexes and foreign keys when the load outweighs the table (``etl.bulk``).

    ``good_rows=None`` sets them aside whatever the sizes; the history's go too when the load
    outweighs it (readers of the history then wait for the commit). ``keys`` drops the primary
    and unique keys as well: only for a load into an empty ``trees``, whose rows were checked
    distinct beforehand. Returns the DDL for :func:`rebuild_indexes`.
    """
    if good_rows is not None and (good_rows < BULK_MIN_ROWS
                                  or good_rows <= _rows(conn, "smarttrees.trees")):
        return []
    tables = ["smarttrees.trees"]
    if good_rows is None or good_rows > _rows(conn, "smarttrees.tree_history"):
        tables.append("smarttrees.tree_history")
    return bulk.set_aside(conn, tables, keys=keys)


def _rows(conn: psycopg.Connection, table: str) -> int:
    """The planner's row count of a table (0 when never analysed)."""
    row = conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class "
                       "WHERE oid = %s::regclass", (table,)).fetchone()
    return int(row[0]) if row else 0


def rebuild_indexes(conn: psycopg.Connection, definitions: list[str]) -> None:
    """Recreate what :func:`drop_indexes_for_bulk` set aside, then analyse the two tables."""
    bulk.rebuild(conn, definitions, analyse=("smarttrees.trees", "smarttrees.tree_history"))

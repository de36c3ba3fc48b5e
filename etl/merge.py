"""The write: checked rows into ``smarttrees.trees``, touching only what changed.

Changed rows are updated, new codes inserted, identical rows left alone (no new row version,
no history); the whole run is one transaction, so it is all or nothing. The history
triggers of 0001_core record who (``smarttrees.actor``) and from which file
(``smarttrees.source``), both set for the transaction only.
"""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# The columns a survey sets; source and source_crs follow a change but are no change by themselves.
COMPARED = ("category", "species_id", "dbh_cm", "height_m", "crown_m", "condition", "planted_on",
            "commune_code", "geom")
_OLD = ", ".join(f"t.{c}" for c in COMPARED)
_STAGED = ", ".join(f"c.{c}" for c in COMPARED)

_CHANGED = f"({_OLD}) IS DISTINCT FROM ({_STAGED})"
# A good row has no problems. Written as an equality, not cardinality(…) = 0: ANALYZE then
# knows nearly every row is good, and the planner joins them by hash, not by a million probes.
_GOOD = "c.file_no = %(file_no)s AND c.problems = '{}'"

# New codes: a plain INSERT (no speculative insertion); a code inserted meanwhile by another
# session fails the load as a whole, which is then simply run again.
INSERT_NEW = f"""
INSERT INTO smarttrees.trees (tree_code, {", ".join(COMPARED)}, source, source_crs)
SELECT c.tree_code, {_STAGED}, c.source, c.source_crs
FROM load_checked c
WHERE {_GOOD} AND NOT EXISTS (SELECT 1 FROM smarttrees.trees t WHERE t.tree_code = c.tree_code)
"""

# Known codes: only rows that differ are updated, so unchanged trees keep their row version
# and get no history.
UPDATE_CHANGED = f"""
UPDATE smarttrees.trees t
SET {", ".join(f"{col} = c.{col}" for col in (*COMPARED, "source", "source_crs"))},
    updated_at = now()
FROM load_checked c
WHERE {_GOOD} AND t.tree_code = c.tree_code AND {_CHANGED}
"""

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
    updated = conn.execute(UPDATE_CHANGED, params).rowcount
    inserted = conn.execute(INSERT_NEW, params).rowcount
    return inserted, updated


# Secondary indexes of trees that a bulk load drops and rebuilds: unique ones stay (they guard
# the key), the others are cheaper to build once, sorted, than to grow row by row.
# The same for tree_history, whose rows the insert trigger writes one per new tree, when the
# load outweighs the history too (readers of the history then wait for the commit).
SECONDARY_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary
ORDER BY c.relname
"""
# Foreign keys of trees: checked row by row by triggers on insert; a bulk load re-adds them after,
# which checks every row in one join.
FOREIGN_KEYS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'smarttrees.trees'::regclass AND contype = 'f' ORDER BY conname
"""
# Primary and unique keys of a table, unless a foreign key elsewhere depends on them.
KEYS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint k
WHERE conrelid = %s::regclass AND contype IN ('p', 'u')
  AND NOT EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = k.conindid)
ORDER BY contype, conname
"""
BULK_MIN_ROWS = 50_000


def drop_indexes_for_bulk(conn: psycopg.Connection, good_rows: int | None, *,
                          keys: bool = False) -> list[str]:
    """Drop trees' secondary indexes when the load outweighs the table; return their definitions.

    ``good_rows=None`` drops them whatever the sizes. ``keys`` drops the primary and unique
    keys of ``trees`` and ``tree_history`` too: only for a load into an empty ``trees``, whose
    rows were checked distinct beforehand (the rebuild checks them again).
    Inside the load's transaction, so a failure restores them; readers wait for the lock meanwhile.
    """
    if good_rows is not None and (good_rows < BULK_MIN_ROWS
                                  or good_rows <= _rows(conn, "smarttrees.trees")):
        return []
    tables = ["smarttrees.trees"]
    if good_rows is None or good_rows > _rows(conn, "smarttrees.tree_history"):
        tables.append("smarttrees.tree_history")
    restore = []
    if keys:
        for table in tables:
            for name, definition in conn.execute(KEYS, (table,)).fetchall():
                conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.SQL(table), sql.Identifier(name)))
                restore.append(f"ALTER TABLE {table} ADD CONSTRAINT \"{name}\" {definition}")
    for table in tables:
        definitions = conn.execute(SECONDARY_INDEXES, (table,)).fetchall()
        for name, _ in definitions:
            conn.execute(sql.SQL("DROP INDEX smarttrees.{}").format(sql.Identifier(name)))
        restore += [definition for _, definition in definitions]
    for name, definition in conn.execute(FOREIGN_KEYS).fetchall():
        conn.execute(sql.SQL("ALTER TABLE smarttrees.trees DROP CONSTRAINT {}").format(
            sql.Identifier(name)))
        restore.append(f"ALTER TABLE smarttrees.trees ADD CONSTRAINT \"{name}\" {definition}")
    return restore


def _rows(conn: psycopg.Connection, table: str) -> int:
    """The planner's row count of a table (0 when never analysed)."""
    row = conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class "
                       "WHERE oid = %s::regclass", (table,)).fetchone()
    return int(row[0]) if row else 0


def rebuild_indexes(conn: psycopg.Connection, definitions: list[str]) -> None:
    """Recreate the indexes and constraints dropped for a bulk load (catalogue definitions)."""
    for definition in definitions:
        start = time.perf_counter()
        conn.execute(sql.SQL(definition))  # type: ignore[arg-type,unused-ignore]  # catalogue DDL
        log.debug("%.2f s: %s", time.perf_counter() - start, definition)
    if definitions:
        conn.execute("ANALYZE smarttrees.trees, smarttrees.tree_history")

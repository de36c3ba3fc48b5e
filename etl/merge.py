"""The write: checked rows into ``smarttrees.trees``, touching only what changed.

``INSERT … ON CONFLICT (tree_code) DO UPDATE … WHERE <row differs>``: new codes are inserted,
changed rows updated, identical rows left alone (no new row version, no history). The history
triggers of 0001_core record who (``smarttrees.actor``) and from which file
(``smarttrees.source``), both set for the transaction only.
"""

from __future__ import annotations

import psycopg

# The columns a survey sets; source and source_crs follow a change but are no change by themselves.
COMPARED = ("category", "species_id", "dbh_cm", "height_m", "crown_m", "condition", "planted_on",
            "commune_code", "geom")
_OLD = ", ".join(f"t.{c}" for c in COMPARED)
_NEW = ", ".join(f"EXCLUDED.{c}" for c in COMPARED)
_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*COMPARED, "source", "source_crs"))

MERGE = f"""
WITH m AS (
    INSERT INTO smarttrees.trees AS t (tree_code, {", ".join(COMPARED)}, source, source_crs)
    SELECT c.tree_code, {", ".join(f"c.{col}" for col in COMPARED)}, c.source, c.source_crs
    FROM load_checked c LEFT JOIN smarttrees.trees t USING (tree_code)
    -- Unchanged rows are left out here, not only by the WHERE below: ON CONFLICT would still
    -- lock (and so rewrite) every row it skips.
    WHERE c.file_no = %(file_no)s AND cardinality(c.problems) = 0
      AND (t.id IS NULL OR ({_OLD}) IS DISTINCT FROM ({", ".join(f"c.{col}" for col in COMPARED)}))
    ON CONFLICT (tree_code) DO UPDATE SET {_SET}, updated_at = now()
    WHERE ({_OLD}) IS DISTINCT FROM ({_NEW})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM m
"""

# What the merge would do, without doing it (for --dry-run).
PREVIEW = f"""
SELECT count(*) FILTER (WHERE t.id IS NULL),
       count(*) FILTER (WHERE t.id IS NOT NULL AND ({_OLD}) IS DISTINCT FROM
                        ({", ".join(f"c.{col}" for col in COMPARED)}))
FROM load_checked c LEFT JOIN smarttrees.trees t USING (tree_code)
WHERE c.file_no = %(file_no)s AND cardinality(c.problems) = 0
"""


def set_provenance(conn: psycopg.Connection, actor: str, source: str) -> None:
    """Who and where from, for the history triggers, for this transaction only."""
    conn.execute("SELECT set_config('smarttrees.actor', %s, true), "
                 "set_config('smarttrees.source', %s, true)", (actor, source))


def merge_file(conn: psycopg.Connection, file_no: int, *, dry_run: bool) -> tuple[int, int]:
    """Write one file's good rows; return (inserted, updated)."""
    row = conn.execute(PREVIEW if dry_run else MERGE, {"file_no": file_no}).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])

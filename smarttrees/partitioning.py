"""The national layout: ``smarttrees.trees`` as list partitions, one per province (opt-in).

One province fits one table. For a national inventory, ``smarttrees db partition-trees`` turns
the trees table into a table partitioned ``BY LIST (commune_code)``: one partition per province
(``trees_p<province code>``) listing the codes of that province's communes (``admin_units``,
``parent_code``), and ``trees_unassigned`` (the default partition) for trees whose commune is not
known. The province of a tree is its commune's: PostgreSQL routes a row before any trigger could
fill in a province column, and every writer already sets ``commune_code``, so the key needs no
new column and no writer changes. A query naming communes (or a province's communes) reads only
their partitions; a bbox query probes each partition's own GIST index, which leaves a partition
far from the box at its index's root.

What a partitioned table cannot keep, and what stands in for it:

- a table-wide unique index must include the partition key: ``id`` and ``tree_code`` get unique
  indexes in each partition, ``id`` stays unique through its identity sequence, and a statement
  trigger refuses a ``tree_code`` already used in another partition (SQLSTATE 23505, a 409 in
  the API; two transactions committing the same new code in two provinces at the same instant
  are not caught);
- foreign keys *to* trees: there are none; if a later migration adds one, the command refuses;
- each partition is scanned by one process (``parallel_workers = 0``): a page of one province
  was otherwise planned with parallel workers costing 100 times the query, while a query over
  many provinces still gives whole partitions to parallel workers.

Everything that depends on the table — views and materialised views (recursively), functions
taking its row type, triggers, indexes, foreign keys, grants — is read from the catalogue,
dropped with the old table and made again, in one transaction: any failure leaves the table as
it was. Objects of another kind depending on it stop the command before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from smarttrees.errors import SmartTreesError

TABLE = "smarttrees.trees"
DEFAULT_PARTITION = "trees_unassigned"

# Dependent views and materialised views, each after those it reads (recursively).
DEPENDENT_VIEWS_SQL = """
WITH RECURSIVE deps(oid, depth) AS (
    SELECT DISTINCT r.ev_class, 1
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %(table)s::regclass
      AND r.ev_class <> %(table)s::regclass
    UNION
    SELECT DISTINCT r.ev_class, deps.depth + 1
    FROM deps JOIN pg_depend d ON d.refobjid = deps.oid AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> deps.oid
)
SELECT c.oid::regclass::text, c.relkind, pg_get_viewdef(c.oid), c.relispopulated,
       max(deps.depth) AS depth
FROM deps JOIN pg_class c ON c.oid = deps.oid
GROUP BY c.oid, c.relkind, c.relispopulated
ORDER BY depth
"""
ROWTYPE_FUNCTIONS_SQL = """
SELECT p.oid, pg_get_functiondef(p.oid) FROM pg_proc p
WHERE (SELECT reltype FROM pg_class WHERE oid = %(table)s::regclass) = ANY(p.proargtypes)
   OR p.prorettype = (SELECT reltype FROM pg_class WHERE oid = %(table)s::regclass)
"""
TRIGGERS_SQL = """
SELECT pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = %(table)s::regclass AND NOT tgisinternal ORDER BY tgname
"""
INDEXES_SQL = """
SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
WHERE i.indrelid = %(table)s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY i.indexrelid
"""
FOREIGN_KEYS_SQL = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = %(table)s::regclass AND contype = 'f' ORDER BY conname
"""
REFERENCING_SQL = """
SELECT conrelid::regclass::text FROM pg_constraint
WHERE confrelid = %(table)s::regclass AND contype = 'f'
"""
# Privileges others hold on a relation (grantee NULL: PUBLIC).
GRANTS_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
       string_agg(a.privilege_type, ', ')
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = %(table)s::regclass AND a.grantee <> c.relowner
GROUP BY a.grantee
"""
# Every kind of object that may depend on the table, other than what is made again here.
OTHER_DEPENDENTS_SQL = """
SELECT DISTINCT d.classid::regclass::text FROM pg_depend d
WHERE d.refobjid = %(table)s::regclass AND d.deptype IN ('n', 'a')
  AND d.classid NOT IN ('pg_rewrite'::regclass, 'pg_trigger'::regclass, 'pg_class'::regclass,
                        'pg_constraint'::regclass, 'pg_attrdef'::regclass)
"""
PROVINCES_SQL = """
SELECT DISTINCT ON (code) code, parent_code FROM smarttrees.admin_units
WHERE level = 'commune' AND parent_code IS NOT NULL
ORDER BY code, valid_to IS NULL DESC, valid_from DESC
"""
UNIQUE_CODE_CHECK = """
CREATE FUNCTION smarttrees.refuse_tree_code_twice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A partitioned table has no table-wide unique index on tree_code: each partition has one,
    -- and this statement trigger refuses a code that another partition already holds.
    IF EXISTS (SELECT 1 FROM new_rows n JOIN smarttrees.trees t ON t.tree_code = n.tree_code
               WHERE t.id <> n.id) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "trees_tree_code_key"'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'trees_tree_code_key';
    END IF;
    RETURN NULL;
END $$
"""


@dataclass(frozen=True)
class PartitionReport:
    """What :func:`partition_trees` did: the partitions made and the rows in each."""

    rows: dict[str, int]

    @property
    def total(self) -> int:
        """Trees in all partitions."""
        return sum(self.rows.values())


def is_partitioned(conn: psycopg.Connection) -> bool:
    """True when ``smarttrees.trees`` is already a partitioned table."""
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE]).fetchone()
    return bool(row and row[0] == "p")


def provinces(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The commune codes of each province, from ``admin_units`` (the version in force first)."""
    by_province: dict[str, list[str]] = {}
    for code, province in conn.execute(PROVINCES_SQL):
        by_province.setdefault(str(province), []).append(str(code))
    return by_province


def partition_trees(conn: psycopg.Connection) -> PartitionReport:
    """Turn ``smarttrees.trees`` into list partitions by province, in the caller's transaction.

    Raises
    ------
    SmartTreesError
        Already partitioned, no communes with a province, or objects depending on the table
        that this cannot make again (a foreign key to trees, a policy…): nothing is changed.

    """
    if is_partitioned(conn):
        raise SmartTreesError("smarttrees.trees is partitioned already")
    by_province = provinces(conn)
    if not by_province:
        raise SmartTreesError(
            "no commune has a province (admin_units.parent_code): load the communes with their "
            "province codes first (smarttrees load communes)"
        )
    args = {"table": TABLE}
    _refuse_unknown_dependents(conn, args)
    conn.execute("LOCK TABLE smarttrees.trees IN ACCESS EXCLUSIVE MODE")
    views = conn.execute(DEPENDENT_VIEWS_SQL, args).fetchall()
    view_indexes = [r[0] for v in views for r in conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass", [v[0]])]
    functions = [r[1] for r in conn.execute(ROWTYPE_FUNCTIONS_SQL, args)]
    triggers = [r[0] for r in conn.execute(TRIGGERS_SQL, args)]
    indexes = [r[0] for r in conn.execute(INDEXES_SQL, args)]
    foreign_keys = conn.execute(FOREIGN_KEYS_SQL, args).fetchall()
    grants = [(name, conn.execute(GRANTS_SQL, {"table": name}).fetchall())
              for name in [TABLE, *(v[0] for v in views)]]

    conn.execute("CREATE TABLE smarttrees.trees_national (LIKE smarttrees.trees INCLUDING ALL "
                 "EXCLUDING INDEXES) PARTITION BY LIST (commune_code)")
    for province, communes in sorted(by_province.items()):
        conn.execute(sql.SQL("CREATE TABLE smarttrees.{} PARTITION OF smarttrees.trees_national "
                             "FOR VALUES IN ({})").format(
            sql.Identifier(f"trees_p{province}"),
            sql.SQL(", ").join(sql.Literal(c) for c in communes)))
    conn.execute(sql.SQL("CREATE TABLE smarttrees.{} PARTITION OF smarttrees.trees_national "
                         "DEFAULT").format(sql.Identifier(DEFAULT_PARTITION)))
    conn.execute("INSERT INTO smarttrees.trees_national OVERRIDING SYSTEM VALUE "
                 "SELECT * FROM smarttrees.trees")
    conn.execute("DROP TABLE smarttrees.trees CASCADE")
    conn.execute("ALTER TABLE smarttrees.trees_national RENAME TO trees")
    conn.execute("ALTER SEQUENCE smarttrees.trees_national_id_seq RENAME TO trees_id_seq")
    conn.execute("SELECT setval('smarttrees.trees_id_seq', coalesce(max(id), 0) + 1, false) "
                 "FROM smarttrees.trees")
    _make_again(conn, functions, indexes, foreign_keys, views, view_indexes, triggers, grants)
    for partition in [f"trees_p{p}" for p in sorted(by_province)] + [DEFAULT_PARTITION]:
        ident = sql.Identifier(partition)
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON smarttrees.{} (id)").format(ident))
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON smarttrees.{} (tree_code)").format(ident))
        # Without this, a page of a bbox in one province is planned as a Parallel Append with a
        # Gather Merge: ~100 ms of worker start for a 1 ms query (measured with 300,000 trees).
        # Queries over many provinces still run in parallel, a whole partition to each worker.
        conn.execute(sql.SQL("ALTER TABLE smarttrees.{} SET (parallel_workers = 0)").format(ident))
    conn.execute(UNIQUE_CODE_CHECK)
    for event in ("INSERT", "UPDATE"):
        conn.execute(sql.SQL(
            "CREATE TRIGGER {} AFTER {} ON smarttrees.trees REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_tree_code_twice()").format(
            sql.Identifier(f"trees_unique_code_{event.lower()}"), sql.SQL(event)))
    conn.execute("ANALYZE smarttrees.trees")
    return PartitionReport(partition_counts(conn))


def partition_counts(conn: psycopg.Connection) -> dict[str, int]:
    """The trees in each partition of ``smarttrees.trees`` (empty ones too), by name."""
    names = [str(r[0]) for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname", [TABLE])]
    rows = conn.execute("SELECT tableoid::regclass::text, count(*) FROM smarttrees.trees "
                        "GROUP BY 1").fetchall()
    counts: dict[str, int] = {str(name): int(n) for name, n in rows}
    return {name: int(counts.get(name, 0)) for name in names}


def _refuse_unknown_dependents(conn: psycopg.Connection, args: dict[str, str]) -> None:
    referencing = [r[0] for r in conn.execute(REFERENCING_SQL, args)]
    if referencing:
        raise SmartTreesError(
            f"foreign keys of {', '.join(referencing)} point at smarttrees.trees: a partitioned "
            "table cannot be referenced by id alone; nothing was changed"
        )
    others = [r[0] for r in conn.execute(OTHER_DEPENDENTS_SQL, args)]
    if others:
        raise SmartTreesError(
            f"objects of kind {', '.join(others)} depend on smarttrees.trees and would not be "
            "made again; nothing was changed"
        )


def _make_again(
    conn: psycopg.Connection,
    functions: list[str],
    indexes: list[str],
    foreign_keys: list[tuple[str, str]],
    views: list[tuple[str, str, str, bool, int]],
    view_indexes: list[str],
    triggers: list[str],
    grants: list[tuple[str, list[tuple[str | None, str]]]],
) -> None:
    """Make again, on the partitioned table, what dropping the old one took with it."""
    # Definitions read from the catalogue, run as they were: no value of ours is in them.
    for definition in functions:
        conn.execute(definition.encode())
    for definition in indexes:  # on the parent: PostgreSQL makes one in each partition
        conn.execute(definition.encode())
    for name, definition in foreign_keys:
        conn.execute(sql.SQL("ALTER TABLE smarttrees.trees ADD CONSTRAINT {} {}").format(
            sql.Identifier(name), sql.SQL(definition)))
    for name, kind, query, populated, _ in views:
        materialised = kind == "m"
        conn.execute(sql.SQL("CREATE {} {} AS {} {}").format(
            sql.SQL("MATERIALIZED VIEW" if materialised else "VIEW"),
            sql.SQL(name),
            sql.SQL(query.rstrip().rstrip(";")),
            sql.SQL("WITH DATA" if materialised and populated else
                    "WITH NO DATA" if materialised else "")))
    for definition in view_indexes:
        conn.execute(definition.encode())
    for definition in triggers:
        conn.execute(definition.encode())
    for relation, held in grants:
        for grantee, privileges in held:
            conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(
                sql.SQL(privileges), sql.SQL(relation),
                sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC")))

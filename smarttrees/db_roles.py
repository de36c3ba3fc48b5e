"""PostgreSQL login roles for staff who edit in QGIS, straight in PostGIS (issue 12).

QGIS 3.22 cannot edit OGC API – Features layers, so an editor gets a login role of the database
(``smarttrees users add NAME --role editor --database``): a member of the group role
``smarttrees_editor``, which holds only what editing needs.

- Trees and nurseries: read and write; stands: every column but ``owner_name`` (a household's
  name is personal); their identity sequences. Species, administrative units, the territory and
  ``tree_history``: read only.
- Nothing else: no ``restricted`` schema (citizen-support cases), no users or API tokens, no
  load records. Without a grant PostgreSQL refuses, so personal data stay out of reach whatever
  the client.
- The rules the API relies on hold: CHECK constraints, foreign keys (species), and the
  territory trigger (migration ``0014_territory_rules``) are the database's own.
- History names the person: the role's ``smarttrees.actor`` defaults to its SmartTrees user
  name and ``smarttrees.source`` to ``database``. The trigger functions of the editable tables
  run as their owner (``SECURITY DEFINER``), so an editor needs no grant on the history table.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from psycopg import sql

GROUP = "smarttrees_editor"
PREFIX = "st_"        # login roles are st_<username>: never a name the server already uses
EDITABLE = ("trees", "nurseries")
READABLE = ("species", "admin_units", "communes", "territory", "tree_history")
STANDS_HIDDEN = ("owner_name",)


def login_name(username: str) -> str:
    """The PostgreSQL role of a SmartTrees user: ``st_<username>``."""
    return f"{PREFIX}{username}"


def ensure_group(conn: psycopg.Connection[Any]) -> None:
    """Create (or bring up to date) the editors' group role and its grants; idempotent."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [GROUP]).fetchone()
    group = sql.Identifier(GROUP)
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA smarttrees TO {}").format(group))
    for table in EDITABLE:
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON smarttrees.{} TO {}")
                     .format(sql.Identifier(table), group))
    for table in READABLE:
        conn.execute(sql.SQL("GRANT SELECT ON smarttrees.{} TO {}")
                     .format(sql.Identifier(table), group))
    columns = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'smarttrees.stands'::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
    shown = sql.SQL(", ").join(sql.Identifier(c) for c in columns if c not in STANDS_HIDDEN)
    conn.execute(sql.SQL("GRANT SELECT ({c}), INSERT ({c}), UPDATE ({c}), DELETE "
                         "ON smarttrees.stands TO {g}").format(c=shown, g=group))
    for (sequence,) in conn.execute(
            "SELECT pg_get_serial_sequence('smarttrees.' || t, 'id') "
            "FROM unnest(%s::text[]) t", [[*EDITABLE, "stands"]]).fetchall():
        if sequence:
            conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}")
                         .format(sql.SQL(sequence), group))
    _triggers_as_owner(conn)


def _triggers_as_owner(conn: psycopg.Connection[Any]) -> None:
    """Make every trigger function of the editable tables run as its owner.

    History, grid, count and territory triggers then write their own tables for the editor,
    who holds no grant on them (and so cannot write a history row of their own making).
    """
    functions = conn.execute(
        "SELECT DISTINCT t.tgfoid::regprocedure::text FROM pg_trigger t "
        "WHERE NOT t.tgisinternal AND t.tgrelid = ANY(%s::regclass[])",
        [[f"smarttrees.{t}" for t in (*EDITABLE, "stands")]]).fetchall()
    for (function,) in functions:
        conn.execute(sql.SQL("ALTER FUNCTION {} SECURITY DEFINER SET search_path = "
                             "smarttrees, public").format(sql.SQL(function)))


def create_login(conn: psycopg.Connection[Any], username: str) -> tuple[str, str]:
    """Create the login role of an editor (a new password each time); return (role, password).

    The password is returned once and stored only as PostgreSQL's SCRAM verifier.
    """
    ensure_group(conn)
    role, password = login_name(username), secrets.token_urlsafe(18)
    ident = sql.Identifier(role)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(ident,
                                                                      sql.Literal(password)))
    else:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            ident, sql.Literal(password), sql.Identifier(GROUP)))
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    for name, value in (("smarttrees.actor", sql.Literal(username)),
                        ("smarttrees.source", sql.Literal("database")),
                        ("search_path", sql.SQL("smarttrees, public"))):
        conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
            ident, sql.Identifier(database[0]), sql.SQL(name), value))
    return role, password

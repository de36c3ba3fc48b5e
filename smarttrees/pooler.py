"""PgBouncer in transaction mode in front of SmartTrees' database: the configuration it needs.

In transaction mode each transaction may run on another server connection, so nothing may
outlive a transaction on the server side:

- **startup options** — PgBouncer 1.18 (Debian 12) refuses the ``options`` startup parameter our
  connections carry (``-c search_path=…``), so it is ignored and the same settings are made by
  ``connect_query`` on every server connection PgBouncer opens: the search path, the API's
  statement timeout and its planner setting (no Parallel Append);
- **prepared statements** — psycopg prepares a statement on the server after its fifth run on a
  connection; with ``SMARTTREES_TRANSACTION_POOLER=true`` the server prepares none
  (:mod:`gis_api.database`), and bound parameters go in unnamed statements, which work;
- **session settings** — the history's actor and source are set with ``set_config(…, true)``,
  local to the write's transaction, and the tile queries' ``SET LOCAL``: both end with it.
"""

from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from smarttrees.database import SEARCH_PATH


def _quoted(value: str) -> str:
    """A value of a PgBouncer connection string, single-quoted."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pgbouncer_ini(
    database_url: str,
    *,
    listen_port: int = 6432,
    statement_timeout_ms: int = 10_000,
    pool_size: int = 20,
    folder: Path | None = None,
) -> str:
    """A ``pgbouncer.ini`` serving the database of ``database_url`` in transaction mode.

    Parameters
    ----------
    database_url
        The database PgBouncer connects to (host, port, database name and user are taken
        from it; a password is not written: give it in an ``auth_file``).
    listen_port
        Where PgBouncer listens, on 127.0.0.1.
    statement_timeout_ms
        The API's statement timeout, set on every server connection (0 = none).
    pool_size
        Server connections per database and user.
    folder
        Where the pid and log files go; ``None`` leaves them unset (PgBouncer logs to stderr).

    """
    parts = conninfo_to_dict(database_url)
    dbname = str(parts.get("dbname") or "smarttrees")
    user = str(parts.get("user") or "smarttrees")
    # The API's session settings (gis_api.database.server_conninfo), made here instead.
    connect = (f"SET search_path = {SEARCH_PATH}; SET statement_timeout = {statement_timeout_ms}; "
               "SET enable_parallel_append = off")
    target = " ".join([
        f"host={parts.get('host') or '127.0.0.1'}",
        f"port={parts.get('port') or 5432}",
        f"dbname={dbname}",
        f"user={user}",
        f"connect_query={_quoted(connect)}",
    ])
    lines = [
        "; written by `smarttrees db pgbouncer-config` (transaction pooling for SmartTrees)",
        "[databases]",
        f"{dbname} = {target}",
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {listen_port}",
        "unix_socket_dir =",
        "pool_mode = transaction",
        f"default_pool_size = {pool_size}",
        "max_client_conn = 1000",
        "; the managed cluster trusts local connections; for a shared server use scram-sha-256",
        "; with an auth_file (or auth_query) instead",
        "auth_type = any",
        "; our connections send -c search_path=... in options: made by connect_query above",
        "ignore_startup_parameters = extra_float_digits, options",
        "server_reset_query =",
    ]
    if folder is not None:
        lines += [f"logfile = {folder / 'pgbouncer.log'}", f"pidfile = {folder / 'pgbouncer.pid'}"]
    return "\n".join(lines) + "\n"

"""The server's database pool: bounded queries, checked connections, and the truth about outages.

- Every connection of the server (the pool's, and the pygeoapi provider's for HTML pages) runs
  with ``statement_timeout`` (``SMARTTREES_STATEMENT_TIMEOUT_MS``), so no API query holds a
  connection for longer; the loaders connect without it (:func:`smarttrees.database.connect`).
- Every connection is checked when it leaves the pool (a ``select`` on its socket; an empty
  query when something is waiting there). After PostgreSQL restarts, the first stale connection
  fails that check and the pool replaces all its idle connections at once (they are stale too),
  before a request sees them — instead of failing the first request on each connection (and
  the one after).
- The pool remembers whether its last attempt to connect failed (:class:`Health`), so that a
  request that found no connection is told the truth: the database is unreachable, or the server
  is busy. :func:`probe` asks PostgreSQL directly, for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import select
import time
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from gis_api.errors import Busy, Unreachable
from smarttrees.database import with_search_path
from smarttrees.settings import Settings

# How the API's sessions show in pg_stat_activity (the loaders' do not carry it).
APPLICATION_NAME = "smarttrees-api"

# No Parallel Append in the API's sessions. Over the national layout (trees partitioned by
# province, `smarttrees db partition-trees`) the generic plan of a prepared bbox page, made
# without the box's row estimate, gathered the partitions' index scans with two workers: 50-60 ms
# of worker start for a 1 ms query, 32 ms against 4 ms on one table. The partitions themselves
# have no parallel scans (parallel_workers = 0); only this mixed kind of plan was left.
SERIAL_APPEND = "-c enable_parallel_append=off"


def server_conninfo(url: str, settings: Settings) -> str:
    """``url`` with the API sessions' statement timeout, planner setting and application name.

    Used by the pool and by the pygeoapi provider (its HTML pages), so that every query the
    server runs for a client is bounded.
    """
    options = conninfo_to_dict(url).get("options") or ""
    timeout = f"-c statement_timeout={settings.statement_timeout_ms}"
    return make_conninfo(
        url, options=f"{options} {timeout} {SERIAL_APPEND}".strip(),
        application_name=APPLICATION_NAME,
    )


class Health:
    """The outcome of the pool's most recent attempt to open a connection."""

    def __init__(self) -> None:
        self.failed_at: float | None = None

    @property
    def unreachable(self) -> bool:
        """True when the last connection attempt failed."""
        return self.failed_at is not None

    def connected(self) -> None:
        """Record a successful connection."""
        self.failed_at = None

    def failed(self) -> None:
        """Record a failed connection attempt."""
        self.failed_at = time.monotonic()


def _tracked_connection_class(health: Health) -> type[AsyncConnection[TupleRow]]:
    """An :class:`AsyncConnection` whose ``connect`` reports its outcome to ``health``."""

    class TrackedConnection(AsyncConnection[TupleRow]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # noqa: D102 - the parent's
            try:
                conn = await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError:
                health.failed()
                raise
            health.connected()
            return conn

    return TrackedConnection


class ServerPool(AsyncConnectionPool[AsyncConnection[TupleRow]]):
    """The API's connection pool; see the module docstring.

    Parameters
    ----------
    url
        The database URL.
    settings
        Pool sizes, the wait for a free connection and the statement timeout.

    """

    def __init__(self, url: str, settings: Settings) -> None:
        # psycopg_pool retries a lost server after 1, 2, 4, 8… s: once PostgreSQL is back,
        # requests would still fail for as long as the last wait. Retrying every second (a
        # local TCP connect) makes the pool come back within a second of the database.
        AttemptWithBackoff.DELAY_BACKOFF = 1.0
        self.health = Health()
        conninfo = server_conninfo(url, settings)
        super().__init__(
            conninfo,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout_s,
            # Autocommit: reads need no transaction; writes open one explicitly.
            kwargs={"autocommit": True, "options": with_search_path(conninfo),
                    # Behind PgBouncer in transaction mode, the next statement may find another
                    # server connection, without this one's prepared statements: prepare none.
                    "prepare_threshold": None if settings.transaction_pooler else 5},
            connection_class=_tracked_connection_class(self.health),
            check=self._check,
            open=False,
            name="smarttrees",
        )
        self.url = conninfo
        self._drained_at = 0.0

    async def _check(self, conn: AsyncConnection[TupleRow]) -> None:
        """Check a connection leaving the pool; drain the pool when it is dead.

        An idle connection in good health has nothing to read: a server that ended it (a restart,
        a shutdown, a crash) left an error message or the end of the stream on its socket. So only
        a connection with something to read gets the pool's own check (an empty query), and the
        others cost a ``select`` instead of a round trip.
        """
        if not _has_input(conn):
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except psycopg.Error:
            await self.connection_lost()
            raise

    async def connection_lost(self) -> None:
        """Replace every idle connection: one found dead means PostgreSQL restarted or stopped.

        Without this, each stale connection would be found by a request of its own, the pool
        waiting a second or more between them. At most once a second.
        """
        if time.monotonic() - self._drained_at > 1.0:
            self._drained_at = time.monotonic()
            await self.drain()

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[TupleRow]:
        """A checked connection; :class:`Unreachable` or :class:`Busy` (both 503) when none comes.

        Parameters
        ----------
        timeout
            Seconds to wait; ``None`` = ``SMARTTREES_POOL_TIMEOUT_S``.

        """
        try:
            return await super().getconn(timeout)
        except PoolTimeout:
            if self.health.unreachable:
                raise Unreachable("the database cannot be reached; retry shortly") from None
            raise Busy("every database connection is in use; retry shortly") from None


def _has_input(conn: AsyncConnection[TupleRow]) -> bool:
    """True when the connection's socket has bytes (or its end) waiting, or it is closed."""
    if conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


async def probe(url: str, timeout: float = 2.0) -> bool:
    """True when PostgreSQL at ``url`` accepts a new connection and answers within ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            conn = await AsyncConnection.connect(url, connect_timeout=max(1, round(timeout)))
            async with conn:
                await conn.execute("SELECT 1")
    except (psycopg.Error, TimeoutError):
        return False
    return True

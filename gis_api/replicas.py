"""Reads on replicas: which database serves a request, and what happens when a replica fails.

With ``SMARTTREES_REPLICA_URLS`` set, the read routes (items, one item, tiles, tileset
metadata) run on a healthy replica, in turn; everything else — writes, the scan API, pages that
read what was just written — stays on the primary (``app.state.pool``). A request reads from the
primary too when its client wrote in the last ``SMARTTREES_READ_OWN_WRITES_S`` seconds: the
same client (a cookie set on the write's answer) or the same bearer token (remembered per server
process), so nobody misses their own edit on a replica that is a moment behind.

A replica is in rotation while the last check (every ``SMARTTREES_REPLICA_CHECK_S``) found it
answering, in recovery and at most ``SMARTTREES_REPLICA_MAX_LAG_S`` behind. A read that fails on
a replica because the connection broke, the replica cannot be reached or its pool is full takes
it out of rotation (for a lost connection) and runs again on the primary: the client sees its
answer, never the replica's failure. The next good check puts the replica back.

The tile cache stays right: a tile is cached under the trees' data version read on the
database that rendered it (:mod:`gis_api.tiles.endpoints`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis_api.auth import bearer_token
from gis_api.database import ServerPool
from gis_api.errors import QueryTimeout, Unavailable
from smarttrees.accounts import hash_token
from smarttrees.replication import (
    PRIMARY_LSN_SQL,
    REPLICA_STATE_SQL,
    ReplicaState,
    redacted,
    state_of,
)
from smarttrees.settings import Settings

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
WROTE_COOKIE = "smarttrees-wrote"  # the time of the client's last write, unix seconds
REPLICA_WAIT_S = 1.0  # a replica pool this long without a free connection: read on the primary
CHECK_TIMEOUT_S = 2.0
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Replica:
    """One replica: its pool, the last check's finding, and the reads it served."""

    name: str
    url: str
    pool: ServerPool
    state: ReplicaState = field(default_factory=lambda: ReplicaState(None, "not checked yet"))
    in_rotation: bool = False
    reads: int = 0

    def status(self) -> dict[str, Any]:
        """The replica as ``/readyz`` shows it (no password)."""
        lag = None if self.state.lag_s is None else round(self.state.lag_s, 3)
        return {"name": self.name, "url": redacted(self.url), "in_rotation": self.in_rotation,
                "lag_s": lag, "error": self.state.error, "reads": self.reads}


class ReadRouter:
    """Chooses the database of each read; checks the replicas in the background.

    Parameters
    ----------
    primary
        The primary's pool (writes, and reads when no replica serves).
    replica_urls
        The replicas' URLs (``SMARTTREES_REPLICA_URLS``); none = every read on the primary.
    settings
        Lag limit, check interval, read-your-own-writes window, pool settings.

    """

    def __init__(self, primary: ServerPool, replica_urls: list[str], settings: Settings) -> None:
        self.primary = primary
        self.settings = settings
        waiting = settings.model_copy(
            update={"pool_timeout_s": min(REPLICA_WAIT_S, settings.pool_timeout_s)}
        )
        self.replicas = [Replica(f"replica {i}", url, ServerPool(url, waiting))
                         for i, url in enumerate(replica_urls, 1)]
        self.primary_reads = 0
        self._turn = itertools.count()
        self._writers: dict[str, float] = {}  # token hash → when it last wrote (monotonic)
        self._checker: asyncio.Task[None] | None = None

    # -- lifetime -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the replicas' pools, check them once, and keep checking in the background."""
        for replica in self.replicas:
            await replica.pool.open()
        if self.replicas:
            await self.check()
            self._checker = asyncio.create_task(self._keep_checking())

    async def close(self) -> None:
        """Stop checking and close the replicas' pools."""
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        for replica in self.replicas:
            await replica.pool.close()

    async def _keep_checking(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_check_s)
            try:
                await self.check()
            except Exception:  # a check must never stop the checking
                log.exception("checking the replicas failed")

    async def check(self) -> None:
        """Measure every replica against the primary's WAL position; update the rotation."""
        lsn = await _primary_lsn(self.primary.url)
        states = await asyncio.gather(*(_check(r.url, lsn) for r in self.replicas))
        for replica, state in zip(self.replicas, states, strict=True):
            healthy = state.healthy(self.settings.replica_max_lag_s)
            if healthy != replica.in_rotation:
                why = "healthy" if healthy else (state.error or f"{state.lag_s:.1f} s behind")
                log.warning("%s %s rotation: %s", replica.name,
                            "back in" if healthy else "out of", why)
            replica.state, replica.in_rotation = state, healthy

    # -- choosing -------------------------------------------------------------------------------

    def choose(self, request: Request) -> Replica | None:
        """The replica to read from, or ``None`` for the primary."""
        if request.method not in ("GET", "HEAD") or self.reads_own_writes(request):
            return None
        serving = [r for r in self.replicas if r.in_rotation]
        if not serving:
            return None
        return serving[next(self._turn) % len(serving)]

    def reads_own_writes(self, request: Request) -> bool:
        """True when the request's client or token wrote within the read-your-writes window."""
        window = self.settings.read_own_writes_s
        try:
            wrote = float(request.cookies.get(WROTE_COOKIE, ""))
        except ValueError:
            wrote = 0.0
        if time.time() - wrote < window:
            return True
        token = bearer_token(request)
        if token is None:
            return False
        last = self._writers.get(hash_token(token))
        return last is not None and time.monotonic() - last < window

    def wrote(self, token: str | None) -> None:
        """Remember that ``token`` (if any) wrote just now; forget tokens past the window."""
        now = time.monotonic()
        if token is not None:
            self._writers[hash_token(token)] = now
        if len(self._writers) > 10_000:  # bounded: drop what the window no longer needs
            window = self.settings.read_own_writes_s
            self._writers = {k: t for k, t in self._writers.items() if now - t < window}

    # -- serving --------------------------------------------------------------------------------

    async def serve(self, request: Request, endpoint: Endpoint) -> Response:
        """Run a read ``endpoint`` on the chosen database; on the primary if a replica fails."""
        replica = self.choose(request)
        if replica is None:
            return await self._on_primary(request, endpoint)
        request.state.read_pool = replica.pool
        try:
            response = await endpoint(request)
        except (psycopg.OperationalError, Unavailable) as exc:
            if isinstance(exc, psycopg.errors.QueryCanceled | QueryTimeout):
                raise  # the statement timeout: as slow on the primary, answered as such
            await self._failed(replica, exc)
            return await self._on_primary(request, endpoint)
        finally:
            if request.state.read_pool is replica.pool:  # answered there (a 404 included)
                replica.reads += 1
        return response

    async def _on_primary(self, request: Request, endpoint: Endpoint) -> Response:
        request.state.read_pool = self.primary
        try:
            return await endpoint(request)
        finally:
            self.primary_reads += 1

    async def _failed(self, replica: Replica, exc: Exception) -> None:
        """Take a replica whose connection broke out of rotation (a full pool stays in)."""
        sqlstate = getattr(exc, "sqlstate", None)
        lost = isinstance(exc, psycopg.OperationalError) and (
            sqlstate is None or sqlstate.startswith(("08", "57P")))
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if lost or replica.pool.health.unreachable:
            replica.in_rotation = False
            replica.state = ReplicaState(None, f"failed a read: {first}")
            log.warning("%s out of rotation: %s", replica.name, first)
            await replica.pool.connection_lost()
        else:
            log.info("%s could not serve a read (%s); read on the primary", replica.name, first)

    def status(self) -> dict[str, Any]:
        """Where reads went and each replica's state, for ``/readyz``."""
        return {"primary_reads": self.primary_reads,
                "replicas": [r.status() for r in self.replicas]}


def read_pool(request: Request) -> ServerPool:
    """The pool a read route runs on: chosen by :func:`reading`, else the primary's."""
    pool = getattr(request.state, "read_pool", None)
    return pool if pool is not None else request.app.state.pool


def reading(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` as a read route: served by a replica when one is healthy (see module doc)."""

    @functools.wraps(endpoint)
    async def read(request: Request) -> Response:
        router: ReadRouter | None = getattr(request.app.state, "reads", None)
        if router is None or not router.replicas:
            return await endpoint(request)
        return await router.serve(request, endpoint)

    return read


class RememberWrites:
    """ASGI middleware: a successful write marks its client and token for reads on the primary.

    The answer to every write below 400 carries the cookie ``smarttrees-wrote`` (its time,
    valid for the read-your-writes window), and the token is remembered by the app's
    :class:`ReadRouter`. Only when replicas are configured; otherwise it passes through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        router: ReadRouter | None = getattr(scope["app"].state, "reads", None)
        if router is None or not router.replicas:
            await self.app(scope, receive, send)
            return
        window = max(1, round(router.settings.read_own_writes_s))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                cookie = f"{WROTE_COOKIE}={time.time():.3f}; Max-Age={window}; Path=/; SameSite=Lax"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
                router.wrote(bearer_token(Request(scope)))
            await send(message)

        await self.app(scope, receive, sending)


async def _primary_lsn(url: str) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            conn = await AsyncConnection.connect(url, autocommit=True, connect_timeout=2)
            async with conn:
                row = await (await conn.execute(PRIMARY_LSN_SQL)).fetchone()
    except (psycopg.Error, TimeoutError):
        return None
    return str(row[0]) if row else None


async def _check(url: str, lsn: str | None) -> ReplicaState:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            conn = await AsyncConnection.connect(url, autocommit=True, connect_timeout=2)
            async with conn:
                row = await (await conn.execute(REPLICA_STATE_SQL, {"lsn": lsn})).fetchone()
    except TimeoutError:
        return ReplicaState(None, f"no answer within {CHECK_TIMEOUT_S:g} s")
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ReplicaState(None, f"unreachable: {first}")
    return state_of(row)

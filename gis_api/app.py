"""The assembled ASGI application: our routes first, then the OGC APIs.

Nothing happens at import time: :func:`create_app` builds the app, and its lifespan opens the
database pool (``app.state.pool``) and closes it on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gis_api import (
    care,
    care_reports,
    field,
    ioc,
    items,
    ogc,
    photos,
    raster_tiles,
    scans,
    tiles,
    trace_exports,
    transactions,
    webmap,
)
from gis_api.database import ServerPool, probe, server_conninfo
from gis_api.errors import Busy, Unavailable, Unreachable, exception_handlers
from gis_api.guards import RequestGuards
from gis_api.replicas import ReadRouter, RememberWrites
from gis_api.workload import CancelOnDisconnect, FilterLane
from smarttrees.database import database_url
from smarttrees.settings import Settings, get_settings

log = logging.getLogger(__name__)

# How long /readyz waits for a pooled connection before asking PostgreSQL directly.
READY_WAIT_S = 1.0


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: "ready" (200), or 503 with status "busy" or "unreachable".

    A pooled connection that answers ``SELECT 1`` within a second means ready. Otherwise a new
    connection, outside the pool, tells the two failures apart: PostgreSQL answers it, so every
    pooled connection is taken (busy), or it does not (unreachable).
    """
    pool: ServerPool = request.app.state.pool
    try:
        async with asyncio.timeout(READY_WAIT_S):
            async with pool.connection(timeout=READY_WAIT_S) as conn:
                await conn.execute("SELECT 1")
        reads: ReadRouter | None = getattr(request.app.state, "reads", None)
        if reads is not None and reads.replicas:  # where reads go (gis_api.replicas)
            return JSONResponse({"status": "ready", "reads": reads.status()})
        return JSONResponse({"status": "ready"})
    except Exception as exc:  # any failure means "not ready"; the probe below says which kind
        log.warning("database not ready: %s", type(exc).__name__)
    error: Unavailable
    if await probe(pool.url):
        status, error = "busy", Busy("every database connection is in use; retry shortly")
    else:
        status, error = "unreachable", Unreachable("the database cannot be reached")
    body = {"status": status, "code": error.code, "description": error.description}
    return JSONResponse(body, 503, headers={"Retry-After": str(error.retry_after)})


async def _start_ogc(app: Starlette, settings: Settings, url: str) -> None:
    """Build pygeoapi on a pool of its own, without the statement timeout.

    Its startup reads whole tables (the extents): not a client's query. The provider it
    configures connects with the timeout.
    """
    unbounded = settings.model_copy(update={"statement_timeout_ms": 0, "pool_min_size": 1})
    async with ServerPool(url, unbounded) as startup_pool:
        app.state.pool = startup_pool
        await ogc.start(app, settings, server_conninfo(url, settings))


def route_table(settings: Settings) -> list[BaseRoute]:
    """Every route of the server, in the order they are matched.

    Each family is imported explicitly: a missing or mistyped module fails at import, never
    drops its routes silently.
    """
    return [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/readyz", readyz, methods=["GET"], name="readyz"),
        # The busiest reads first: Starlette tries the routes in turn, and no route above
        # the OGC documents takes a path of the items.
        *items.routes(),  # our items, before pygeoapi's documents
        *raster_tiles.routes(),  # before the vector tiles: its .../{x}.png is the more specific
        *tiles.routes(),
        *webmap.routes(),
        *scans.routes(),
        *field.routes(),
        *trace_exports.routes(),
        *ioc.routes(),
        *care.routes(),
        *care_reports.routes(),
        *photos.routes(),
        *transactions.routes(),  # the writes to items (OGC API Features Part 4)
        *ogc.routes(settings),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the SmartTrees ASGI application.

    Parameters
    ----------
    settings
        The settings to serve with; ``None`` reads them from the environment.

    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # database_url may start the managed cluster: blocking work, off the event loop.
        url = await asyncio.to_thread(database_url, settings)
        await _start_ogc(app, settings, url)
        pool = ServerPool(url, settings)
        await pool.open()
        app.state.pool = pool
        reads = ReadRouter(pool, settings.replicas, settings)
        await reads.open()
        app.state.reads = reads
        try:
            yield
        finally:
            await reads.close()
            await pool.close()

    app = Starlette(
        routes=route_table(settings),
        lifespan=lifespan,
        # Outermost first: a client's departure cancels the work, queued filters included.
        # The guards come last, next to the routes: the body cap must wrap the channel the
        # routes read from (CancelOnDisconnect reads the client's for them).
        middleware=[
            Middleware(CancelOnDisconnect),
            Middleware(RememberWrites),  # reads after a write go to the primary (replicas)
            Middleware(FilterLane, slots=settings.filter_slots),
            Middleware(RequestGuards, max_body_bytes=int(settings.max_body_mb * 1024 * 1024)),
        ],
        exception_handlers=dict(exception_handlers()),
    )
    app.state.settings = settings
    return app


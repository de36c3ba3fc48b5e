"""The assembled ASGI application: our routes first, then the OGC APIs.

Nothing happens at import time: :func:`create_app` builds the app, and its lifespan opens the
database pool (``app.state.pool``) and closes it on shutdown.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gis_api import ogc
from gis_api.errors import Unavailable, exception_handlers
from smarttrees.database import SEARCH_PATH, database_url
from smarttrees.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Route modules owned by other parts of the server; each is optional while it is being built.
OPTIONAL_ROUTE_MODULES: tuple[str, ...] = ("gis_api.tiles", "gis_api.webmap", "gis_api.scans")
OPTIONAL_ROUTE_MODULES += ("gis_api.ioc",)  # the IOC summary and dashboard (issue 13)


def optional_routes(names: tuple[str, ...] = OPTIONAL_ROUTE_MODULES) -> list[BaseRoute]:
    """Routes of each module in ``names`` that exists (a module not written yet is skipped)."""
    routes: list[BaseRoute] = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports is missing
                raise
            continue
        routes.extend(module.routes())
    return routes


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers within two seconds."""
    try:
        async with asyncio.timeout(2):
            async with request.app.state.pool.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("database not ready: %s", type(exc).__name__)
        raise Unavailable("the database cannot be reached") from None
    return JSONResponse({"status": "ready"})


def _pool(settings: Settings, url: str) -> AsyncConnectionPool:
    # Autocommit: reads need no transaction; writes open one explicitly.
    return AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs={"autocommit": True, "options": f"-c search_path={SEARCH_PATH}"},
        open=False,
        name="smarttrees",
    )


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
        pool = _pool(settings, url)
        await pool.open()
        app.state.pool = pool
        try:
            await ogc.start(app, settings, url)
            yield
        finally:
            await pool.close()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/readyz", readyz, methods=["GET"], name="readyz"),
    ]
    routes += optional_routes()
    routes += ogc.routes(settings)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=dict(exception_handlers()),
    )
    app.state.settings = settings
    return app


"""``smarttrees serve``: run the HTTP server."""

from __future__ import annotations

import typer


def run_server(host: str, port: int, workers: int = 1) -> None:
    """Serve the SmartTrees app with uvicorn until interrupted (``workers`` processes)."""
    import os

    import uvicorn

    from gis_api.logs import access_log_config
    from smarttrees.settings import get_settings

    # The app factory reads the settings: tell it where it listens, for the links it writes.
    os.environ["SMARTTREES_HOST"] = host
    os.environ["SMARTTREES_PORT"] = str(port)
    get_settings.cache_clear()
    uvicorn.run(
        "gis_api.app:create_app",
        factory=True,
        host=host,
        port=port,
        proxy_headers=True,
        log_level="info",
        log_config=access_log_config(),
        workers=workers,
    )


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command."""

    @app.command()
    def serve(
        host: str | None = typer.Option(None, help="Address to listen on (settings: host)."),
        port: int | None = typer.Option(None, help="Port to listen on (settings: port)."),
        workers: int | None = typer.Option(
            None, min=1, help="Server processes, e.g. one per core (settings: workers)."
        ),
    ) -> None:
        """Serve the OGC APIs, the web map and the scan API over HTTP."""
        from smarttrees.settings import get_settings

        settings = get_settings()
        run_server(host or settings.host, port or settings.port, workers or settings.workers)

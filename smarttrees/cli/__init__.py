"""The ``smarttrees`` command: the one place that wires the packages together.

Each command family lives in its own module here and imports the heavy packages (etl, gis_api,
barcodes) inside its functions, so that ``smarttrees --help`` stays quick.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from smarttrees.errors import SmartTreesError

app = typer.Typer(
    name="smarttrees",
    help="SmartTrees: the tree and forestry GIS of a province.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)  # paths in messages must not be split


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from smarttrees.cli import backup, db, export

    app.add_typer(db.app, name="db")
    backup.register(db.app)
    export.register(app)
    # The other families register themselves when their module exists.
    for name in ("generate", "load", "serve", "users", "labels", "scan", "raster", "ioc"):
        try:
            module = __import__(f"smarttrees.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"smarttrees.cli.{name}":
                raise
            continue
        module.register(app)


def main() -> None:
    """Entry point of the console script: SmartTrees errors are one clear line, exit code 1."""
    _register()
    try:
        app()
    except SmartTreesError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)

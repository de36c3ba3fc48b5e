"""The ``smarttrees`` command: the one place that wires the packages together.

Each command family lives in its own module here and imports the heavy packages (etl, gis_api,
barcodes) inside its functions, so that ``smarttrees --help`` stays quick.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import typer
from rich.console import Console

from smarttrees import __version__

app = typer.Typer(
    name="smarttrees",
    help="SmartTrees: the tree and forestry GIS of a province.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)  # paths in messages must not be split


_debug = False   # --debug: let an unexpected error through with its traceback


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"smarttrees {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.",
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
    debug: bool = typer.Option(False, "--debug", help="Show where an internal error happened."),
) -> None:
    global _debug
    _debug = debug
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("numexpr").setLevel(logging.WARNING)   # its thread count is no news
    # GDAL's own words on a failed read come as rasterio INFO lines; our error names the file
    # in one line, so they are shown only when asked for (-v).
    logging.getLogger("rasterio").setLevel(logging.INFO if verbose else logging.WARNING)


def _register() -> None:
    """Add every command family, each imported explicitly (a missing module fails loudly)."""
    from smarttrees.cli import (
        backup,
        carbon,
        care,
        db,
        export,
        generate,
        ioc,
        ioc_load,
        labels,
        load,
        raster,
        scan,
        serve,
        species,
        teams,
        territory,
        tiles,
        trace,
        users,
    )

    app.add_typer(db.app, name="db")
    backup.register(db.app)
    export.register(app)
    generate.register(app)
    load.register(app)
    ioc_load.add_commands(load.app)  # the IOC's loaders: load agencies, documents, ...
    serve.register(app)
    users.register(app)
    labels.register(app)
    scan.register(app)
    raster.register(app)
    ioc.register(app)
    carbon.register(app)
    trace.register(app)
    care.register(app)
    tiles.register(app)
    territory.register(app, load.app)
    species.register(app, load.app)
    teams.register(app)


def main() -> None:
    """Entry point of the console script: whatever fails is one line on stderr and an exit code.

    See :mod:`smarttrees.cli.failures` for the wording and the codes; ``--debug`` shows the
    traceback of an internal error. The loaders end without the interpreter's teardown
    (:func:`_end_now`).
    """
    try:
        _main()
    except SystemExit as exc:
        # (Not under a profiler or tracer: cProfile and coverage write their data after it.)
        if [a for a in sys.argv[1:] if not a.startswith("-")][:1] == ["load"] \
                and sys.getprofile() is None and sys.gettrace() is None:
            _end_now(exc.code)
        raise


def _end_now(code: object) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, without tearing the interpreter down.

    The teardown of the modules a loader imports (pandas alone 0.2 s) took 0.3 s after a
    province's load had finished, for memory the system frees anyway. What the teardown would
    run still runs: the threads that are not daemons are waited for, the ``atexit`` functions
    run (logging's flush, the temporary files' removal), and the output is flushed.
    """
    import atexit
    import contextlib
    import os
    import threading

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):    # a closed pipe: as Python would
            stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _main() -> None:
    from etl import prefetch
    from smarttrees.cli import failures

    # `load trees` on one workbook: its sheet is read in Rust while the commands are imported;
    # on one CSV, its bytes are read, digested and split into lines meanwhile.
    prefetch.start_from_argv(sys.argv[1:])
    try:
        _register()
        app()   # click's usage errors and --help end here, as click words them
    except SystemExit as exc:
        if exc.code == failures.INTERRUPTED:   # click turns Ctrl-C in a command into exit 130
            err.print(failures.explain(KeyboardInterrupt()).message, highlight=False,
                      markup=False)
        raise
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - every failure is worded
        failure = failures.explain(exc)
        if _debug and failure.code == failures.INTERNAL:
            raise
        logging.getLogger("smarttrees.cli").debug("command failed", exc_info=True)
        err.print(failure.message, highlight=False, markup=False)
        sys.exit(failure.code)

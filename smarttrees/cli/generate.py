"""``smarttrees generate`` and ``smarttrees demo``: the synthetic province, served.

``demo`` runs the whole thing on a local PostGIS in one command.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from etl.synthetic import ProvinceSummary

out = Console(soft_wrap=True)  # one line per message: logs and tests read whole lines


class ScaleName(StrEnum):
    """The sizes ``smarttrees generate`` knows."""

    SMALL = "small"
    FULL = "full"


def _interactive() -> bool:
    """Progress bars on a terminal only: CI logs and pipes stay quiet."""
    return sys.stdout.isatty() and not os.environ.get("CI")


def _log_steps() -> Callable[[str, int, int], None]:
    """Off a terminal: one debug log line per finished step, with the time since the start."""
    started = time.perf_counter()
    log = logging.getLogger("smarttrees.generate")

    def report(step: str, done: int, total: int) -> None:
        if done == total:
            log.debug("%s: %s done at %.1f s", step, f"{total:,}", time.perf_counter() - started)

    return report


@contextmanager
def _progress() -> Iterator[object]:
    """A ``progress(step, done, total)`` callback drawing rich bars, or None when not a TTY."""
    if not _interactive():
        yield _log_steps()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    tasks: dict[str, object] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    ) as bars:

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total)
            bars.update(tasks[step], completed=done, total=total)  # type: ignore[arg-type]

        yield report


def _describe(summary: ProvinceSummary) -> str:
    by = summary.trees_by_category
    return (
        f"{summary.trees:,} trees ({by.get('urban', 0):,} urban, {by.get('scattered', 0):,} "
        f"scattered, {by.get('plantation', 0):,} plantation) in {summary.communes} communes; "
        f"{summary.stands:,} stands, {summary.nurseries} nurseries, "
        f"{summary.seedling_lots:,} seedling lots, {summary.timber_logs:,} timber logs, "
        f"{summary.scan_events:,} custody scans ({summary.transport_loads:,} truck loads); "
        f"{summary.agencies} agencies, {summary.documents:,} documents, "
        f"{summary.support_cases:,} citizen-support cases ({summary.support_total_vnd:,} VND)"
    )


def prepare_database(url: str) -> None:
    """Apply pending migrations and load the species catalogue: both are no-ops when done."""
    from etl.species import load_species
    from smarttrees import schema
    from smarttrees.database import connect

    applied = schema.upgrade(url)
    if applied:
        out.print(f"applied migrations: {', '.join(applied)}", highlight=False)
    with connect(url) as conn:
        load_species(conn)


def ensure_province(url: str, scale: str, seed: int, communes: Path | None) -> bool:
    """Generate the province unless one is loaded; True when it was generated now."""
    from etl.synthetic import generate_province, loaded_province

    existing = loaded_province(url)
    if existing is not None:
        out.print(
            f"province already loaded (scale {existing.scale}, seed {existing.seed}): "
            f"{_describe(existing)}; nothing to do",
            highlight=False,
        )
        return False
    with _progress() as report:
        summary = generate_province(url, scale, seed, communes, progress=report)  # type: ignore[arg-type]
    out.print(
        f"generated the {scale} province (seed {seed}) in {summary.seconds:.1f} s: "
        f"{_describe(summary)}",
        highlight=False,
    )
    return True


def generate(
    scale: Annotated[
        ScaleName, typer.Option("--scale", help="small (about 5,000 trees) or full (1.13 M).")
    ] = ScaleName.SMALL,
    seed: Annotated[
        int, typer.Option("--seed", help="The same seed gives the same province.")
    ] = 2025,
    communes: Annotated[
        Path | None,
        typer.Option(
            "--communes",
            exists=True,
            dir_okay=False,
            help="Boundary file (GeoJSON, GPKG, SHP…) with a code column, used instead of "
            "synthetic communes.",
        ),
    ] = None,
) -> None:
    """Generate the synthetic province into the database (migrating it first if needed).

    A no-op when a province is already loaded.
    """
    from smarttrees.database import database_url

    url = database_url()
    prepare_database(url)
    ensure_province(url, scale.value, seed, communes)


def demo(
    scale: Annotated[
        ScaleName, typer.Option("--scale", help="full (the demo) or small (a quick look).")
    ] = ScaleName.FULL,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: settings host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: settings port).")
    ] = None,
) -> None:
    """Start the local PostGIS, migrate, load the full province once, and serve it."""
    from smarttrees.cli.serve import run_server
    from smarttrees.database import database_url
    from smarttrees.settings import get_settings

    settings = get_settings()
    url = database_url()  # starts the managed cluster when no URL is configured
    prepare_database(url)
    ensure_province(url, scale.value, 2025, None)
    host = host or settings.host
    port = port or settings.port
    base = (settings.public_url or f"http://{host}:{port}").rstrip("/")
    out.print(
        f"SmartTrees is serving the province:\n"
        f"  landing page   {base}/\n"
        f"  trees          {base}/collections/trees/items\n"
        f"  web map        {base}/map\n"
        "Ctrl-C stops the server; the data stay.",
        highlight=False,
    )
    try:
        run_server(host, port)
    except KeyboardInterrupt:
        out.print("stopped; the data stay")


def register(app: typer.Typer) -> None:
    """Add ``generate`` and ``demo`` to the ``smarttrees`` command."""
    app.command("generate")(generate)
    app.command("demo")(demo)
